"""This process's open consoles, kept as their agents' presence in Redis.

Counts each agent's open console websockets here; while at least one is open
the process renews the agent's entry every `renew` seconds (valid for three
renewals, so one slow sweep is not a departure). When the last one here
closes, the entry is left to run out after `grace` seconds: a reload or a
reconnection to another process within that time keeps the agent online.
A process that dies stops renewing, and its entries run out the same way.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from redis.exceptions import RedisError

from bot.handoff.service import HandoffService

logger = logging.getLogger(__name__)

# Renewals an entry outlives, so a late one does not take an agent offline.
RENEWALS_VALID = 3


class ConsolePresence:
    def __init__(self, handoff: HandoffService, process: str, renew: float, grace: float) -> None:
        self._handoff = handoff
        self._process = process
        self._renew = renew
        self._grace = grace
        self._open: Counter[str] = Counter()

    async def opened(self, agent: str) -> None:
        """A console socket of `agent` opened here (Redis down: the renewals catch up)."""
        self._open[agent] += 1
        try:
            await self._handoff.console_open(agent, self._process, self._valid_until())
        except RedisError as exc:
            logger.warning("presence of %s not recorded (%s); renewing later", agent, exc)

    async def closed(self, agent: str) -> None:
        """One closed; after the last, the agent's entry here runs out after the grace period."""
        self._open[agent] -= 1
        if self._open[agent] > 0:
            return
        del self._open[agent]
        try:
            await self._handoff.console_kept(agent, self._process, time.time() + self._grace)
        except RedisError as exc:  # the entry runs out by itself, a little later
            logger.warning("presence of %s not shortened (%s)", agent, exc)

    async def renew(self) -> None:
        """Every agent with a console open here is still here (a background job)."""
        until = self._valid_until()
        for agent in list(self._open):
            await self._handoff.console_kept(agent, self._process, until)

    def _valid_until(self) -> float:
        return time.time() + self._renew * RENEWALS_VALID
