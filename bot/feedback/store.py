"""A Redis stream of customer feedback, in the customer's own words."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from bot.redis_keys import Keys

KINDS = ("complaint", "praise", "suggestion")


class FeedbackLog:
    def __init__(
        self, redis: Redis, keys: Keys, mask: Callable[[str], str] = lambda text: text
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._mask = mask  # BOT_MASK_PII: the customer's words are kept masked

    async def record(self, kind: str, conversation: str, text: str, channel: str = "") -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown feedback kind {kind!r}")
        fields = {
            "kind": kind,
            "conversation": conversation,
            "text": self._mask(text),
            "channel": channel,
            "ts": repr(time.time()),
        }
        return str(await self._redis.xadd(self._keys.feedback, fields))

    async def recent(self, count: int = 100) -> list[dict[str, Any]]:
        rows = await self._redis.xrevrange(self._keys.feedback, count=count)
        return [{"id": entry_id, **fields} for entry_id, fields in rows]
