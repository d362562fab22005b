"""The app's long-lived tasks, stopped when shutdown begins.

aiohttp 3.9's `run_app` waits, before the cleanup contexts run, for every
task created after it started (up to `shutdown_timeout`, 60 s), so a
background loop stopped only in its cleanup context holds every shutdown
for a minute. Each background task registers here how to stop it; one
`on_shutdown` handler stops them all first.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

logger = logging.getLogger(__name__)


class Background:
    def __init__(self) -> None:
        self._stops: list[Callable[[], Awaitable[None]]] = []

    def on_stop(self, stop: Callable[[], Awaitable[None]]) -> None:
        self._stops.append(stop)

    async def stop_all(self) -> None:
        while self._stops:
            stop = self._stops.pop()
            try:
                await stop()
            except Exception:
                logger.exception("stopping a background task failed")


async def stop_background(app: web.Application) -> None:
    from bot.keys import BACKGROUND

    await app[BACKGROUND].stop_all()
