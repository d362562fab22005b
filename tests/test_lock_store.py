"""The conversation lock: FIFO, atomic, and never stuck behind a dead holder."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from bot.engine.lock_store import RedisTicketLockStore
from bot.redis_keys import Keys


def store(
    redis_url: str, prefix: str, lifetime: float = 10.0
) -> tuple[Redis, RedisTicketLockStore]:
    client = Redis.from_url(redis_url, decode_responses=True)
    return client, RedisTicketLockStore(client, Keys(prefix), lifetime=lifetime)


async def test_holders_are_served_one_at_a_time_in_ticket_order(redis_url, key_prefix):
    client, locks = store(redis_url, key_prefix)
    inside = 0
    max_inside = 0
    order: list[int] = []

    async def worker(i: int) -> None:
        nonlocal inside, max_inside
        await asyncio.sleep(i * 0.01)  # arrive in order
        async with locks.lock("c1"):
            inside += 1
            max_inside = max(max_inside, inside)
            order.append(i)
            await asyncio.sleep(0.02)
            inside -= 1

    await asyncio.gather(*(worker(i) for i in range(15)))
    assert max_inside == 1
    assert order == list(range(15))
    # Nothing is left behind once everyone is done.
    assert await client.exists(Keys(key_prefix).lock_queue("c1")) == 0
    await client.close()


async def test_different_conversations_do_not_wait_for_each_other(redis_url, key_prefix):
    client, locks = store(redis_url, key_prefix)
    async with locks.lock("a"):
        started = time.monotonic()
        async with locks.lock("b"):
            pass
        assert time.monotonic() - started < 0.5
    await client.close()


async def test_dead_holder_blocks_at_most_the_lifetime(redis_url, key_prefix):
    client, locks = store(redis_url, key_prefix, lifetime=0.6)
    ticket, served = await locks.issue("c2")  # taken, then never refreshed: a crashed holder
    assert served
    started = time.monotonic()
    async with locks.lock("c2"):
        waited = time.monotonic() - started
    assert 0.3 < waited < 3.0
    # The dead holder learns it lost the lock when (if ever) it comes back.
    assert await locks.release("c2", ticket) is False
    await client.close()


async def test_live_holder_keeps_its_lock_past_the_lifetime(redis_url, key_prefix):
    client, locks = store(redis_url, key_prefix, lifetime=0.6)
    entered_second = asyncio.Event()

    async def second() -> None:
        async with locks.lock("c3"):
            entered_second.set()

    async with locks.lock("c3"):
        task = asyncio.create_task(second())
        await asyncio.sleep(1.5)  # well past the lifetime; the heartbeat keeps it
        assert not entered_second.is_set()
    await asyncio.wait_for(task, 3)
    assert entered_second.is_set()
    await client.close()


async def test_tickets_grow_monotonically_as_fencing_tokens(redis_url, key_prefix):
    client, locks = store(redis_url, key_prefix)
    tickets = []
    for _ in range(3):
        ticket = await locks.acquire("c4")
        tickets.append(ticket)
        assert await locks.release("c4", ticket)
    assert tickets == sorted(tickets) and len(set(tickets)) == 3
    await client.close()
