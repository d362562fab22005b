"""Each agent's load (conversations held now) counted again from the handoff states.

The transitions keep ``P:{handoff}:load`` as they change holders
(bot/handoff/states.py). Conversations assigned before that hash existed (a
deployment from before teams and capacity) were never counted, and a counter
can drift if someone edits Redis by hand; the automatic assignment would then
give such an agent more than their capacity. So every process, as it starts,
counts the load again from the truth: the assigned conversations and the agent
each state names.

One Lua step reads the states and replaces the hash, so no claim or release
of another process can fall between the count and the write. The caller
lists the assigned conversations first (their state keys must be named to the
script); the step checks that list is still the whole set and, if a
conversation was assigned meanwhile, asks for a fresh list. Running it again
changes nothing, whichever process runs it, however many at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from bot.redis_keys import Keys

# Conversations assigned between our listing and the step: list again, at most this often.
ATTEMPTS = 5
# Redis away at start-up: try again this often (seconds) until one recount is done.
RETRY_EVERY = 5.0

# KEYS: assigned zset, load hash, then the state hash of each conversation listed.
# ARGV: those conversations, in the same order.
# Returns {1, agents whose count changed, stale entries dropped from the assigned
# set}, or {0} when the listing is no longer complete (list again).
_REBUILD = """
local listed = {}
for i = 3, #KEYS do listed[ARGV[i - 2]] = true end
for _, cid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if not listed[cid] then return {0} end
end
local load, stale = {}, 0
for i = 3, #KEYS do
  local state = redis.call('HGET', KEYS[i], 'state')
  local agent = redis.call('HGET', KEYS[i], 'agent')
  if state == 'assigned' and agent and agent ~= '' then
    load[agent] = (load[agent] or 0) + 1
  elseif redis.call('ZREM', KEYS[1], ARGV[i - 2]) == 1 then
    stale = stale + 1  -- not assigned any more: nobody's load, nothing to return for idling
  end
end
local changed, old = 0, {}
local raw = redis.call('HGETALL', KEYS[2])
for i = 1, #raw, 2 do old[raw[i]] = tonumber(raw[i + 1]) end
for agent, n in pairs(load) do
  if old[agent] ~= n then
    redis.call('HSET', KEYS[2], agent, n)
    changed = changed + 1
  end
end
for agent, _ in pairs(old) do
  if not load[agent] then
    redis.call('HDEL', KEYS[2], agent)
    changed = changed + 1
  end
end
return {1, changed, stale}
"""


class RecountIncomplete(Exception):
    """Conversations kept being assigned between listing and counting: try again later."""


@dataclass(frozen=True)
class Recount:
    """What a recount changed: agents whose count was wrong, stale assigned entries."""

    agents: int
    stale: int


class LoadCounter:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._script = redis.register_script(_REBUILD)

    async def recount(self) -> Recount:
        """Set every agent's load to the conversations their states say they hold."""
        for _ in range(ATTEMPTS):
            listed = list(await self._redis.zrange(self._keys.handoff_assigned, 0, -1))
            done = await self.count(listed)
            if done is not None:
                return done
        raise RecountIncomplete(f"conversations kept being assigned during {ATTEMPTS} recounts")

    async def count(self, listed: list[str]) -> Recount | None:
        """One step over the assigned conversations `listed`; None if that list is not
        the whole assigned set any more (nothing changed: list again)."""
        keys = [
            self._keys.handoff_assigned,
            self._keys.handoff_load,
            *(self._keys.handoff_state(c) for c in listed),
        ]
        result = await self._script(keys=keys, args=listed)
        if not int(result[0]):
            return None
        return Recount(int(result[1]), int(result[2]))
