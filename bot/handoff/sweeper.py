"""The queue's housekeeping: nobody took it, or the agent walked away.

Every bot process runs the sweep every few seconds; the transitions it makes
are atomic and conditional (``announce`` and ``requeue`` with a cut-off), so
with many processes each conversation is still re-announced once per quiet
period and returned to the queue once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from bot.app_keys import BACKGROUND, DELIVERY, EVENTS, MESSAGES, SETTINGS, STATES
from bot.channels.delivery import Delivery
from bot.content.messages import Messages
from bot.events import Events
from bot.handoff.states import WAITING, ConversationStates, InvalidTransition

logger = logging.getLogger(__name__)


@dataclass
class SweepResult:
    announced: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)


class Sweeper:
    def __init__(
        self,
        states: ConversationStates,
        events: Events,
        delivery: Delivery,
        messages: Messages,
        reannounce_after: float,
        idle_after: float,
    ) -> None:
        self._states = states
        self._events = events
        self._delivery = delivery
        self._messages = messages
        self._reannounce_after = reannounce_after
        self._idle_after = idle_after

    async def sweep(self) -> SweepResult:
        now = time.time()
        result = SweepResult()
        for conversation in await self._states.waiting():
            if await self._states.announce(conversation, now - self._reannounce_after):
                handoff = await self._states.get(conversation)
                await self._events.publish(
                    "reannounce",
                    conversation,
                    reason=handoff.reason,
                    waiting_seconds=round(now - handoff.waiting_since, 1),
                )
                result.announced.append(conversation)
        cutoff = now - self._idle_after
        for conversation in await self._states.idle(cutoff):
            agent = (await self._states.get(conversation)).agent
            try:
                await self._states.requeue(conversation, idle_before=cutoff)
            except InvalidTransition:
                continue  # the agent acted just now, or another process was first
            logger.info("%r returned to the queue: %s was idle", conversation, agent)
            await self._events.publish(
                "state", conversation, state=WAITING, agent="", previous_agent=agent, why="idle"
            )
            text = self._messages.pick("handoff_requeued")
            await self._delivery.notify(conversation, "handoff_requeued", text, state=WAITING)
            result.requeued.append(conversation)
        return result


async def sweeper_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    sweeper = Sweeper(
        app[STATES],
        app[EVENTS],
        app[DELIVERY],
        app[MESSAGES],
        reannounce_after=settings.handoff_reannounce_seconds,
        idle_after=settings.handoff_idle_seconds,
    )
    app[BACKGROUND].every(settings.handoff_sweep_seconds, sweeper.sweep, "handoff sweep")
    yield
