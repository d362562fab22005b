"""Websockets accept browsers only from our own pages.

A websocket is not bound by the same-origin policy: any site a signed-in
agent visits could open ``/console/ws`` with the agent's cookie and read
every event. Browsers always send ``Origin`` on a websocket handshake; it
must be `BOT_PUBLIC_ORIGIN` (the address customers and agents use, e.g.
``https://kefu.example.com``) or, when that is not set, this request's own
scheme and host. A client that sends no ``Origin`` is not a browser and
carries no one else's cookies; it is let through.
"""

from __future__ import annotations

from aiohttp import web

from bot.errors import ApiError


def check_origin(request: web.Request, public_origin: str | None) -> None:
    """Raise 403 unless the handshake comes from `public_origin` (or our own origin)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    allowed = public_origin or f"{request.scheme}://{request.host}".lower()
    if origin.strip().rstrip("/").lower() != allowed:
        raise ApiError(
            403, "origin_not_allowed", "Websockets are only open to this site's own pages."
        )
