"""Switching a running process to a newly promoted model, without a restart.

The new model is loaded in a worker thread beside the old one; when it is
ready it is bound to the same stores and swapped in. A turn already running
finishes on the model it started with; the next one uses the new model.
Every process hears the promotion through the Redis events channel.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.engine.runtime import RasaEngine
from bot.events import EventKind

logger = logging.getLogger(__name__)

PROMOTED = EventKind.MODEL_PROMOTED


class Reloader:
    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[str | None]] = set()

    def on_event(self, event: dict[str, Any]) -> None:
        task = asyncio.create_task(self.reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self) -> str | None:
        """Serve the promoted model if it is not already serving; its version, or None."""
        from bot.app import _serve
        from bot.keys import MODEL, SETTINGS
        from bot.retrain.registry import serving_model

        async with self._lock:
            try:
                path: Path = serving_model(self._app[SETTINGS].model_dir)
            except Exception as exc:
                logger.error("no model to reload: %s", exc)
                return None
            current = self._app[MODEL].engine
            if current is not None and current.model_path.name == path.name:
                return current.version
            try:
                engine = await asyncio.to_thread(RasaEngine.load, path)
                await _serve(self._app, engine)
            except Exception:
                logger.exception("reloading %s failed; still serving the previous model", path)
                return None
            logger.info("switched to model %s", engine.version)
            return engine.version

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=30)
