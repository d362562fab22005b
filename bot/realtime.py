"""Live updates over websockets, fed by the Redis events channel.

Each process keeps one subscription to ``P:events`` and hands each event to
its own sockets: every signed-in console gets everything; a customer's web
chat gets the agent replies for its conversation. Because the events travel
through Redis, a reply sent from a console on one process reaches a customer
connected to another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import WSMsgType, web
from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# Sent to customers: only what they may see, never notes, intents or agents' names.
CUSTOMER_EVENTS = frozenset({"agent_message"})


class Hub:
    def __init__(self, redis: Redis, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self.agents: set[web.WebSocketResponse] = set()
        self.customers: dict[str, set[web.WebSocketResponse]] = defaultdict(set)

    async def run(self) -> None:
        """Relay events from Redis to local sockets; resubscribe after a Redis outage."""
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await self.dispatch(json.loads(message["data"]))
            except (RedisError, OSError) as exc:
                logger.warning("event subscription lost (%s); retrying", exc)
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.close()

    async def dispatch(self, event: dict[str, Any]) -> None:
        await _send_all(self.agents, event)
        if event.get("type") in CUSTOMER_EVENTS:
            customer_view = {"type": "message", "direction": "out", "text": event.get("text", ""),
                             "id": event.get("id"), "from": "agent"}  # fmt: skip
            await _send_all(self.customers.get(event.get("conversation", ""), set()), customer_view)

    async def serve(
        self, request: web.Request, sockets: set[web.WebSocketResponse]
    ) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        sockets.add(ws)
        try:
            async for message in ws:  # the client only listens; pings are answered by aiohttp
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            sockets.discard(ws)
        return ws

    async def close(self) -> None:
        for ws in [*self.agents, *(w for s in self.customers.values() for w in s)]:
            await ws.close()


async def _send_all(sockets: set[web.WebSocketResponse], event: dict[str, Any]) -> None:
    text = json.dumps(event, ensure_ascii=False)
    for ws in list(sockets):
        try:
            await ws.send_str(text)
        except (ConnectionResetError, RuntimeError):
            sockets.discard(ws)


async def hub_ctx(app: web.Application) -> AsyncIterator[None]:
    # Imported here: bot.keys imports this module for the Hub type.
    from bot.keys import HUB, REDIS, SETTINGS
    from bot.redis_keys import Keys

    hub = Hub(app[REDIS], Keys(app[SETTINGS].key_prefix).events)
    app[HUB] = hub
    task = asyncio.create_task(hub.run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await hub.close()
