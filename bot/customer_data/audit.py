"""Who read, exported or erased which conversation: an audit log admins can read.

Entries name a conversation by a hash of its id, so that erasing a conversation
leaves no trace of its id anywhere (PIPL: the erasure is recorded, the person
is not). While the conversation exists, ``P:audit:names`` maps the hash back
to the id for the admins reading the log; erasure removes that mapping.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from redis.asyncio import Redis

from bot.redis_keys import Keys

# Reads kept: about a year of a busy team's console use.
MAX_ENTRIES = 200_000
# The console re-reads an open conversation on every live event: one entry per
# person, conversation and channel of access in this many seconds is enough.
READ_WINDOW = 600

READ, EXPORT, ERASE = "read", "export", "erase"


def conversation_hash(keys: Keys, conversation: str) -> str:
    """A stable name for a conversation that does not reveal it (prefix-salted SHA-256)."""
    return hashlib.sha256(f"{keys.prefix}\x00{conversation}".encode()).hexdigest()[:24]


class AuditLog:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def record(self, who: str, action: str, via: str, conversation: str) -> None:
        """`who` (a username, `admin-token`, `cli:<user>`) did `action` through `via`."""
        digest = conversation_hash(self._keys, conversation)
        if action == READ:
            seen = self._keys.audit_seen(digest, who, via)
            if not await self._redis.set(seen, "1", nx=True, ex=READ_WINDOW):
                return
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(
                self._keys.audit,
                {"ts": repr(time.time()), "who": who, "action": action, "via": via,
                 "conversation": digest},
                maxlen=MAX_ENTRIES,
                approximate=True,
            )  # fmt: skip
            if action != ERASE:
                pipe.hset(self._keys.audit_names, digest, conversation)
            await pipe.execute()

    async def recent(self, count: int = 200, before: str | None = None) -> list[dict[str, Any]]:
        """Newest first; conversations by id while they exist, `null` once erased."""
        rows = await self._redis.xrevrange(
            self._keys.audit, max=f"({before}" if before else "+", count=count
        )
        digests = list({fields.get("conversation", "") for _, fields in rows})
        names = await self._redis.hmget(self._keys.audit_names, digests) if digests else []
        known = dict(zip(digests, names, strict=True))
        return [
            {
                "id": entry_id,
                "ts": float(fields.get("ts", 0)),
                "who": fields.get("who"),
                "action": fields.get("action"),
                "via": fields.get("via"),
                "conversation_hash": fields.get("conversation"),
                "conversation": known.get(fields.get("conversation", "")),
            }
            for entry_id, fields in rows
        ]

    async def forget_name(self, conversation: str) -> None:
        await self._redis.hdel(self._keys.audit_names, conversation_hash(self._keys, conversation))
