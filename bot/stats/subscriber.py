"""The KPIs and Prometheus metrics, recorded from the events this process publishes.

One handler per event kind: a new KPI is a handler here (or a line in one)
plus its line on the page. Subscribed in-process (`Events.subscribe`), not
over Redis pub/sub: every process hears every event there, so each would
count it once, and a process whose subscription is down would miss some.
"""

from __future__ import annotations

import asyncio

from bot.channels.identity import channel_of
from bot.events import EventKind, Events, Payload
from bot.review.index import entry_time
from bot.stats.recorder import Credit, Stats, channel_label, people_scopes


class KpiRecorder:
    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self._metrics = stats.metrics

    def subscribe(self, events: Events) -> None:
        events.subscribe(EventKind.CUSTOMER_MESSAGE, self.customer_message)
        events.subscribe(EventKind.BOT_MESSAGE, self.bot_message)
        events.subscribe(EventKind.AGENT_MESSAGE, self.agent_message)
        events.subscribe(EventKind.NOTICE, self.notice)
        events.subscribe(EventKind.STATE, self.state)
        events.subscribe(EventKind.ESCALATED, self.escalated)
        events.subscribe(EventKind.RATED, self.rated)
        events.subscribe(EventKind.HANDED_ELSEWHERE, self.handed_elsewhere)

    async def customer_message(self, conversation: str, data: Payload) -> None:
        """Messages in, the day's conversations by channel and by campaign source.

        And the NLU's verdict and how long it took. The writes go together (one
        round trip), before the event is published.
        """
        ts = entry_time(data["id"])
        await asyncio.gather(
            self._arrived(conversation, data, ts),
            self._sourced(conversation, data, ts),
            self._classified(data, ts),
        )
        if data.get("nlu_seconds") is not None:
            self._metrics.nlu_seconds.observe(data["nlu_seconds"])

    async def _arrived(self, conversation: str, data: Payload, ts: float) -> None:
        if data.get("resumed"):  # an earlier attempt at the turn counted it
            return
        channel = data["channel"]
        if await self._stats.inbound(conversation, channel, ts):
            self._metrics.conversations.labels(channel_label(channel)).inc()
        self._metrics.messages.labels(channel, "in").inc()

    async def _sourced(self, conversation: str, data: Payload, ts: float) -> None:
        if not data.get("source"):
            return
        label = await self._stats.sourced(conversation, str(data["source"]), ts)
        if label is not None:
            self._metrics.campaign_arrivals.labels(self._metrics.source(label)).inc()

    async def _classified(self, data: Payload, ts: float) -> None:
        if data.get("intent"):
            await self._stats.classified(data["intent"], data["text"], ts)

    async def bot_message(self, conversation: str, data: Payload) -> None:
        """Messages out; for the reply to a customer message, how long the turn took."""
        seconds = data.get("response_seconds")
        await self._outbound(data["channel"], len(data["texts"]), response_seconds=seconds)
        if seconds is not None:
            self._metrics.turn_seconds.observe(seconds)

    async def agent_message(self, conversation: str, data: Payload) -> None:
        """Agents' messages; the first since the conversation was queued: the human response."""
        await self._outbound(data["channel"], 1, by_agent=True)
        if data.get("human_response") is not None:
            await self._stats.duration("human_response", data["human_response"])
        if data.get("within_target") is not None:
            within, team, agent = bool(data["within_target"]), data.get("team") or "", data["agent"]
            seconds = data.get("human_response")
            await self._stats.first_response(agent, team, within, seconds=seconds)
            self._metrics.first_responses.labels(team, "yes" if within else "no").inc()
            if (agents := self._metrics.agents) is not None:
                label = agents.label(agent)
                agents.first_responses.labels(label, "yes" if within else "no").inc()
                if seconds is not None:
                    agents.first_response_seconds.labels(label).observe(seconds)

    async def notice(self, conversation: str, data: Payload) -> None:
        await self._outbound(data["channel"], 1)

    async def state(self, conversation: str, data: Payload) -> None:
        """The time a claim ended (queue wait: a handoff) or a release or close (handling)."""
        for name in ("queue_wait", "handling"):
            if data.get(name) is not None:
                await self._stats.duration(name, data[name])
        if data.get("queue_wait") is not None:  # an agent took it from the queue
            await self._stats.handoff(conversation)
            self._metrics.handoffs.labels(_channel(conversation), "console").inc()
        if data.get("agent_handling") is not None and data.get("previous_agent"):
            await self._stint(data)

    async def _stint(self, data: Payload) -> None:
        """An agent's hold ended (released, closed) or passed on (transferred).

        The agent is credited with the time they held it, and a conversation
        handled (released or closed) or transferred; a release or close counts
        as handled for the agent and for the team, whose handling
        time runs from the first claim (one conversation, however many hands).
        """
        agent, team = data["previous_agent"], data.get("team") or ""
        seconds, ended = float(data["agent_handling"]), data.get("handling") is not None
        handled = {"handled": 1} if ended else {}
        counts = handled or {"transferred": 1}
        credits = [Credit(f"agent:{agent}", counts, ("handling", seconds))]
        if ended and team:
            credits.append(Credit(f"team:{team}", handled, ("handling", float(data["handling"]))))
        await self._stats.by_people(credits)
        if (agents := self._metrics.agents) is not None:
            label = agents.label(agent)
            agents.handling_seconds.labels(label).observe(seconds)
            if ended:
                agents.handled.labels(label).inc()

    async def escalated(self, conversation: str, data: Payload) -> None:
        await self._stats.escalation(conversation, data["reason"], data["at"])
        self._metrics.escalations.labels(data["reason"]).inc()
        self._metrics.channel_escalations.labels(_channel(conversation)).inc()

    async def rated(self, conversation: str, data: Payload) -> None:
        """A rating; also the agent's (and team's) named when the question was asked."""
        await self._stats.rating(data["rating"], data["at"])
        if data.get("agent"):
            counts = {"csat_count": 1, "csat_sum": int(data["rating"])}
            scopes = people_scopes(data["agent"], data.get("team") or "")
            await self._stats.by_people([Credit(s, counts) for s in scopes], data["at"])
            if (agents := self._metrics.agents) is not None:
                agents.ratings.labels(agents.label(data["agent"]), str(data["rating"])).inc()

    async def handed_elsewhere(self, conversation: str, data: Payload) -> None:
        """The platform's own servicers took the conversation: a handoff too."""
        await self._stats.handoff(conversation)
        self._metrics.handoffs.labels(_channel(conversation), "platform").inc()

    async def _outbound(
        self,
        channel: str,
        count: int,
        by_agent: bool = False,
        response_seconds: float | None = None,
    ) -> None:
        await self._stats.outbound(channel, count, by_agent, response_seconds=response_seconds)
        self._metrics.messages.labels(channel, "out").inc(count)


def _channel(conversation: str) -> str:
    return channel_label(channel_of(conversation))
