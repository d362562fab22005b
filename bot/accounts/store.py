"""Accounts in Redis, with bcrypt-hashed passwords and one of three roles.

Layout: ``P:accounts`` hash, username -> JSON {hash, role, created_at,
epoch, disabled}. `epoch` grows each time the password changes or the
account is disabled; a session remembers the epoch it was opened in and is
refused once it differs (bot/accounts/sessions.py), so those revoke every
session of the account at once.

bcrypt is slow on purpose (a quarter of a second per check at cost 12) and
pure CPU: it runs in a worker thread, never on the event loop, or a handful
of wrong sign-ins would stall every customer's reply. Usernames are
case-folded once, here and at sign-in, so `ADMIN` and `admin` are one
account and one throttle.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import threading
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import bcrypt
from redis.asyncio import Redis

from bot.redis_keys import Keys

ROLES = ("agent", "trainer", "admin")
USERNAME = re.compile(r"^[a-z0-9_.\-]{2,32}$")
MIN_PASSWORD = 8
# bcrypt reads at most 72 bytes; longer passwords are refused, not cut short.
MAX_PASSWORD_BYTES = 72
# Sign-in checks waiting for the bcrypt thread before new ones are refused
# (503): the throttle keeps honest traffic far below this.
MAX_PENDING_CHECKS = 16


logger = logging.getLogger(__name__)


def background_priority() -> None:
    """Give the calling thread the lowest CPU priority (a bcrypt thread's initializer).

    A password check is worth a fraction of a second of someone's sign-in; a
    customer's reply is worth more. At nice 19 the checks use the CPU the
    event loop leaves, so a burst of them queues instead of slowing replies.
    Linux applies `setpriority` to the one thread named by its id.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError) as exc:  # not Linux, or not allowed
        logger.debug("could not lower the bcrypt thread's priority: %s", exc)


class AccountError(ValueError):
    """A username, role or password that cannot be used."""


class SignInBusy(RuntimeError):
    """Too many password checks are waiting; try again shortly."""


@dataclass(frozen=True)
class Account:
    username: str
    role: str
    created_at: float
    epoch: int = 0
    disabled: bool = False


def normalise_username(username: str) -> str:
    """The one form a username is stored, looked up and throttled under."""
    return username.strip().casefold()


def check_password(password: str) -> bytes:
    raw = password.encode("utf-8")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(raw) > MAX_PASSWORD_BYTES:
        raise AccountError(f"a password may have at most {MAX_PASSWORD_BYTES} bytes")
    return raw


# bcrypt's cost: 2**12 rounds takes a quarter of a second here, which is the point.
DEFAULT_ROUNDS = 12


def _account(username: str, record: dict[str, Any]) -> Account:
    return Account(
        username,
        record["role"],
        float(record["created_at"]),
        int(record.get("epoch", 0)),
        bool(record.get("disabled", False)),
    )


