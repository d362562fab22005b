"""Request bodies read whole, within a time limit, before any handler runs.

A client that announces a ``Content-Length`` and sends less (or trickles
its bytes) would otherwise hold a handler, a connection and memory for as
long as it likes. Reading the body up front, with `BOT_BODY_TIMEOUT`
seconds to arrive, turns that into a 408 and a connection closed at once; a body
over `BOT_MAX_BODY_BYTES` is refused (413) without being read whole.
Handlers then read the body from memory.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bot.errors import error_body

logger = logging.getLogger(__name__)


def body_middleware(timeout: float, max_bytes: int) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        # A body announced as too large is left to the handler, which refuses it
        # (413) without reading it.
        if request.body_exists and (request.content_length or 0) <= max_bytes:
            try:
                await asyncio.wait_for(request.read(), timeout)
            except asyncio.TimeoutError:
                logger.warning(
                    "%s %s -> 408: the body did not arrive within %g s (from %s)",
                    request.method,
                    request.path,
                    timeout,
                    request.remote,
                )
                response = error_body(
                    408,
                    "body_timeout",
                    f"The request body did not arrive within {timeout:g} seconds.",
                )
                # Sent now, then the connection is closed at once: aiohttp would
                # otherwise linger up to 10 s reading what never comes.
                response.force_close()
                await response.prepare(request)
                await response.write_eof()
                request.protocol.force_close()
                return response
        return await handler(request)

    return middleware
