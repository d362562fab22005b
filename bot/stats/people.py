"""Per agent and per team, over a date range: what they handled, how fast, how rated.

Read from what the KPI recorder kept (`Stats.by_people`, bot/stats/recorder.py)
and the service-level counts (bot/stats/service_level.py):

- handled: conversations they ended (released to the bot or closed)
- transferred: conversations they passed on to another agent
- handling: seconds an agent held a conversation, from taking it (or having it
  transferred to them) to releasing, closing or transferring it on; a team's,
  from the first claim to the release or close (median, p90)
- first response: seconds from the conversation joining the queue to their first
  reply (median, p90), and the share of those within the channel's target
- satisfaction: ratings customers gave in conversations they held last (count, average)

A team's figures are those of the conversations routed to it. Who holds what
*now* (load, presence) is not history: the stats API adds it from the handoff
service for admins.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from redis.asyncio import Redis

from bot.handoff.presence import OFFLINE, Member
from bot.stats import service_level
from bot.stats.kpis import days_between, percentile
from bot.stats.recorder import PEOPLE_DURATIONS, Stats

SCOPES = ("agent", "team")


def _scope_figures(
    counts: Counter[str], samples: dict[str, list[float]], sla: dict[str, Any] | None
) -> dict[str, Any]:
    rated = counts["csat_count"]
    return {
        "handled": counts["handled"],
        "transferred": counts["transferred"],
        "handling_p50": percentile(samples["handling"], 50),
        "handling_p90": percentile(samples["handling"], 90),
        "first_responses": counts["first_responses"],
        "first_response_p50": percentile(samples["human_response"], 50),
        "first_response_p90": percentile(samples["human_response"], 90),
        "service_level": sla or {"answered": 0, "within": 0, "share": None},
        "csat_count": rated,
        "csat_average": None if not rated else counts["csat_sum"] / rated,
    }


class People:
    """The per-agent and per-team figures of a date range."""

    def __init__(self, redis: Redis, stats: Stats) -> None:
        self._redis = redis
        self._stats = stats

    async def between(self, first: dt.date, last: dt.date) -> dict[str, dict[str, Any]]:
        """{"by_agent": {name: figures}, "by_team": {name: figures}}, names sorted."""
        days = days_between(first, last)
        counts: dict[tuple[str, str], Counter[str]] = {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hgetall(self._stats.people_key(day))
            for raw in await pipe.execute():
                for field, value in raw.items():
                    kind, _, rest = field.partition(":")
                    name, _, what = rest.rpartition(":")
                    if kind in SCOPES and name:
                        counts.setdefault((kind, name), Counter())[what] += int(value)
        scopes = sorted(counts)
        samples: dict[tuple[str, str], dict[str, list[float]]] = {
            scope: {d: [] for d in PEOPLE_DURATIONS} for scope in scopes
        }
        async with self._redis.pipeline(transaction=False) as pipe:
            for kind, name in scopes:
                for duration in PEOPLE_DURATIONS:
                    for day in days:
                        pipe.lrange(self._stats.people_key(day, duration, f"{kind}:{name}"), 0, -1)
            raw_samples = iter(await pipe.execute())
        for scope in scopes:
            for duration in PEOPLE_DURATIONS:
                for _ in days:
                    samples[scope][duration] += [float(v) for v in next(raw_samples)]
        sla = await service_level.figures(self._redis, self._stats, days)
        found: dict[str, dict[str, Any]] = {"by_agent": {}, "by_team": {}}
        for kind, name in scopes:
            of_kind = sla[f"by_{kind}"].get(name)
            found[f"by_{kind}"][name] = _scope_figures(
                counts[(kind, name)], samples[(kind, name)], of_kind
            )
        # Those with first responses counted but nothing else recorded (older days).
        for kind in SCOPES:
            for name, of_kind in sla[f"by_{kind}"].items():
                if name not in found[f"by_{kind}"]:
                    empty: dict[str, list[float]] = {d: [] for d in PEOPLE_DURATIONS}
                    found[f"by_{kind}"][name] = _scope_figures(Counter(), empty, of_kind)
        return {key: dict(sorted(value.items())) for key, value in found.items()}


def with_now(
    by_agent: dict[str, dict[str, Any]],
    members: list[Member],
    holdings: dict[str, list[str]],
    default_capacity: int,
) -> dict[str, dict[str, Any]]:
    """Each agent's figures with who they are now: presence, teams, capacity, what they hold.

    Everyone on the roster, everyone holding a conversation and everyone with
    figures in the range, by name. The load is the conversations they hold
    (`holding`, least recently active first).
    """
    roster = {m.agent: m for m in members}
    names = sorted({*by_agent, *roster, *holdings})
    empty = _scope_figures(Counter(), {d: [] for d in PEOPLE_DURATIONS}, None)
    view = {}
    for name in names:
        member = roster.get(name)
        holding = holdings.get(name, [])
        view[name] = {
            "status": member.status if member else OFFLINE,
            "teams": member.teams if member else [],
            "capacity": member.capacity if member else default_capacity,
            "load": len(holding),
            "holding": holding,
            **by_agent.get(name, empty),
        }
    return view
