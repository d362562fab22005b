"""How long the event loop was unable to run a ready task, measured all the time.

A task sleeps `interval` seconds over and over; how much later than asked it
wakes up is the time some callback held the loop (CPU work, a blocking call,
a long garbage collection). Every customer on this process waited that long,
and a stall over the WeChat 5-second budget loses replies, so it is a metric
(`kefu_loop_stall_seconds`, with the largest one seen) and a warning in the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

# Ticks this often: a stall is seen to within this much, for negligible CPU.
DEFAULT_INTERVAL = 0.01
# Stalls this long are counted in the log (the budget the performance issue set)...
DEFAULT_WARN_AFTER = 0.02
# ...in one line at most this often, so a loaded process does not flood its log.
WARN_EVERY = 10.0


class LoopLagProbe:
    """Measures event-loop stalls as sleep overshoot; `observe` gets every one."""

    def __init__(
        self,
        observe: Callable[[float], None],
        interval: float = DEFAULT_INTERVAL,
        warn_after: float = DEFAULT_WARN_AFTER,
    ) -> None:
        self._observe = observe
        self._interval = interval
        self._warn_after = warn_after
        self._task: asyncio.Task[None] | None = None
        self.largest = 0.0
        self._stalls = 0  # over warn_after since the last warning
        self._worst = 0.0
        self._warned = time.monotonic()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="loop-lag-probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            asked = time.monotonic()
            await asyncio.sleep(self._interval)
            stall = max(0.0, time.monotonic() - asked - self._interval)
            self.largest = max(self.largest, stall)
            self._observe(stall)
            if stall > self._warn_after:
                self._stalls += 1
                self._worst = max(self._worst, stall)
            now = time.monotonic()
            if self._stalls and now - self._warned >= WARN_EVERY:
                logger.warning(
                    "event loop stalled %d times over %.0f ms in %.0f s, the longest %.0f ms",
                    self._stalls,
                    self._warn_after * 1000,
                    now - self._warned,
                    self._worst * 1000,
                )
                self._stalls, self._worst, self._warned = 0, 0.0, now
