"""Retraining started from the review page: one job at a time, in a child process.

Training holds a CPU core for its whole run, so it runs as `python -m bot train`
in a child process (the same command a trainer types), never in the serving
event loop. Its step lines are kept in Redis, so the page on any process can
show progress (steps and percent from the command's `progress` lines, see
bot/progress.py); when the gate promotes the model, the command itself tells
every bot process to switch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bot.errors import ApiError
from bot.progress import parse_line
from bot.redis_keys import Keys
from bot.settings import Settings

logger = logging.getLogger(__name__)

CODE_ROOT = Path(__file__).resolve().parents[2]
LOCK_SECONDS = 1800
LOG_LINES = 200
# `python -m bot train` exit codes: 0 promoted (or already serving), 3 refused by the gate.
OUTCOMES = {0: "promoted", 3: "refused"}


class RetrainJobs:
    def __init__(self, redis: Redis, keys: Keys, settings: Settings) -> None:
        self._redis = redis
        self._settings = settings
        self._key = keys.retrain_job
        self._log = keys.retrain_log
        self._lock = keys.retrain_lock
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, by: str) -> dict[str, Any]:
        job = uuid.uuid4().hex[:12]
        if not await self._redis.set(self._lock, job, nx=True, ex=LOCK_SECONDS):
            raise ApiError(409, "retrain_running", "A retraining is already running.")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key, self._log)
            pipe.hset(
                self._key,
                mapping={"id": job, "state": "running", "by": by, "started": repr(time.time())},
            )
            await pipe.execute()
        task = asyncio.create_task(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await self.status()

    async def status(self) -> dict[str, Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._key)
            pipe.lrange(self._log, 0, -1)
            raw, lines = await pipe.execute()
        status: dict[str, Any] = dict(raw) or {"state": "idle"}
        if "gate" in status:
            status["gate"] = json.loads(status["gate"])
        for name in ("step", "total", "percent"):
            if name in status:
                status[name] = int(status[name])
        status["log"] = lines
        return status

    async def _run(self, job: str) -> None:
        settings = self._settings
        root = settings.data_root.resolve()
        env = {
            **os.environ,
            "BOT_MODEL_DIR": str(settings.model_dir.resolve()),
            "REDIS_URL": settings.redis_url,
            "BOT_KEY_PREFIX": settings.key_prefix,
            "BOT_LOG_LEVEL": "WARNING",
            "RASA_TELEMETRY_ENABLED": "false",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            # The child runs this same code, installed or not.
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(CODE_ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
        state = "failed"
        proc: asyncio.subprocess.Process | None = None
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "train", "--root", str(root),
                cwd=root, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            assert proc.stdout is not None
            async for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip()
                progress = parse_line(line)
                if progress is not None:  # steps and percent for the page, not log lines
                    await self._redis.hset(
                        self._key,
                        mapping={
                            "step": progress.step,
                            "total": progress.total,
                            "percent": progress.percent,
                            "label": progress.label[:200],
                        },
                    )
                elif line:
                    await self._redis.rpush(self._log, line[:500])
                    await self._redis.ltrim(self._log, -LOG_LINES, -1)
            state = OUTCOMES.get(await proc.wait(), "failed")
            gate = root / "reports" / "gate.json"
            fields = {"state": state, "finished": repr(time.time())}
            if state != "failed" and gate.is_file():
                fields["gate"] = gate.read_text(encoding="utf-8")
            await self._redis.hset(self._key, mapping=fields)
        except asyncio.CancelledError:  # the bot is shutting down, and so is the training
            state = "interrupted"
            if proc is not None and proc.returncode is None:
                proc.terminate()
            await self._redis.hset(self._key, mapping={"state": state})
            raise
        except Exception:
            logger.exception("retraining job %s failed", job)
            await self._redis.hset(self._key, mapping={"state": "failed"})
        finally:
            await self._redis.delete(self._lock)
            logger.info("retraining job %s: %s", job, state)

    async def close(self) -> None:
        """Stop a running training (it would outlive the bot otherwise)."""
        for task in set(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