class Accounts:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        rounds: int = DEFAULT_ROUNDS,
        executor: Executor | None = None,
    ) -> None:
        self._redis = redis
        self._key = keys.accounts
        self._rounds = rounds
        # None: asyncio's default pool (the command line); the app passes its
        # own single thread, so bcrypt never takes more than one core.
        self._executor = executor
        self._pending = 0
        self._dummy: bytes | None = None

    async def _off_loop(self, fn: Any, *args: Any) -> Any:
        if self._pending >= MAX_PENDING_CHECKS:
            raise SignInBusy("too many sign-ins are being checked")
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._pending -= 1

    async def _hash(self, password: str) -> str:
        raw = check_password(password)
        digest: bytes = await self._off_loop(bcrypt.hashpw, raw, bcrypt.gensalt(self._rounds))
        return digest.decode()

    async def add(self, username: str, password: str, role: str) -> Account:
        username = normalise_username(username)
        if not USERNAME.match(username):
            raise AccountError("a username is 2 to 32 letters, digits, '.', '_' or '-'")
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}")
        digest = await self._hash(password)
        account = Account(username, role, time.time())
        record = json.dumps(
            {"hash": digest, "role": role, "created_at": account.created_at, "epoch": 0}
        )
        if not await self._redis.hsetnx(self._key, username, record):
            raise AccountError(f"account {username!r} exists already")
        return account

    async def _record(self, username: str) -> dict[str, Any]:
        raw = await self._redis.hget(self._key, normalise_username(username))
        if raw is None:
            raise AccountError(f"no account {username!r}")
        record: dict[str, Any] = json.loads(raw)
        return record

    async def _revise(self, username: str, **changes: Any) -> None:
        """Change an account and move it to a new epoch: its sessions end."""
        name = normalise_username(username)
        record = await self._record(name)
        record.update(changes)
        record["epoch"] = int(record.get("epoch", 0)) + 1
        await self._redis.hset(self._key, name, json.dumps(record))

    async def set_password(self, username: str, password: str) -> None:
        """New password; every session of the account ends."""
        await self._revise(username, hash=await self._hash(password))

    async def disable(self, username: str) -> None:
        """No more sign-ins, and every session of the account ends."""
        await self._refuse_last_admin(username)
        await self._revise(username, disabled=True)

    async def enable(self, username: str) -> None:
        await self._revise(username, disabled=False)

    async def delete(self, username: str) -> None:
        """Remove the account; its sessions are refused from the next request on."""
        await self._refuse_last_admin(username)
        if not await self._redis.hdel(self._key, normalise_username(username)):
            raise AccountError(f"no account {username!r}")

    async def _refuse_last_admin(self, username: str) -> None:
        name = normalise_username(username)
        record = await self._record(name)
        if record["role"] != "admin" or record.get("disabled"):
            return
        admins = [
            a
            for a in await self.list()
            if a.role == "admin" and not a.disabled and a.username != name
        ]
        if not admins:
            raise AccountError(f"{name!r} is the last admin; add another admin first")

    async def get(self, username: str) -> Account | None:
        raw = await self._redis.hget(self._key, normalise_username(username))
        return _account(normalise_username(username), json.loads(raw)) if raw else None

    async def verify(self, username: str, password: str) -> Account | None:
        """The account if the password is right; None otherwise (same cost either way).

        `username` must already be normalised (the sign-in route does it once).
        """
        raw = await self._redis.hget(self._key, username)
        record = json.loads(raw) if raw else None
        candidate = password.encode("utf-8")[:MAX_PASSWORD_BYTES]
        # Unknown users still pay for one bcrypt check, so timing does not tell them apart.
        digest = record["hash"].encode() if record else await self._dummy_hash()
        ok = await self._off_loop(bcrypt.checkpw, candidate, digest)
        if not (ok and record) or record.get("disabled"):
            return None
        return _account(username, record)

    async def _dummy_hash(self) -> bytes:
        if self._dummy is None:
            self._dummy = await self._off_loop(
                bcrypt.hashpw, b"timing-equaliser", bcrypt.gensalt(self._rounds)
            )
        return self._dummy

    async def list(self) -> list[Account]:
        rows = await self._redis.hgetall(self._key)
        return sorted(
            (_account(name, json.loads(v)) for name, v in rows.items()), key=lambda a: a.username
        )

    async def count(self) -> int:
        return int(await self._redis.hlen(self._key))

    async def fold_usernames(self) -> None:
        """Store usernames kept from before they were case-folded under their folded form.

        A name whose folded form is taken already is left as it was (and logged).
        """
        for name, record in (await self._redis.hgetall(self._key)).items():
            folded = normalise_username(name)
            if folded == name:
                continue
            if await self._redis.hsetnx(self._key, folded, record):
                await self._redis.hdel(self._key, name)
                logger.info("account %r is now %r (usernames ignore case)", name, folded)
            else:
                logger.warning("account %r clashes with %r; sign in as the latter", name, folded)

    async def ensure_admin(self) -> str | None:
        """On first start with no accounts, create `admin` with a random password; return it.

        On every start, usernames from before case-folding are folded first.
        """
        await self.fold_usernames()
        if await self.count():
            return None
        password = secrets.token_urlsafe(12)
        try:
            await self.add("admin", password, "admin")
        except AccountError:  # another process created it first
            return None
        return password
