"""Agents' loads counted again at start-up: conversations held from before loads were kept."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from bot.app import create_app
from bot.app_keys import STATES
from bot.redis_keys import Keys
from tests.helpers import handoff_service


@pytest.fixture
async def redis(redis_url):  # type: ignore[no-untyped-def]
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.close()


async def _start(settings, engine) -> TestClient:  # type: ignore[no-untyped-def]
    client = TestClient(TestServer(create_app(settings, engine)))
    await client.start_server()
    return client


async def test_loads_held_from_before_count_at_start_up_and_a_second_start_changes_nothing(
    redis, key_prefix, settings, engine
):
    keys = Keys(key_prefix)
    service = handoff_service(redis, keys)
    for n, agent in enumerate(["laowang", "laowang", "xiaoli"]):
        await service.request(f"rest:held{n}", "request_human", "人工")
        await service.claim(f"rest:held{n}", agent)
    await service.request("rest:done", "request_human", "人工")
    await service.claim("rest:done", "xiaoli")
    await service.close("rest:done", "已解决", "xiaoli")
    # As a deployment from before loads were kept left it: no load at all for
    # laowang, and a counter that drifted for an agent who holds nothing now.
    await redis.hdel(keys.handoff_load, "laowang", "xiaoli")
    await redis.hset(keys.handoff_load, "xiaozhang", 4)
    # An entry of the assigned set whose conversation went back to the bot.
    await redis.zadd(keys.handoff_assigned, {"rest:done": 1})
    given = await redis.hgetall(keys.handoff_given)

    first = await _start(settings, engine)
    try:
        assert await first.app[STATES].loads() == {"laowang": 2, "xiaoli": 1}
        assert await redis.zrange(keys.handoff_assigned, 0, -1) == [
            "rest:held0",
            "rest:held1",
            "rest:held2",
        ]
    finally:
        await first.close()
    load = await redis.hgetall(keys.handoff_load)

    # Two more processes start at once: the counts stay as they are.
    again = await asyncio.gather(_start(settings, engine), _start(settings, engine))
    try:
        assert await redis.hgetall(keys.handoff_load) == load == {"laowang": "2", "xiaoli": "1"}
        assert await redis.hgetall(keys.handoff_given) == given
        recount = await service.states.recount_loads()
        assert (recount.agents, recount.stale) == (0, 0)
    finally:
        for client in again:
            await client.close()


async def test_a_recount_sees_a_claim_made_after_it_listed_the_assigned(redis, key_prefix):
    """The listing is checked inside the step: a conversation assigned since counts too."""
    keys = Keys(key_prefix)
    service = handoff_service(redis, keys)
    await service.request("rest:early", "request_human", "人工")
    await service.claim("rest:early", "laowang")
    await service.request("rest:late", "request_human", "人工")
    real_zrange = redis.zrange
    claimed = False

    async def zrange_then_claim(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal claimed
        listed = await real_zrange(*args, **kwargs)
        if not claimed:  # another process claims between our listing and the step
            claimed = True
            await service.claim("rest:late", "laowang")
        return listed

    await redis.hdel(keys.handoff_load, "laowang")
    redis.zrange = zrange_then_claim
    try:
        await service.states.recount_loads()
    finally:
        redis.zrange = real_zrange
    assert await service.states.loads() == {"laowang": 2}
