"""Live updates over websockets, fed by the Redis events channel.

Each process keeps one subscription to ``P:events`` and hands each event to
its own sockets: every signed-in console gets everything; a customer's web
chat gets the agent replies for its conversation. Because the events travel
through Redis, a reply sent from a console on one process reaches a customer
connected to another.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from bot.events import EventKind

logger = logging.getLogger(__name__)

# How long one wait for an event lasts: also how long a shutdown may take.
POLL_SECONDS = 0.1
# Between two attempts to subscribe again after losing Redis (a Sentinel
# failover takes a few seconds; each attempt is bounded by the socket timeouts).
RESUBSCRIBE_SECONDS = 0.5
# Sent to customers: only what they may see, never notes, intents or agents' names.
CUSTOMER_EVENTS = {EventKind.AGENT_MESSAGE: "agent", EventKind.NOTICE: "bot"}


class Hub:
    def __init__(self, redis: Redis, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self.agents: set[web.WebSocketResponse] = set()
        self.agent_names: dict[web.WebSocketResponse, str] = {}
        self.customers: dict[str, set[web.WebSocketResponse]] = defaultdict(set)
        self._pubsub: PubSub | None = None
        self._stopped = asyncio.Event()
        # In-process listeners by event type (a promoted model reloads every process).
        self.listeners: dict[str, list[Callable[[dict[str, Any]], None]]] = defaultdict(list)
        # Told how many agents have a console open here whenever that changes (metrics).
        self.on_agents: Callable[[int], None] = lambda _count: None

    async def run(self) -> None:
        """Relay events from Redis to local sockets; resubscribe after a Redis outage.

        Polls with a timeout rather than blocking in ``listen()`` and stops on
        a flag rather than by cancellation: redis-py 4.6 can swallow a
        cancellation that lands while it connects, and the task would never end.
        """
        lost = False
        while not self._stopped.is_set():
            self._pubsub = self._redis.pubsub()
            try:
                await self._pubsub.subscribe(self._channel)
                if lost:
                    # Events published meanwhile are gone (pub/sub keeps nothing);
                    # pages reload their lists on their next action.
                    logger.info("event subscription restored")
                    lost = False
                while not self._stopped.is_set():
                    message = await self._pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=POLL_SECONDS
                    )
                    if message is not None:
                        await self.dispatch(json.loads(message["data"]))
            except (RedisError, OSError) as exc:
                # A dead or demoted master: the next subscription finds the new one.
                logger.warning("event subscription lost (%s); retrying", exc)
                lost = True
                await self._close_pubsub()
                await asyncio.sleep(RESUBSCRIBE_SECONDS)

    async def _close_pubsub(self) -> None:
        if self._pubsub is not None:
            await bounded(self._pubsub.close(), 2)
            self._pubsub = None

    async def dispatch(self, event: dict[str, Any]) -> None:
        for listener in self.listeners.get(event.get("type", ""), ()):
            listener(event)
        await _send_all(self.agents, event)
        sender = CUSTOMER_EVENTS.get(event.get("type", ""))
        if sender is not None:
            customer_view = {"type": "message", "direction": "out", "text": event.get("text", ""),
                             "id": event.get("id"), "from": sender}  # fmt: skip
            if "state" in event:
                customer_view["state"] = event["state"]
            await _send_all(self.customers.get(event.get("conversation", ""), set()), customer_view)

    async def serve(
        self, request: web.Request, sockets: set[web.WebSocketResponse], who: str | None = None
    ) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        sockets.add(ws)
        if who is not None:
            self.agent_names[ws] = who
            self.on_agents(len(set(self.agent_names.values())))
        try:
            async for message in ws:  # the client only listens; pings are answered by aiohttp
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            sockets.discard(ws)
            if self.agent_names.pop(ws, None) is not None:
                self.on_agents(len(set(self.agent_names.values())))
        return ws

    def stop(self) -> None:
        self._stopped.set()

    async def close_sockets(self) -> None:
        """Say goodbye to every client; their pages reconnect to another process."""
        for ws in [*self.agents, *(w for s in self.customers.values() for w in s)]:
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")

    async def close(self) -> None:
        await self._close_pubsub()
        await self.close_sockets()


async def _send_all(sockets: set[web.WebSocketResponse], event: dict[str, Any]) -> None:
    text = json.dumps(event, ensure_ascii=False)
    for ws in list(sockets):
        try:
            await ws.send_str(text)
        except (ConnectionResetError, RuntimeError):
            sockets.discard(ws)


async def bounded(awaitable: Any, seconds: float) -> None:
    """Wait for `awaitable` at most `seconds`, then leave it cancelled without waiting on it.

    ``asyncio.wait_for`` would wait for the cancellation to finish, which is
    exactly what redis-py 4.6 pub/sub connections sometimes never do.
    """
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        logger.warning("gave up waiting for %r to finish", awaitable)
    elif not task.cancelled() and task.exception() is not None:
        logger.debug("closing raised %r", task.exception())
