"""`/console`: the agents' page (static HTML and JavaScript over the console API)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"
# Only this origin's own scripts, styles and sockets; never framed by another site.
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def page(path: Path) -> web.FileResponse:
    """A signed-in page (console, review, stats): never cached, never framed, own scripts only."""
    return web.FileResponse(
        path,
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


async def index(request: web.Request) -> web.FileResponse:
    return page(STATIC / "index.html")


def setup(app: web.Application) -> None:
    app.router.add_get("/console", index)
    app.router.add_static("/console/static/", STATIC, append_version=True)
