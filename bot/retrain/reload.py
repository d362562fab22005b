"""Switching a running process to a newly promoted model, without a restart.

The new model is loaded in a worker thread beside the old one; when it is
ready it is bound to the same stores and swapped in. A turn already running
finishes on the model it started with; the next one uses the new model.
Every process hears the promotion through the Redis events channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.engine.runtime import RasaEngine
from bot.events import EventKind
from bot.retrain.registry import serving_model

if TYPE_CHECKING:
    from bot.chat.service import ModelSlot

logger = logging.getLogger(__name__)

PROMOTED = EventKind.MODEL_PROMOTED


class Reloader:
    def __init__(
        self,
        model_dir: Path,
        slot: ModelSlot,
        serve: Callable[[RasaEngine], Awaitable[None]],
    ) -> None:
        """`serve` binds a loaded engine to this process's stores and puts it in `slot`."""
        self._model_dir = model_dir
        self._slot = slot
        self._serve = serve
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[str | None]] = set()

    def on_event(self, event: dict[str, Any]) -> None:
        task = asyncio.create_task(self.reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self) -> str | None:
        """Serve the promoted model if it is not already serving; its version, or None."""
        async with self._lock:
            try:
                path: Path = serving_model(self._model_dir)
            except Exception as exc:
                logger.error("no model to reload: %s", exc)
                return None
            current = self._slot.engine
            if current is not None and current.model_path.name == path.name:
                return current.version
            try:
                engine = await asyncio.to_thread(RasaEngine.load, path)
                await self._serve(engine)
            except Exception:
                logger.exception("reloading %s failed; still serving the previous model", path)
                return None
            logger.info("switched to model %s", engine.version)
            return engine.version

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=30)
