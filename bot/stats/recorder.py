"""What the KPIs are computed from, recorded as things happen, per day.

Days are the brand's (the service hours' timezone). Every key carries the hash
tag ``{stats}``, so a range of days is united server-side on one Redis Cluster
slot (`bot/stats/kpis.py`). Per day ``D``:

- ``P:{stats}:D``              hash: counters (messages in/out by channel, classified
                                and fallback messages, intents, escalations by reason,
                                CSAT sum and count)
- ``P:{stats}:D:conv``         set: conversations with a customer message that day
- ``P:{stats}:D:escalated``    set: conversations escalated that day
- ``P:{stats}:D:unrecognized`` sorted set: fallback messages (masked, normalised) by count
- ``P:{stats}:D:t:<name>``     list: durations in seconds: ``bot_response`` (message to
                                the bot's reply), ``human_response`` (queued to the first
                                agent reply), ``queue_wait`` (queued to claimed),
                                ``handling`` (claimed to released or closed)
- ``P:{stats}:ch:<channel>:D`` set: that channel's conversations with a customer message
- ``P:{stats}:src:D:sources``  set: the campaign sources seen that day (at most MAX_SOURCES)
- ``P:{stats}:src:D:of:<source>`` set: conversations a campaign source brought that day
- ``P:{stats}:D:people``       hash: per agent and per team (``agent:<name>:handled``,
                                ``team:<name>:csat_sum``...): handoffs they ended (released
                                or closed), passed on (``transferred``), first responses,
                                satisfaction ratings' count and sum
- ``P:{stats}:D:people:t:<name>:<scope>`` list: per agent or team (``agent:<name>``,
                                ``team:<name>``), durations in seconds: ``human_response``
                                (queued to their first reply), ``handling`` (an agent's: from
                                taking it, or having it transferred to them, to releasing,
                                closing or transferring it on; a team's: first claimed to
                                released or closed); read by bot/stats/people.py

Per channel, the counters hash also holds ``channel:{channel}:escalations`` and
``channel:{channel}:handoffs`` (a person took the conversation from the queue, or
the platform's own servicers did). Channels are the known ones or ``other``.
Campaign sources are strings from QR codes: normalised (letters, digits,
``_.-``, at most MAX_SOURCE_CHARS) and at most MAX_SOURCES a day, the rest
counted as ``other``, so no customer can make keys or series without bound.

Every key expires after the retention period. Recorded from the events a
process publishes (`bot/stats/subscriber.py`), which also feeds its Prometheus
metrics (`bot/stats/metrics.py`).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from bot.channels.identity import channel_of
from bot.names import FALLBACK
from bot.nlu.normalizer import normalize
from bot.redis_keys import Keys
from bot.stats.metrics import Metrics

DURATIONS = ("bot_response", "human_response", "queue_wait", "handling")
# Kept per agent and per team too (bot/stats/people.py).
PEOPLE = "people"
PEOPLE_DURATIONS = ("human_response", "handling")
# Durations kept per day and kind: enough for medians and p90s of a busy day.
MAX_SAMPLES = 20_000
CHANNELS = ("rest", "webchat", "wechat", "weibo", "wecomkf")
OTHER = "other"
# Campaign sources: a brand runs tens of QR codes, not thousands.
MAX_SOURCES = 50
MAX_SOURCE_CHARS = 32
_NOT_SOURCE = re.compile(r"[^\w.-]+")

# KEYS: the day's sources.  ARGV: source, cap, ttl.  The source, or 'other' when the
# day has `cap` others already (one step, so processes cannot overshoot together).
_SOURCE = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return ARGV[1] end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 'other' end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return ARGV[1]
"""


def channel_label(channel: str) -> str:
    """`channel` if it is one of ours, else ``other`` (labels and keys stay few)."""
    return channel if channel in CHANNELS else OTHER


def source_label(source: str) -> str | None:
    """A campaign source as it is counted: word characters, ``.`` and ``-``, cut short."""
    label = _NOT_SOURCE.sub("_", source.strip())[:MAX_SOURCE_CHARS].strip("_")
    return label or None


