"""`/console`: the agents' page (static HTML and JavaScript over the console API)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bot.security.headers import page

STATIC = Path(__file__).parent / "static"


async def index(request: web.Request) -> web.FileResponse:
    return page(STATIC / "index.html")


def setup(app: web.Application) -> None:
    app.router.add_get("/console", index)
    app.router.add_static("/console/static/", STATIC, append_version=True)
