"""The application factory and composition root.

`create_app` builds every collaborator once, in one cleanup context per
resource, hands each its collaborators through its constructor and stores the
shared ones under the typed keys of `bot/app_keys.py`; no module below this
one builds another's collaborators or imports upward.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from rasa.utils.endpoints import EndpointConfig
from rasa_sdk.executor import ActionExecutor
from redis.exceptions import RedisError

from actions import ActionDeps, build_actions
from bot import health, redis_connection
from bot.accounts import routes as account_routes
from bot.accounts.sessions import LoginThrottle, Sessions
from bot.accounts.store import Accounts, background_priority
from bot.app_keys import (
    ACCOUNTS,
    ACTION_SERVER,
    AUDIT,
    BACKGROUND,
    CHAT,
    CLARIFICATIONS,
    CLOCK,
    CONSOLE,
    CONSOLE_PRESENCE,
    CONVERSATION_LOG,
    CUSTOMER_DATA,
    DELIVERY,
    EVENTS,
    FEEDBACK,
    HANDOFF,
    HANDOFF_REQUESTS,
    HUB,
    KNOWLEDGE,
    KPI_PEOPLE,
    KPI_SPLITS,
    KPIS,
    LOGIN_THROTTLE,
    MENU,
    MESSAGES,
    MODEL,
    ORDERS,
    RATE_LIMITS,
    READINGS,
    REDIS,
    RELOADER,
    REPLICA_BARRIER,
    RETRAIN,
    REVIEW_INDEX,
    SATISFACTION,
    SESSIONS,
    SETTINGS,
    STATES,
    STATS,
    WEBCHAT_SESSIONS,
    WECHAT,
    WECHAT_CRYPTO,
    WECOM_KF,
    WECOM_KF_CRYPTO,
    WEIBO,
)
from bot.background import Background
from bot.channels import rest, webchat
from bot.channels.delivery import Delivery
from bot.channels.menu import Menu
from bot.channels.webchat.sessions import WebchatSessions
from bot.channels.wechat import routes as wechat
from bot.channels.wechat.api import WeChatClient
from bot.channels.wechat.channel import CHANNEL as WECHAT_CHANNEL
from bot.channels.wechat.channel import WeChatChannel
from bot.channels.wechat.crypto import MessageCrypto
from bot.channels.wecom_kf import routes as wecom_kf
from bot.channels.wecom_kf.api import WeComKfClient
from bot.channels.wecom_kf.channel import CHANNEL as WECOM_KF_CHANNEL
from bot.channels.wecom_kf.channel import WeComKfChannel
from bot.channels.wecom_kf.store import KfStore
from bot.channels.weibo import routes as weibo
from bot.channels.weibo.api import WeiboClient
from bot.channels.weibo.channel import CHANNEL as WEIBO_CHANNEL
from bot.channels.weibo.channel import WeiboChannel
from bot.chat.once import RENEW_EVERY, MessageClaims, new_instance
from bot.chat.service import ChatService, ModelSlot
from bot.clock import Clock, utc_now
from bot.console import api as console_api
from bot.console import page as console_page
from bot.console.presence import ConsolePresence
from bot.console.store import ConsoleStore
from bot.content.knowledge import KnowledgeBase
from bot.content.messages import Messages
from bot.conversation_log import api as conversation_api
from bot.conversation_log.store import ConversationLog
from bot.custom_actions import route as action_route
from bot.custom_actions.server import ActionServer, InProcessActionEndpoint
from bot.customer_data import api as customer_data_api
from bot.customer_data.audit import AuditLog
from bot.customer_data.store import CustomerData
from bot.engine.lock_store import RedisTicketLockStore
from bot.engine.runtime import ParseCache, RasaEngine
from bot.engine.tracker_store import AsyncRedisTrackerStore
from bot.errors import error_middleware
from bot.events import Events
from bot.feedback.store import FeedbackLog
from bot.handoff.alerts import AlertSettings, GroupRobot
from bot.handoff.load import RETRY_EVERY as LOAD_RETRY_EVERY
from bot.handoff.load import RecountIncomplete
from bot.handoff.presence import Presence
from bot.handoff.requests import HandoffRequests
from bot.handoff.service import HandoffService
from bot.handoff.states import ConversationStates
from bot.handoff.sweeper import start_sweeper
from bot.handoff.teams import TeamMap
from bot.logs import request_id_middleware
from bot.loop_lag import LoopLagProbe
from bot.migrations import migration_ctx
from bot.nlu.clarification import ClarificationStore, load_readings
from bot.orders.demo import RedisDemoOrders
from bot.orders.http import HttpOrderBackend
from bot.privacy import keep, mask
from bot.realtime import Hub, bounded
from bot.redis_connection import ReplicaBarrier
from bot.redis_keys import Keys
from bot.retention import EVERY as RETENTION_EVERY
from bot.retention import Retention
from bot.retrain.jobs import RetrainJobs
from bot.retrain.registry import serving_model
from bot.retrain.reload import PROMOTED, Reloader
from bot.review import api as review_api
from bot.review.index import ReviewIndex
from bot.satisfaction.store import SatisfactionStore
from bot.security.body import body_middleware
from bot.security.headers import on_prepare
from bot.security.proxy import TrustedProxies, forwarded_middleware
from bot.security.ratelimit import RateLimits
from bot.settings import Settings
from bot.stats import api as stats_api
from bot.stats.breakdown import Breakdown
from bot.stats.kpis import Kpis
from bot.stats.metrics import Metrics
from bot.stats.people import People
from bot.stats.recorder import Stats
from bot.stats.subscriber import KpiRecorder

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    engine: RasaEngine | None = None,
    clock: Clock = utc_now,
) -> web.Application:
    """Build the service.

    With `engine`, serve that already-loaded model (tests do); `clock` is the
    time the bot believes it is (tests move it in and out of service hours).
    """
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            request_id_middleware,
            error_middleware,
            forwarded_middleware(TrustedProxies(settings.trusted_proxies)),
            body_middleware(settings.body_timeout, settings.max_body_bytes),
            replica_barrier,
        ],
    )
    app.on_response_prepare.append(on_prepare)  # type: ignore[arg-type]  # aiosignal typing
    app[SETTINGS] = settings
    app[BACKGROUND] = Background()
    app[CLOCK] = clock
    app[MODEL] = ModelSlot()
    app[ACTION_SERVER] = ActionServer()
    app.cleanup_ctx.append(redis_ctx)
    app.cleanup_ctx.append(migration_ctx)  # old-layout keys moved before anything serves
    app.cleanup_ctx.append(content_ctx)
    app.cleanup_ctx.append(conversation_ctx)
    app.cleanup_ctx.append(load_ctx)  # agents' loads counted again before the sweeper assigns
    app.cleanup_ctx.append(loop_lag_ctx)
    app.cleanup_ctx.append(order_backend_ctx)
    app.cleanup_ctx.append(accounts_ctx)
    app.cleanup_ctx.append(hub_ctx)
    # Before aiohttp waits for pending tasks: stop background loops and sockets.
    app.on_shutdown.append(stop_background)  # type: ignore[arg-type]  # aiosignal typing
    if settings.alert_webhook:  # the team's group chat hears of long waits
        app.cleanup_ctx.append(alerts_ctx)
    app.cleanup_ctx.append(retention_ctx)
    app.cleanup_ctx.append(_model_ctx(engine))
    if wechat.setup(app, settings):  # its routes, when WeChat is configured
        app.cleanup_ctx.append(wechat_ctx)
    if wecom_kf.setup(app, settings):  # likewise WeChat Customer Service (WeCom kf)
        app.cleanup_ctx.append(wecom_kf_ctx)
    if weibo.setup(app, settings):  # and Weibo's direct messages
        app.cleanup_ctx.append(weibo_ctx)
    # After every context above (on_startup runs them first): every channel's
    # sender is registered before a sweep assigns anyone and tells the customer.
    app.on_startup.append(start_sweeper)  # type: ignore[arg-type]  # aiosignal typing
    health.setup(app)
    rest.setup(app)
    webchat.setup(app)
    conversation_api.setup(app)
    customer_data_api.setup(app)
    account_routes.setup(app)
    console_api.setup(app)
    console_page.setup(app)
    review_api.setup(app)
    stats_api.setup(app)
    action_route.setup(app)
    return app


async def stop_background(app: web.Application) -> None:
    await app[BACKGROUND].stop_all()


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """One client (a URL, or the master Sentinel names) for every store of this process."""
    settings = app[SETTINGS]
    client = redis_connection.connect(settings)
    app[REDIS] = client
    app[REPLICA_BARRIER] = ReplicaBarrier(
        client,
        Keys(settings.key_prefix).replication_barrier,
        settings.redis_wait_replicas,
        # WAIT must give up before the client's socket does, or a missing replica
        # would look like a dead master.
        min(settings.redis_wait_timeout, settings.redis_timeout / 2),
    )
    yield
    await client.close(close_connection_pool=True)


@web.middleware
async def replica_barrier(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer a successful POST (a message, a claim, a reply) once replicas hold its writes.

    A RedisError here (the master died at that moment) becomes the usual 503;
    the client's retry of the same `message_id` gets the first replies or, if
    the turn was lost with the master, a first turn.
    """
    response = await handler(request)
    if request.method == "POST" and response.status < 300:
        await request.app[REPLICA_BARRIER].wait()
    return response


