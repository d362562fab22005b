"""A Redis stream of customer feedback, in the customer's own words."""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis

from bot.redis_keys import Keys

KINDS = ("complaint", "praise", "suggestion")


class FeedbackLog:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def record(self, kind: str, conversation: str, text: str, channel: str = "") -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown feedback kind {kind!r}")
        fields = {
            "kind": kind,
            "conversation": conversation,
            "text": text,
            "channel": channel,
            "ts": repr(time.time()),
        }
        return str(await self._redis.xadd(self._keys.feedback, fields))

    async def recent(self, count: int = 100) -> list[dict[str, Any]]:
        rows = await self._redis.xrevrange(self._keys.feedback, count=count)
        return [{"id": entry_id, **fields} for entry_id, fields in rows]
