"""`/stats`, `GET /api/stats` (trainers, admins) and `GET /metrics` (Prometheus)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.accounts.routes import require
from bot.app_keys import HANDOFF, KPI_PEOPLE, KPI_SPLITS, KPIS, MODEL, SETTINGS, STATES, STATS
from bot.errors import ApiError
from bot.jsonutil import json_response
from bot.security.headers import page
from bot.security.tokens import bearer_matches
from bot.stats.csv_export import agents_csv, daily_csv
from bot.stats.metrics import AgentMetrics
from bot.stats.people import with_now

STATIC = Path(__file__).parent / "static"
DEFAULT_DAYS = 30
MAX_DAYS = 366


def _date(request: web.Request, name: str, default: dt.date) -> dt.date:
    raw = request.query.get(name, "").strip()
    if not raw:
        return default
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, "invalid_date", f"`{name}` must be YYYY-MM-DD.") from None


async def stats(request: web.Request) -> web.Response:
    """The KPIs of a range as JSON, or as CSV (one row per day) with `format=csv`.

    Split by channel (`by_channel`) and by campaign source (`by_source`) too;
    for admins also per agent (`by_agent`: with what each holds now) and per
    team (`by_team`), and with `by=agent` the CSV has one row per agent.
    """
    session = await require(request, "trainer", "admin")
    admin = session.role == "admin"
    by = request.query.get("by", "day")
    if by not in ("day", "agent"):
        raise ApiError(400, "invalid_by", "`by` must be day or agent.")
    if by == "agent" and not admin:
        raise ApiError(403, "forbidden", "Per-agent figures are for admins.")
    reader = request.app[KPIS]
    today = dt.datetime.now(reader.stats.tz).date()
    last = _date(request, "to", today)
    first = _date(request, "from", last - dt.timedelta(days=DEFAULT_DAYS - 1))
    if first > last:
        raise ApiError(400, "invalid_range", "`from` must not be after `to`.")
    if (last - first).days >= MAX_DAYS:
        raise ApiError(400, "invalid_range", f"At most {MAX_DAYS} days at a time.")
    body = await reader.between(first, last)
    split = await request.app[KPI_SPLITS].between(first, last)
    body["total"].update(split["total"])
    for day, of_day in zip(body["days"], split["days"], strict=True):
        day.update(of_day)
    if not admin:  # trainers: the team's figures, not each agent's
        body["service_level"].pop("by_agent", None)
    else:
        people = await request.app[KPI_PEOPLE].between(first, last)
        handoff = request.app[HANDOFF]
        body["by_agent"] = with_now(
            people["by_agent"],
            await handoff.team(),
            await handoff.holdings(),
            handoff.presence.default_capacity,
        )
        body["by_team"] = people["by_team"]
    wanted = request.query.get("format", "json")
    if request.path.endswith(".csv") or wanted == "csv":
        name = "kefu-agents" if by == "agent" else "kefu-stats"
        return web.Response(
            text=agents_csv(body) if by == "agent" else daily_csv(body),
            content_type="text/csv",
            charset="utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{name}-{first}-{last}.csv"',
                "Cache-Control": "no-store",
            },
        )
    if wanted != "json":
        raise ApiError(400, "invalid_format", "`format` must be json or csv.")
    return json_response(body)


async def metrics(request: web.Request) -> web.Response:
    token = request.app[SETTINGS].metrics_token
    if token is None and not request.app[SETTINGS].metrics_open:
        raise ApiError(
            403, "metrics_closed", "/metrics is closed: set BOT_METRICS_TOKEN to open it."
        )
    if token is not None:
        if not bearer_matches(request.headers.get("Authorization"), token):
            raise ApiError(
                401, "unauthorized", "Send `Authorization: Bearer` with BOT_METRICS_TOKEN."
            )
    recorder = request.app[STATS]
    recorder.metrics.queue_length.set(await request.app[STATES].waiting_count())
    if recorder.metrics.agents is not None:  # only behind a token (bot/stats/metrics.py)
        await _agent_gauges(request.app, recorder.metrics.agents)
    engine = request.app[MODEL].engine
    if engine is not None:
        recorder.metrics.serving(engine.version)
    body = recorder.metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _agent_gauges(app: web.Application, agents: AgentMetrics) -> None:
    """Each agent's load and capacity as Redis has them now (read at every scrape).

    Loads from the handoff states' counters, which count API clients too
    (agents holding conversations without a console ever opened).
    """
    members = await app[HANDOFF].team()
    loads = await app[STATES].loads()
    agents.now(loads, {m.agent: m.capacity for m in members})


async def index(request: web.Request) -> web.FileResponse:
    return page(STATIC / "index.html")


def setup(app: web.Application) -> None:
    app.router.add_get("/stats", index)
    app.router.add_static("/stats/static/", STATIC, append_version=True)
    app.router.add_get("/api/stats", stats)
    app.router.add_get("/api/stats.csv", stats)
    app.router.add_get("/metrics", metrics)
