"""Requests for a person, recorded in Redis for the support team to pick up."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from bot.redis_keys import Keys


class HandoffRequests:
    """A minimal queue of conversations waiting for a person, oldest first."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def request(self, conversation: str, reason: str, text: str) -> None:
        """Record that `conversation` needs a person; an earlier request keeps its place."""
        now = time.time()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._keys.handoff_requests, {conversation: now}, nx=True)
            pipe.hset(
                self._keys.handoff(conversation),
                mapping={"reason": reason, "text": text, "requested_at": repr(now)},
            )
            await pipe.execute()

    async def waiting(self) -> list[tuple[str, float]]:
        """Conversations waiting for a person, with the time each asked."""
        rows = await self._redis.zrange(self._keys.handoff_requests, 0, -1, withscores=True)
        return [(conversation, float(score)) for conversation, score in rows]

    async def details(self, conversation: str) -> dict[str, str]:
        return dict(await self._redis.hgetall(self._keys.handoff(conversation)))