async def content_ctx(app: web.Application) -> AsyncIterator[None]:
    """The trainers' files: what the bot knows and how it says things (read once)."""
    settings = app[SETTINGS]
    app[KNOWLEDGE] = KnowledgeBase.load(settings.knowledge_file, settings.knowledge_max_age_days)
    app[MESSAGES] = Messages.load(settings.messages_file)
    app[READINGS] = load_readings(settings.clarification_file)
    app[MENU] = Menu.load(settings.menu_file, app[KNOWLEDGE])
    yield


async def accounts_ctx(app: web.Application) -> AsyncIterator[None]:
    """Sign-in; on the very first start, an admin account with a random password."""
    settings = app[SETTINGS]
    keys = Keys(settings.key_prefix)
    # One low-priority thread for bcrypt: checks never stall the event loop,
    # and a burst of them takes only the CPU customers leave.
    hasher = ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="bcrypt", initializer=background_priority
    )
    accounts = Accounts(app[REDIS], keys, rounds=settings.bcrypt_rounds, executor=hasher)
    app[ACCOUNTS] = accounts
    app[SESSIONS] = Sessions(app[REDIS], keys)
    app[LOGIN_THROTTLE] = LoginThrottle(app[REDIS], keys, settings.login_address_rate)
    app[RATE_LIMITS] = RateLimits(
        app[REDIS], keys, app[MESSAGES], settings.rate_conversation, settings.rate_address
    )
    try:
        password = await accounts.ensure_admin()
    except RedisError as exc:  # Redis down at start-up: sign-in waits for it, the rest runs
        logger.warning("could not check for accounts at start-up: %s", exc)
        password = None
    if password:
        # Printed once, here, and stored only as a hash: there is no default password.
        print(
            f"\nNo accounts yet: created account 'admin' with password {password}\n"
            "Sign in at /console and change it with `python -m bot users passwd admin`.\n",
            flush=True,
        )
    yield
    hasher.shutdown(wait=False, cancel_futures=True)


