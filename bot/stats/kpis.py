"""The KPIs, per day and for a date range, from what `Stats` recorded.

- conversations: conversations in which the customer wrote that day
- automation rate: the share of them not handed to a person that day
- escalation rate (overall and by reason): escalations per conversation
- fallback rate: customer messages the bot did not understand, of those classified
- bot response: seconds from a customer message to the bot's reply (median, p90)
- human response: seconds from entering the queue to an agent's first reply
- queue wait: seconds from entering the queue to being claimed (median)
- handling: seconds from claim to release or close (median)
- CSAT: average rating (1-5) and how many ratings
- top intents, and the most frequent messages the bot did not understand
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections import Counter
from typing import Any

from redis.asyncio import Redis

from bot.stats import service_level
from bot.stats.recorder import DURATIONS, Stats

TOP = 10


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(q / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def days_between(first: dt.date, last: dt.date) -> list[str]:
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


async def _figures(redis: Redis, stats: Stats, days: list[str]) -> dict[str, Any]:
    counters: Counter[str] = Counter()
    samples: dict[str, list[float]] = {name: [] for name in DURATIONS}
    unrecognized: Counter[str] = Counter()
    async with redis.pipeline(transaction=False) as pipe:
        for day in days:
            pipe.hgetall(stats.key(day))
            pipe.zrevrange(stats.key(day, "unrecognized"), 0, 49, withscores=True)
            for name in DURATIONS:
                pipe.lrange(stats.key(day, "t", name), 0, -1)
        raw = await pipe.execute()
    step = 2 + len(DURATIONS)
    for i in range(len(days)):
        chunk = raw[i * step : (i + 1) * step]
        counters.update({k: int(v) for k, v in chunk[0].items()})
        unrecognized.update({text: int(score) for text, score in chunk[1]})
        for name, values in zip(DURATIONS, chunk[2:], strict=True):
            samples[name] += [float(v) for v in values]

    conversations, escalated = await _conversation_counts(redis, stats, days)
    classified = counters["classified"]
    rated = counters["csat_count"]
    return {
        "conversations": conversations,
        "escalated_conversations": escalated,
        "messages_in": counters["messages_in"],
        "messages_out": counters["messages_out"],
        "messages_by_channel": {
            k.split(":", 1)[1] + ":" + k.split(":", 1)[0]: v
            for k, v in sorted(counters.items())
            if k.startswith(("in:", "out:"))
        },
        "automation_rate": None if not conversations else 1 - escalated / conversations,
        "escalations": counters["escalations"],
        "escalation_rate": None if not conversations else counters["escalations"] / conversations,
        "escalations_by_reason": {
            k.split(":", 1)[1]: v
            for k, v in sorted(counters.items())
            if k.startswith("escalation:")
        },
        "fallback_rate": None if not classified else counters["fallback"] / classified,
        "bot_response_p50": percentile(samples["bot_response"], 50),
        "bot_response_p90": percentile(samples["bot_response"], 90),
        "human_response_p50": percentile(samples["human_response"], 50),
        "human_response_p90": percentile(samples["human_response"], 90),
        "queue_wait_p50": percentile(samples["queue_wait"], 50),
        "handling_p50": percentile(samples["handling"], 50),
        "csat_average": None if not rated else counters["csat_sum"] / rated,
        "csat_count": rated,
        "top_intents": [
            {"intent": k.split(":", 1)[1], "count": v}
            for k, v in Counter(
                {k: v for k, v in counters.items() if k.startswith("intent:")}
            ).most_common(TOP)
        ],
        "unrecognized": [{"text": t, "count": n} for t, n in unrecognized.most_common(TOP)],
    }


async def _conversation_counts(redis: Redis, stats: Stats, days: list[str]) -> tuple[int, int]:
    """(conversations, of which escalated) over `days`, each conversation counted once.

    SUNIONSTORE and SINTERCARD join several days' sets and a temporary key:
    all are `Stats.key`s, on the one slot of the ``{stats}`` hash tag.
    """
    if len(days) == 1:
        conv, esc = stats.key(days[0], "conv"), stats.key(days[0], "escalated")
        return int(await redis.scard(conv)), int(await redis.sintercard(2, [conv, esc]))
    tmp = stats.key("tmp", uuid.uuid4().hex)
    conv, esc = f"{tmp}:conv", f"{tmp}:esc"
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.sunionstore(conv, [stats.key(d, "conv") for d in days])
            pipe.sunionstore(esc, [stats.key(d, "escalated") for d in days])
            pipe.sintercard(2, [conv, esc])
            total, _, both = await pipe.execute()
        return int(total), int(both)
    finally:
        await redis.delete(conv, esc)


async def kpis(redis: Redis, stats: Stats, first: dt.date, last: dt.date) -> dict[str, Any]:
    days = days_between(first, last)
    per_day = []
    for day in days:
        figures = await _figures(redis, stats, [day])
        per_day.append({"date": day, **figures})
    return {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "timezone": str(stats.tz),
        "total": await _figures(redis, stats, days),
        "service_level": await service_level.figures(redis, stats, days),
        "days": per_day,
    }


class Kpis:
    """The KPI figures of a date range, read from what `stats` recorded."""

    def __init__(self, redis: Redis, stats: Stats) -> None:
        self._redis = redis
        self.stats = stats

    async def between(self, first: dt.date, last: dt.date) -> dict[str, Any]:
        return await kpis(self._redis, self.stats, first, last)
