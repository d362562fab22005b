"""`/stats`, `GET /api/stats` (trainers, admins) and `GET /metrics` (Prometheus)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.accounts.routes import require
from bot.app_keys import KPI_SPLITS, KPIS, MODEL, SETTINGS, STATES, STATS
from bot.errors import ApiError
from bot.jsonutil import json_response
from bot.security.headers import page
from bot.security.tokens import bearer_matches
from bot.stats.csv_export import daily_csv

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

    Split by channel (`by_channel`) and by campaign source (`by_source`) too.
    """
    await require(request, "trainer", "admin")
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
    wanted = request.query.get("format", "json")
    if request.path.endswith(".csv") or wanted == "csv":
        return web.Response(
            text=daily_csv(body),
            content_type="text/csv",
            charset="utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="kefu-stats-{first}-{last}.csv"',
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
    engine = request.app[MODEL].engine
    if engine is not None:
        recorder.metrics.serving(engine.version)
    body = recorder.metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def index(request: web.Request) -> web.FileResponse:
    return page(STATIC / "index.html")


def setup(app: web.Application) -> None:
    app.router.add_get("/stats", index)
    app.router.add_static("/stats/static/", STATIC, append_version=True)
    app.router.add_get("/api/stats", stats)
    app.router.add_get("/api/stats.csv", stats)
    app.router.add_get("/metrics", metrics)