async def order_backend_ctx(app: web.Application) -> AsyncIterator[None]:
    """The order system: over HTTP with its own client session, or the Redis demo."""
    settings = app[SETTINGS]
    if settings.order_backend == "http":
        assert settings.order_api_url is not None
        async with aiohttp.ClientSession() as session:
            app[ORDERS] = HttpOrderBackend(
                session,
                settings.order_api_url,
                settings.order_api_token,
                settings.order_api_timeout,
            )
            yield
        return
    app[ORDERS] = RedisDemoOrders(app[REDIS], Keys(settings.key_prefix))
    yield


async def loop_lag_ctx(app: web.Application) -> AsyncIterator[None]:
    """The event-loop stall probe, reporting to the metrics (bot/loop_lag.py)."""
    probe = LoopLagProbe(app[STATS].metrics.loop_stalled)
    probe.start()
    yield
    await probe.stop()


async def conversation_ctx(app: web.Application) -> AsyncIterator[None]:
    keys = Keys(app[SETTINGS].key_prefix)
    app[STATS] = Stats(
        app[REDIS],
        keys,
        app[KNOWLEDGE].hours.timezone,
        app[SETTINGS].retention_days,
        # Agents' own series only behind a token: /metrics is open by default.
        Metrics(app[SETTINGS].metrics_dir, per_agent=app[SETTINGS].metrics_token is not None),
    )
    app[KPIS] = Kpis(app[REDIS], app[STATS])
    app[KPI_SPLITS] = Breakdown(app[REDIS], app[STATS])
    app[KPI_PEOPLE] = People(app[REDIS], app[STATS])
    app[CONVERSATION_LOG] = ConversationLog(app[REDIS], keys)
    app[SATISFACTION] = SatisfactionStore(app[REDIS], keys)
    app[CLARIFICATIONS] = ClarificationStore(app[REDIS], keys)
    app[STATES] = ConversationStates(app[REDIS], keys)
    masking = mask if app[SETTINGS].mask_pii else keep
    app[HANDOFF_REQUESTS] = HandoffRequests(app[REDIS], keys, masking)
    app[FEEDBACK] = FeedbackLog(app[REDIS], keys, masking)
    app[CONSOLE] = ConsoleStore(app[REDIS], keys)
    app[EVENTS] = Events(app[REDIS], keys)
    app[DELIVERY] = Delivery(app[EVENTS], app[CONVERSATION_LOG])
    app[REVIEW_INDEX] = ReviewIndex(app[REDIS], keys)
    # The KPIs and metrics count what this process publishes; the handoff
    # service is the one writer of who has a conversation.
    KpiRecorder(app[STATS]).subscribe(app[EVENTS])
    app[HANDOFF] = HandoffService(
        app[STATES],
        app[HANDOFF_REQUESTS],
        app[REVIEW_INDEX],
        app[EVENTS],
        app[DELIVERY],
        app[MESSAGES],
        app[KNOWLEDGE].hours,
        app[CONVERSATION_LOG],
        app[CONSOLE],
        Presence(app[REDIS], keys, app[SETTINGS].agent_capacity),
        TeamMap.load(app[SETTINGS].teams_file),
        auto_assign=app[SETTINGS].auto_assign,
        service_levels=app[SETTINGS].service_levels,
    )
    # This process's open consoles keep their agents online.
    app[CONSOLE_PRESENCE] = ConsolePresence(
        app[HANDOFF],
        new_instance(),
        app[SETTINGS].presence_renew_seconds,
        app[SETTINGS].presence_grace_seconds,
    )
    app[BACKGROUND].every(
        app[SETTINGS].presence_renew_seconds, app[CONSOLE_PRESENCE].renew, "console presence"
    )
    app[RETRAIN] = RetrainJobs(app[REDIS], keys, app[SETTINGS])
    app[WEBCHAT_SESSIONS] = WebchatSessions(app[REDIS], keys, app[SETTINGS].webchat_secret)
    app[AUDIT] = AuditLog(app[REDIS], keys)
    app[CUSTOMER_DATA] = CustomerData(
        app[REDIS], keys, app[CONVERSATION_LOG], app[REVIEW_INDEX], app[STATS], app[AUDIT]
    )
    claims = MessageClaims(app[REDIS], keys, new_instance())
    app[BACKGROUND].every(RENEW_EVERY, claims.renew, "message claim renewal")
    app[CHAT] = ChatService(
        app[CONVERSATION_LOG],
        app[MODEL],
        app[SATISFACTION],
        app[MESSAGES],
        app[EVENTS],
        app[STATES],
        app[KNOWLEDGE].hours,
        app[CLOCK],
        app[REVIEW_INDEX],
        masking,
        claims,
        app[CLARIFICATIONS],
    )
    app[BACKGROUND].on_stop(app[RETRAIN].close)
    yield
    await app[RETRAIN].close()


