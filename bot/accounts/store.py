"""Accounts in Redis, with bcrypt-hashed passwords and one of three roles.

Layout: ``P:accounts`` hash, username -> JSON {hash, role, created_at}.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from functools import cache

import bcrypt
from redis.asyncio import Redis

from bot.redis_keys import Keys

ROLES = ("agent", "trainer", "admin")
USERNAME = re.compile(r"^[A-Za-z0-9_.\-]{2,32}$")
MIN_PASSWORD = 8
# bcrypt reads at most 72 bytes; longer passwords are refused, not cut short.
MAX_PASSWORD_BYTES = 72


class AccountError(ValueError):
    """A username, role or password that cannot be used."""


@dataclass(frozen=True)
class Account:
    username: str
    role: str
    created_at: float


def check_password(password: str) -> bytes:
    raw = password.encode("utf-8")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(raw) > MAX_PASSWORD_BYTES:
        raise AccountError(f"a password may have at most {MAX_PASSWORD_BYTES} bytes")
    return raw


# bcrypt's cost: 2**12 rounds takes a quarter of a second here, which is the point.
DEFAULT_ROUNDS = 12


class Accounts:
    def __init__(self, redis: Redis, keys: Keys, rounds: int = DEFAULT_ROUNDS) -> None:
        self._redis = redis
        self._key = keys.accounts
        self._rounds = rounds

    def _hash(self, password: str) -> str:
        return bcrypt.hashpw(check_password(password), bcrypt.gensalt(self._rounds)).decode()

    async def add(self, username: str, password: str, role: str) -> Account:
        if not USERNAME.match(username):
            raise AccountError("a username is 2 to 32 letters, digits, '.', '_' or '-'")
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}")
        digest = self._hash(password)
        account = Account(username, role, time.time())
        record = json.dumps({"hash": digest, "role": role, "created_at": account.created_at})
        if not await self._redis.hsetnx(self._key, username, record):
            raise AccountError(f"account {username!r} exists already")
        return account

    async def set_password(self, username: str, password: str) -> None:
        raw = await self._redis.hget(self._key, username)
        if raw is None:
            raise AccountError(f"no account {username!r}")
        record = json.loads(raw)
        record["hash"] = self._hash(password)
        await self._redis.hset(self._key, username, json.dumps(record))

    async def verify(self, username: str, password: str) -> Account | None:
        """The account if the password is right; None otherwise (same cost either way)."""
        raw = await self._redis.hget(self._key, username)
        record = json.loads(raw) if raw else None
        candidate = password.encode("utf-8")[:MAX_PASSWORD_BYTES]
        # Unknown users still pay for one bcrypt check, so timing does not tell them apart.
        digest = record["hash"].encode() if record else _dummy_hash()
        ok = bcrypt.checkpw(candidate, digest)
        if not (ok and record):
            return None
        return Account(username, record["role"], float(record["created_at"]))

    async def list(self) -> list[Account]:
        rows = await self._redis.hgetall(self._key)
        return sorted(
            (
                Account(name, json.loads(v)["role"], float(json.loads(v)["created_at"]))
                for name, v in rows.items()
            ),
            key=lambda a: a.username,
        )

    async def count(self) -> int:
        return int(await self._redis.hlen(self._key))

    async def ensure_admin(self) -> str | None:
        """On first start with no accounts, create `admin` with a random password; return it."""
        if await self.count():
            return None
        password = secrets.token_urlsafe(12)
        try:
            await self.add("admin", password, "admin")
        except AccountError:  # another process created it first
            return None
        return password


@cache
def _dummy_hash() -> bytes:
    return bcrypt.hashpw(b"timing-equaliser", bcrypt.gensalt())
