"""Typed keys for the objects the application shares between its parts.

A leaf module: the types it names are imported only for the type checker, so
any module may import a key without importing the services behind it, and no
import cycle can pass through here. `bot/app.py` fills them in at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from bot.accounts.sessions import LoginThrottle, Sessions
    from bot.accounts.store import Accounts
    from bot.background import Background
    from bot.channels.delivery import Delivery
    from bot.channels.menu import Menu
    from bot.channels.webchat.sessions import WebchatSessions
    from bot.channels.wechat.channel import WeChatChannel
    from bot.channels.wechat.crypto import MessageCrypto
    from bot.channels.wecom_kf.channel import WeComKfChannel
    from bot.channels.weibo.channel import WeiboChannel
    from bot.chat.service import ChatService, ModelSlot
    from bot.clock import Clock
    from bot.console.presence import ConsolePresence
    from bot.console.store import ConsoleStore
    from bot.content.knowledge import KnowledgeBase
    from bot.content.messages import Messages
    from bot.conversation_log.store import ConversationLog
    from bot.custom_actions.server import ActionServer
    from bot.customer_data.audit import AuditLog
    from bot.customer_data.store import CustomerData
    from bot.events import Events
    from bot.feedback.store import FeedbackLog
    from bot.handoff.requests import HandoffRequests
    from bot.handoff.service import HandoffService
    from bot.handoff.states import ConversationStates
    from bot.nlu.clarification import ClarificationStore
    from bot.orders.backend import OrderBackend
    from bot.realtime import Hub
    from bot.redis_connection import ReplicaBarrier
    from bot.retrain.jobs import RetrainJobs
    from bot.retrain.reload import Reloader
    from bot.review.index import ReviewIndex
    from bot.satisfaction.store import SatisfactionStore
    from bot.security.ratelimit import RateLimits
    from bot.settings import Settings
    from bot.stats.breakdown import Breakdown
    from bot.stats.kpis import Kpis
    from bot.stats.people import People
    from bot.stats.recorder import Stats

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
BACKGROUND: web.AppKey[Background] = web.AppKey("background")
REDIS: web.AppKey[Redis] = web.AppKey("redis")
REPLICA_BARRIER: web.AppKey[ReplicaBarrier] = web.AppKey("replica_barrier")
MODEL: web.AppKey[ModelSlot] = web.AppKey("model")
CONVERSATION_LOG: web.AppKey[ConversationLog] = web.AppKey("conversation_log")
CHAT: web.AppKey[ChatService] = web.AppKey("chat")
ACTION_SERVER: web.AppKey[ActionServer] = web.AppKey("action_server")
ORDERS: web.AppKey[OrderBackend] = web.AppKey("orders")
KNOWLEDGE: web.AppKey[KnowledgeBase] = web.AppKey("knowledge")
MESSAGES: web.AppKey[Messages] = web.AppKey("messages")
# intent -> how the bot names it when asking which reading was meant
READINGS: web.AppKey[dict[str, str]] = web.AppKey("readings")
# What the custom menu buttons of WeChat and Weibo mean (nlu_data/menu.yml).
MENU: web.AppKey[Menu] = web.AppKey("menu")
CLARIFICATIONS: web.AppKey[ClarificationStore] = web.AppKey("clarifications")
SATISFACTION: web.AppKey[SatisfactionStore] = web.AppKey("satisfaction")
ACCOUNTS: web.AppKey[Accounts] = web.AppKey("accounts")
SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions")
LOGIN_THROTTLE: web.AppKey[LoginThrottle] = web.AppKey("login_throttle")
RATE_LIMITS: web.AppKey[RateLimits] = web.AppKey("rate_limits")
STATES: web.AppKey[ConversationStates] = web.AppKey("states")
HANDOFF_REQUESTS: web.AppKey[HandoffRequests] = web.AppKey("handoff_requests")
# The one writer of who has a conversation (bot/handoff/service.py).
HANDOFF: web.AppKey[HandoffService] = web.AppKey("handoff")
CONSOLE_PRESENCE: web.AppKey[ConsolePresence] = web.AppKey("console_presence")
FEEDBACK: web.AppKey[FeedbackLog] = web.AppKey("feedback")
CONSOLE: web.AppKey[ConsoleStore] = web.AppKey("console")
EVENTS: web.AppKey[Events] = web.AppKey("events")
HUB: web.AppKey[Hub] = web.AppKey("hub")
STATS: web.AppKey[Stats] = web.AppKey("stats")
KPIS: web.AppKey[Kpis] = web.AppKey("kpis")
# The KPIs split by channel and campaign source (bot/stats/breakdown.py).
KPI_SPLITS: web.AppKey[Breakdown] = web.AppKey("kpi_splits")
# Per agent and per team: handled, times, service level, ratings (bot/stats/people.py).
KPI_PEOPLE: web.AppKey[People] = web.AppKey("kpi_people")
RELOADER: web.AppKey[Reloader] = web.AppKey("reloader")
RETRAIN: web.AppKey[RetrainJobs] = web.AppKey("retrain")
REVIEW_INDEX: web.AppKey[ReviewIndex] = web.AppKey("review_index")
DELIVERY: web.AppKey[Delivery] = web.AppKey("delivery")
WEBCHAT_SESSIONS: web.AppKey[WebchatSessions] = web.AppKey("webchat_sessions")
AUDIT: web.AppKey[AuditLog] = web.AppKey("audit")
CUSTOMER_DATA: web.AppKey[CustomerData] = web.AppKey("customer_data")
WECHAT: web.AppKey[WeChatChannel] = web.AppKey("wechat")
# None in plain mode (no WECHAT_AES_KEY).
WECHAT_CRYPTO: web.AppKey[MessageCrypto | None] = web.AppKey("wechat_crypto")
WECOM_KF: web.AppKey[WeComKfChannel] = web.AppKey("wecom_kf")
WECOM_KF_CRYPTO: web.AppKey[MessageCrypto] = web.AppKey("wecom_kf_crypto")
WEIBO: web.AppKey[WeiboChannel] = web.AppKey("weibo")
# What time the bot believes it is (service hours); tests set it.
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
