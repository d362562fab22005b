"""A conversation lock store that is safe across processes.

Rasa's own ``RedisLockStore`` hands out tickets with a plain GET-modify-SET of one
JSON blob, so two processes issuing tickets at once overwrite each other and a
conversation can stall for good (rasa issue #9213). Here every step is one Lua
script, run atomically by Redis against Redis's own clock:

- a conversation's waiting tickets sit in a sorted set scored by ticket number,
  so the lowest ticket is served first (messages are handled in arrival order);
- each ticket has an expiry that its owner refreshes while it waits or holds;
  a holder that dies stops refreshing, and the next waiter takes over once the
  expiry passes, so a crash never blocks a conversation for longer than the
  lock lifetime;
- the ticket number comes from a per-conversation counter (INCR) and doubles as
  a fencing token: a holder whose ticket expired learns it when it releases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LockError, LockStore
from redis.asyncio import Redis

from bot.redis_keys import Keys

logger = logging.getLogger(__name__)

# Counters of idle conversations are kept this long, so fencing tokens keep
# growing across bursts of one conversation's messages.
COUNTER_TTL_MS = 24 * 3600 * 1000

# Shared by the scripts below (KEYS[1] = queue, KEYS[2] = expiry): Redis's clock
# in milliseconds, and the ticket at the head of the queue once expired tickets
# ahead of `mine` are dropped.
_PRELUDE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local function head_after_purge(mine)
  local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  while head and head ~= mine do
    if tonumber(redis.call('HGET', KEYS[2], head) or '0') >= now then break end
    redis.call('ZREM', KEYS[1], head)
    redis.call('HDEL', KEYS[2], head)
    head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  end
  return head
end
"""

# KEYS: queue, expiry, counter.  ARGV: lifetime_ms, counter_ttl_ms.
# Returns {ticket, acquired (1/0)}.
_ISSUE = (
    _PRELUDE
    + """
local ticket = redis.call('INCR', KEYS[3])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
redis.call('ZADD', KEYS[1], ticket, ticket)
redis.call('HSET', KEYS[2], ticket, now + tonumber(ARGV[1]))
local head = head_after_purge(tostring(ticket))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if head == tostring(ticket) then return {ticket, 1} end
return {ticket, 0}
"""
)

# KEYS: queue, expiry.  ARGV: ticket, lifetime_ms.
# Refreshes the ticket's expiry, drops expired tickets at the head of the queue.
# Returns 1 when the ticket is served (at the head), 0 while it waits, -1 when it
# has expired and is gone.
_POLL = (
    _PRELUDE
    + """
local mine = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if mine < now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return -1
end
redis.call('HSET', KEYS[2], ARGV[1], now + tonumber(ARGV[2]))
if head_after_purge(ARGV[1]) == ARGV[1] then return 1 end
return 0
"""
)

# KEYS: queue, expiry.  ARGV: ticket.  Returns 1 if the ticket was still held.
_RELEASE = """
local held = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[2])
end
return held
"""


class RedisTicketLockStore(LockStore):
    """Fair, crash-safe per-conversation lock on atomic Redis scripts.

    Only :meth:`lock` is used by Rasa's agent and processor; the GET/SET style
    methods of the base class are deliberately not provided.
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        lifetime: float = 10.0,
        poll_interval: float = 0.005,
        max_poll_interval: float = 0.05,
    ) -> None:
        super().__init__()
        self._redis = redis
        self._keys = keys
        self.lifetime = lifetime
        self._poll = poll_interval
        self._max_poll = max_poll_interval
        self._issue = redis.register_script(_ISSUE)
        self._check = redis.register_script(_POLL)
        self._release = redis.register_script(_RELEASE)

    @property
    def _lifetime_ms(self) -> int:
        return max(1, int(self.lifetime * 1000))

    async def issue(self, conversation_id: str) -> tuple[int, bool]:
        """Take a ticket; say whether it is already the one being served."""
        keys = self._keys
        ticket, acquired = await self._issue(
            keys=[
                keys.lock_queue(conversation_id),
                keys.lock_expiry(conversation_id),
                keys.lock_counter(conversation_id),
            ],
            args=[self._lifetime_ms, COUNTER_TTL_MS],
        )
        return int(ticket), bool(acquired)

    async def poll(self, conversation_id: str, ticket: int) -> int:
        """Refresh `ticket`; 1 = served, 0 = waiting, -1 = expired."""
        keys = self._keys
        result = await self._check(
            keys=[keys.lock_queue(conversation_id), keys.lock_expiry(conversation_id)],
            args=[ticket, self._lifetime_ms],
        )
        return int(result)

    async def release(self, conversation_id: str, ticket: int) -> bool:
        """Give the lock up; False if the ticket had already expired."""
        keys = self._keys
        held = await self._release(
            keys=[keys.lock_queue(conversation_id), keys.lock_expiry(conversation_id)],
            args=[ticket],
        )
        return bool(held)

    async def acquire(self, conversation_id: str, timeout: float | None = None) -> int:
        """Wait until this caller is served; return its ticket (the fencing token)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        ticket, served = await self.issue(conversation_id)
        delay = self._poll
        while not served:
            if deadline is not None and loop.time() > deadline:
                await self.release(conversation_id, ticket)
                raise LockError(f"Timed out waiting for the lock of {conversation_id!r}.")
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_poll)
            state = await self.poll(conversation_id, ticket)
            if state == -1:
                # This process was too slow to refresh its ticket (a stalled event
                # loop): queue again rather than fail the customer's message.
                logger.warning(
                    "lock ticket %s of %r expired while waiting", ticket, conversation_id
                )
                ticket, served = await self.issue(conversation_id)
                continue
            served = state == 1
        return ticket

    async def _keep_alive(self, conversation_id: str, ticket: int) -> None:
        interval = self.lifetime / 3
        while True:
            await asyncio.sleep(interval)
            try:
                if await self.poll(conversation_id, ticket) == -1:
                    logger.warning(
                        "lock of %r expired while held (ticket %s)", conversation_id, ticket
                    )
                    return
            except Exception:  # keep trying: Redis may be back before the expiry
                logger.warning("could not refresh lock of %r", conversation_id, exc_info=True)

    @asynccontextmanager
    async def lock(
        self,
        conversation_id: str,
        lock_lifetime: float | None = None,
        wait_time_in_seconds: float | None = None,
    ) -> AsyncGenerator[TicketLock, None]:
        """Hold the conversation's lock for the duration of the block.

        Rasa passes its own lifetime and polling interval; both are ignored in
        favour of this store's (a short lifetime kept alive by a heartbeat).
        """
        ticket = await self.acquire(conversation_id)
        heartbeat = asyncio.create_task(self._keep_alive(conversation_id, ticket))
        try:
            yield TicketLock(conversation_id)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            if not await self.release(conversation_id, ticket):
                logger.warning(
                    "lock of %r had expired before release (ticket %s)", conversation_id, ticket
                )