async def load_ctx(app: web.Application) -> AsyncIterator[None]:
    """Every agent's load counted again from who holds what, once per start.

    Conversations held since before loads were kept count toward their agent's
    capacity. Never in the way of starting: with Redis away, or conversations
    assigned faster than a recount can list them, retried in the background
    until done. Assigning waiting conversations is left to the sweeper, which
    runs once every channel's sender is registered (a customer assigned now
    on WeChat would never hear that a person joined).
    """
    handoff = app[HANDOFF]
    try:
        await handoff.recount_loads()
    except (RedisError, OSError, RecountIncomplete) as exc:
        logger.warning("could not recount agents' loads at start-up (%s); retrying", exc)
        app[BACKGROUND].until_done(LOAD_RETRY_EVERY, handoff.recount_loads, "agents' load recount")
    yield


async def hub_ctx(app: web.Application) -> AsyncIterator[None]:
    """Live updates: this process's subscription to the events channel and its sockets."""
    settings = app[SETTINGS]
    # Its own client: a subscription holds its connection, and shutting it down
    # must not wait on the pool every other request uses. With Sentinel, each
    # resubscription asks the Sentinels for the master again.
    redis = redis_connection.connect(settings)
    hub = Hub(redis, Keys(settings.key_prefix).events)
    hub.on_agents = app[STATS].metrics.agents_online.set
    app[HUB] = hub
    task = asyncio.create_task(hub.run())

    async def stop() -> None:
        # At shutdown, before the server waits for open handlers: an open socket
        # would hold it up; clients reconnect to another process.
        hub.stop()
        await bounded(task, 3)
        await hub.close_sockets()

    app[BACKGROUND].on_stop(stop)
    yield
    await stop()
    await hub.close()
    await bounded(redis.close(close_connection_pool=True), 2)


