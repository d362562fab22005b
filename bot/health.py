"""`/healthz`: the process is alive. `/readyz`: it can serve (model loaded, Redis answers)."""

from __future__ import annotations

import asyncio
import os

from aiohttp import web
from redis.exceptions import RedisError

from bot.app_keys import MODEL, REDIS
from bot.jsonutil import json_response


async def healthz(request: web.Request) -> web.Response:
    # The pid tells which worker answered when several share the port.
    return json_response({"status": "ok", "pid": os.getpid()})


async def readyz(request: web.Request) -> web.Response:
    slot = request.app[MODEL]
    checks: dict[str, str] = {}
    if slot.engine is not None:
        checks["model"] = slot.engine.version
    else:
        checks["model"] = slot.error or "loading"
    try:
        await asyncio.wait_for(request.app[REDIS].ping(), timeout=2)
        checks["redis"] = "ok"
    except (RedisError, TimeoutError, OSError) as exc:
        checks["redis"] = f"unreachable: {type(exc).__name__}"
    ready = slot.engine is not None and checks["redis"] == "ok"
    return json_response(
        {"status": "ready" if ready else "not_ready", **checks, "pid": os.getpid()},
        status=200 if ready else 503,
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
