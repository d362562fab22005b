"""Signed-in sessions and sign-in throttling, in Redis.

The browser holds a random token in an HttpOnly, SameSite=Strict cookie; Redis
holds only its SHA-256, so a copy of the database opens no session. Every
state-changing request must also carry the session's CSRF token in the
``X-CSRF-Token`` header.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from redis.asyncio import Redis

from bot.accounts.store import Account
from bot.redis_keys import Keys

COOKIE = "kefu_session"
CSRF_HEADER = "X-CSRF-Token"
# A session lasts a working day past its last use.
SESSION_TTL = 12 * 3600
# Sign-in failures allowed per address and per username before a pause.
MAX_FAILURES = 5
FAILURE_WINDOW = 600


@dataclass(frozen=True)
class Session:
    username: str
    role: str
    csrf: str

    def csrf_ok(self, header: str | None) -> bool:
        return header is not None and hmac.compare_digest(header.encode(), self.csrf.encode())


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    def __init__(self, redis: Redis, keys: Keys, ttl: int = SESSION_TTL) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = ttl

    async def create(self, account: Account) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        session = Session(account.username, account.role, secrets.token_urlsafe(24))
        record = json.dumps(
            {"username": session.username, "role": session.role, "csrf": session.csrf}
        )
        await self._redis.set(self._keys.session(_digest(token)), record, ex=self._ttl)
        return token, session

    async def get(self, token: str | None) -> Session | None:
        if not token or len(token) > 100:
            return None
        key = self._keys.session(_digest(token))
        raw = await self._redis.getex(key, ex=self._ttl)
        if raw is None:
            return None
        data = json.loads(raw)
        return Session(data["username"], data["role"], data["csrf"])

    async def delete(self, token: str) -> None:
        await self._redis.delete(self._keys.session(_digest(token)))


class LoginThrottle:
    """At most MAX_FAILURES failed sign-ins per address and per username per window."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    def _subjects(self, address: str, username: str) -> list[str]:
        return [
            self._keys.login_failures(f"ip:{address}"),
            self._keys.login_failures(f"user:{username.lower()}"),
        ]

    async def blocked_for(self, address: str, username: str) -> int:
        """Seconds until another attempt is allowed (0: allowed now)."""
        longest = 0
        for key in self._subjects(address, username):
            count = await self._redis.get(key)
            if count is not None and int(count) >= MAX_FAILURES:
                longest = max(longest, int(await self._redis.ttl(key)))
        return max(longest, 0)

    async def failed(self, address: str, username: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in self._subjects(address, username):
                pipe.incr(key)
                pipe.expire(key, FAILURE_WINDOW, nx=True)
            await pipe.execute()

    async def succeeded(self, address: str, username: str) -> None:
        await self._redis.delete(self._keys.login_failures(f"user:{username.lower()}"))
