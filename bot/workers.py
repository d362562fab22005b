"""Several worker processes on one port (SO_REUSEPORT), one per core.

Rasa's dialogue code is CPU-bound and runs on the event loop, so one process
uses one core. Every piece of shared state (trackers, locks, the conversation
log, queues) is in Redis and safe across processes, so the kernel can spread
connections over N identical workers. The parent only starts them, passes
SIGINT/SIGTERM on, and exits (with the worker's code) when one dies, so that
the service manager (systemd, Docker) restarts the whole set.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

logger = logging.getLogger(__name__)


def supervise(workers: int) -> int:
    env = {**os.environ, "BOT_WORKERS": "1"}
    children = [
        subprocess.Popen([sys.executable, "-m", "bot", "serve"], env=env) for _ in range(workers)
    ]
    logger.info("started %d workers: %s", workers, ", ".join(str(c.pid) for c in children))
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 0
    while children:
        for child in list(children):
            result = child.poll()
            if result is None:
                continue
            children.remove(child)
            if not stopping:
                logger.error("worker %d exited with %s; stopping the others", child.pid, result)
                code = result or 1
                forward(signal.SIGTERM, None)
        time.sleep(0.2)
    return code
