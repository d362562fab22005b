"""Exactly-once customer messages: a client message id is answered by one turn.

A client may send a message id with each message (REST ``message_id``, the web
chat's per-message UUID). The first delivery of an id claims it; every other
delivery of the same id in that conversation, on any process, waits for the
claim's turn and gets its replies, and is neither logged nor processed again.

The claim is a hash under the conversation (``P:c:{id}:msg:<message id>``):
``state`` pending/done, the ``owner`` request and its process, a lease, the
Redis time it was made (``since``) and, once done, the turn's ``result``.

A claim's lease is short (a few seconds) and the owning process renews the
leases of the turns it is running every second or so. A process killed
mid-turn, or a turn that failed while Redis was away, stops renewing; a retry
takes the claim over once the lease has run out, and resumes from what the
log says happened: the inbound entry carries the message id (``mid``) and every reply
carries the inbound entry it answers (``re``), so the inbound message is never
logged twice and a turn whose replies were logged is not run again.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from bot.errors import ServiceUnavailable
from bot.redis_keys import Keys

# How long an id is remembered: retries come within minutes; a day is generous.
REMEMBER_SECONDS = 2 * 86400
# A claim nobody renews is free for a retry after this long; the owner renews
# the leases of its running turns every RENEW_EVERY seconds.
LEASE_MS = 6_000
RENEW_EVERY = 1.5
# A repeat waits at most this long for the first delivery's replies, then gets a 503.
MAX_WAIT = 25.0

PENDING, DONE = "pending", "done"

# KEYS: claim.  ARGV: owner, process, lease_ms, ttl_s.
# Returns {'mine', since, 'new'|'taken'} | {'done', result} | {'wait', owner, process}.
_CLAIM = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('HSET', KEYS[1], 'state', 'pending', 'owner', ARGV[1], 'proc', ARGV[2],
             'until', now + tonumber(ARGV[3]), 'since', now)
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  return {'mine', tostring(now), 'new'}
end
if state == 'done' then
  return {'done', redis.call('HGET', KEYS[1], 'result')}
end
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
local lease = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if owner == '' or lease < now then
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'proc', ARGV[2], 'until', now + tonumber(ARGV[3]))
  return {'mine', redis.call('HGET', KEYS[1], 'since') or '0', 'taken'}
end
return {'wait', owner, redis.call('HGET', KEYS[1], 'proc') or ''}
"""

# KEYS: claim.  ARGV: owner, result JSON.  Only the owner finishes; returns 1 if it did.
_FINISH = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'done', 'result', ARGV[2], 'owner', '')
return 1
"""

# KEYS: claim.  ARGV: owner, lease_ms.  The owner's turn is still running.
_RENEW = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'until', t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[2]))
return 1
"""

# KEYS: claim.  ARGV: owner.  A failed turn gives the claim up for the next retry.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'owner', '', 'until', '0')
return 1
"""


@dataclass(frozen=True)
class Claim:
    """This request owns the message id and runs its turn."""

    conversation: str
    message_id: str
    key: str
    owner: str
    # Redis time (ms) the id was first claimed: log entries of an earlier,
    # interrupted attempt are not older than this.
    since_ms: int
    resumed: bool  # taken over from an attempt that did not finish


@dataclass(frozen=True)
class Answered:
    """The id was answered already: the first turn's result."""

    result: dict[str, Any]


class MessageClaims:
    def __init__(self, redis: Redis, keys: Keys, instance: str) -> None:
        self._redis = redis
        self._keys = keys
        self.instance = instance
        self._claim = redis.register_script(_CLAIM)
        self._finish = redis.register_script(_FINISH)
        self._release = redis.register_script(_RELEASE)
        self._renew = redis.register_script(_RENEW)
        self._running: dict[str, str] = {}  # claim key -> owner, for the turns running here

    async def acquire(
        self, conversation: str, message_id: str, max_wait: float = MAX_WAIT
    ) -> Claim | Answered:
        """Claim `message_id`, or wait for the delivery that holds it and return its result."""
        key = self._keys.message_claim(conversation, message_id)
        owner = f"{self.instance}:{secrets.token_hex(6)}"
        deadline = time.monotonic() + max_wait
        pause = 0.02
        while True:
            reply = await self._claim(
                keys=[key], args=[owner, self.instance, LEASE_MS, REMEMBER_SECONDS]
            )
            kind = reply[0]
            if kind == "mine":
                self._running[key] = owner
                # 'taken': an earlier delivery held it and stopped renewing (or gave it up).
                resumed = reply[2] == "taken"
                return Claim(conversation, message_id, key, owner, int(reply[1]), resumed)
            if kind == "done":
                return Answered(json.loads(reply[1]))
            if time.monotonic() >= deadline:
                raise ServiceUnavailable(
                    "message_in_progress",
                    "This message is still being answered; retry with the same message_id.",
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)

    async def finish(self, claim: Claim, result: dict[str, Any]) -> None:
        self._running.pop(claim.key, None)
        await self._finish(
            keys=[claim.key], args=[claim.owner, json.dumps(result, ensure_ascii=False)]
        )

    async def release(self, claim: Claim) -> None:
        self._running.pop(claim.key, None)
        await self._release(keys=[claim.key], args=[claim.owner])

    async def renew(self) -> None:
        """Renew the leases of the turns running here (a background loop, every RENEW_EVERY)."""
        running = list(self._running.items())
        if not running:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, owner in running:
                await self._renew(keys=[key], args=[owner, LEASE_MS], client=pipe)
            await pipe.execute()


def new_instance() -> str:
    """A name for this process, unique across restarts."""
    return secrets.token_hex(8)
