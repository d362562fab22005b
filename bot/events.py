"""Events: what happened (a customer message, an agent reply, a claim), published once.

`Events.publish` first hands the event to the subscribers of this process
(the KPI and metrics recorder), then publishes it on one Redis pub/sub channel
(``P:events``), so an agent connected to one process sees what arrives at
another, and a customer's web chat hears an agent's reply wherever it was sent
from. Counting on the publishing side counts each event exactly once, however
many processes listen, and misses nothing while a subscription is down.

Figures meant only for the KPI recorder (who handled a conversation and for
how long, whose work a rating rates, an agent's first-response time) travel as
`local`: handed to this process's subscribers, never put on the channel, where
every signed-in console (any agent) would receive them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from redis.asyncio import Redis

from bot.redis_keys import Keys


class EventKind(str, Enum):
    """The `type` of every event on the channel (consoles and web chats read them)."""

    CUSTOMER_MESSAGE = "customer_message"  # logged and classified (or not readable)
    BOT_MESSAGE = "bot_message"  # the bot's replies to a customer message
    AGENT_MESSAGE = "agent_message"  # an agent's reply, pushed to the customer
    NOTICE = "notice"  # a line from the bot nobody asked for: a person joined, left...
    NOTE = "note"  # an agent's internal note
    STATE = "state"  # who has the conversation changed (claim, release, close, ...)
    ESCALATED = "escalated"  # a request for a person (queued, or people had it already)
    RATED = "rated"  # a satisfaction rating
    REANNOUNCE = "reannounce"  # still waiting after the quiet period
    HANDED_ELSEWHERE = "handoff_left"  # a platform's own servicers took the conversation
    PRESENCE = "presence"  # an agent came online, stepped away or left (no conversation)
    MODEL_PROMOTED = "model_promoted"  # every process switches to the promoted model


# What one event carries besides its kind and conversation (the event's JSON fields).
Payload = dict[str, Any]
Subscriber = Callable[[str, Payload], Awaitable[None]]


def payload(kind: EventKind, conversation: str, **data: Any) -> str:
    """The event as it travels on the channel (`type`: the kind's value)."""
    return json.dumps({"type": kind, "conversation": conversation, **data}, ensure_ascii=False)


def model_promoted(model: str) -> str:
    """The event telling every running process to serve `model` (sent by the CLI)."""
    return payload(EventKind.MODEL_PROMOTED, "", model=model)


class Events:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self.channel = keys.events
        self._subscribers: dict[EventKind, list[Subscriber]] = defaultdict(list)

    def subscribe(self, kind: EventKind, subscriber: Subscriber) -> None:
        """Call `subscriber(conversation, data)` for every `kind` event this process publishes."""
        self._subscribers[kind].append(subscriber)

    async def publish(
        self, kind: EventKind, conversation: str, local: Payload | None = None, **data: Any
    ) -> None:
        """`data` to this process's subscribers and the channel; `local` to the subscribers only."""
        heard = {**data, **local} if local else data
        for subscriber in self._subscribers.get(kind, ()):
            await subscriber(conversation, heard)
        await self._redis.publish(self.channel, payload(kind, conversation, **data))