class Stats:
    def __init__(
        self, redis: Redis, keys: Keys, tz: ZoneInfo, retention_days: int, metrics: Metrics
    ) -> None:
        self._redis = redis
        self._keys = keys
        self.tz = tz
        self._ttl = (retention_days + 2) * 86400
        self.metrics = metrics
        self._source = redis.register_script(_SOURCE)

    def day(self, ts: float) -> str:
        return dt.datetime.fromtimestamp(ts, self.tz).date().isoformat()

    def key(self, day: str, *parts: str) -> str:
        return self._keys.stats(day, *parts)

    def channel_key(self, channel: str, day: str) -> str:
        """The set of `channel`'s conversations on `day` (a known channel, or other)."""
        return self._keys.stats_group(f"ch:{channel_label(channel)}", day)

    def source_key(self, day: str, label: str | None = None) -> str:
        """The day's sources, or with `label` the conversations that source brought."""
        return self._keys.stats_group("src", day, *(("of", label) if label else ("sources",)))

    def add_inbound(self, pipe: Pipeline, conversation: str, channel: str, ts: float) -> None:
        """A customer message was logged: queue the counting on `pipe` (the log's own)."""
        day = self.day(ts)
        counters, conversations = self.key(day), self.key(day, "conv")
        by_channel = self.channel_key(channel, day)
        pipe.hincrby(counters, "messages_in", 1)
        pipe.hincrby(counters, f"in:{channel}", 1)
        pipe.sadd(by_channel, conversation)  # first: whether the conversation is new today
        pipe.sadd(conversations, conversation)
        pipe.expire(counters, self._ttl)
        pipe.expire(conversations, self._ttl)
        pipe.expire(by_channel, self._ttl)

    def add_outbound(
        self,
        pipe: Pipeline,
        channel: str,
        count: int,
        by_agent: bool,
        ts: float,
        response_seconds: float | None = None,
    ) -> None:
        """Messages to the customer were logged (the bot's, an agent's, notices)."""
        counters = self.key(self.day(ts))
        pipe.hincrby(counters, "messages_out", count)
        pipe.hincrby(counters, f"out:{channel}", count)
        if by_agent:
            pipe.hincrby(counters, "agent_messages", count)
        pipe.expire(counters, self._ttl)
        if response_seconds is not None:
            self.add_duration(pipe, "bot_response", response_seconds, ts)

    def add_classified(self, pipe: Pipeline, intent: str, text: str, ts: float) -> None:
        """The NLU's verdict on a customer message (`text` as logged, masked if so configured)."""
        day = self.day(ts)
        counters = self.key(day)
        pipe.hincrby(counters, "classified", 1)
        pipe.hincrby(counters, f"intent:{intent}", 1)
        if intent == FALLBACK:
            pipe.hincrby(counters, "fallback", 1)
            unrecognized = self.key(day, "unrecognized")
            pipe.zincrby(unrecognized, 1, normalize(text)[:200])
            pipe.expire(unrecognized, self._ttl)
        pipe.expire(counters, self._ttl)

    async def inbound(self, conversation: str, channel: str, ts: float | None = None) -> bool:
        """Count a customer message; whether it is the conversation's first of the day."""
        async with self._redis.pipeline(transaction=False) as pipe:
            self.add_inbound(pipe, conversation, channel, time.time() if ts is None else ts)
            results = await pipe.execute()
        return bool(results[2])

    async def sourced(self, conversation: str, source: str, ts: float | None = None) -> str | None:
        """A campaign source brought `conversation`: counted under its label (returned)."""
        label = source_label(source)
        if label is None:
            return None
        day = self.day(time.time() if ts is None else ts)
        sources = self.source_key(day)
        label = str(await self._source(keys=[sources], args=[label, MAX_SOURCES, self._ttl]))
        brought = self.source_key(day, label)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.sadd(brought, conversation)
            pipe.expire(brought, self._ttl)
            await pipe.execute()
        return label

    async def handoff(self, conversation: str, ts: float | None = None) -> None:
        """A person took the conversation (from our queue, or the platform's servicers)."""
        counters = self.key(self.day(time.time() if ts is None else ts))
        channel = channel_label(channel_of(conversation))
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(counters, "handoffs", 1)
            pipe.hincrby(counters, f"channel:{channel}:handoffs", 1)
            pipe.expire(counters, self._ttl)
            await pipe.execute()

    async def outbound(
        self,
        channel: str,
        count: int,
        by_agent: bool = False,
        ts: float | None = None,
        response_seconds: float | None = None,
    ) -> None:
        ts = time.time() if ts is None else ts
        async with self._redis.pipeline(transaction=False) as pipe:
            self.add_outbound(pipe, channel, count, by_agent, ts, response_seconds)
            await pipe.execute()

    async def classified(self, intent: str, text: str, ts: float | None = None) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            self.add_classified(pipe, intent, text, time.time() if ts is None else ts)
            await pipe.execute()

    async def escalation(self, conversation: str, reason: str, ts: float | None = None) -> None:
        ts = time.time() if ts is None else ts
        day = self.day(ts)
        counters, escalated = self.key(day), self.key(day, "escalated")
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(counters, "escalations", 1)
            pipe.hincrby(counters, f"escalation:{reason}", 1)
            channel = channel_label(channel_of(conversation))
            pipe.hincrby(counters, f"channel:{channel}:escalations", 1)
            pipe.sadd(escalated, conversation)
            pipe.expire(counters, self._ttl)
            pipe.expire(escalated, self._ttl)
            await pipe.execute()

    def add_duration(self, pipe: Pipeline, name: str, seconds: float, ts: float) -> None:
        if name not in DURATIONS:
            raise ValueError(f"unknown duration {name!r}")
        key = self.key(self.day(ts), "t", name)
        pipe.rpush(key, round(max(seconds, 0.0), 3))
        pipe.ltrim(key, -MAX_SAMPLES, -1)
        pipe.expire(key, self._ttl)

    async def duration(self, name: str, seconds: float, ts: float | None = None) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            self.add_duration(pipe, name, seconds, time.time() if ts is None else ts)
            await pipe.execute()

    async def first_response(
        self,
        agent: str,
        team: str,
        within: bool,
        ts: float | None = None,
        seconds: float | None = None,
    ) -> None:
        """An agent's first reply since queued, within target or not (stats/service_level.py).

        With `seconds`, also the agent's and team's first-response time (their
        figures, bot/stats/people.py), in the same pipeline.
        """
        ts = time.time() if ts is None else ts
        day = self.day(ts)
        key = self.key(day, "sla")
        async with self._redis.pipeline(transaction=False) as pipe:
            for scope in ("", f"agent:{agent}:", *((f"team:{team}:",) if team else ())):
                pipe.hincrby(key, f"{scope}all", 1)
                if within:
                    pipe.hincrby(key, f"{scope}met", 1)
            pipe.expire(key, self._ttl)
            if seconds is not None:
                counts = {"first_responses": 1}
                for scope in people_scopes(agent, team):
                    self._people(pipe, day, Credit(scope, counts, ("human_response", seconds)))
            await pipe.execute()

    async def rating(self, rating: int, ts: float | None = None) -> None:
        ts = time.time() if ts is None else ts
        counters = self.key(self.day(ts))
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(counters, "csat_count", 1)
            pipe.hincrby(counters, "csat_sum", rating)
            pipe.expire(counters, self._ttl)
            await pipe.execute()

    def people_key(self, day: str, duration: str | None = None, scope: str = "") -> str:
        """The day's per-agent and per-team counters, or one scope's `duration` samples."""
        if duration is None:
            return self.key(day, PEOPLE)
        return self.key(day, PEOPLE, "t", duration, scope)

    async def by_people(self, credits: list[Credit], ts: float | None = None) -> None:
        """Count each credit's `counts` and keep its `duration` sample, in one pipeline."""
        day = self.day(time.time() if ts is None else ts)
        async with self._redis.pipeline(transaction=False) as pipe:
            for credit in credits:
                self._people(pipe, day, credit)
            await pipe.execute()

    def _people(self, pipe: Pipeline, day: str, credit: Credit) -> None:
        counters = self.people_key(day)
        for name, n in credit.counts.items():
            pipe.hincrby(counters, f"{credit.scope}:{name}", n)
        if credit.duration is not None:
            key = self.people_key(day, credit.duration[0], credit.scope)
            pipe.rpush(key, round(max(credit.duration[1], 0.0), 3))
            pipe.ltrim(key, -MAX_SAMPLES, -1)
            pipe.expire(key, self._ttl)
        pipe.expire(counters, self._ttl)


@dataclass(frozen=True)
class Credit:
    """What one agent or team is credited with: `scope` ``agent:<name>`` or ``team:<name>``."""

    scope: str
    counts: dict[str, int] = field(default_factory=dict)
    duration: tuple[str, float] | None = None  # (one of PEOPLE_DURATIONS, seconds)


def people_scopes(agent: str, team: str) -> list[str]:
    """The agent's scope, and their team's when the conversation was routed to one."""
    return [f"agent:{agent}", *((f"team:{team}",) if team else ())]
