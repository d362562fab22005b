"""The queue's housekeeping: nobody took it, or the agent walked away.

Every bot process runs the sweep every few seconds; the transitions it makes
are atomic and conditional (``announce`` and ``requeue`` with a cut-off), so
with many processes each conversation is still re-announced once per quiet
period and returned to the queue once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from aiohttp import web

from bot.app_keys import BACKGROUND, HANDOFF, SETTINGS, STATES
from bot.handoff.service import HandoffService
from bot.handoff.states import ConversationStates

logger = logging.getLogger(__name__)


@dataclass
class SweepResult:
    announced: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)
    returned: list[str] = field(default_factory=list)
    assigned: list[str] = field(default_factory=list)


class Sweeper:
    def __init__(
        self,
        states: ConversationStates,
        handoff: HandoffService,
        reannounce_after: float,
        idle_after: float,
    ) -> None:
        self._states = states  # read only: the handoff service makes the changes
        self._handoff = handoff
        self._reannounce_after = reannounce_after
        self._idle_after = idle_after

    async def sweep(self) -> SweepResult:
        now = time.time()
        result = SweepResult()
        for conversation in await self._states.waiting():
            if await self._handoff.announce(conversation, now - self._reannounce_after, now):
                result.announced.append(conversation)
        cutoff = now - self._idle_after
        for conversation in await self._states.idle(cutoff):
            agent = (await self._states.get(conversation)).agent
            if await self._handoff.requeue(conversation, idle_before=cutoff):
                logger.info("%r returned to the queue: %s was idle", conversation, agent)
                result.requeued.append(conversation)
        # Agents whose last console closed past the grace period: offline, and
        # what they held back to the queue (checked every time: nothing stranded).
        result.offline = await self._handoff.expire_presence()
        result.returned = await self._handoff.return_from_offline()
        # Anything still waiting that someone has room for (a no-op when off).
        result.assigned = [h.conversation for h in await self._handoff.assign_waiting()]
        return result


async def start_sweeper(app: web.Application) -> None:
    """Sweep every few seconds, from once every start-up context has run.

    An `on_startup` handler added after the cleanup contexts, not one of them:
    a sweep assigns waiting conversations and tells their customers a person
    joined, which a channel can only do once its sender is registered (WeChat,
    WeCom, Weibo come last). Stopped with the other background jobs.
    """
    settings = app[SETTINGS]
    sweeper = Sweeper(
        app[STATES],
        app[HANDOFF],
        reannounce_after=settings.handoff_reannounce_seconds,
        idle_after=settings.handoff_idle_seconds,
    )
    app[BACKGROUND].every(settings.handoff_sweep_seconds, sweeper.sweep, "handoff sweep")
