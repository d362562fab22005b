"""Indexes over the logged customer messages, kept in Redis as they are written.

A message is referred to as ``{conversation}|{entry id}``; every index is a
sorted set scored by the message's time, so filters intersect (ZINTERSTORE)
and date ranges are score ranges, without reading the log itself. Every key
carries the hash tag ``{rv}``: the intersections, and labelling (the label and
leaving the queue in one MULTI), stay on one Redis Cluster slot.

- ``P:{rv}:all``               every customer message
- ``P:{rv}:queue``             to review: fallback or low confidence, not yet labelled
- ``P:{rv}:intent:<intent>``   by predicted intent
- ``P:{rv}:channel:<channel>`` by channel
- ``P:{rv}:word:<token>``      full text: jieba search-mode tokens of the (masked) text
- ``P:{rv}:conv:escalated:<reason>``, ``P:{rv}:conv:rated_low``: conversations, by time
- ``P:{rv}:labels``            hash: message -> the trainer's label (JSON)
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jieba
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from bot.names import FALLBACK
from bot.nlu.normalizer import normalize
from bot.redis_keys import Keys

# Below this a classification is worth a trainer's look even if it was answered.
REVIEW_BELOW = 0.6
WORD = re.compile(r"\w", re.UNICODE)
MAX_TOKENS = 64


def ref(conversation: str, entry_id: str) -> str:
    return f"{conversation}|{entry_id}"


def split_ref(value: str) -> tuple[str, str]:
    conversation, _, entry_id = value.rpartition("|")
    return conversation, entry_id


def entry_time(entry_id: str) -> float:
    return int(entry_id.split("-", 1)[0]) / 1000


def tokens(text: str) -> list[str]:
    """Search tokens: jieba's search mode over the normalised, lower-cased text."""
    words = {w.strip().lower() for w in jieba.cut_for_search(normalize(text))}
    return sorted(w for w in words if w and WORD.search(w))[:MAX_TOKENS]


@dataclass(frozen=True)
class Query:
    queue: bool = False
    intent: str | None = None
    channel: str | None = None
    text: str | None = None
    since: float | None = None
    until: float | None = None
    offset: int = 0
    limit: int = 50


class ReviewIndex:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    def key(self, *parts: str) -> str:
        return self._keys.review(*parts)

    async def add(
        self,
        conversation: str,
        entry_id: str,
        channel: str,
        text: str,
        intent: str | None,
        confidence: float,
        also: Callable[[Pipeline], None] | None = None,
    ) -> None:
        """Index one customer message (`also` adds other writes to the same round trip)."""
        item = ref(conversation, entry_id)
        ts = entry_time(entry_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.key("all"), {item: ts})
            pipe.zadd(self.key("channel", channel), {item: ts})
            if intent:
                pipe.zadd(self.key("intent", intent), {item: ts})
                if intent == FALLBACK or confidence < REVIEW_BELOW:
                    pipe.zadd(self.key("queue"), {item: ts})
            for token in tokens(text):
                pipe.zadd(self.key("word", token), {item: ts})
            if also is not None:
                also(pipe)
            await pipe.execute()

    async def escalated(self, conversation: str, reason: str, ts: float) -> None:
        await self._redis.zadd(self.key("conv", "escalated", reason), {conversation: ts})

    async def rated(self, conversation: str, rating: int, ts: float) -> None:
        if rating <= 2:
            await self._redis.zadd(self.key("conv", "rated_low"), {conversation: ts})

    async def find(self, query: Query) -> tuple[int, list[str]]:
        """(how many match, the page of message refs asked for), newest first."""
        sets = []
        if query.queue:
            sets.append(self.key("queue"))
        if query.intent:
            sets.append(self.key("intent", query.intent))
        if query.channel:
            sets.append(self.key("channel", query.channel))
        if query.text:
            words = tokens(query.text)
            if not words:
                return 0, []
            sets += [self.key("word", w) for w in words]
        if not sets:
            sets.append(self.key("all"))
        return await self._range(sets, query)

    async def conversations(
        self, reasons: list[str], rated_low: bool, query: Query
    ) -> tuple[int, list[str]]:
        """Conversations escalated for any of `reasons` and/or rated 1-2, newest first."""
        sets, union = [], None
        if len(reasons) == 1:
            sets.append(self.key("conv", "escalated", reasons[0]))
        elif reasons:
            union = self.key("tmp", uuid.uuid4().hex)
            await self._redis.zunionstore(
                union, [self.key("conv", "escalated", r) for r in reasons], aggregate="MAX"
            )
            sets.append(union)
        if rated_low:
            sets.append(self.key("conv", "rated_low"))
        if not sets:
            return 0, []
        try:
            return await self._range(sets, query)
        finally:
            if union:
                await self._redis.delete(union)

    async def _range(self, sets: list[str], query: Query) -> tuple[int, list[str]]:
        low = "-inf" if query.since is None else query.since
        high = "+inf" if query.until is None else query.until
        key = sets[0]
        temporary = None
        if len(sets) > 1:
            temporary = self.key("tmp", uuid.uuid4().hex)
            await self._redis.zinterstore(temporary, sets, aggregate="MIN")
            key = temporary
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zcount(key, low, high)
                pipe.zrevrangebyscore(key, high, low, start=query.offset, num=query.limit)
                total, page = await pipe.execute()
        finally:
            if temporary:
                await self._redis.delete(temporary)
        return int(total), list(page)

    async def label(self, item: str, label: dict[str, Any]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.key("labels"), item, json.dumps(label, ensure_ascii=False))
            pipe.zrem(self.key("queue"), item)
            await pipe.execute()

    async def labels(self, items: list[str]) -> dict[str, dict[str, Any]]:
        if not items:
            return {}
        values = await self._redis.hmget(self.key("labels"), items)
        return {i: json.loads(v) for i, v in zip(items, values, strict=True) if v}

    async def forget_many(self, conversations: list[tuple[str, list[tuple[str, str]]]]) -> None:
        """Remove conversations' messages, given as (entry id, text), from every index."""
        if not conversations:
            return
        items = [ref(c, e) for c, entries in conversations for e, _ in entries]
        names = {c for c, _ in conversations}
        async with self._redis.pipeline(transaction=False) as pipe:
            for conversation, entries in conversations:
                for entry_id, text in entries:
                    for token in tokens(text):
                        pipe.zrem(self.key("word", token), ref(conversation, entry_id))
            if items:
                for name in ("all", "queue"):
                    pipe.zrem(self.key(name), *items)
                pipe.hdel(self.key("labels"), *items)
            await pipe.execute()
        # Intent, channel and conversation sets: a few keys, found by one scan.
        async for key in self._redis.scan_iter(match=self.key("*"), count=500):
            if ":word:" in key or ":tmp:" in key or key.endswith((":all", ":queue", ":labels")):
                continue
            if ":conv:" in key:
                await self._redis.zrem(key, *names)
            elif items:
                await self._redis.zrem(key, *items)
