"""Moving layout-1 keys (no hash tags) to layout 2: at start-up, from the command line.

The data is seeded under the old names as the previous release wrote it; what
is asserted is what agents, trainers and customers see afterwards.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from bot.app import create_app
from bot.conversation_log.store import ConversationLog
from bot.migrations import KeyMigration
from bot.redis_keys import LAYOUT_VERSION, Keys, LegacyKeys
from bot.review.index import ref
from bot.settings import Settings
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
FIRST, SECOND, HELD = "rest:waits-first", "rest:waits-second", "webchat:held"
DAY1 = (dt.date.today() - dt.timedelta(days=2)).isoformat()
DAY2 = (dt.date.today() - dt.timedelta(days=1)).isoformat()
LABEL = {"intent": "request_human", "entities": [], "by": "trainer0", "at": 1.0}
DECOY_ID = "x:handoff:state"  # a client's message id: its claim key matches the old pattern


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.close(close_connection_pool=True)


async def seed_layout_1(redis: Redis, prefix: str) -> str:
    """What the previous release left: two waiting, one assigned, two days of KPIs, a label.

    Returns the labelled message's review reference.
    """
    keys, old = Keys(prefix), LegacyKeys(prefix)
    log = ConversationLog(redis, keys)
    now = time.time()
    entry = await log.append_inbound(FIRST, "rest", "我要投诉，找人工", now - 600)
    await log.append_inbound(SECOND, "rest", "转人工", now - 300)
    await log.append_inbound(HELD, "webchat", "订单没到", now - 900)
    for conversation, reason, priority, queued in (
        (FIRST, "complaint", 0, now - 600),
        (SECOND, "request_human", 2, now - 300),
    ):
        await redis.hset(
            old.handoff_state(conversation),
            mapping={
                "state": "waiting",
                "reason": reason,
                "priority": priority,
                "since": queued,
                "waiting_since": queued,
                "queued_at": queued,
                "agent": "",
                "version": 1,
            },
        )
        await redis.zadd(old.handoff_queue("waiting"), {conversation: priority * 1e10 + queued})
    await redis.hset(
        old.handoff_state(HELD),
        mapping={
            "state": "assigned",
            "reason": "request_human",
            "priority": 2,
            "agent": "agent1",
            "since": now - 800,
            "claimed_at": now - 800,
            "version": 2,
        },
    )
    await redis.zadd(old.handoff_queue("assigned"), {HELD: now - 5})  # active just now
    await redis.lpush(old.handoff_queue("waits"), "40.0", "30.0")  # newest first
    for day, counters, conversations in (
        (DAY1, {"messages_in": 5, "messages_out": 7, "escalations": 2}, [FIRST, HELD]),
        (DAY2, {"messages_in": 3, "messages_out": 4}, [SECOND]),
    ):
        await redis.hset(old.stats(day), mapping=counters)
        await redis.expire(old.stats(day), 86400 * 30)
        await redis.sadd(old.stats(day, "conv"), *conversations)
        await redis.rpush(old.stats(day, "t", "queue_wait"), "12.0", "20.0")
    item = ref(FIRST, entry)
    await redis.zadd(old.review("all"), {item: now - 600})
    await redis.zadd(old.review("channel", "rest"), {item: now - 600})
    await redis.hset(old.review("labels"), item, json.dumps(LABEL))
    await redis.set(keys.message_claim("rest:decoy", DECOY_ID), "done")
    return item


async def snapshot(redis: Redis, prefix: str) -> dict[str, Any]:
    """Every key of the prefix with its type and content (and whether it expires)."""
    found: dict[str, Any] = {}
    async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
        kind = await redis.type(key)
        if kind == "hash":
            value: Any = await redis.hgetall(key)
        elif kind == "set":
            value = sorted(await redis.smembers(key))
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        elif kind == "stream":
            value = await redis.xrange(key)
        else:
            value = await redis.get(key)
        found[key] = (kind, value, await redis.ttl(key) > 0)
    return found


def assert_moved(before: dict[str, Any], after: dict[str, Any], prefix: str) -> None:
    """Every old key is under its new name with the same content; nothing else changed."""
    old = LegacyKeys(prefix)
    expected = {}
    for key, value in before.items():
        expected[old.renamed(key) or key] = value
    assert after == expected
    assert Keys(prefix).message_claim("rest:decoy", DECOY_ID) in after


async def test_an_upgraded_bot_serves_the_old_queue_kpis_and_labels(
    aiohttp_client, settings: Settings, engine, redis: Redis, logins, key_prefix: str
) -> None:
    item = await seed_layout_1(redis, key_prefix)
    before = await snapshot(redis, key_prefix)

    client = await aiohttp_client(
        create_app(settings, engine), server_kwargs={"port": settings.port}
    )

    agent = await logins.sign_in(client, "agent1", "agent")
    waiting = (await (await agent.get("/console/api/queue")).json())["waiting"]
    assert [(w["conversation"], w["position"], w["reason"]) for w in waiting] == [
        (FIRST, 0, "complaint"),
        (SECOND, 1, "request_human"),
    ]
    assert waiting[0]["last_text"] == "我要投诉，找人工"
    assert 500 < waiting[0]["waiting_seconds"] < 700
    held = await (await agent.get("/console/api/assigned")).json()
    assert HELD in json.dumps(held)
    # The agent holding it can still act on it: release it to the bot.
    assert (await agent.post(f"/console/api/conversations/{HELD}/release")).status == 200

    trainer = await logins.sign_in(client, "trainer1", "trainer")
    stats = await (await trainer.get(f"/api/stats?from={DAY1}&to={DAY2}")).json()
    assert stats["total"]["messages_in"] == 8 and stats["total"]["messages_out"] == 11
    assert stats["total"]["conversations"] == 3
    assert [d["messages_in"] for d in stats["days"]] == [5, 3]
    assert stats["days"][0]["queue_wait_p50"] is not None
    found = await (await trainer.get("/review/api/messages")).json()
    [message] = [m for m in found["messages"] if m["id"] == item.rpartition("|")[2]]
    assert message["label"] == LABEL

    keys = Keys(key_prefix)
    assert await redis.get(keys.layout) == LAYOUT_VERSION
    assert not [k for k in before if await redis.exists(k) and LegacyKeys(key_prefix).renamed(k)]
    assert await redis.exists(keys.message_claim("rest:decoy", DECOY_ID))

    # A second start (another process, a restart) finds the marker and moves nothing.
    marked = await snapshot(redis, key_prefix)
    second = await aiohttp_client(
        create_app(settings, engine), server_kwargs={"port": free_port()}
    )
    assert (await second.get("/healthz")).status == 200
    assert await KeyMigration(redis, keys).once() is None
    # The operator's command rescans whatever the marker says: nothing left to move.
    assert not (await KeyMigration(redis, keys).locked()).done
    assert {k: v for k, v in (await snapshot(redis, key_prefix)).items() if "session" not in k} == {
        k: v for k, v in marked.items() if "session" not in k
    }


async def test_the_move_keeps_every_key_whole_and_runs_twice_alike(
    redis: Redis, key_prefix: str
) -> None:
    await seed_layout_1(redis, key_prefix)
    before = await snapshot(redis, key_prefix)
    keys = Keys(key_prefix)

    report = await KeyMigration(redis, keys).once()
    assert report is not None and report.done["moved"] == len(
        [k for k in before if LegacyKeys(key_prefix).renamed(k)]
    )
    after = await snapshot(redis, key_prefix)
    del after[keys.layout]
    assert_moved(before, after, key_prefix)

    again = await KeyMigration(redis, keys).run()
    assert not again.done
    rerun = await snapshot(redis, key_prefix)
    del rerun[keys.layout]
    assert rerun == after


async def test_concurrent_runs_move_each_key_once(redis: Redis, key_prefix: str) -> None:
    """Start-ups of several processes at once, and runs that ignore the lock."""
    await seed_layout_1(redis, key_prefix)
    before = await snapshot(redis, key_prefix)
    keys = Keys(key_prefix)

    results = await asyncio.gather(
        *(KeyMigration(redis, keys).once() for _ in range(3)),
        *(KeyMigration(redis, keys).run() for _ in range(3)),
    )
    after = await snapshot(redis, key_prefix)
    del after[keys.layout]
    assert_moved(before, after, key_prefix)
    assert sum(1 for r in results[:3] if r is not None) == 1  # one start-up moved, two waited
    assert not [k for k in after if k.startswith(keys.shared("migrating", ""))]


async def test_keys_the_new_version_wrote_first_are_merged_not_overwritten(
    redis: Redis, key_prefix: str
) -> None:
    """A bot of the new version served before the move (Redis was down at its start)."""
    await seed_layout_1(redis, key_prefix)
    keys, old = Keys(key_prefix), LegacyKeys(key_prefix)
    now = time.time()
    newcomer = "rest:newcomer"
    await redis.zadd(keys.handoff_waiting, {newcomer: 2e10 + now + 1, SECOND: 2e10 + now})
    await redis.hset(keys.handoff_state(SECOND), mapping={"state": "bot", "version": 5})
    await redis.lpush(keys.handoff_waits, "5.0")
    await redis.hset(keys.stats(DAY2), mapping={"messages_in": 2, "messages_out": 1})
    await redis.expire(keys.stats(DAY2), 86400 * 30)
    await redis.sadd(keys.stats(DAY2, "conv"), newcomer)
    await redis.rpush(keys.stats(DAY2, "t", "queue_wait"), "99.0")
    # A crashed earlier run left one old key's data half-way, beside its new name.
    await redis.rename(old.stats(DAY1, "conv"), keys.migrating(keys.stats(DAY1, "conv")))

    report = await KeyMigration(redis, keys).once()
    assert report is not None and report.done["merged"] >= 5 and report.done["dropped"] == 1

    queue = await redis.zrange(keys.handoff_waiting, 0, -1, withscores=True)
    assert [c for c, _ in queue] == [FIRST, SECOND, newcomer]
    assert dict(queue)[SECOND] == 2e10 + now  # the newer entry kept its place
    assert await redis.hgetall(keys.handoff_state(SECOND)) == {"state": "bot", "version": "5"}
    assert await redis.lrange(keys.handoff_waits, 0, -1) == ["5.0", "30.0", "40.0"]
    assert await redis.hgetall(keys.stats(DAY2)) == {"messages_in": "5", "messages_out": "5"}
    assert await redis.ttl(keys.stats(DAY2)) > 0
    assert await redis.smembers(keys.stats(DAY2, "conv")) == {SECOND, newcomer}
    samples = await redis.lrange(keys.stats(DAY2, "t", "queue_wait"), 0, -1)
    assert samples == ["12.0", "20.0", "99.0"]
    assert await redis.smembers(keys.stats(DAY1, "conv")) == {FIRST, HELD}
    leftovers = [k async for k in redis.scan_iter(match=f"{key_prefix}:*")]
    assert not [k for k in leftovers if LegacyKeys(key_prefix).renamed(k)]
    assert not [k for k in leftovers if k.startswith(keys.shared("migrating", ""))]


def test_a_merge_stays_on_the_new_keys_slot() -> None:
    keys = Keys("kefu")
    for new in (
        keys.stats(DAY1, "conv"),
        keys.review("labels"),
        keys.handoff_waiting,
        keys.handoff_state("wechat:{o*}"),
    ):
        staging = keys.migrating(new)
        assert key_slot(staging.encode()) == key_slot(new.encode())
        assert keys.migrated(staging) == new
        assert not staging.startswith((keys.stats(""), keys.review("")))


def test_only_keys_the_old_release_wrote_are_renamed() -> None:
    keys, old = Keys("kefu"), LegacyKeys("kefu")
    odd = "wechat:o{x}*?% 客户"
    assert old.renamed(old.handoff_state(odd)) == keys.handoff_state(odd)
    assert old.renamed(old.stats(DAY1, "conv")) == keys.stats(DAY1, "conv")
    assert old.renamed(old.review("word", "退货")) == keys.review("word", "退货")
    assert old.renamed(old.handoff_queue("waits")) == keys.handoff_waits
    for other in (
        keys.message_claim("rest:a", DECOY_ID),
        keys.handoff(odd),
        keys.handoff_state(odd),
        keys.stats(DAY1),
        "kefu:stats:",
        "kefu:statsx:1",
        keys.conversations,
    ):
        assert old.renamed(other) is None, other


async def test_the_command_line_dry_run_changes_nothing_then_moves(
    redis: Redis, redis_url: str, key_prefix: str
) -> None:
    await seed_layout_1(redis, key_prefix)
    before = await snapshot(redis, key_prefix)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": redis_url,
        "BOT_KEY_PREFIX": key_prefix,
    }

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", "migrate-keys", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    dry = await asyncio.to_thread(command, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    moves = len([k for k in before if LegacyKeys(key_prefix).renamed(k)])
    assert f"{moves} would be renamed" in dry.stdout
    assert await snapshot(redis, key_prefix) == before

    done = await asyncio.to_thread(command)
    assert done.returncode == 0, done.stderr
    assert f"{moves} were renamed" in done.stdout
    after = await snapshot(redis, key_prefix)
    assert after.pop(Keys(key_prefix).layout)[1] == LAYOUT_VERSION
    assert_moved(before, after, key_prefix)
