"""Typed keys for everything shared through the aiohttp application."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web
from redis.asyncio import Redis

from bot.accounts.sessions import LoginThrottle, Sessions
from bot.accounts.store import Accounts
from bot.background import Background
from bot.channels.delivery import Delivery
from bot.channels.wechat.channel import WeChatChannel
from bot.channels.wechat.crypto import MessageCrypto
from bot.chat.service import ChatService, ModelSlot
from bot.console.store import ConsoleStore
from bot.content.knowledge import KnowledgeBase
from bot.content.messages import Messages
from bot.conversation_log.store import ConversationLog
from bot.custom_actions.server import ActionServer
from bot.events import Events
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
from bot.stats.recorder import Stats

if TYPE_CHECKING:
    from bot.channels.webchat.sessions import WebchatSessions
    from bot.channels.weibo.channel import WeiboChannel
    from bot.customer_data.audit import AuditLog
    from bot.customer_data.store import CustomerData

SETTINGS = web.AppKey("settings", Settings)
BACKGROUND = web.AppKey("background", Background)
REDIS = web.AppKey("redis", Redis)
REPLICA_BARRIER = web.AppKey("replica_barrier", ReplicaBarrier)
MODEL = web.AppKey("model", ModelSlot)
CONVERSATION_LOG = web.AppKey("conversation_log", ConversationLog)
CHAT = web.AppKey("chat", ChatService)
ACTION_SERVER = web.AppKey("action_server", ActionServer)
ORDERS: web.AppKey[OrderBackend] = web.AppKey("orders")
KNOWLEDGE = web.AppKey("knowledge", KnowledgeBase)
MESSAGES = web.AppKey("messages", Messages)
# intent -> how the bot names it when asking which reading was meant
READINGS: web.AppKey[dict[str, str]] = web.AppKey("readings")
CLARIFICATIONS = web.AppKey("clarifications", ClarificationStore)
SATISFACTION = web.AppKey("satisfaction", SatisfactionStore)
ACCOUNTS = web.AppKey("accounts", Accounts)
SESSIONS = web.AppKey("sessions", Sessions)
LOGIN_THROTTLE = web.AppKey("login_throttle", LoginThrottle)
RATE_LIMITS = web.AppKey("rate_limits", RateLimits)
STATES = web.AppKey("states", ConversationStates)
CONSOLE = web.AppKey("console", ConsoleStore)
EVENTS = web.AppKey("events", Events)
HUB = web.AppKey("hub", Hub)
STATS = web.AppKey("stats", Stats)
RELOADER = web.AppKey("reloader", Reloader)
RETRAIN = web.AppKey("retrain", RetrainJobs)
REVIEW_INDEX = web.AppKey("review_index", ReviewIndex)
DELIVERY = web.AppKey("delivery", Delivery)
WEBCHAT_SESSIONS: web.AppKey[WebchatSessions] = web.AppKey("webchat_sessions")
AUDIT: web.AppKey[AuditLog] = web.AppKey("audit")
CUSTOMER_DATA: web.AppKey[CustomerData] = web.AppKey("customer_data")
WECHAT = web.AppKey("wechat", WeChatChannel)
# None in plain mode (no WECHAT_AES_KEY).
WECHAT_CRYPTO: web.AppKey[MessageCrypto | None] = web.AppKey("wechat_crypto")
WEIBO: web.AppKey[WeiboChannel] = web.AppKey("weibo")
# What time the bot believes it is (service hours); tests set it.
CLOCK: web.AppKey[Callable[[], dt.datetime]] = web.AppKey("clock")
