"""Response headers that tell browsers what our pages may do, and what we run nothing about.

Every response: ``X-Content-Type-Options: nosniff`` (a JSON reply is never
run as a script), and a ``Server`` header without versions (aiohttp's
default names Python's and its own). Pages (web chat, console, review,
stats): a Content-Security-Policy allowing only this origin's own scripts,
styles and sockets and no framing by another site, no caching, and a
referrer policy that keeps conversation ids out of other sites' logs.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

SERVER = "kefu"
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def page(path: Path) -> web.FileResponse:
    """A page of ours: never cached, never framed, its own scripts only."""
    return web.FileResponse(path, headers=PAGE_HEADERS)


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Headers every response gets (aiohttp's `on_response_prepare` signal)."""
    response.headers["Server"] = SERVER
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
