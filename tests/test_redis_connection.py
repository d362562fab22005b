"""Settings for reaching Redis: one URL, or Sentinels with passwords."""

from __future__ import annotations

import asyncio
import signal

import pytest
import redis as redis_sync
import redis.exceptions as redis_async
from redis.asyncio.sentinel import SentinelConnectionPool

from bot.redis_connection import AutoPipelined, SentinelMaster, connect, describe
from bot.settings import Settings, SettingsError


def test_sentinel_settings_are_parsed_and_answers_then_wait_for_a_replica():
    s = Settings.from_env(
        {
            "REDIS_SENTINELS": "10.0.0.1:26379, sentinel-2:26380,[::1]:26381",
            "REDIS_SENTINEL_MASTER": "shop",
            "REDIS_PASSWORD": "p1",
            "REDIS_SENTINEL_PASSWORD": "p2",
        },
        dotenv=None,
    )
    assert s.redis_sentinels == (("10.0.0.1", 26379), ("sentinel-2", 26380), ("::1", 26381))
    assert (s.redis_sentinel_master, s.redis_password, s.redis_sentinel_password) == (
        "shop",
        "p1",
        "p2",
    )
    assert s.redis_wait_replicas == 1
    assert "p1" not in describe(s) and "master 'shop' of Sentinels" in describe(s)


def test_a_single_redis_does_not_wait_for_replicas_and_its_url_is_used():
    s = Settings.from_env({"REDIS_URL": "redis://:secret@db:6390/2"}, dotenv=None)
    assert s.redis_sentinels == () and s.redis_wait_replicas == 0
    assert describe(s) == "db:6390/2"


@pytest.mark.parametrize("value", ["host", "host:", ":26379", "host:0", "host:port", "h:70000"])
def test_malformed_sentinel_addresses_are_refused_by_name(value):
    with pytest.raises(SettingsError, match="REDIS_SENTINELS"):
        Settings.from_env({"REDIS_SENTINELS": value}, dotenv=None)


def test_wait_replicas_must_be_a_count():
    with pytest.raises(SettingsError, match="BOT_REDIS_WAIT_REPLICAS"):
        Settings.from_env({"BOT_REDIS_WAIT_REPLICAS": "-1"}, dotenv=None)


async def test_sentinel_client_uses_the_passwords_and_closes_its_sentinel_connections():
    s = Settings.from_env(
        {"REDIS_SENTINELS": "127.0.0.1:1", "REDIS_PASSWORD": "p1", "REDIS_SENTINEL_PASSWORD": "p2"},
        dotenv=None,
    )
    client = connect(s)
    assert isinstance(client, SentinelMaster) and client.sentinel is not None
    assert client.connection_pool.connection_kwargs["password"] == "p1"
    sentinel = client.sentinel.sentinels[0]
    assert sentinel.connection_pool.connection_kwargs["password"] == "p2"
    await client.close(close_connection_pool=True)


def _client(private_redis) -> AutoPipelined:  # type: ignore[no-untyped-def]
    s = Settings.from_env({"REDIS_URL": private_redis.url}, dotenv=None)
    client = connect(s)
    assert isinstance(client, AutoPipelined)
    return client


def _connections(private_redis) -> int:  # type: ignore[no-untyped-def]
    """Clients connected to the private server, besides the one asking."""
    observer = redis_sync.Redis(port=private_redis.port)
    try:
        return len(observer.client_list()) - 1
    finally:
        observer.close()


async def test_commands_sent_at_once_share_one_round_trip_and_keep_their_own_answers(
    private_redis,
):
    client = _client(private_redis)
    try:
        await client.set("text", "hello")
        await client.hset("hash", "field", "1")
        # Fifty tasks at once: one connection (one write, one read), not fifty.
        answers = await asyncio.gather(
            *(client.incr("counter") for _ in range(50)),
            client.get("text"),
            client.hgetall("hash"),
            client.zrange("missing", 0, -1, withscores=True),
            client.hget("text", "field"),  # wrong type: this caller's error only
            client.set("flag", True),  # not sendable: this caller's error only
            client.set("值", "中文"),
            client.set("pi", 3.14159),
            client.set("raw", b"\x00\xff"),
            return_exceptions=True,
        )
        assert sorted(answers[:50]) == list(range(1, 51))  # type: ignore[type-var]
        assert answers[50:53] == ["hello", {"field": "1"}, []]
        assert isinstance(answers[53], redis_async.ResponseError)
        assert "WRONGTYPE" in str(answers[53])
        assert isinstance(answers[54], redis_async.DataError)
        assert answers[55:58] == [True, True, True]
        assert await client.mget("值", "pi") == ["中文", "3.14159"]
        assert _connections(private_redis) == 1
        raw = redis_sync.Redis(port=private_redis.port)
        assert raw.get("raw") == b"\x00\xff" and raw.exists("flag") == 0
        raw.close()
    finally:
        await client.close(close_connection_pool=True)


