"""Agents' loads counted again at start-up: conversations held from before loads were kept."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from bot import app as app_module
from bot.app import create_app
from bot.app_keys import STATES
from bot.content.messages import Messages
from bot.handoff import load
from bot.handoff.load import LoadCounter
from bot.redis_keys import Keys
from tests.fake_wechat import FakeWeChat
from tests.helpers import CONTENT, handoff_service
from tests.test_wechat import APPID, SECRET, wechat_settings


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
    assert await redis.hgetall(keys.handoff_load) == {"laowang": "2", "xiaoli": "1"}

    # The counters drift again; two more processes start at once: both recount,
    # and the counts end as the states say, whichever step runs last.
    await redis.hset(keys.handoff_load, mapping={"laowang": 7, "xiaozhang": 2})
    await redis.hdel(keys.handoff_load, "xiaoli")
    again = await asyncio.gather(_start(settings, engine), _start(settings, engine))
    try:
        assert await redis.hgetall(keys.handoff_load) == {"laowang": "2", "xiaoli": "1"}
        assert await redis.hgetall(keys.handoff_given) == given
        recount = await service.states.recount_loads()
        assert (recount.agents, recount.stale) == (0, 0)
    finally:
        for client in again:
            await client.close()


async def test_a_recount_sees_a_claim_made_after_it_listed_the_assigned(
    redis, key_prefix, redis_url
):
    """The listing is checked inside the step: a conversation assigned since counts too."""
    keys = Keys(key_prefix)
    service = handoff_service(redis, keys)
    await service.request("rest:early", "request_human", "人工")
    await service.claim("rest:early", "laowang")
    await service.request("rest:late", "request_human", "人工")
    await redis.hdel(keys.handoff_load, "laowang")
    counter = LoadCounter(redis, keys)
    listed = list(await redis.zrange(keys.handoff_assigned, 0, -1))
    # Another process (its own client) claims between our listing and the step.
    second = Redis.from_url(redis_url, decode_responses=True)
    try:
        await handoff_service(second, keys).claim("rest:late", "laowang")
    finally:
        await second.close()
    assert await counter.count(listed) is None  # the listing is stale: nothing written
    assert await service.states.loads() == {"laowang": 1}  # the claim's own count only
    await counter.recount()  # lists again
    assert await service.states.loads() == {"laowang": 2}


async def test_a_recount_that_cannot_finish_never_stops_the_start(
    redis, key_prefix, settings, engine, monkeypatch
):
    """Conversations assigned faster than a recount lists them: the bot starts anyway,
    and the recount is done in the background once it can be."""
    keys = Keys(key_prefix)
    service = handoff_service(redis, keys)
    await service.request("rest:held", "request_human", "人工")
    await service.claim("rest:held", "laowang")
    await redis.hdel(keys.handoff_load, "laowang")
    monkeypatch.setattr(load, "ATTEMPTS", 0)  # every listing goes stale at once
    monkeypatch.setattr(app_module, "LOAD_RETRY_EVERY", 0.1)
    client = await _start(settings, engine)
    try:
        assert (await client.get("/healthz")).status == 200  # serving
        await asyncio.sleep(0.3)
        assert await redis.hgetall(keys.handoff_load) == {}  # not done yet
        monkeypatch.setattr(load, "ATTEMPTS", 5)  # assignments calm down
        for _ in range(50):
            if await redis.hgetall(keys.handoff_load) == {"laowang": "1"}:
                break
            await asyncio.sleep(0.1)
        assert await redis.hgetall(keys.handoff_load) == {"laowang": "1"}
    finally:
        await client.close()


async def test_a_wechat_customer_assigned_as_the_bot_starts_hears_a_person_joined(
    redis, key_prefix, settings, engine, aiohttp_server
):
    """Assigning waits for every channel's sender: WeChat's is registered last."""
    fake = FakeWeChat(APPID, SECRET)
    fake.server = await aiohttp_server(fake.app())  # type: ignore[attr-defined]
    keys = Keys(key_prefix)
    service = handoff_service(redis, keys)
    await service.request("wechat:o-start", "request_human", "人工")
    await service.console_open("xiaoli", "another-process", time.time() + 60)  # online, free
    own = wechat_settings(settings, fake, auto_assign=True, handoff_sweep_seconds=0.2)
    client = await _start(own, engine)
    try:
        for _ in range(50):
            if fake.texts_to("o-start"):
                break
            await asyncio.sleep(0.1)
        state = await client.app[STATES].get("wechat:o-start")
        assert (state.state, state.agent) == ("assigned", "xiaoli")
        joined = Messages.load(CONTENT / "messages.yml").variants["agent_joined"]
        assert fake.texts_to("o-start") and fake.texts_to("o-start")[0] in joined
    finally:
        await client.close()
