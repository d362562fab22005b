"""One customer's data: a copy of everything kept (export) and its erasure (forget).

China's Personal Information Protection Law gives a customer the right to a
copy of their personal information and to its deletion. A conversation's data
lives in three kinds of place:

- its own keys, ``P:c:{id}:…`` (log, NLU results, notes, handoff request and
  reasons, rating, Rasa's tracker, locks, message-id and WeChat claims): found
  with one SCAN of that pattern, which by the key layout matches no other
  conversation's keys; and its handoff state, ``P:{handoff}:state:{id}``, on
  the handoff feature's Redis Cluster slot (``Keys.off_tag_keys``);
- entries in shared streams that name it: the feedback, rating and confirmed-reading
  streams;
- its id or words in shared indexes: the conversation list, the handoff queues,
  the review indexes (words, intents, channels, labels, escalated and low-rated
  conversations), the KPI sets of conversations per day and the KPI table of
  unrecognised messages, and the audit log's name table.

Erasure removes all of it and records that an erasure happened (who, when,
how much) under the conversation's hash, never its id or content.
"""

from __future__ import annotations

import json
import time
from typing import Any

from redis.asyncio import Redis

from bot.channels.identity import channel_of
from bot.conversation_log.store import INBOUND, ConversationLog
from bot.customer_data.audit import AuditLog, conversation_hash
from bot.handoff.states import ASSIGNED
from bot.names import FALLBACK
from bot.nlu.normalizer import normalize
from bot.redis_keys import Keys
from bot.review.index import ReviewIndex
from bot.stats.recorder import Stats


class CustomerData:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        log: ConversationLog,
        index: ReviewIndex,
        stats: Stats,
        audit: AuditLog,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._log = log
        self._index = index
        self._stats = stats
        self._audit = audit

    async def _own_keys(self, conversation: str) -> list[str]:
        """Every key of the conversation: a SCAN of its pattern, and those kept elsewhere."""
        pattern = self._keys.conversation_pattern(conversation)
        found = {k async for k in self._redis.scan_iter(match=pattern, count=1000)}
        elsewhere = self._keys.off_tag_keys(conversation)
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in elsewhere:
                pipe.exists(key)
            present = await pipe.execute()
        found.update(key for key, there in zip(elsewhere, present, strict=True) if there)
        return sorted(found)

    async def _stream_entries(self, key: str, conversation: str) -> list[tuple[str, dict]]:
        """Entries of a shared stream that name `conversation` (read in pages)."""
        found, start = [], "-"
        while True:
            page = await self._redis.xrange(key, min=start, count=1000)
            found += [(i, f) for i, f in page if f.get("conversation") == conversation]
            if len(page) < 1000:
                return found
            start = "(" + page[-1][0]

    async def exists(self, conversation: str) -> bool:
        return bool(await self._own_keys(conversation))

    async def export(self, conversation: str) -> dict[str, Any]:
        """Everything kept about one conversation, as JSON-ready data."""
        keys = self._keys
        own = await self._own_keys(conversation)
        timeline = await self._log.timeline(conversation)
        raw: dict[str, Any] = {}
        for key in own:
            raw[keys.part_of(key)] = await self._dump(key)
        tracker = raw.pop("tracker", None)
        labels = await self._index.labels([f"{conversation}|{e['id']}" for e in timeline])
        return {
            "conversation": conversation,
            "channel": channel_of(conversation),
            "exported_at": time.time(),
            "summary": raw.pop("meta", {}),
            "messages": timeline,
            "notes": [json.loads(n) for n in raw.pop("notes", [])],
            "handoff": {
                "state": raw.pop("handoff:state", {}),
                "request": raw.pop("handoff", {}),
                "reasons": raw.pop("handoff:reasons", []),
            },
            "satisfaction": raw.pop("csat", {}),
            "ratings": [f for _, f in await self._stream_entries(keys.csat_ratings, conversation)],
            "feedback": [f for _, f in await self._stream_entries(keys.feedback, conversation)],
            "confirmed_readings": [
                f for _, f in await self._stream_entries(keys.clarify_confirmed, conversation)
            ],
            "review_labels": labels,
            "rasa_tracker": json.loads(tracker) if isinstance(tracker, str) else tracker,
            # Whatever else is kept under the conversation (claims, windows, locks).
            "other": {k: v for k, v in raw.items() if k not in ("log", "nlu")},
        }

    async def _dump(self, key: str) -> Any:
        kind = await self._redis.type(key)
        if kind == "string":
            return await self._redis.get(key)
        if kind == "hash":
            return await self._redis.hgetall(key)
        if kind == "list":
            return await self._redis.lrange(key, 0, -1)
        if kind == "zset":
            return await self._redis.zrange(key, 0, -1, withscores=True)
        if kind == "set":
            return sorted(await self._redis.smembers(key))
        if kind == "stream":
            return [{"id": i, **f} for i, f in await self._redis.xrange(key)]
        return None

    async def forget(self, conversation: str, by: str) -> dict[str, Any]:
        """Erase the conversation everywhere; the erasure record (no id, no content)."""
        keys = self._keys
        timeline = await self._log.timeline(conversation)
        inbound = [e for e in timeline if e["direction"] == INBOUND]
        own = await self._own_keys(conversation)
        handoff = await self._redis.hgetall(keys.handoff_state(conversation))
        ratings = await self._stream_entries(keys.csat_ratings, conversation)
        feedback = await self._stream_entries(keys.feedback, conversation)
        readings = await self._stream_entries(keys.clarify_confirmed, conversation)
        # The review indexes and the KPIs' unrecognised-message table hold its words.
        await self._index.forget_many(
            [(conversation, [(e["id"], e["text"]) for e in timeline if e["direction"] == "in"])]
        )
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry in inbound:
                if entry.get("intent") == FALLBACK:
                    day = self._stats.day(entry["ts"])
                    pipe.zincrby(
                        self._stats.key(day, "unrecognized"), -1, normalize(entry["text"])[:200]
                    )
            for key in own:
                pipe.delete(key)
            pipe.zrem(keys.conversations, conversation)
            pipe.zrem(keys.handoff_waiting, conversation)
            pipe.zrem(keys.handoff_assigned, conversation)
            if handoff.get("state") == ASSIGNED and handoff.get("agent"):
                # Its agent holds one conversation fewer (automatic assignment's capacity).
                pipe.hincrby(keys.handoff_load, handoff["agent"], -1)
            if ratings:
                pipe.xdel(keys.csat_ratings, *[i for i, _ in ratings])
            if feedback:
                pipe.xdel(keys.feedback, *[i for i, _ in feedback])
            if readings:
                pipe.xdel(keys.clarify_confirmed, *[i for i, _ in readings])
            await pipe.execute()
        async for key in self._redis.scan_iter(match=self._stats.key("*"), count=1000):
            kind = await self._redis.type(key)
            if kind == "set":
                await self._redis.srem(key, conversation)
            elif kind == "zset" and key.endswith(":unrecognized"):
                await self._redis.zremrangebyscore(key, "-inf", 0)
        await self._audit.forget_name(conversation)
        record = {
            "ts": repr(time.time()),
            "by": by,
            "conversation": conversation_hash(keys, conversation),
            "keys": str(len(own)),
            "messages": str(len(timeline)),
            "stream_entries": str(len(ratings) + len(feedback) + len(readings)),
        }
        record_id = await self._redis.xadd(keys.erasures, record)
        return {"id": record_id, **record}

    async def erasures(self, count: int = 100) -> list[dict[str, Any]]:
        return [
            {"id": i, **f} for i, f in await self._redis.xrevrange(self._keys.erasures, count=count)
        ]