async def test_scripts_reload_and_a_caller_giving_up_does_not_cut_off_the_others(
    private_redis,
):
    client = _client(private_redis)
    try:
        script = client.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        assert await script(keys=["n"], args=[2]) == 2
        await client.script_flush()  # NOSCRIPT: loaded again, as with a plain client
        assert await asyncio.gather(script(keys=["n"], args=[3]), client.get("n")) == [5, "2"]

        gone = asyncio.ensure_future(client.incr("n"))
        kept = asyncio.ensure_future(client.incr("m"))
        await asyncio.sleep(0)  # both queued
        gone.cancel()
        assert await kept == 1
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert await client.get("m") == "1"
    finally:
        await client.close(close_connection_pool=True)


async def test_every_queued_caller_hears_that_redis_is_gone(private_redis):
    client = _client(private_redis)
    try:
        assert await client.ping()
        private_redis.stop()
        answers = await asyncio.gather(
            *(client.get(f"k{i}") for i in range(5)), return_exceptions=True
        )
        assert all(isinstance(a, redis_async.ConnectionError) for a in answers), answers
        private_redis.start()
        assert await asyncio.gather(client.set("back", 1), client.get("back")) == [True, "1"]
    finally:
        await client.close(close_connection_pool=True)


async def test_callers_pipelines_join_the_queue_in_order_and_transactions_stay_apart(
    private_redis,
):
    client = _client(private_redis)
    try:

        async def own_pipeline(i: int) -> list[object]:
            async with client.pipeline(transaction=False) as pipe:
                pipe.rpush("order", f"{i}a").rpush("order", f"{i}b").lrange("order", 0, -1)
                return await pipe.execute()  # type: ignore[no-any-return]

        async def transaction() -> list[object]:
            async with client.pipeline(transaction=True) as pipe:
                pipe.incr("t").incr("t")
                return await pipe.execute()  # type: ignore[no-any-return]

        answers = await asyncio.gather(*(own_pipeline(i) for i in range(10)), transaction())
        assert answers[-1] == [1, 2]
        stored = await client.lrange("order", 0, -1)
        for i, answer in enumerate(answers[:-1]):
            position = stored.index(f"{i}a")
            assert stored[position + 1] == f"{i}b"  # nobody's command came in between
            assert answer[:2] == [position + 1, position + 2]
        # one connection for the ten pipelines, one for the transaction
        assert _connections(private_redis) == 2

        async with client.pipeline(transaction=False) as pipe:
            pipe.set("s", "x").hget("s", "f").get("s")
            with pytest.raises(redis_async.ResponseError, match="Command # 2"):
                await pipe.execute()
        async with client.pipeline(transaction=False) as pipe:
            answers = await pipe.set("s", "y").hget("s", "f").get("s").execute(raise_on_error=False)
            assert answers[0] is True and answers[2] == "y"
            assert isinstance(answers[1], redis_async.ResponseError)
    finally:
        await client.close(close_connection_pool=True)


async def test_a_batch_that_times_out_fails_its_callers_and_leaves_no_stale_answers(
    private_redis,
):
    client = _client(private_redis)
    timeout = client.connection_pool.connection_kwargs["socket_timeout"]
    assert timeout, "the service's client reads with a timeout"
    try:
        await client.set("a", "1")
        await client.set("b", "2")
        assert private_redis.proc is not None
        private_redis.proc.send_signal(signal.SIGSTOP)  # Redis stops answering
        try:
            answers = await asyncio.gather(
                client.get("a"), client.get("b"), client.incr("n"), return_exceptions=True
            )
        finally:
            private_redis.proc.send_signal(signal.SIGCONT)
        assert all(isinstance(a, redis_async.TimeoutError) for a in answers), answers
        # The answers that arrive late are never read as someone else's.
        assert await asyncio.gather(client.get("b"), client.get("a"), client.get("n")) == [
            "2",
            "1",
            "1",
        ]
    finally:
        await client.close(close_connection_pool=True)


async def test_a_batch_on_a_master_demoted_under_it_drops_the_connection(private_redis):
    """A master demoted while a connection to it is open answers writes with
    READONLY: the batch fails as a lost connection (a 503 for the request) and
    the connection is not kept, so the next one asks the Sentinels again."""

    class Sentinels:  # what the Sentinels answer: this server is the master
        async def discover_master(self, service_name: str) -> tuple[str, int]:
            return "127.0.0.1", private_redis.port

    pool = SentinelConnectionPool("kefu", Sentinels(), decode_responses=True, socket_timeout=2)
    client = AutoPipelined(connection_pool=pool)
    raw = redis_sync.Redis(port=private_redis.port)
    try:
        assert await asyncio.gather(client.set("a", 1), client.set("b", 2)) == [True, True]
        raw.replicaof("127.0.0.1", 1)  # demoted (its new master never answers)
        with pytest.raises(redis_async.ConnectionError) as lost:
            await asyncio.gather(client.set("a", 3), client.set("b", 4))
        assert not isinstance(lost.value, redis_async.ReadOnlyError)
        assert _connections(private_redis) == 1  # only `raw`: the client's was dropped
        raw.replicaof("NO", "ONE")
        assert await asyncio.gather(client.set("a", 5), client.get("a")) == [True, "5"]
    finally:
        raw.close()
        await client.close(close_connection_pool=True)
