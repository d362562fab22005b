"""Redis Sentinel: a real master, replica and three Sentinels on loopback, and a failover.

While the master is gone every request gets 503 `storage_unavailable`; once
Sentinel has promoted the replica the same process serves again by itself:
messages (conversation lock, Rasa tracker, log), the event relay and the
replica barrier, with nothing written before the failover missing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.ha_local import RedisHA
from bot.app import create_app
from bot.app_keys import EVENTS, HUB, REDIS, REPLICA_BARRIER
from bot.redis_connection import connect
from bot.settings import Settings
from tests.helpers import say, timeline


@pytest.fixture
def ha(tmp_path: Path) -> Iterator[RedisHA]:
    topology = RedisHA(tmp_path / "redis")
    topology.start()
    try:
        yield topology
    finally:
        topology.stop()


def sentinel_settings(settings: Settings, ha: RedisHA) -> Settings:
    env = {
        "REDIS_SENTINELS": ha.sentinel_env,
        "REDIS_SENTINEL_MASTER": "kefu",
        "BOT_REDIS_TIMEOUT": "0.5",
    }
    sentinel = Settings.from_env(env, dotenv=None)
    return settings.with_(
        redis_sentinels=sentinel.redis_sentinels,
        redis_sentinel_master=sentinel.redis_sentinel_master,
        redis_timeout=sentinel.redis_timeout,
        redis_wait_replicas=sentinel.redis_wait_replicas,
    )


async def until_ok(client, sender: str, text: str, timeout: float) -> tuple[float, list]:  # type: ignore[no-untyped-def]
    """Post until the bot answers 200; (seconds it took, replies). Only 503s are allowed."""
    started = time.monotonic()
    while True:
        resp = await client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
        if resp.status == 200:
            return time.monotonic() - started, await resp.json()
        assert resp.status == 503, await resp.text()
        assert (await resp.json())["error"] == "storage_unavailable"
        assert time.monotonic() - started < timeout, "the bot did not recover"
        await asyncio.sleep(0.1)


async def test_client_finds_the_master_through_sentinels_and_waits_for_the_replica(
    settings, ha
):
    own = sentinel_settings(settings, ha)
    assert own.redis_wait_replicas == 1  # with Sentinel, answers wait for a replica by default
    redis = connect(own)
    try:
        await redis.set(f"{own.key_prefix}:probe", "1")
        assert (await redis.info("server"))["tcp_port"] == ha.master_port()
    finally:
        await redis.close(close_connection_pool=True)


async def test_failover_gives_503_then_recovers_by_itself(
    aiohttp_client, settings, engine, ha, admin_headers
):
    own = sentinel_settings(settings, ha)
    app = create_app(own, engine)
    client = await aiohttp_client(app, server_kwargs={"port": own.port})
    heard: list[dict] = []
    app[HUB].listeners["ha_probe"].append(heard.append)

    async def relayed() -> bool:
        # Pub/sub keeps nothing for a subscriber not there yet: the relay subscribes
        # in the background (again, if its first connection timed out), so ask until
        # it hears.
        await app[EVENTS].publish("ha_probe", "probe")
        await asyncio.sleep(0.2)
        return bool(heard)

    await _until_async(relayed, 15)
    assert await app[REPLICA_BARRIER].wait()
    await say(client, "ha1", "你好")
    assert (await client.get("/readyz")).status == 200

    old = await asyncio.to_thread(ha.kill_master)
    resp = await client.post("/webhooks/rest/webhook", json={"sender": "ha1", "message": "在吗"})
    assert resp.status == 503
    assert (await resp.json())["error"] == "storage_unavailable"
    assert (await client.get("/readyz")).status == 503
    assert (await client.get("/healthz")).status == 200

    new = await asyncio.to_thread(ha.wait_failover, old)
    promoted = time.monotonic()
    # The same conversation: its lock, its tracker and its log all on the new master.
    _, replies = await until_ok(client, "ha1", "你好", timeout=20)
    recovered = time.monotonic() - promoted
    assert replies and replies[0]["text"]
    assert recovered < 10, f"{recovered:.1f} s after the promotion"
    assert (await client.get("/readyz")).status == 200
    assert (await app[REDIS].info("server"))["tcp_port"] == new

    # Written before the failover (acknowledged after WAIT): still there.
    inbound = [
        m for m in await timeline(client, "rest:ha1", admin_headers) if m["direction"] == "in"
    ]
    assert [m["text"] for m in inbound][:1] == ["你好"]
    assert inbound[-1]["text"] == "你好"

    # The event relay subscribed again, to the new master.
    heard.clear()
    await _until_async(relayed, 15)


async def test_barrier_answers_without_waiting_when_no_replica_is_left(settings, ha):
    own = sentinel_settings(settings, ha).with_(redis_wait_timeout=0.3)
    app = create_app(own)
    # Only the Redis client and the barrier: enter the first cleanup context by hand.
    context = app.cleanup_ctx[0](app)
    await context.__anext__()
    try:
        barrier = app[REPLICA_BARRIER]
        assert await barrier.wait()
        replica = next(p for p in ha.nodes if p != ha.master_port())
        await asyncio.to_thread(ha.nodes[replica].kill9)
        started = time.monotonic()
        assert not await barrier.wait()  # waited the timeout, then gave up
        assert 0.2 < time.monotonic() - started < 2
        started = time.monotonic()
        assert not await barrier.wait()  # degraded: no more waiting for a while
        assert time.monotonic() - started < 0.2
    finally:
        with pytest.raises(StopAsyncIteration):
            await context.__anext__()


async def _until_async(check, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