async def alerts_ctx(app: web.Application) -> AsyncIterator[None]:
    """Group-robot alerts: its own HTTP session, checked with every queue sweep."""
    settings = app[SETTINGS]
    assert settings.alert_webhook
    alert = AlertSettings(
        settings.alert_webhook,
        settings.alert_webhook_format,
        settings.alert_wait_seconds,
        settings.alert_queue_size,
        settings.alert_webhook_secret,
    )
    async with aiohttp.ClientSession() as session:
        robot = GroupRobot(session, app[REDIS], Keys(settings.key_prefix), app[STATES], alert)
        # Stopped at shutdown with the other background jobs, before the session closes.
        app[BACKGROUND].every(settings.handoff_sweep_seconds, robot.check, "group robot alerts")
        yield


async def retention_ctx(app: web.Application) -> AsyncIterator[None]:
    """Forget old conversations, hourly, in one process of all."""
    settings = app[SETTINGS]
    retention = Retention(
        app[REDIS], Keys(settings.key_prefix), app[REVIEW_INDEX], settings.retention_days
    )

    async def hourly() -> None:
        await retention.expire_once_per(RETENTION_EVERY)

    app[BACKGROUND].every(RETENTION_EVERY, hourly, "retention sweep")
    yield


async def wechat_ctx(app: web.Application) -> AsyncIterator[None]:
    """The WeChat channel: its message crypto, its API client and session, its sender."""
    settings = app[SETTINGS]
    assert settings.wechat_token and settings.wechat_appid and settings.wechat_secret
    keys = Keys(settings.key_prefix)
    app[WECHAT_CRYPTO] = (
        MessageCrypto(settings.wechat_token, settings.wechat_aes_key, settings.wechat_appid)
        if settings.wechat_aes_key
        else None
    )
    async with aiohttp.ClientSession() as session:
        client = WeChatClient(
            session,
            app[REDIS],
            keys,
            settings.wechat_api_base,
            settings.wechat_appid,
            settings.wechat_secret,
        )
        channel = WeChatChannel(
            app[CHAT],
            client,
            app[REDIS],
            keys,
            settings.wechat_reply_budget,
            settings.max_message_chars,
            app[MENU],
        )
        app[WECHAT] = channel
        app[DELIVERY].register(WECHAT_CHANNEL, channel)
        mode = "safe mode (AES)" if app[WECHAT_CRYPTO] else "plain mode"
        logger.info("WeChat channel on at /webhooks/wechat, %s", mode)
        app[BACKGROUND].on_stop(lambda: channel.drain(timeout=10))
        yield
        await channel.drain(timeout=10)


async def wecom_kf_ctx(app: web.Application) -> AsyncIterator[None]:
    """WeChat Customer Service: its crypto, its API client and session, its puller and sender."""
    settings = app[SETTINGS]
    assert settings.wecom_corp_id and settings.wecom_kf_secret
    assert settings.wecom_token and settings.wecom_aes_key
    keys = Keys(settings.key_prefix)
    app[WECOM_KF_CRYPTO] = MessageCrypto(
        settings.wecom_token, settings.wecom_aes_key, settings.wecom_corp_id
    )
    async with aiohttp.ClientSession() as session:
        client = WeComKfClient(
            session,
            app[REDIS],
            keys,
            settings.wecom_api_base,
            settings.wecom_corp_id,
            settings.wecom_kf_secret,
        )
        channel = WeComKfChannel(
            app[CHAT],
            client,
            KfStore(app[REDIS], keys),
            app[HANDOFF],
            app[EVENTS],
            app[MESSAGES],
            app[RATE_LIMITS],
            settings.max_message_chars,
            settings.wecom_kf_retry_seconds,
            settings.wecom_kf_handoff,
            settings.wecom_kf_servicer,
        )
        app[WECOM_KF] = channel
        app[DELIVERY].register(WECOM_KF_CHANNEL, channel)
        logger.info("WeChat Customer Service channel on at %s", wecom_kf.PATH)
        app[BACKGROUND].every(RENEW_EVERY, channel.renew, "WeChat Customer Service leases")
        app[BACKGROUND].on_stop(lambda: channel.drain(timeout=10))
        yield
        await channel.drain(timeout=10)


