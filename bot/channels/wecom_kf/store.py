"""What WeChat Customer Service keeps in Redis: cursors, pull turns, claims, windows.

- The cursor of each kf account (``next_cursor`` of kf/sync_msg) is saved after
  each page is handled, so a restart neither loses nor re-reads a message.
- One process at a time pulls a kf account (a lock with an owner). A callback
  arriving while another process pulls leaves a "pull again" mark, which the
  puller reads before it lets go (and once more after), so no push is missed.
- Each pulled message is claimed by its msgid with a lease its process renews
  while it handles the message; answered, the claim becomes ``done`` for two
  days. A process killed between claiming and answering stops renewing: its
  claim runs out within seconds and the next pull, on any process, handles the
  message (the cursor was not saved past it). The pull lock is a lease too, so
  a killed puller does not keep the account from being pulled for long.
- The window: WeCom lets the brand send five messages within 48 hours of the
  customer's last message. The customer's message sets ``last_in`` (expiring
  48 hours after it was sent) and clears the count; each send reserves one of
  the five in one script, so two processes cannot both send the fifth.
"""

from __future__ import annotations

import secrets
import time

from redis.asyncio import Redis

from bot.chat.once import LEASE_MS
from bot.redis_keys import Keys

WINDOW_SECONDS = 48 * 3600
WINDOW_MESSAGES = 5
CLAIM_SECONDS = 2 * 86400  # longer than any redelivery or re-read of a page
# Leases renewed every RENEW_EVERY (bot/chat/once.py) by the process holding them:
# after a crash, a message is free again within CLAIM_LEASE_MS, an account's pull
# within PULL_LOCK_MS.
CLAIM_LEASE_MS = LEASE_MS
PULL_LOCK_MS = 10_000
SERVICER_SECONDS = 48 * 3600  # a WeCom servicer's session ends well before this

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# KEYS: last_in, sent.  ARGV: limit.  Returns the messages left after this one, or -1
# when the window is closed (no last_in) and -2 when its messages are used up.
_RESERVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local sent = tonumber(redis.call('GET', KEYS[2]) or '0')
if sent >= tonumber(ARGV[1]) then return -2 end
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], redis.call('TTL', KEYS[1]))
return tonumber(ARGV[1]) - sent - 1
"""
CLOSED, USED_UP = -1, -2

# KEYS: claim.  ARGV: owner, lease_ms.  'mine' (claimed now), 'done' (answered), or
# 'busy' (a live process holds it: its lease would have run out otherwise).
# '1' is how claims read before they had leases: answered, or lost with the process.
_CLAIM = """
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 'mine'
end
if v == 'done' or v == '1' then return 'done' end
return 'busy'
"""
# KEYS: claim.  ARGV: owner, ttl_s.  Only the holder marks the message answered.
_FINISH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], 'done', 'EX', ARGV[2]) and 1 or 0
end
return 0
"""
MINE, DONE, BUSY = "mine", "done", "busy"


class KfStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._release = redis.register_script(_RELEASE)
        self._renew = redis.register_script(_RENEW)
        self._reserve = redis.register_script(_RESERVE)
        self._claim = redis.register_script(_CLAIM)
        self._finish = redis.register_script(_FINISH)

    # -- pulling -----------------------------------------------------------------

    async def cursor(self, open_kfid: str) -> str:
        return await self._redis.get(self._keys.wecomkf_cursor(open_kfid)) or ""

    async def save_cursor(self, open_kfid: str, cursor: str) -> None:
        await self._redis.set(self._keys.wecomkf_cursor(open_kfid), cursor)

    async def want_pull(self, open_kfid: str, token: str) -> None:
        """A callback said there is something new (its `token` lets us pull)."""
        await self._redis.set(self._keys.wecomkf_pull_again(open_kfid), token or "-", ex=600)

    async def take_pull(self, open_kfid: str) -> str | None:
        """The token of a wanted pull (taken), None when none is wanted."""
        raw: str | None = await self._redis.getdel(self._keys.wecomkf_pull_again(open_kfid))
        return None if raw is None else ("" if raw == "-" else raw)

    async def pull_wanted(self, open_kfid: str) -> bool:
        return bool(await self._redis.exists(self._keys.wecomkf_pull_again(open_kfid)))

    async def lock_pull(self, open_kfid: str) -> str | None:
        """The owner token of this process's turn to pull, or None if another has it."""
        owner = secrets.token_hex(8)
        key = self._keys.wecomkf_pull_lock(open_kfid)
        return owner if await self._redis.set(key, owner, nx=True, px=PULL_LOCK_MS) else None

    async def keep_pull(self, open_kfid: str, owner: str) -> bool:
        key = self._keys.wecomkf_pull_lock(open_kfid)
        return bool(await self._renew(keys=[key], args=[owner, PULL_LOCK_MS]))

    async def unlock_pull(self, open_kfid: str, owner: str) -> None:
        await self._release(keys=[self._keys.wecomkf_pull_lock(open_kfid)], args=[owner])

    async def claim(self, conversation: str, msgid: str, owner: str) -> str:
        """MINE (leased to `owner` now), DONE (answered already) or BUSY (in hand elsewhere)."""
        key = self._keys.wecomkf_message(conversation, msgid)
        return str(await self._claim(keys=[key], args=[owner, CLAIM_LEASE_MS]))

    async def keep_claims(self, held: list[tuple[str, str, str]]) -> None:
        """Renew the leases of the (conversation, msgid, owner) claims still in hand."""
        if not held:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for conversation, msgid, owner in held:
                key = self._keys.wecomkf_message(conversation, msgid)
                await self._renew(keys=[key], args=[owner, CLAIM_LEASE_MS], client=pipe)
            await pipe.execute()

    async def answered(self, conversation: str, msgid: str, owner: str) -> None:
        key = self._keys.wecomkf_message(conversation, msgid)
        await self._finish(keys=[key], args=[owner, CLAIM_SECONDS])

    async def unclaim(self, conversation: str, msgid: str, owner: str) -> None:
        """Give the message back for the next pull (handling it failed)."""
        await self._release(keys=[self._keys.wecomkf_message(conversation, msgid)], args=[owner])

    # -- the window ----------------------------------------------------------------

    async def customer_wrote(self, conversation: str, sent_at: float) -> None:
        """The window opens at the customer's message (WeCom's send_time) for 48 hours."""
        closes = int(sent_at + WINDOW_SECONDS)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.wecomkf_last_inbound(conversation), repr(sent_at))
            pipe.expireat(self._keys.wecomkf_last_inbound(conversation), closes)
            pipe.delete(self._keys.wecomkf_sent(conversation))
            await pipe.execute()

    async def reserve_send(self, conversation: str) -> int:
        """Take one of the window's messages: how many are left, or CLOSED / USED_UP."""
        keys = [
            self._keys.wecomkf_last_inbound(conversation),
            self._keys.wecomkf_sent(conversation),
        ]
        return int(await self._reserve(keys=keys, args=[WINDOW_MESSAGES]))

    async def close_window(self, conversation: str) -> None:
        """WeCom refused a send as out of its window: believe it until the customer writes."""
        await self._redis.delete(self._keys.wecomkf_last_inbound(conversation))

    async def window(self, conversation: str) -> tuple[float, int] | None:
        """(when the window closes, messages left), or None when it is closed."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(self._keys.wecomkf_last_inbound(conversation))
            pipe.get(self._keys.wecomkf_sent(conversation))
            last_in, sent = await pipe.execute()
        if last_in is None:
            return None
        closes = float(last_in) + WINDOW_SECONDS
        left = WINDOW_MESSAGES - int(sent or 0)
        return (closes, left) if closes > time.time() and left > 0 else None

    # -- handed to WeCom's servicers --------------------------------------------------

    async def left_for_servicer(self, conversation: str, servicer: str) -> None:
        await self._redis.set(
            self._keys.wecomkf_servicer(conversation), servicer or "pool", ex=SERVICER_SECONDS
        )

    async def with_servicer(self, conversation: str) -> bool:
        return bool(await self._redis.exists(self._keys.wecomkf_servicer(conversation)))

    async def back_from_servicer(self, conversation: str) -> None:
        await self._redis.delete(self._keys.wecomkf_servicer(conversation))
