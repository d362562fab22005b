"""Several worker processes on one port (SO_REUSEPORT), one per core.

Rasa's dialogue code is CPU-bound and runs on the event loop, so one process
uses one core. Every piece of shared state (trackers, locks, the conversation
log, queues) is in Redis and safe across processes, so the kernel can spread
connections over N identical workers. The parent only starts them, passes
SIGINT/SIGTERM on, and exits (with the worker's code) when one dies, so that
the service manager (systemd, Docker) restarts the whole set.

The workers' Prometheus metrics go to files in one folder
(`PROMETHEUS_MULTIPROC_DIR`, a fresh temporary one unless set), summed by
whichever worker is scraped (bot/stats/metrics.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client import multiprocess

logger = logging.getLogger(__name__)


def supervise(workers: int, metrics_dir: Path | None = None) -> int:
    own_dir = metrics_dir is None
    folder = Path(tempfile.mkdtemp(prefix="kefu-metrics-")) if metrics_dir is None else metrics_dir
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):  # counts of an earlier run would be summed in
        stale.unlink()
    env = {**os.environ, "BOT_WORKERS": "1", "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    try:
        return _run(workers, env, folder)
    finally:
        if own_dir:
            shutil.rmtree(folder, ignore_errors=True)


def _run(workers: int, env: dict[str, str], metrics_dir: Path) -> int:
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
            # Its gauges (agents online, model) stop counting; its counters stay summed.
            multiprocess.mark_process_dead(child.pid, str(metrics_dir))
            if not stopping:
                logger.error("worker %d exited with %s; stopping the others", child.pid, result)
                code = result or 1
                forward(signal.SIGTERM, None)
        time.sleep(0.2)
    return code
