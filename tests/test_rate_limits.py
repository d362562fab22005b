"""Rate limits per conversation and per address, and what one conversation may make us keep.

Real Redis, real HTTP; the limits are the service's own, set small.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from redis.asyncio import Redis

from bot.app import create_app
from bot.app_keys import CONVERSATION_LOG
from bot.content.messages import Messages
from bot.engine.tracker_store import compacted
from bot.redis_keys import Keys
from bot.security.ratelimit import RateLimits
from bot.settings import Rate
from tests.conftest import ROOT, free_port
from tests.helpers import Visitor
from tests.test_wechat import WeChatServer, fake, make_client, text_xml  # noqa: F401

MESSAGES = Messages.load(ROOT / "nlu_data" / "messages.yml")
LIMITED = set(MESSAGES.variants["rate_limited"])


@pytest.fixture
async def limited(aiohttp_client, settings, engine):  # type: ignore[no-untyped-def]
    async def make(**changes: object):  # type: ignore[no-untyped-def]
        own = settings.with_(port=free_port(), **changes)
        return await aiohttp_client(create_app(own, engine), server_kwargs={"port": own.port})

    return make


async def test_webchat_over_the_conversation_limit_gets_429_in_chinese_and_nothing_is_kept(
    limited, caplog
):
    client = await limited(rate_conversation=Rate(3, 60.0))
    caplog.set_level(logging.WARNING)
    async with Visitor(client) as visitor, Visitor(client) as other:
        conversation = await visitor.open()
        for _ in range(3):
            assert (await visitor.send("你好")).status == 200
        refused = await visitor.send("在吗")
        assert refused.status == 429
        body = await refused.json()
        assert body["error"] == "rate_limited" and body["message"] in LIMITED
        assert 1 <= int(refused.headers["Retry-After"]) <= 20
        assert any("rate limit" in r.getMessage() for r in caplog.records)
        # Not processed: the log holds the three accepted messages only.
        timeline = await client.app[CONVERSATION_LOG].timeline(conversation)
        assert [e["text"] for e in timeline if e["direction"] == "in"] == ["你好"] * 3
        # Another customer is not affected.
        await other.open()
        assert (await other.send("你好")).status == 200


async def test_many_conversations_from_one_address_hit_the_address_limit(limited):
    client = await limited(rate_address=Rate(4, 60.0))
    statuses = []
    for i in range(6):
        resp = await client.post(
            "/webhooks/rest/webhook", json={"sender": f"made-up-{i}", "message": "你好"}
        )
        statuses.append(resp.status)
    assert statuses == [200, 200, 200, 200, 429, 429]


async def test_rest_flood_from_one_sender_is_refused_with_retry_after(limited):
    client = await limited(rate_conversation=Rate(5, 60.0))
    responses = await asyncio.gather(
        *(
            client.post("/webhooks/rest/webhook", json={"sender": "flood", "message": "你好"})
            for _ in range(30)
        )
    )
    statuses = [r.status for r in responses]
    assert statuses.count(200) == 5 and statuses.count(429) == 25
    assert all("Retry-After" in r.headers for r in responses if r.status == 429)
    log = client.app[CONVERSATION_LOG]
    assert len([e for e in await log.timeline("rest:flood") if e["direction"] == "in"]) == 5


async def test_limits_hold_across_processes(redis_url, key_prefix):
    # Two Redis clients stand for two bot processes deciding at the same moment.
    clients = [Redis.from_url(redis_url, decode_responses=True) for _ in range(2)]
    limits = [
        RateLimits(c, Keys(key_prefix), MESSAGES, Rate(10, 60.0), Rate(0, 1.0)) for c in clients
    ]
    decisions = await asyncio.gather(*(limits[i % 2].conversation("c1") for i in range(50)))
    assert sum(d.allowed for d in decisions) == 10
    assert sum(d.allowed for d in await asyncio.gather(limits[0].conversation("c2"))) == 1
    for c in clients:
        await c.close()


async def test_wechat_excess_is_answered_once_and_not_processed(make_client, caplog):  # noqa: F811
    client = await make_client(rate_conversation=Rate(2, 60.0))
    caplog.set_level(logging.WARNING)
    wechat = WeChatServer(client, aes=True)
    replies = [
        await wechat.reply_text(await wechat.push(text_xml("openid-f", "你好", str(3000 + i))))
        for i in range(5)
    ]
    assert replies[0] and replies[1] and replies[0] not in LIMITED
    # WeChat cannot take a 429: the first excess message is told, the rest get `success`.
    assert replies[2] in LIMITED and replies[3:] == [None, None]
    timeline = await client.app[CONVERSATION_LOG].timeline("wechat:openid-f")
    assert len([e for e in timeline if e["direction"] == "in"]) == 2
    assert sum("not processed" in r.getMessage() for r in caplog.records) == 3


async def test_metadata_is_bounded_in_size_and_depth(limited):
    client = await limited(max_metadata_bytes=1024, max_metadata_depth=3)
    url = "/webhooks/rest/webhook"
    big = await client.post(
        url, json={"sender": "m", "message": "你好", "metadata": {"k": "x" * 2000}}
    )
    assert big.status == 413 and (await big.json())["error"] == "metadata_too_large"
    deep = await client.post(
        url, json={"sender": "m", "message": "你好", "metadata": {"a": {"b": {"c": {"d": 1}}}}}
    )
    assert deep.status == 400 and (await deep.json())["error"] == "metadata_too_deep"
    fine = await client.post(url, json={"sender": "m", "message": "你好", "metadata": {"a": [1]}})
    assert fine.status == 200


async def test_only_the_latest_messages_metadata_is_kept(limited, redis_url, key_prefix):
    client = await limited()
    for i in range(4):
        resp = await client.post(
            "/webhooks/rest/webhook",
            json={"sender": "meta", "message": "你好", "metadata": {"page": f"p{i}" + "x" * 1000}},
        )
        assert resp.status == 200
    redis = Redis.from_url(redis_url, decode_responses=True)
    stored = json.loads(await redis.get(Keys(key_prefix).tracker("rest:meta")))
    await redis.close()
    users = [e for e in stored["events"] if e["event"] == "user"]
    assert len(users) == 4
    assert [bool(e.get("metadata")) for e in users] == [False, False, False, True]
    assert users[-1]["metadata"]["page"].startswith("p3")
    assert all("metadata" not in e["parse_data"] for e in users[:-1])


async def test_a_long_conversation_is_compacted_and_goes_on(limited, redis_url, key_prefix):
    client = await limited(max_tracker_events=40, rate_conversation=Rate(0, 1.0))
    for _ in range(20):
        resp = await client.post(
            "/webhooks/rest/webhook", json={"sender": "long", "message": "你好"}
        )
        assert resp.status == 200 and (await resp.json())
    redis = Redis.from_url(redis_url, decode_responses=True)
    stored = json.loads(await redis.get(Keys(key_prefix).tracker("rest:long")))
    await redis.close()
    assert len(stored["events"]) <= 40
    # The log keeps every message for people.
    timeline = await client.app[CONVERSATION_LOG].timeline("rest:long")
    assert len([e for e in timeline if e["direction"] == "in"]) == 20


def test_compaction_carries_slots_and_the_active_form_over(engine):
    domain = engine.agent.domain
    events = [ActionExecuted("action_listen")]
    for i in range(30):
        events += [UserUttered(f"m{i}", {"name": "greet"}), ActionExecuted("utter_greet")]
        events.append(ActionExecuted("action_listen"))
        if i == 2:
            events += [SlotSet("order_id", "202611240007654321"), ActiveLoop("order_status_form")]
    tracker = DialogueStateTracker.from_events("c", events, slots=domain.slots)
    small = compacted(tracker, 20)
    assert len(small.events) < 30
    assert small.get_slot("order_id") == "202611240007654321"
    assert small.active_loop_name == "order_status_form"
    assert small.latest_message.text == "m29"


def test_compaction_keeps_when_the_session_began(engine):
    """What actions ask of "this session" (did a person handle it?) still
    looks back to its real start."""
    events = [
        ActionExecuted("action_session_start", timestamp=100.0),
        SessionStarted(timestamp=100.0),
        ActionExecuted("action_listen", timestamp=100.0),
    ]
    for i in range(30):
        ts = 200.0 + i
        events += [
            UserUttered(f"m{i}", {"name": "greet"}, timestamp=ts),
            ActionExecuted("utter_greet", timestamp=ts),
            ActionExecuted("action_listen", timestamp=ts),
        ]
    tracker = DialogueStateTracker.from_events("s", events, slots=engine.agent.domain.slots)
    small = compacted(tracker, 20)
    started = [e.timestamp for e in small.events if isinstance(e, SessionStarted)]
    assert started == [100.0]
    assert [e.timestamp for e in small.events] == sorted(e.timestamp for e in small.events)
    assert small.latest_message.text == "m29"


async def test_a_non_ascii_wechat_signature_is_refused_not_a_500(make_client):  # noqa: F811
    client = await make_client()
    params = {"timestamp": str(int(time.time())), "nonce": "n", "echostr": "e"}
    for forged in ("签名", "\xff" * 40):
        resp = await client.get("/webhooks/wechat", params={**params, "signature": forged})
        assert resp.status == 403, await resp.text()
