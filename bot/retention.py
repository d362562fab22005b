"""Forgetting conversations after `BOT_RETENTION_DAYS`.

Once an hour one bot process (a Redis lock decides which) removes every
conversation whose last message is older than the retention period: its log,
NLU results, notes, handoff state and reasons, rating, Rasa tracker, WeChat
window, and its entries in the review indexes; and trims the feedback,
rating and confirmed-reading streams to the same period. A conversation people still have
(waiting or assigned) is kept until they are done. KPI counters expire on
their own (`bot/stats/recorder.py`).
"""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis

from bot.conversation_log.store import INBOUND
from bot.handoff.states import ASSIGNED, WAITING
from bot.redis_keys import Keys, by_slot
from bot.review.index import ReviewIndex

logger = logging.getLogger(__name__)

EVERY = 3600.0
BATCH = 200


class Retention:
    def __init__(self, redis: Redis, keys: Keys, index: ReviewIndex, days: int) -> None:
        self._redis = redis
        self._keys = keys
        self._index = index
        self.days = days

    def _keys_of(self, conversation: str) -> list[str]:
        return self._keys.conversation_keys(conversation)

    async def expire_once_per(self, seconds: float) -> None:
        """Expire, in one process per `seconds`: whichever takes the lock first."""
        if await self._redis.set(self._keys.retention_lock, "1", nx=True, ex=int(seconds * 0.9)):
            await self.expire()

    async def expire(self, now: float | None = None) -> list[str]:
        """Remove what is older than the retention period; the conversations removed."""
        now = time.time() if now is None else now
        cutoff = now - self.days * 86400
        seen: set[str] = set()
        gone: list[str] = []
        while True:
            old = await self._redis.zrangebyscore(
                self._keys.conversations, "-inf", cutoff, start=0, num=BATCH + len(seen)
            )
            batch = [c for c in old if c not in seen]
            if not batch:
                break
            seen.update(batch)
            gone += await self._forget(batch)
        cutoff_id = f"{int(cutoff * 1000)}-0"
        for stream in (self._keys.feedback, self._keys.csat_ratings, self._keys.clarify_confirmed):
            await self._redis.xtrim(stream, minid=cutoff_id, approximate=False)
        if gone:
            logger.info(
                "retention: removed %d conversations older than %d days", len(gone), self.days
            )
        return gone

    async def _forget(self, conversations: list[str]) -> list[str]:
        doomed: list[tuple[str, list[tuple[str, str]]]] = []
        for conversation in conversations:
            state = await self._redis.hget(self._keys.handoff_state(conversation), "state")
            if state in (WAITING, ASSIGNED):
                continue  # people still have it
            entries = await self._redis.xrange(self._keys.conv_log(conversation))
            inbound = [(i, f.get("text", "")) for i, f in entries if f.get("direction") == INBOUND]
            doomed.append((conversation, inbound))
        await self._index.forget_many(doomed)
        names = [c for c, _ in doomed]
        if not names:
            return []
        # No MULTI: a conversation's keys are on its own Redis Cluster slot (the
        # handoff state on the handoff feature's), the indexes on others. Every
        # step is idempotent, and the activity index goes last, in a round trip
        # of its own: a crash before it leaves the conversations listed, so the
        # next sweep finds them again and finishes; never keys nothing lists.
        async with self._redis.pipeline(transaction=False) as pipe:
            for conversation in names:
                for keys in by_slot(self._keys_of(conversation)):
                    pipe.delete(*keys)
            pipe.zrem(self._keys.handoff_waiting, *names)
            pipe.zrem(self._keys.handoff_assigned, *names)
            await pipe.execute()
        await self._redis.zrem(self._keys.conversations, *names)
        return names
