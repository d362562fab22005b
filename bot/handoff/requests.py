"""Requests for a person, recorded in Redis for the support team to pick up."""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis

from bot.redis_keys import Keys

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
    """Escalation records: the reasons a conversation asked for a person, and their words.

    Written by the handoff service (`HandoffService.request`), which also queues
    the conversation; read by the review page and the actions.
    """

    def __init__(
        self, redis: Redis, keys: Keys, mask: Callable[[str], str] = lambda text: text
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._mask = mask

    async def record(self, conversation: str, reason: str, text: str, now: float) -> None:
        """Add `reason` to the conversation's reasons; the latest request's words and time."""
        if reason not in REASONS:
            raise ValueError(f"unknown escalation reason {reason!r}")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self._keys.handoff_reasons(conversation), reason)
            pipe.hset(
                self._keys.handoff(conversation),
                mapping={"reason": reason, "text": self._mask(text), "requested_at": repr(now)},
            )
            await pipe.execute()

    async def details(self, conversation: str) -> dict[str, str]:
        return dict(await self._redis.hgetall(self._keys.handoff(conversation)))

    async def reasons(self, conversation: str) -> list[str]:
        return list(await self._redis.lrange(self._keys.handoff_reasons(conversation), 0, -1))
