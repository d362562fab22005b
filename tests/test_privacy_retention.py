"""Masking personal numbers in the log, and forgetting conversations after the retention period."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from redis.asyncio import Redis

from bot.app import create_app
from bot.app_keys import CONVERSATION_LOG, REDIS, SETTINGS
from bot.conversation_log.store import ConversationLog
from bot.feedback.store import FeedbackLog
from bot.handoff.states import ConversationStates
from bot.privacy import mask
from bot.redis_keys import Keys
from bot.retention import Retention
from bot.review.index import Query, ReviewIndex
from tests.helpers import say

DAY = 86400


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("我手机13812345678", "我手机138****5678"),
        ("电话 +86 138-1234-5678", "电话 138****5678"),
        ("身份证110105199001011234", "身份证110105********1234"),
        ("11010519900101123X", "110105********123X"),
        ("邮箱 zhangsan@example.com", "邮箱 z***@example.com"),
        ("订单202611240007654321", "订单202611240007654321"),  # an order number stays
        ("SF1234567890123", "SF1234567890123"),
        ("123456789012", "123456789012"),
    ],
)
def test_mask(text, masked):
    assert mask(text) == masked


async def test_with_masking_the_log_holds_masked_text_and_the_nlu_the_original(
    aiohttp_client, settings, engine
):
    own = settings.with_(mask_pii=True)
    client = await aiohttp_client(create_app(own, engine), server_kwargs={"port": own.port})
    text = "我的快递到哪了，手机13812345678"
    assert await say(client, "m1", text)
    (inbound,) = [
        e for e in await client.app[CONVERSATION_LOG].timeline("rest:m1") if e["direction"] == "in"
    ]
    assert inbound["text"] == "我的快递到哪了，手机138****5678"
    assert inbound["intent"] == "order_status"
    tracker = orjson.loads(
        await client.app[REDIS].get(Keys(own.key_prefix).tracker("rest:m1"))  # what Rasa was given
    )
    assert any(e.get("text") == text for e in tracker["events"] if e["event"] == "user")
    await say(client, "m2", "质量太差了，我要投诉，电话13812345678")
    redis = client.app[REDIS]
    (_, fields), *_ = await redis.xrange(Keys(own.key_prefix).feedback)
    assert "13812345678" not in fields["text"] and "138****5678" in fields["text"]


async def test_retention_removes_exactly_what_has_expired(redis_url, key_prefix):
    redis = Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(key_prefix)
    log, index = ConversationLog(redis, keys), ReviewIndex(redis, keys)
    states, feedback = ConversationStates(redis, keys), FeedbackLog(redis, keys)
    now = time.time()

    async def conversation(cid: str, age_days: float, text: str) -> None:
        entry = await log.append_inbound(cid, "webchat", text, now=now - age_days * DAY)
        await index.add(cid, entry, "webchat", text, "order_status", 0.3)
        await redis.set(keys.tracker(cid), "{}")

    await conversation("old1", 40, "我的快递到哪了")
    await conversation("old2", 31, "快递丢了")
    await conversation("held", 45, "快递呢")  # people still have it
    await states.escalate("held", "request_human")
    await conversation("recent", 29, "快递还没到")
    old_id = f"{int((now - 40 * DAY) * 1000)}-0"  # a record written 40 days ago
    await redis.xadd(keys.feedback, {"kind": "praise", "text": "很好"}, id=old_id)
    await feedback.record("complaint", "old1", "太慢了")

    removed = await Retention(redis, keys, index, days=30).expire(now=now)
    assert sorted(removed) == ["old1", "old2"]
    for cid in ("old1", "old2"):
        assert await redis.exists(keys.conv_log(cid), keys.conv_meta(cid)) == 0
        assert await redis.exists(keys.tracker(cid)) == 0
    assert [s.id for s in await log.summaries(["held", "recent"])] == ["held", "recent"]
    assert sorted(await redis.zrange(keys.conversations, 0, -1)) == ["held", "recent"]
    total, refs = await index.find(Query(text="快递"))
    assert total == 2 and {r.split("|")[0] for r in refs} == {"held", "recent"}
    total, _ = await index.find(Query(queue=True))
    assert total == 2
    # The feedback stream keeps the last 30 days: the 40-day-old record is gone.
    assert [f["kind"] for _, f in await redis.xrange(keys.feedback)] == ["complaint"]
    assert await Retention(redis, keys, index, days=30).expire(now=now + 2 * DAY) == ["recent"]
    assert len(await redis.xrange(keys.feedback)) == 1  # two days old: kept
    await redis.close()


async def test_the_running_bot_schedules_retention(aiohttp_client, settings, engine):
    client = await aiohttp_client(
        create_app(settings, engine), server_kwargs={"port": settings.port}
    )
    lock = f"{client.app[SETTINGS].key_prefix}:retention:lock"
    for _ in range(50):
        if await client.app[REDIS].exists(lock):
            break
        await asyncio.sleep(0.05)
    assert await client.app[REDIS].exists(lock)  # one process ran it and holds the hour
