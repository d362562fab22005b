"""Events every bot process must hear (a customer message, an agent reply, a claim).

Published on one Redis pub/sub channel (``P:events``), so an agent connected to
one process sees what arrives at another, and a customer's web chat hears an
agent's reply wherever it was sent from.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from bot.redis_keys import Keys


class Events:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self.channel = keys.events

    async def publish(self, kind: str, conversation: str, **data: Any) -> None:
        payload = {"type": kind, "conversation": conversation, **data}
        await self._redis.publish(self.channel, json.dumps(payload, ensure_ascii=False))
