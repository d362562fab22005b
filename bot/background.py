"""The app's long-lived tasks, stopped when shutdown begins.

aiohttp 3.9's `run_app` waits, before the cleanup contexts run, for every
task created after it started (up to `shutdown_timeout`, 60 s), so a
background loop stopped only in its cleanup context holds every shutdown
for a minute. Each background task registers here how to stop it; one
`on_shutdown` handler stops them all first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


class Background:
    def __init__(self) -> None:
        self._stops: list[Callable[[], Awaitable[None]]] = []

    def on_stop(self, stop: Callable[[], Awaitable[None]]) -> None:
        self._stops.append(stop)

    def every(self, seconds: float, job: Callable[[], Awaitable[object]], name: str) -> None:
        """Run `job` now and then every `seconds` until shutdown; failures are logged."""
        stopped = asyncio.Event()

        async def loop() -> None:
            while not stopped.is_set():
                try:
                    await job()
                except (RedisError, OSError) as exc:
                    logger.warning("%s failed (%s); next try in %.0f s", name, exc, seconds)
                except Exception:
                    logger.exception("%s failed", name)
                try:
                    await asyncio.wait_for(stopped.wait(), timeout=seconds)
                except asyncio.TimeoutError:
                    pass

        task = asyncio.create_task(loop())

        async def stop() -> None:
            stopped.set()
            await task

        self.on_stop(stop)

    def until_done(self, seconds: float, job: Callable[[], Awaitable[object]], name: str) -> None:
        """Run `job` now and every `seconds` until it has once finished without an error.

        For start-up work Redis was not there for: the process serves meanwhile.
        """
        done = False

        async def once() -> None:
            nonlocal done
            if not done:
                await job()
                done = True

        self.every(seconds, once, name)

    async def stop_all(self) -> None:
        while self._stops:
            stop = self._stops.pop()
            try:
                await stop()
            except Exception:
                logger.exception("stopping a background task failed")
