"""The application factory."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
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
from actions.escalation import utc_now
from bot import health, redis_connection
from bot.accounts import routes as account_routes
from bot.accounts.sessions import LoginThrottle, Sessions
from bot.accounts.store import Accounts, background_priority
from bot.background import Background, stop_background
from bot.channels import rest, webchat
from bot.channels.delivery import Delivery
from bot.channels.webchat.sessions import WebchatSessions
from bot.channels.wechat import routes as wechat
from bot.channels.weibo import routes as weibo
from bot.chat.once import RENEW_EVERY, MessageClaims, new_instance
from bot.chat.service import ChatService, ModelSlot
from bot.console import api as console_api
from bot.console import page as console_page
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
from bot.engine.runtime import RasaEngine
from bot.engine.tracker_store import AsyncRedisTrackerStore
from bot.errors import error_middleware
from bot.events import Events
from bot.feedback.store import FeedbackLog
from bot.handoff.requests import HandoffRequests
from bot.handoff.states import ConversationStates
from bot.handoff.sweeper import sweeper_ctx
from bot.keys import (
    ACCOUNTS,
    ACTION_SERVER,
    AUDIT,
    BACKGROUND,
    CHAT,
    CLARIFICATIONS,
    CLOCK,
    CONSOLE,
    CONVERSATION_LOG,
    CUSTOMER_DATA,
    DELIVERY,
    EVENTS,
    HUB,
    KNOWLEDGE,
    LOGIN_THROTTLE,
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
)
from bot.logs import request_id_middleware
from bot.nlu.clarification import ClarificationStore, load_readings
from bot.orders.demo import RedisDemoOrders
from bot.orders.http import HttpOrderBackend
from bot.privacy import keep, mask
from bot.realtime import hub_ctx
from bot.redis_connection import ReplicaBarrier
from bot.redis_keys import Keys
from bot.retention import retention_ctx
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
from bot.stats.metrics import Metrics
from bot.stats.recorder import Stats

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    engine: RasaEngine | None = None,
    clock: Callable[[], dt.datetime] = utc_now,
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
    app.cleanup_ctx.append(content_ctx)
    app.cleanup_ctx.append(conversation_ctx)
    app.cleanup_ctx.append(order_backend_ctx)
    app.cleanup_ctx.append(accounts_ctx)
    app.cleanup_ctx.append(hub_ctx)
    # Before aiohttp waits for pending tasks: stop background loops and sockets.
    app.on_shutdown.append(stop_background)  # type: ignore[arg-type]  # aiosignal typing
    app.cleanup_ctx.append(sweeper_ctx)
    app.cleanup_ctx.append(retention_ctx)
    app.cleanup_ctx.append(_model_ctx(engine))
    wechat.setup(app, settings)  # its routes and client, when WeChat is configured
    weibo.setup(app, settings)  # likewise for Weibo
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


async def conversation_ctx(app: web.Application) -> AsyncIterator[None]:
    keys = Keys(app[SETTINGS].key_prefix)
    app[STATS] = Stats(
        app[REDIS],
        keys,
        app[KNOWLEDGE].hours.timezone,
        app[SETTINGS].retention_days,
        Metrics(app[SETTINGS].metrics_dir),
    )
    app[CONVERSATION_LOG] = ConversationLog(app[REDIS], keys, app[STATS])
    app[SATISFACTION] = SatisfactionStore(app[REDIS], keys)
    app[CLARIFICATIONS] = ClarificationStore(app[REDIS], keys)
    app[STATES] = ConversationStates(app[REDIS], keys)
    app[CONSOLE] = ConsoleStore(app[REDIS], keys)
    app[EVENTS] = Events(app[REDIS], keys)
    app[DELIVERY] = Delivery(app[EVENTS], app[CONVERSATION_LOG])
    app[REVIEW_INDEX] = ReviewIndex(app[REDIS], keys)
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
        mask if app[SETTINGS].mask_pii else keep,
        app[STATS],
        claims,
        app[CLARIFICATIONS],
    )
    app[BACKGROUND].on_stop(app[RETRAIN].close)
    yield
    await app[RETRAIN].close()


def _model_ctx(
    preloaded: RasaEngine | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def model_ctx(app: web.Application) -> AsyncIterator[None]:
        reloader = Reloader(app)
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
        handoff=HandoffRequests(redis, keys, mask if settings.mask_pii else keep, app[STATS]),
        feedback=FeedbackLog(redis, keys, mask if settings.mask_pii else keep),
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
    app[ACTION_SERVER].configure(executor, token)
    if settings.action_url:
        # Actions served elsewhere: Rasa calls them over HTTP with the shared token.
        endpoint = EndpointConfig(
            url=settings.action_url, headers={"Authorization": f"Bearer {token}"}
        )
    else:
        endpoint = InProcessActionEndpoint(settings.action_endpoint_url, app[ACTION_SERVER])
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
    app[MODEL].engine = engine
    app[MODEL].error = None
    app[STATS].metrics.serving(engine.version)
    logger.info("serving model %s", engine.version)
