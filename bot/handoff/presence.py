"""Who of the team is here: online, away or offline, and what each may take.

An agent is *online* or *away* by choice and only while a console of theirs
is open somewhere. Each process keeps, per agent, one entry in
``P:handoff:consoles:{agent}`` (process -> until when it counts) and renews it
while the agent's websocket is open there (the socket's own ping/pong closes
dead ones); when the agent's last socket on a process closes, the entry is
kept for a grace period, so a page reload or a switch of process is not a
departure. ``P:handoff:live`` holds, per agent, the latest of their entries:
the queue's sweep finds the agents whose time has run out and marks them
offline, once across processes (one Lua step removes and reports them).

The roster (capacity and teams) lives beside presence, under the same key
builder, because the assignment step reads both with the queue.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from bot.redis_keys import Keys

ONLINE, AWAY, OFFLINE = "online", "away", "offline"
STATUSES = (ONLINE, AWAY, OFFLINE)

# KEYS: the agent's consoles zset, live zset, presence hash, roster set.
# ARGV: agent, process, until (this process's console counts until then), now,
#       opening ('1': a console opened: an offline agent comes online).
# Returns the agent's status when it changed, '' otherwise.
_KEEP = """
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[4])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('ZADD', KEYS[2], last[2], ARGV[1]) end
redis.call('SADD', KEYS[4], ARGV[1])
local status = redis.call('HGET', KEYS[3], ARGV[1])
if ARGV[5] == '1' and (status == false or status == 'offline') then
  redis.call('HSET', KEYS[3], ARGV[1], 'online')
  return 'online'
end
return ''
"""

# KEYS: live zset, presence hash. ARGV: now.
# Returns the agents whose last console's time ran out and who were not offline yet.
_EXPIRE = """
local gone = {}
for _, agent in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])) do
  redis.call('ZREM', KEYS[1], agent)
  local status = redis.call('HGET', KEYS[2], agent)
  if status and status ~= 'offline' then
    redis.call('HSET', KEYS[2], agent, 'offline')
    table.insert(gone, agent)
  end
end
return gone
"""


@dataclass(frozen=True)
class Member:
    """One agent as the team sees them."""

    agent: str
    status: str
    capacity: int
    teams: list[str]
    load: int
    given_at: float


class Presence:
    def __init__(self, redis: Redis, keys: Keys, default_capacity: int) -> None:
        self._redis = redis
        self._keys = keys
        self.default_capacity = default_capacity
        self._keep = redis.register_script(_KEEP)
        self._expire = redis.register_script(_EXPIRE)

    async def keep(self, agent: str, process: str, until: float, opening: bool = False) -> str:
        """This process's console of `agent` counts until `until`; their status if it changed."""
        keys = [
            self._keys.presence_consoles(agent),
            self._keys.presence_live,
            self._keys.presence,
            self._keys.roster_agents,
        ]
        changed = await self._keep(
            keys=keys, args=[agent, process, until, time.time(), int(opening)]
        )
        return str(changed)

    async def set(self, agent: str, status: str) -> None:
        """The status `agent` chose (offline agents get no new conversations)."""
        assert status in STATUSES
        await self._redis.hset(self._keys.presence, agent, status)

    async def expire(self) -> list[str]:
        """Mark offline the agents with no console left; each is reported by one caller."""
        keys = [self._keys.presence_live, self._keys.presence]
        return [str(a) for a in await self._expire(keys=keys, args=[time.time()])]

    async def status(self, agent: str) -> str:
        """online/away only while a console of theirs counts; offline otherwise."""
        chosen = await self._redis.hget(self._keys.presence, agent)
        live = await self._redis.zscore(self._keys.presence_live, agent)
        if chosen in (ONLINE, AWAY) and live is not None and float(live) > time.time():
            return str(chosen)
        return OFFLINE

    async def gone(self, agent: str) -> bool:
        """Offline after having had a console (agents using only the API are never gone)."""
        known = await self._redis.hexists(self._keys.presence, agent)
        return bool(known) and await self.status(agent) == OFFLINE

    async def set_roster(self, agent: str, capacity: int | None, teams: list[str]) -> None:
        """An agent's capacity (None: the default) and teams, replacing the old ones."""
        old = await self.teams(agent)
        async with self._redis.pipeline(transaction=False) as pipe:
            for team in old:
                pipe.srem(self._keys.team_members(team), agent)
            for team in teams:
                pipe.sadd(self._keys.team_members(team), agent)
            pipe.sadd(self._keys.roster_agents, agent)
            pipe.hset(self._keys.roster_teams, agent, json.dumps(teams, ensure_ascii=False))
            if capacity is None:
                pipe.hdel(self._keys.roster_capacity, agent)
            else:
                pipe.hset(self._keys.roster_capacity, agent, capacity)
            await pipe.execute()

    async def forget(self, agent: str) -> None:
        """Off the roster (the account is gone): never assigned again."""
        await self.set_roster(agent, None, [])
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.srem(self._keys.roster_agents, agent)
            pipe.hdel(self._keys.roster_teams, agent)
            pipe.hset(self._keys.presence, agent, OFFLINE)
            await pipe.execute()

    async def teams(self, agent: str) -> list[str]:
        raw = await self._redis.hget(self._keys.roster_teams, agent)
        return list(json.loads(raw)) if raw else []

    async def capacity(self, agent: str) -> int:
        raw = await self._redis.hget(self._keys.roster_capacity, agent)
        return int(raw) if raw is not None else self.default_capacity

    async def members(self, loads: dict[str, int]) -> list[Member]:
        """Everyone on the roster, by name, with their status, room and load."""
        agents = sorted(await self._redis.smembers(self._keys.roster_agents))
        given = await self._redis.hgetall(self._keys.handoff_given)
        return [
            Member(
                agent,
                await self.status(agent),
                await self.capacity(agent),
                await self.teams(agent),
                loads.get(agent, 0),
                float(given.get(agent, 0)),
            )
            for agent in agents
        ]
