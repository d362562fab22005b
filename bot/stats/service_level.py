"""Service level: the share of first responses within their channel's target.

Per day, one hash ``P:stats:{day}:sla`` counts first responses (``all``) and
those within target (``met``), in total and per agent and per team
(``agent:<name>:all``, ``team:<name>:met``...). A first response is an
agent's first reply since the conversation was queued (handoff service);
recorded from that event by the KPI recorder, once.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from redis.asyncio import Redis

from bot.stats.recorder import Stats

PART = "sla"  # recorded by Stats.first_response (bot/stats/recorder.py)


def _share(met: int, answered: int) -> dict[str, Any]:
    return {"answered": answered, "within": met, "share": met / answered if answered else None}


async def figures(redis: Redis, stats: Stats, days: list[str]) -> dict[str, Any]:
    """{share, answered, within, by_agent: {name: {...}}, by_team: {name: {...}}} over `days`."""
    counts: Counter[str] = Counter()
    async with redis.pipeline(transaction=False) as pipe:
        for day in days:
            pipe.hgetall(stats.key(day, PART))
        for raw in await pipe.execute():
            counts.update({k: int(v) for k, v in raw.items()})
    grouped: dict[str, dict[str, dict[str, Any]]] = {"agent": {}, "team": {}}
    for field in counts:
        kind, _, rest = field.partition(":")
        name, _, what = rest.rpartition(":")
        if kind in grouped and what == "all":
            prefix = f"{kind}:{name}:"
            grouped[kind][name] = _share(counts[prefix + "met"], counts[prefix + "all"])
    return {
        **_share(counts["met"], counts["all"]),
        "by_agent": dict(sorted(grouped["agent"].items())),
        "by_team": dict(sorted(grouped["team"].items())),
    }