async def weibo_ctx(app: web.Application) -> AsyncIterator[None]:
    """Weibo's direct messages: the API client and its session, the channel."""
    settings = app[SETTINGS]
    assert settings.weibo_access_token
    async with aiohttp.ClientSession() as session:
        channel = WeiboChannel(
            app[CHAT],
            WeiboClient(session, settings.weibo_api_base, settings.weibo_access_token),
            app[REDIS],
            Keys(settings.key_prefix),
            settings.weibo_reply_budget,
            settings.max_message_chars,
            app[MENU],
        )
        app[WEIBO] = channel
        app[DELIVERY].register(WEIBO_CHANNEL, channel)
        logger.info("Weibo channel on at %s", weibo.PATH)
        app[BACKGROUND].on_stop(lambda: channel.drain(timeout=10))
        yield
        await channel.drain(timeout=10)


def _model_ctx(
    preloaded: RasaEngine | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def model_ctx(app: web.Application) -> AsyncIterator[None]:
        reloader = Reloader(app[SETTINGS].model_dir, app[MODEL], functools.partial(_serve, app))
        app[RELOADER] = reloader
        app[HUB].listeners[PROMOTED].append(reloader.on_event)
        if preloaded is not None:
            await _serve(app, preloaded)
            app[BACKGROUND].on_stop(reloader.close)
            yield
            await reloader.close()
            return
        # Loading takes seconds: do it in the background so /healthz answers
        # meanwhile, and /readyz says when the model is there.
        task = asyncio.create_task(_load_and_serve(app))

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await reloader.close()

        app[BACKGROUND].on_stop(stop)
        yield
        await stop()

    return model_ctx


async def _load_and_serve(app: web.Application) -> None:
    settings = app[SETTINGS]
    slot = app[MODEL]
    try:
        path = serving_model(settings.model_dir)
        engine = await asyncio.to_thread(RasaEngine.load, path)
    except Exception as exc:
        logger.exception("could not load a model from %s", settings.model_dir)
        slot.error = f"no model could be loaded: {exc}"
        return
    while True:
        try:
            await _serve(app, engine)
            return
        except RedisError as exc:
            slot.error = "waiting for Redis"
            logger.warning("Redis not reachable at start-up (%s); retrying", exc)
            await asyncio.sleep(1)


async def _serve(app: web.Application, engine: RasaEngine) -> None:
    """Wire the loaded model to this app's Redis stores and actions, then serve it."""
    settings = app[SETTINGS]
    redis = app[REDIS]
    keys = Keys(settings.key_prefix)
    executor = ActionExecutor()
    deps = ActionDeps(
        handoff=app[HANDOFF],
        feedback=app[FEEDBACK],
        knowledge=app[KNOWLEDGE],
        messages=app[MESSAGES],
        orders=app[ORDERS],
        satisfaction=app[SATISFACTION],
        clock=app[CLOCK],
        clarifications=app[CLARIFICATIONS],
        readings=app[READINGS],
    )
    for action in build_actions(deps):
        executor.register_action(action)
    token = await action_route.shared_token(redis, keys, settings.action_token)
    app[ACTION_SERVER].configure(executor, token, app[MESSAGES])
    if settings.action_url:
        # Actions served elsewhere: Rasa calls them over HTTP with the shared token.
        endpoint = EndpointConfig(
            url=settings.action_url, headers={"Authorization": f"Bearer {token}"}
        )
    else:
        endpoint = InProcessActionEndpoint(settings.action_endpoint_url, app[ACTION_SERVER])
    engine.parses = ParseCache(settings.parse_cache)
    engine.bind(
        tracker_store=AsyncRedisTrackerStore(
            engine.agent.domain, redis, keys, max_events=settings.max_tracker_events
        ),
        lock_store=RedisTicketLockStore(redis, keys, lifetime=settings.lock_lifetime),
        action_endpoint=endpoint,
    )
    # The model is millions of long-lived objects; moving them out of the
    # collector's reach keeps full collections (and the pauses they cause in
    # every request being served) short.
    gc.unfreeze()  # a reload: let the previous model be collected once no turn uses it
    gc.collect()
    gc.freeze()
    # A menu button whose intent this model does not know is switched off, loudly.
    app[MENU].serve(set(engine.agent.domain.intents), engine.version)
    app[MODEL].engine = engine
    app[MODEL].error = None
    app[STATS].metrics.serving(engine.version)
    logger.info("serving model %s", engine.version)
