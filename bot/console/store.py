"""What agents keep beside a conversation: internal notes, and shared canned replies.

Layout: ``P:c:{conversation}:notes`` list of JSON notes (oldest first; never
shown to the customer); ``P:canned`` list of canned reply texts (admins edit).
"""

from __future__ import annotations

import json
import time
from typing import Any

from redis.asyncio import Redis

from bot.redis_keys import Keys

MAX_CANNED = 100


class ConsoleStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def add_note(self, conversation: str, author: str, text: str) -> dict[str, Any]:
        note = {"author": author, "text": text, "ts": time.time()}
        await self._redis.rpush(
            self._keys.conv_notes(conversation), json.dumps(note, ensure_ascii=False)
        )
        return note

    async def notes(self, conversation: str) -> list[dict[str, Any]]:
        return [
            json.loads(n)
            for n in await self._redis.lrange(self._keys.conv_notes(conversation), 0, -1)
        ]

    async def canned(self) -> list[str]:
        return list(await self._redis.lrange(self._keys.canned, 0, -1))

    async def set_canned(self, texts: list[str]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._keys.canned)
            if texts:
                pipe.rpush(self._keys.canned, *texts)
            await pipe.execute()
