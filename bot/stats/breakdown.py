"""The KPIs split by channel and by campaign source, per day and for a date range.

Per channel: conversations (each once over the range), customer messages in,
messages out, requests for a person (escalations) and handoffs (a person took
the conversation). Per campaign source: the conversations it brought. Read
from what `Stats` recorded (bot/stats/recorder.py); /api/stats adds them to
its figures, the CSV to its columns.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from redis.asyncio import Redis

from bot.stats.kpis import days_between
from bot.stats.recorder import CHANNELS, OTHER, Stats


class Breakdown:
    def __init__(self, redis: Redis, stats: Stats) -> None:
        self._redis = redis
        self._stats = stats

    async def between(self, first: dt.date, last: dt.date) -> dict[str, Any]:
        """{"total": split, "days": [split of each day]}: the range's and each day's."""
        days = days_between(first, last)
        return {
            "total": await self._split(days),
            "days": [await self._split([day]) for day in days],
        }

    async def _split(self, days: list[str]) -> dict[str, Any]:
        key = self._stats.key
        channels = (*CHANNELS, OTHER)
        fields = [
            f
            for c in channels
            for f in (f"in:{c}", f"out:{c}", f"channel:{c}:escalations", f"channel:{c}:handoffs")
        ]
        async with self._redis.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hmget(key(day), fields)
            pipe.sunion([self._stats.source_key(day) for day in days])
            raw = await pipe.execute()
        totals = [0] * len(fields)
        for values in raw[:-1]:
            totals = [t + int(v or 0) for t, v in zip(totals, values, strict=True)]
        sources = sorted(raw[-1])
        stats = self._stats
        conversations = await self._distinct(
            [[stats.channel_key(c, d) for d in days] for c in channels]
        )
        brought = await self._distinct([[stats.source_key(d, s) for d in days] for s in sources])
        by_channel = {}
        for i, channel in enumerate(channels):
            messages_in, messages_out, escalations, handoffs = totals[4 * i : 4 * i + 4]
            if channel == OTHER and not (conversations[i] or messages_in or messages_out):
                continue
            by_channel[channel] = {
                "conversations": conversations[i],
                "messages_in": messages_in,
                "messages_out": messages_out,
                "escalations": escalations,
                "handoffs": handoffs,
            }
        by_source = sorted(
            ({"source": s, "conversations": n} for s, n in zip(sources, brought, strict=True)),
            key=lambda row: (-row["conversations"], row["source"]),
        )
        return {"by_channel": by_channel, "by_source": by_source}

    async def _distinct(self, groups: list[list[str]]) -> list[int]:
        """For each group of set keys (of one slot): how many members they have together."""
        if not groups:
            return []
        if all(len(group) == 1 for group in groups):
            async with self._redis.pipeline(transaction=False) as pipe:
                for (one,) in groups:
                    pipe.scard(one)
                return [int(n) for n in await pipe.execute()]
        # Each group's keys share a Cluster slot (a hash tag): its temporary union
        # is put there too, named after the group's first key.
        tmp = uuid.uuid4().hex
        async with self._redis.pipeline(transaction=False) as pipe:
            for group in groups:
                pipe.sunionstore(f"{group[0]}:tmp:{tmp}", group)  # returns the union's size
                pipe.delete(f"{group[0]}:tmp:{tmp}")
            raw = await pipe.execute()
        return [int(n) for n in raw[::2]]
