"""Requests for a person, recorded in Redis for the support team to pick up."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from redis.asyncio import Redis

from bot.handoff.hours import ServiceHours
from bot.handoff.standing import Standing, standing
from bot.handoff.states import ConversationStates
from bot.redis_keys import Keys
from bot.review.index import ReviewIndex
from bot.stats.recorder import Stats

# Why a conversation went to a person; recorded on the conversation.
REASONS = (
    "request_human",  # the customer asked
    "low_confidence",  # two turns in a row the bot did not understand
    "complaint",
    "abuse",  # the second insult in a conversation
    "sensitive_topic",  # the second sensitive topic in a conversation
    "payment_issue",  # needs a person with account access
    "account_issue",  # needs a person with account access
    "order_id_invalid",  # three order numbers that were not order numbers
    "order_change",  # cancelling or changing an order is done by a person
)


class HandoffRequests:
    """Escalations: the reason and the customer's words, and a place in the queue."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        mask: Callable[[str], str] = lambda text: text,
        stats: Stats | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._mask = mask
        self._stats = stats
        self.states = ConversationStates(redis, keys)
        self._index = ReviewIndex(redis, keys)

    async def request(self, conversation: str, reason: str, text: str) -> None:
        """Record that `conversation` needs a person; an earlier request keeps its place."""
        if reason not in REASONS:
            raise ValueError(f"unknown escalation reason {reason!r}")
        now = time.time()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self._keys.handoff_reasons(conversation), reason)
            pipe.hset(
                self._keys.handoff(conversation),
                mapping={"reason": reason, "text": self._mask(text), "requested_at": repr(now)},
            )
            await pipe.execute()
        await self.states.escalate(conversation, reason)
        await self._index.escalated(conversation, reason, now)
        if self._stats is not None:
            await self._stats.escalation(conversation, reason, now)

    async def standing(
        self, conversation: str, hours: ServiceHours, now: dt.datetime
    ) -> Standing | None:
        return await standing(self.states, hours, conversation, now)

    async def details(self, conversation: str) -> dict[str, str]:
        return dict(await self._redis.hgetall(self._keys.handoff(conversation)))

    async def reasons(self, conversation: str) -> list[str]:
        return list(await self._redis.lrange(self._keys.handoff_reasons(conversation), 0, -1))
