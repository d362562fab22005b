"""The rules of a handoff: who may change who has a conversation, and what follows.

The one writer of handoff state. The console API, the queue's sweeper and the
escalating custom actions all come here; each change is an atomic transition
of `ConversationStates`, then published as an event (consoles, KPIs, metrics
hear it there) and, when a person joins or leaves, told to the customer, who
always knows who answers.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any

from bot.channels.delivery import Delivery, DeliveryFailed
from bot.console.store import ConsoleStore
from bot.content.messages import Messages
from bot.conversation_log.store import ConversationLog, Outbound
from bot.events import EventKind, Events
from bot.handoff.hours import ServiceHours
from bot.handoff.presence import OFFLINE, ONLINE, Member, Presence
from bot.handoff.requests import HandoffRequests
from bot.handoff.standing import Standing, standing
from bot.handoff.states import (
    ASSIGNED,
    WAITING,
    ConversationStates,
    Handoff,
    InvalidTransition,
    Stint,
)
from bot.handoff.teams import TeamMap
from bot.names import agent_action
from bot.review.index import ReviewIndex
from bot.settings import ServiceLevels

logger = logging.getLogger(__name__)

# What the customer is told when a person joins or leaves.
JOINED, LEFT, REQUEUED = "agent_joined", "agent_left", "handoff_requeued"


@dataclass(frozen=True)
class AgentReply:
    entry_id: str
    # False: the channel cannot send unprompted (the REST webhook) or refused
    # (`refused`, e.g. WeChat's 48-hour window); the reply is logged either way.
    pushed: bool
    refused: DeliveryFailed | None = None


class Conflict(Exception):
    """The action does not fit who has the conversation (not yours, not claimed)."""


class HandoffService:
    def __init__(
        self,
        states: ConversationStates,
        requests: HandoffRequests,
        index: ReviewIndex,
        events: Events,
        delivery: Delivery,
        messages: Messages,
        hours: ServiceHours,
        log: ConversationLog,
        console: ConsoleStore,
        presence: Presence,
        teams: TeamMap | None = None,
        auto_assign: bool = False,
        service_levels: ServiceLevels | None = None,
    ) -> None:
        self.states = states
        self.presence = presence
        self.teams = teams or TeamMap()
        self.auto_assign = auto_assign
        self.service_levels = service_levels or ServiceLevels()
        self._requests = requests
        self._index = index
        self._events = events
        self._delivery = delivery
        self._messages = messages
        self._hours = hours
        self._log = log
        self._console = console

    async def request(self, conversation: str, reason: str, text: str, intent: str = "") -> None:
        """Record that `conversation` needs a person; an earlier request keeps its place.

        The team that takes it follows from the reason, or from `intent` (what
        the customer was asking about), by nlu_data/teams.yml; with automatic
        assignment on, an agent of that team with room gets it at once.
        """
        now = time.time()
        team = self.teams.team_for(reason, intent)
        await self._requests.record(conversation, reason, text, now)
        queued = await self.states.escalate(conversation, reason, team)
        await self._index.escalated(conversation, reason, now)
        await self._events.publish(
            EventKind.ESCALATED, conversation, reason=reason, queued=queued, at=now, team=team
        )
        await self.assign_waiting()

    async def standing(
        self, conversation: str, hours: ServiceHours, now: dt.datetime
    ) -> Standing | None:
        return await standing(self.states, hours, conversation, now)

    async def reasons(self, conversation: str) -> list[str]:
        """Every reason the conversation was escalated for, oldest first."""
        return await self._requests.reasons(conversation)

    async def details(self, conversation: str) -> dict[str, str]:
        """The latest request: its reason, the customer's words (masked if so set), when."""
        return await self._requests.details(conversation)

    async def claim(self, conversation: str, agent: str) -> Handoff:
        """Give a waiting conversation to `agent`; the customer hears a person joined."""
        before = await self.states.get(conversation)
        await self.states.claim(conversation, agent, counts_as_wait=self._counts_as_wait(before))
        return await self._joined(conversation)

    def _counts_as_wait(self, before: Handoff) -> bool:
        # A wait that began outside service hours says nothing about waits now.
        queued = dt.datetime.fromtimestamp(before.waiting_since or time.time(), dt.timezone.utc)
        return self._hours.is_open(queued)

    async def _joined(self, conversation: str, **data: Any) -> Handoff:
        after = await self.states.get(conversation)
        wait = after.claimed_at - after.waiting_since
        return await self._changed(after, JOINED, queue_wait=wait, **data)

    async def assign_waiting(self) -> list[Handoff]:
        """With automatic assignment on: give waiting conversations to free agents.

        In serving order (complaints first); each assignment is one atomic step
        that checks the conversation still waits and the agent still has room,
        so any number of processes can run this at once. A team found full is
        not asked again in the same pass.
        """
        if not self.auto_assign:
            return []
        given: list[Handoff] = []
        full: set[str] = set()
        for conversation in await self.states.waiting():
            before = await self.states.get(conversation)
            if before.team in full:
                continue
            try:
                agent = await self.states.assign(
                    conversation,
                    before.team,
                    self.presence.default_capacity,
                    counts_as_wait=self._counts_as_wait(before),
                )
            except InvalidTransition:
                continue  # taken meanwhile (a claim, another process)
            if not agent:
                full.add(before.team)
                continue
            given.append(await self._joined(conversation, why="assigned"))
        return given

    async def console_open(self, agent: str, process: str, until: float) -> None:
        """A console of `agent` is open on `process` until `until` (renewed while it is)."""
        if await self.presence.keep(agent, process, until, opening=True):
            await self._presence_changed(agent, ONLINE)

    async def console_kept(self, agent: str, process: str, until: float) -> None:
        """Renewal, or (with a short `until`) the grace period after the last one closed."""
        await self.presence.keep(agent, process, until)

    async def set_presence(self, agent: str, status: str) -> None:
        """The agent chose a status; going offline hands their conversations back."""
        await self.presence.set(agent, status)
        await self._presence_changed(agent, await self.presence.status(agent))

    async def expire_presence(self) -> list[str]:
        """Agents whose last console closed (past the grace period) become offline."""
        gone = await self.presence.expire()
        for agent in gone:
            await self._presence_changed(agent, OFFLINE)
        return gone

    async def return_from_offline(self) -> list[str]:
        """Conversations held by offline agents go back to the queue, in their first place.

        Checked anew on every sweep, so a process stopping halfway leaves nothing
        stranded; the step itself re-checks the holder is still away.
        """
        returned = []
        for conversation in await self.states.assigned():
            agent = (await self.states.get(conversation)).agent
            if not await self.presence.gone(agent):
                continue
            try:
                await self.states.requeue(conversation, holder=agent, gone=True)
            except InvalidTransition:
                continue
            await self._events.publish(
                EventKind.STATE, conversation, state=WAITING, agent="",
                previous_agent=agent, why="offline",
            )  # fmt: skip
            await self.notify(conversation, REQUEUED, WAITING)
            returned.append(conversation)
        if returned:
            await self.assign_waiting()
        return returned

    async def team(self) -> list[Member]:
        """The roster: each agent's status, capacity, teams and load."""
        return await self.presence.members(await self.states.loads())

    async def holdings(self) -> dict[str, list[str]]:
        """Agent -> the conversations they hold now (the admins' per-agent view)."""
        return await self.states.holdings()

    async def recount_loads(self) -> None:
        """Loads counted again from who holds what (at start-up: conversations held
        since before loads were kept, or a counter that drifted, count again).

        Assigns nothing: at start-up not every channel can tell a customer a
        person joined yet; the sweeper's next pass assigns.
        """
        recount = await self.states.recount_loads()
        if recount.agents or recount.stale:
            logger.info(
                "agents' loads recounted: %d corrected, %d stale assigned entries dropped",
                recount.agents,
                recount.stale,
            )

    async def handled_recently(self, conversation: str, since: float) -> tuple[str, str] | None:
        """(agent, team) if a person of ours handled the conversation and let it go
        at or after `since` (the start of the customer's current session), else None.

        What a satisfaction question asked now credits: not an agent from an
        earlier session, nor a platform's own servicer (they leave no `held_by`).
        """
        handoff = await self.states.get(conversation)
        if handoff.state in (WAITING, ASSIGNED) or not handoff.held_by:
            return None
        if handoff.since < since:
            return None
        return handoff.held_by, handoff.team

    async def set_roster(self, agent: str, capacity: int | None, teams: list[str]) -> None:
        """An admin set the agent's capacity and teams (teams.yml must list them)."""
        await self.presence.set_roster(agent, capacity, self.teams.check(teams))
        await self.assign_waiting()

    async def forget_agent(self, agent: str) -> None:
        """The account is gone: off the roster; what they held goes back to the queue."""
        await self.presence.forget(agent)
        await self.return_from_offline()

    async def _presence_changed(self, agent: str, status: str) -> None:
        await self._events.publish(EventKind.PRESENCE, "", agent=agent, status=status)
        if status == OFFLINE:
            await self.return_from_offline()
        elif status == ONLINE:
            await self.assign_waiting()

    async def release(self, conversation: str, holder: str = "") -> Handoff:
        """Back to the bot; with `holder`, only if that agent holds it ('' for an admin)."""
        return await self._left(conversation, await self.states.release(conversation, holder))

    async def close(self, conversation: str, tag: str, holder: str = "") -> Handoff:
        """Closed with a resolution tag; with `holder`, only if that agent holds it."""
        return await self._left(conversation, await self.states.close(conversation, tag, holder))

    async def hand_elsewhere(self, conversation: str, agent: str, tag: str, **data: Any) -> Handoff:
        """People outside this console took it (a platform's own servicers): closed here.

        Recorded as claimed by `agent` (who is not waited for) and closed with `tag`;
        the customer hears nothing from us, the platform's people speak next.
        """
        await self.states.claim(conversation, agent, counts_as_wait=False, elsewhere=True)
        await self.states.close(conversation, tag, agent)
        handoff = await self.states.get(conversation)
        await self._events.publish(EventKind.HANDED_ELSEWHERE, conversation, **data)
        return await self._changed(handoff, None)

    async def transfer(self, conversation: str, holder: str, to: str) -> Handoff:
        """From `holder` ('' for whoever holds it: an admin acting) to agent `to`."""
        current = holder or (await self.states.get(conversation)).agent
        passed = await self.states.transfer(conversation, current, to)
        # The agent who passed it on: their stint's handling (not a conversation ended).
        local = _credit(passed, ended=False) if passed is not None else None
        return await self._changed(await self.states.get(conversation), None, local)

    async def requeue(self, conversation: str, idle_before: float) -> bool:
        """Back to the queue if its agent did nothing since `idle_before`; False if not."""
        agent = (await self.states.get(conversation)).agent
        try:
            await self.states.requeue(conversation, idle_before=idle_before)
        except InvalidTransition:
            return False  # the agent acted just now, or another process was first
        await self._events.publish(
            EventKind.STATE, conversation, state=WAITING, agent="", previous_agent=agent, why="idle"
        )
        await self.notify(conversation, REQUEUED, WAITING)
        return True

    async def announce(self, conversation: str, quiet_before: float, now: float) -> bool:
        """Re-announce a conversation nobody took since `quiet_before`, once across processes."""
        if not await self.states.announce(conversation, quiet_before):
            return False
        handoff = await self.states.get(conversation)
        await self._events.publish(
            EventKind.REANNOUNCE,
            conversation,
            reason=handoff.reason,
            waiting_seconds=round(now - handoff.waiting_since, 1),
        )
        return True

    async def reply(self, conversation: str, agent: str, text: str) -> AgentReply:
        """Log and push the holding agent's reply (logged even when the channel refuses it)."""
        handoff = await self.states.get(conversation)
        if handoff.state != ASSIGNED or handoff.agent != agent:
            raise Conflict("Claim the conversation before replying.")
        channel = self._log.channel_of(conversation)
        (entry_id,) = await self._log.append_outbound(
            conversation, channel, [Outbound(text=text, action=agent_action(agent))]
        )
        await self.touch(conversation, agent)
        first: dict[str, Any] = {}
        if await self.states.first_answer(conversation):
            # The first response, against its channel's target (the KPIs' service level):
            # for the recorder only, not for every console (bot/events.py).
            seconds = time.time() - handoff.queued_at
            target = self.service_levels.target(channel)
            first.update(human_response=seconds, team=handoff.team, within_target=seconds <= target)
        try:
            pushed = await self._delivery.push(
                EventKind.AGENT_MESSAGE, channel, conversation, entry_id, text, first, agent=agent
            )
        except DeliveryFailed as exc:
            return AgentReply(entry_id, False, exc)
        return AgentReply(entry_id, pushed)

    async def written_elsewhere(self, conversation: str, agent: str, text: str) -> str:
        """A platform's own servicer wrote to the customer there (WeCom's client).

        Logged as that person's reply and shown to consoles; not pushed (it
        reached the customer already). Returns the log entry's id.
        """
        channel = self._log.channel_of(conversation)
        (entry_id,) = await self._log.append_outbound(
            conversation, channel, [Outbound(text=text, action=agent_action(agent))]
        )
        await self._events.publish(
            EventKind.AGENT_MESSAGE,
            conversation,
            id=entry_id,
            text=text,
            channel=channel,
            agent=agent,
            elsewhere=True,
        )
        return entry_id

    async def note(
        self, conversation: str, author: str, text: str, admin: bool = False
    ) -> dict[str, Any]:
        """An internal note: an agent on their own or unheld conversations, an admin on any."""
        holder = (await self.states.get(conversation)).agent
        if not admin and holder and holder != author:
            raise Conflict(f"{holder} holds this conversation.")
        note = await self._console.add_note(conversation, author, text)
        await self.touch(conversation, author)
        await self._events.publish(EventKind.NOTE, conversation, **note)
        return note

    async def touch(self, conversation: str, agent: str) -> None:
        """The holding agent is working on it: not idle (nothing if someone else holds it)."""
        try:
            await self.states.touch(conversation, agent)
        except InvalidTransition:
            pass

    async def notify(self, conversation: str, key: str, state: str) -> None:
        """Log and push the notice `key` (nlu_data/messages.yml) to the customer."""
        text = self._messages.pick(key)
        await self._delivery.notify(conversation, key, text, state=state)

    async def _left(self, conversation: str, ended: Stint | None) -> Handoff:
        """Released or closed: `ended` is the holder's stint as the step read it, so a
        transfer racing an admin's release cannot credit the agent who passed it on."""
        after = await self.states.get(conversation)
        local = _credit(ended, ended=True) if ended is not None else None
        changed = await self._changed(after, LEFT, local)
        await self.assign_waiting()  # the agent has room again
        return changed

    async def _changed(
        self,
        handoff: Handoff,
        notice: str | None,
        local: dict[str, Any] | None = None,
        **public: Any,
    ) -> Handoff:
        """Publish the new state and tell the customer.

        `local`: the KPIs of an agent's stint it ends (how long, whose), for the
        recorder only; `public`: what every console may see too (the queue wait).
        """
        await self._events.publish(
            EventKind.STATE,
            handoff.conversation,
            local,
            state=handoff.state,
            agent=handoff.agent,
            **public,
        )
        if notice is not None:
            await self.notify(handoff.conversation, notice, handoff.state)
        return handoff


def _credit(stint: Stint, ended: bool) -> dict[str, Any]:
    """The KPIs of a stint (bot/stats/subscriber.py): whose, how long, and whether it
    ended the handoff (released or closed: `handling` from the first claim too)."""
    credit: dict[str, Any] = {
        "previous_agent": stint.agent,
        "team": stint.team,
        "agent_handling": stint.handling,
    }
    if ended:
        credit["handling"] = stint.total
    return credit
