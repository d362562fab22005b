"""Who has a conversation: the bot, the queue, an agent; every change atomic.

States: ``bot`` → ``waiting`` (queued with a reason and a priority) →
``assigned`` (to one agent) → ``bot`` (released) or ``closed`` (with a
resolution tag); an assigned conversation can also go back to ``waiting`` or
to another agent. Each transition is one Lua script that checks the current
state and changes it in the same step, so two agents claiming one
conversation at once cannot both win, and an invalid transition changes
nothing. The state lives in our own keys, not in Rasa's tracker, whose
``ConversationPaused`` is undone when a session expires.

Layout (``P`` the key prefix): every key of the feature carries the hash tag
``{handoff}``, so a transition's script touches one Redis Cluster slot. That
puts the states of all conversations on one node, which is fine: only
conversations ever handed to people have one (a small hash, kept for the
retention period), and a transition must see the state and the queues in one
step.
- ``P:{handoff}:state:{conversation}`` hash: state, reason, priority, agent,
  since (entered this state), waiting_since, queued_at (first queued: a conversation
  returned to the queue keeps its place), claimed_at, announced, answered (an agent
  replied since it was queued), tag, team (who should take it), left_by (the agent
  it was taken back from: automatic assignment passes them over), version (bumped
  on every change), held_by (the agent who held it last, kept after release or
  close: whom a satisfaction question asked soon after may credit; never a
  platform's own servicer), held_since (when its present holder got it: a
  transfer starts a new stint, so each agent's handling time is their own)
- ``P:{handoff}:waiting`` sorted set: waiting conversations, in serving order
- ``P:{handoff}:waits`` list: the latest queue waiting times, seconds, newest first
- ``P:{handoff}:assigned`` sorted set: assigned conversations by their agent's
  last activity (claim, transfer, reply, note), for returning idle ones
- ``P:{handoff}:load`` / ``:given`` hashes: per agent, conversations held now and
  when they were last given one; kept by the same steps that change holders, so
  the ``assign`` step (automatic assignment) checks capacity against the truth.
  It also reads presence (``bot/handoff/presence.py``), capacities and the team's
  members: every key built by ``Keys.handoff_shared``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from bot.handoff.load import LoadCounter, Recount
from bot.redis_keys import Keys

BOT, WAITING, ASSIGNED, CLOSED = "bot", "waiting", "assigned", "closed"
# Served first: lower number. Complaints go ahead of everything else.
PRIORITIES = {"complaint": 0, "abuse": 1, "payment_issue": 1, "account_issue": 1}
DEFAULT_PRIORITY = 2
# How many recent waiting times the expected wait is computed from.
RECENT_WAITS = 50


class InvalidTransition(Exception):
    """The conversation is not in a state that allows this change."""

    def __init__(self, conversation: str, current: str, wanted: str) -> None:
        super().__init__(f"{conversation!r} is {current}; cannot {wanted}")
        self.current = current


# KEYS: state hash, waiting zset, waits list, assigned zset, load hash, given hash,
#       presence hash, live zset, capacity hash, the team's members set.
# ARGV: action, now, then per action: escalate(reason, priority, team)
#       claim(agent, recent, count, elsewhere) release(agent) close(agent, tag)
#       requeue(idle_before, holder, gone) transfer(from, to) touch(agent)
#       announce(quiet_before) assign(default capacity, recent, count);
#       the conversation id always last.
# Returns {ok (1/0), state before, agent (assign)}; release, close and transfer
# also return the stint that ended, read in the same step: {.., holder, held
# since, claimed at, team, now}. Queue scores are priority *
# 1e10 + enqueue time, so a priority level outweighs any difference in waiting time.
# Every change of holder updates the load hash in the same step, so the
# capacity check of `assign` sees every claim, transfer and release at once.
_TRANSITION = """
local state = redis.call('HGET', KEYS[1], 'state') or 'bot'
local action, now = ARGV[1], tonumber(ARGV[2])
local cid = ARGV[#ARGV]
local function enter(new)
  redis.call('HSET', KEYS[1], 'state', new, 'since', now)
  redis.call('HINCRBY', KEYS[1], 'version', 1)
end
local function took(agent, elsewhere)
  redis.call('HSET', KEYS[1], 'held_since', now)
  if elsewhere == '1' then  -- a platform's servicer: nobody's load, no agent's figures
    redis.call('HDEL', KEYS[1], 'held_by')
    return
  end
  redis.call('HSET', KEYS[1], 'held_by', agent)  -- kept after release (see the layout)
  redis.call('HINCRBY', KEYS[5], agent, 1)
  redis.call('HSET', KEYS[6], agent, now)
end
-- The holder's stint, as it ends (release, close) or passes on (transfer).
local function stint(holder)
  local h = redis.call('HMGET', KEYS[1], 'held_since', 'claimed_at', 'team')
  local claimed = h[2] or ''
  return {1, state, holder or '', h[1] or claimed, claimed, h[3] or '', ARGV[2]}
end
local function dropped(agent)
  if agent and agent ~= '' and redis.call('HINCRBY', KEYS[5], agent, -1) <= 0 then
    redis.call('HDEL', KEYS[5], agent)
  end
end
local function present(agent)
  local status = redis.call('HGET', KEYS[7], agent)
  local live = tonumber(redis.call('ZSCORE', KEYS[8], agent) or '0')
  return (status == 'online' or status == 'away') and live > now, status == 'online' and live > now
end
-- waiting -> assigned to `agent`; `recent` waits kept, `count` '0' leaves this wait out
local function give(agent, recent, count, elsewhere)
  enter('assigned')
  redis.call('HSET', KEYS[1], 'agent', agent, 'claimed_at', now)
  redis.call('HDEL', KEYS[1], 'left_by')
  redis.call('ZREM', KEYS[2], cid)
  redis.call('ZADD', KEYS[4], now, cid)
  took(agent, elsewhere)
  -- a wait that began outside service hours says nothing about waits now
  if count ~= '0' then
    local since = tonumber(redis.call('HGET', KEYS[1], 'waiting_since') or now)
    redis.call('LPUSH', KEYS[3], now - since)
    redis.call('LTRIM', KEYS[3], 0, tonumber(recent) - 1)
  end
end
if action == 'escalate' then
  if state == 'waiting' or state == 'assigned' then return {0, state} end
  enter('waiting')
  local priority = tonumber(ARGV[4])
  redis.call('HSET', KEYS[1], 'reason', ARGV[3], 'priority', priority, 'team', ARGV[5])
  redis.call('HSET', KEYS[1], 'waiting_since', now, 'queued_at', now, 'agent', '')
  -- a new request: nobody has handled it yet
  redis.call('HDEL', KEYS[1], 'announced', 'answered', 'held_by', 'held_since')
  redis.call('ZADD', KEYS[2], priority * 10000000000 + now, cid)
  return {1, state}
elseif action == 'claim' then
  if state ~= 'waiting' then return {0, state} end
  give(ARGV[3], ARGV[4], ARGV[5], ARGV[6])
  return {1, state}
elseif action == 'assign' then
  -- To an online agent of the team with room: least loaded, then longest since given one.
  if state ~= 'waiting' then return {0, state} end
  local best, best_load, best_given = nil, 0, 0
  -- not back to the agent it was taken from for idling
  local left_by = redis.call('HGET', KEYS[1], 'left_by')
  for _, agent in ipairs(redis.call('SMEMBERS', KEYS[10])) do
    local _, online = present(agent)
    if online and agent ~= left_by then
      local load = tonumber(redis.call('HGET', KEYS[5], agent) or '0')
      local room = tonumber(redis.call('HGET', KEYS[9], agent) or ARGV[3])
      local given = tonumber(redis.call('HGET', KEYS[6], agent) or '0')
      if load < room and (best == nil or load < best_load
          or (load == best_load and (given < best_given
            or (given == best_given and agent < best)))) then
        best, best_load, best_given = agent, load, given
      end
    end
  end
  if best == nil then return {0, state} end
  give(best, ARGV[4], ARGV[5], '0')
  return {1, state, best}
elseif action == 'release' or action == 'close' then
  -- ARGV[3]: the agent who must hold it ('' lets an admin act on anyone's)
  local holder = redis.call('HGET', KEYS[1], 'agent')
  if state ~= 'assigned' or (ARGV[3] ~= '' and holder ~= ARGV[3]) then return {0, state} end
  local ended = stint(holder)
  if action == 'release' then enter('bot') else
    enter('closed')
    redis.call('HSET', KEYS[1], 'tag', ARGV[4])
  end
  redis.call('HSET', KEYS[1], 'agent', '')
  redis.call('ZREM', KEYS[4], cid)
  dropped(holder)
  return ended
elseif action == 'requeue' then
  -- ARGV[3]: only if the agent's last activity is older than this ('' = always);
  -- ARGV[4]: only if this agent holds it ('' = whoever); ARGV[5] '1': only if
  -- the holder has no console open any more (or chose to be offline)
  if state ~= 'assigned' then return {0, state} end
  local holder = redis.call('HGET', KEYS[1], 'agent')
  if ARGV[4] ~= '' and holder ~= ARGV[4] then return {0, state} end
  if ARGV[5] == '1' and (present(holder) or not redis.call('HGET', KEYS[7], holder)) then
    return {0, state}  -- still here, or never had a console (an API client): not gone
  end
  if ARGV[3] ~= '' then
    local active = tonumber(redis.call('ZSCORE', KEYS[4], cid) or '0')
    if active > tonumber(ARGV[3]) then return {0, state} end
  end
  enter('waiting')
  local priority = tonumber(redis.call('HGET', KEYS[1], 'priority') or '2')
  -- Back in its first place: the customer has waited already.
  local queued = tonumber(redis.call('HGET', KEYS[1], 'queued_at') or now)
  redis.call('HSET', KEYS[1], 'agent', '', 'waiting_since', now)
  redis.call('HDEL', KEYS[1], 'announced')
  -- taken for idling: automatic assignment passes that agent over (one back from
  -- being offline may have it again)
  if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'left_by', holder) end
  redis.call('ZREM', KEYS[4], cid)
  redis.call('ZADD', KEYS[2], priority * 10000000000 + queued, cid)
  dropped(holder)
  return {1, state}
elseif action == 'transfer' then
  local holder = redis.call('HGET', KEYS[1], 'agent')
  if state ~= 'assigned' or holder ~= ARGV[3] then return {0, state} end
  local passed = stint(holder)
  redis.call('HSET', KEYS[1], 'agent', ARGV[4], 'since', now)
  redis.call('HINCRBY', KEYS[1], 'version', 1)
  redis.call('ZADD', KEYS[4], now, cid)
  dropped(holder)
  took(ARGV[4], '0')
  return passed
elseif action == 'touch' then
  local holder = redis.call('HGET', KEYS[1], 'agent')
  if state ~= 'assigned' or holder ~= ARGV[3] then return {0, state} end
  redis.call('ZADD', KEYS[4], now, cid)
  return {1, state}
elseif action == 'announce' then
  -- Once per quiet period: only if neither queued nor announced after ARGV[3].
  if state ~= 'waiting' then return {0, state} end
  local last = tonumber(redis.call('HGET', KEYS[1], 'announced')
    or redis.call('HGET', KEYS[1], 'waiting_since') or now)
  if last > tonumber(ARGV[3]) then return {0, state} end
  redis.call('HSET', KEYS[1], 'announced', now)
  return {1, state}
end
return redis.error_reply('unknown action ' .. action)
"""


@dataclass(frozen=True)
class Handoff:
    conversation: str
    state: str
    reason: str = ""
    priority: int = DEFAULT_PRIORITY
    agent: str = ""
    since: float = 0.0
    waiting_since: float = 0.0
    tag: str = ""
    version: int = 0
    announced: float = 0.0
    queued_at: float = 0.0
    claimed_at: float = 0.0
    team: str = ""
    answered: float = 0.0  # when an agent first replied since it was queued (0: not yet)
    held_by: str = ""  # the agent who held it last (kept once it is released or closed)
    held_since: float = 0.0  # when its present holder got it (claim, assignment, transfer)


@dataclass(frozen=True)
class Stint:
    """One agent's hold on a conversation as it ended or passed on, read in that step.

    `handling`: seconds this agent held it (since they got it: a transfer
    starts a new stint); `total`: seconds since it was first claimed.
    """

    agent: str
    team: str
    held_since: float
    claimed_at: float
    ended_at: float

    @property
    def handling(self) -> float:
        return self.ended_at - self.held_since

    @property
    def total(self) -> float:
        return self.ended_at - self.claimed_at

    @classmethod
    def of(cls, result: list[str]) -> Stint | None:
        """From a step's answer ({holder, held since, claimed at, team, now}); None if unclaimed."""
        holder, held_since, claimed_at, team, now = result[1:6]
        if not claimed_at:
            return None
        return cls(holder, team, float(held_since), float(claimed_at), float(now))


class ConversationStates:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._script = redis.register_script(_TRANSITION)
        self._loads = LoadCounter(redis, keys)

    async def _apply(
        self, conversation: str, action: str, *args: str | int | float, team: str = ""
    ) -> list[str]:
        keys = [
            self._keys.handoff_state(conversation),
            self._keys.handoff_waiting,
            self._keys.handoff_waits,
            self._keys.handoff_assigned,
            self._keys.handoff_load,
            self._keys.handoff_given,
            self._keys.presence,
            self._keys.presence_live,
            self._keys.roster_capacity,
            self._keys.team_members(team),
        ]
        result = await self._script(keys=keys, args=[action, time.time(), *args, conversation])
        if not int(result[0]):
            raise InvalidTransition(conversation, str(result[1]), action)
        return [str(r) for r in result[1:]]

    async def escalate(self, conversation: str, reason: str, team: str = "") -> bool:
        """Queue the conversation for a person (of `team`, '' anyone).

        False when people have it already: an earlier request keeps its place.
        """
        try:
            await self._apply(
                conversation, "escalate", reason, PRIORITIES.get(reason, DEFAULT_PRIORITY), team
            )
        except InvalidTransition:
            return False
        return True

    async def assign(
        self, conversation: str, team: str, capacity: int, counts_as_wait: bool = True
    ) -> str:
        """Give a waiting conversation to the best agent of `team` free now, in one step.

        The best: online with a console open, holding fewer than their capacity
        (`capacity` for those without their own), least loaded, then the one
        given a conversation longest ago. The agent's name, or '' when nobody
        fits; InvalidTransition when it is not waiting (taken meanwhile).
        """
        _, *agent = await self._apply(
            conversation, "assign", capacity, RECENT_WAITS, int(counts_as_wait), team=team
        )
        return agent[0] if agent else ""

    async def claim(
        self, conversation: str, agent: str, counts_as_wait: bool = True, elsewhere: bool = False
    ) -> None:
        """Give the conversation to `agent`.

        With `counts_as_wait` false (it was queued outside service hours), its
        wait is left out of the expected-wait figure told to customers. With
        `elsewhere`, `agent` is a platform's own servicer: no load, no `held_by`.
        """
        await self._apply(
            conversation, "claim", agent, RECENT_WAITS, int(counts_as_wait), int(elsewhere)
        )

    async def release(self, conversation: str, agent: str = "") -> Stint | None:
        """Back to the bot; with `agent`, only if that agent holds it. The stint it ended."""
        return Stint.of(await self._apply(conversation, "release", agent))

    async def close(self, conversation: str, tag: str, agent: str = "") -> Stint | None:
        """Closed with a resolution tag; with `agent`, only if that agent holds it."""
        return Stint.of(await self._apply(conversation, "close", agent, tag))

    async def requeue(
        self,
        conversation: str,
        idle_before: float | None = None,
        holder: str = "",
        gone: bool = False,
    ) -> None:
        """Back to the queue, in its first place.

        With `idle_before`, only if the agent has done nothing since; with
        `holder`, only if that agent holds it; with `gone`, only if its agent
        is offline (no console open, or chose so).
        """
        since = "" if idle_before is None else idle_before
        await self._apply(conversation, "requeue", since, holder, int(gone))

    async def loads(self) -> dict[str, int]:
        """Agent -> how many conversations they hold now."""
        raw = await self._redis.hgetall(self._keys.handoff_load)
        return {agent: int(n) for agent, n in raw.items() if int(n) > 0}

    async def recount_loads(self) -> Recount:
        """Every agent's load counted again from the states, in one step (bot/handoff/load.py)."""
        return await self._loads.recount()

    async def touch(self, conversation: str, agent: str) -> None:
        """The holding agent did something (replied, wrote a note): not idle."""
        await self._apply(conversation, "touch", agent)

    async def announce(self, conversation: str, quiet_before: float) -> bool:
        """Claim the right to re-announce a waiting conversation nobody took.

        True for exactly one caller, and only if the conversation has been
        waiting, unannounced, since before `quiet_before`.
        """
        try:
            await self._apply(conversation, "announce", quiet_before)
        except InvalidTransition:
            return False
        return True

    async def first_answer(self, conversation: str) -> bool:
        """True the first time an agent answers since the conversation was queued."""
        field = await self._redis.hsetnx(
            self._keys.handoff_state(conversation), "answered", time.time()
        )
        return bool(field)

    async def idle(self, before: float) -> list[str]:
        """Assigned conversations whose agent has done nothing since `before`."""
        return list(await self._redis.zrangebyscore(self._keys.handoff_assigned, "-inf", before))

    async def holdings(self) -> dict[str, list[str]]:
        """Agent -> the conversations they hold now, least recently active first."""
        conversations = await self.assigned()
        async with self._redis.pipeline(transaction=False) as pipe:
            for conversation in conversations:
                pipe.hget(self._keys.handoff_state(conversation), "agent")
            agents = await pipe.execute()
        held: dict[str, list[str]] = {}
        for conversation, agent in zip(conversations, agents, strict=True):
            if agent:
                held.setdefault(agent, []).append(conversation)
        return held

    async def assigned(self) -> list[str]:
        """Every assigned conversation, least recently active first."""
        return list(await self._redis.zrange(self._keys.handoff_assigned, 0, -1))

    async def transfer(self, conversation: str, from_agent: str, to_agent: str) -> Stint | None:
        """From `from_agent` (who must hold it) to `to_agent`: the stint `from_agent` ended."""
        return Stint.of(await self._apply(conversation, "transfer", from_agent, to_agent))

    async def get(self, conversation: str) -> Handoff:
        raw = await self._redis.hgetall(self._keys.handoff_state(conversation))
        return Handoff(
            conversation=conversation,
            state=raw.get("state", BOT),
            reason=raw.get("reason", ""),
            priority=int(raw.get("priority", DEFAULT_PRIORITY)),
            agent=raw.get("agent", ""),
            since=float(raw.get("since", 0)),
            waiting_since=float(raw.get("waiting_since", 0)),
            tag=raw.get("tag", ""),
            version=int(raw.get("version", 0)),
            announced=float(raw.get("announced", 0)),
            queued_at=float(raw.get("queued_at", 0)),
            claimed_at=float(raw.get("claimed_at", 0)),
            team=raw.get("team", ""),
            answered=float(raw.get("answered", 0)),
            held_by=raw.get("held_by", ""),
            held_since=float(raw.get("held_since", 0)),
        )

    async def waiting(self) -> list[str]:
        """Waiting conversations in the order they will be served."""
        return list(await self._redis.zrange(self._keys.handoff_waiting, 0, -1))

    async def waiting_count(self) -> int:
        return int(await self._redis.zcard(self._keys.handoff_waiting))

    async def position(self, conversation: str) -> int | None:
        """How many conversations will be served before this one (None: not waiting)."""
        rank = await self._redis.zrank(self._keys.handoff_waiting, conversation)
        return None if rank is None else int(rank)

    async def expected_wait(self, ahead: int) -> float | None:
        """Seconds, from the median of recent real waits; None when there are none yet."""
        waits = [float(w) for w in await self._redis.lrange(self._keys.handoff_waits, 0, -1)]
        if not waits:
            return None
        return statistics.median(waits) * (ahead + 1)
