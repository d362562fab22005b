"""Takes a conversation's lock, says so, and holds it until killed.

python -m tests.lock_holder REDIS_URL PREFIX CONVERSATION LIFETIME
"""

from __future__ import annotations

import asyncio
import sys

from redis.asyncio import Redis

from bot.engine.lock_store import RedisTicketLockStore
from bot.redis_keys import Keys


async def main(url: str, prefix: str, conversation: str, lifetime: float) -> None:
    store = RedisTicketLockStore(Redis.from_url(url), Keys(prefix), lifetime=lifetime)
    await store.acquire(conversation)
    print("held", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
