"""Signed-in sessions and sign-in throttling, in Redis.

The browser holds a random token in an HttpOnly, SameSite=Strict cookie; Redis
holds only its SHA-256, so a copy of the database opens no session. Every
state-changing request must also carry the session's CSRF token in the
``X-CSRF-Token`` header. A session is read together with its account: it
ends when the account is deleted, disabled or given a new password (the
account's epoch moved on), and its role is the account's current one.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from dataclasses import dataclass

from redis.asyncio import Redis

from bot.accounts.store import Account
from bot.redis_keys import Keys
from bot.security.proxy import bucket
from bot.security.tokens import raw, same_secret
from bot.settings import Rate

COOKIE = "kefu_session"
CSRF_HEADER = "X-CSRF-Token"
# A session lasts a working day past its last use.
SESSION_TTL = 12 * 3600
# Sign-in throttle, per username and address: this many failures go
# unhindered (typos), then each further attempt waits twice as long as the
# one before, from BACKOFF_BASE up to BACKOFF_CAP seconds. The record is
# forgotten FAILURE_MEMORY seconds after the last attempt.
MAX_FAILURES = 5
BACKOFF_BASE = 1.0
BACKOFF_CAP = 900.0
FAILURE_MEMORY = 3600.0


@dataclass(frozen=True)
class Session:
    username: str
    role: str
    csrf: str

    def csrf_ok(self, header: str | None) -> bool:
        return same_secret(header, self.csrf)


def _digest(token: str) -> str:
    return hashlib.sha256(raw(token)).hexdigest()


class Sessions:
    def __init__(self, redis: Redis, keys: Keys, ttl: int = SESSION_TTL) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = ttl

    async def create(self, account: Account) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        session = Session(account.username, account.role, secrets.token_urlsafe(24))
        record = json.dumps(
            {
                "username": session.username,
                "role": session.role,
                "csrf": session.csrf,
                "epoch": account.epoch,
            }
        )
        await self._redis.set(self._keys.session(_digest(token)), record, ex=self._ttl)
        return token, session

    async def get(self, token: str | None) -> Session | None:
        if not token or len(token) > 100:
            return None
        key = self._keys.session(_digest(token))
        raw_session = await self._redis.getex(key, ex=self._ttl)
        if raw_session is None:
            return None
        data = json.loads(raw_session)
        raw_account = await self._redis.hget(self._keys.accounts, data["username"])
        account = json.loads(raw_account) if raw_account else None
        if (
            account is None
            or account.get("disabled")
            or int(account.get("epoch", 0)) != int(data.get("epoch", 0))
        ):
            await self._redis.delete(key)  # revoked: the password changed, or the account went
            return None
        return Session(data["username"], account["role"], data["csrf"])

    async def delete(self, token: str) -> None:
        await self._redis.delete(self._keys.session(_digest(token)))


# KEYS[1]: username+address record (hash: fails, until); KEYS[2]: the address's
# GCRA state (hash: tat). ARGV: free failures, back-off base and cap (ms),
# memory (ms), address interval (ms) and burst (0: no ceiling).
# Counts the attempt and decides in one step: {allowed, retry after (ms)}.
BEGIN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local free, base = tonumber(ARGV[1]), tonumber(ARGV[2])
local cap, memory = tonumber(ARGV[3]), tonumber(ARGV[4])
local interval, burst = tonumber(ARGV[5]), tonumber(ARGV[6])
local until_ms = tonumber(redis.call('HGET', KEYS[1], 'until') or 0)
if now < until_ms then return {0, until_ms - now} end
if burst > 0 then
  local tat = tonumber(redis.call('HGET', KEYS[2], 'tat') or now)
  if tat < now then tat = now end
  local allowed_at = tat + interval - burst * interval
  if now < allowed_at then return {0, allowed_at - now} end
  redis.call('HSET', KEYS[2], 'tat', tat + interval)
  redis.call('PEXPIRE', KEYS[2], tat + interval - now)
end
local fails = redis.call('HINCRBY', KEYS[1], 'fails', 1)
local wait = 0
if fails >= free then
  wait = math.min(cap, base * 2 ^ (fails - free))
  redis.call('HSET', KEYS[1], 'until', now + wait)
end
redis.call('PEXPIRE', KEYS[1], math.floor(wait + memory))
return {1, 0}
"""

# A right password: forget the username+address failures, give back the
# address's attempt. KEYS as above; ARGV[1]: address interval (ms).
SUCCEEDED = """
redis.call('DEL', KEYS[1])
local tat = tonumber(redis.call('HGET', KEYS[2], 'tat') or 0)
if tat > 0 then redis.call('HSET', KEYS[2], 'tat', tat - tonumber(ARGV[1])) end
return 1
"""


class LoginThrottle:
    """Slows password guessing without letting a stranger lock anyone else out.

    Per username *and* address: MAX_FAILURES free attempts, then exponential
    back-off. Per address, whatever the username: at most `per_address`
    attempts (a burst, then evenly spaced), so spraying many usernames is
    slow too. Someone guessing the admin's password from their address
    slows only themselves; the admin signs in from theirs. Each attempt is
    counted and decided in one Lua step *before* the password is checked,
    so concurrent attempts cannot slip past the count.
    """

    def __init__(self, redis: Redis, keys: Keys, per_address: Rate) -> None:
        self._keys = keys
        self._per_address = per_address
        self._begin = redis.register_script(BEGIN)
        self._succeeded = redis.register_script(SUCCEEDED)

    def _subjects(self, address: str, username: str) -> list[str]:
        where = bucket(address)
        who = hashlib.sha256(username.encode("utf-8", "surrogateescape")).hexdigest()
        return [self._keys.login_backoff(who, where), self._keys.login_address(where)]

    def _address_interval(self) -> tuple[int, int]:
        if not self._per_address.on:
            return 1, 0
        interval = max(1, round(self._per_address.seconds * 1000 / self._per_address.count))
        return interval, self._per_address.count

    async def attempt(self, address: str, username: str) -> int:
        """Count a sign-in attempt; 0 if its password may be checked, else seconds to wait."""
        interval, burst = self._address_interval()
        allowed, wait_ms = await self._begin(
            keys=self._subjects(address, username),
            args=[
                MAX_FAILURES,
                int(BACKOFF_BASE * 1000),
                int(BACKOFF_CAP * 1000),
                int(FAILURE_MEMORY * 1000),
                interval,
                burst,
            ],
        )
        return 0 if allowed else max(1, math.ceil(int(wait_ms) / 1000))

    async def succeeded(self, address: str, username: str) -> None:
        interval, _ = self._address_interval()
        await self._succeeded(keys=self._subjects(address, username), args=[interval])
