"""People have the conversation: the bot stays silent, the customer knows where they stand.

Real model, real Redis, real HTTP: messages go in through the REST webhook and
the web chat, agents act through the console API.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from zoneinfo import ZoneInfo

import orjson
import pytest
from redis.asyncio import Redis

from bot.app import create_app
from bot.app_keys import CONVERSATION_LOG, MODEL, REDIS, SETTINGS, STATES
from bot.handoff.standing import describe_wait
from bot.redis_keys import Keys
from tests.helpers import Visitor, say

SHANGHAI = ZoneInfo("Asia/Shanghai")
WEDNESDAY_NOON = dt.datetime(2026, 11, 25, 12, 0, tzinfo=SHANGHAI)
WEDNESDAY_NIGHT = dt.datetime(2026, 11, 25, 23, 0, tzinfo=SHANGHAI)
BASE = "/console/api/conversations"


@pytest.fixture
async def client(aiohttp_client, settings, engine):  # type: ignore[no-untyped-def]
    """In service hours, whatever the real time is."""
    app = create_app(settings, engine, clock=lambda: WEDNESDAY_NOON)
    return await aiohttp_client(app, server_kwargs={"port": settings.port})


async def entries(client, conversation: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return await client.app[CONVERSATION_LOG].timeline(conversation)


async def events_of(client):  # type: ignore[no-untyped-def]
    redis = Redis.from_url(client.app[SETTINGS].redis_url, decode_responses=True)
    pubsub = redis.pubsub()
    await pubsub.subscribe(Keys(client.app[SETTINGS].key_prefix).events)
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    return redis, pubsub


async def next_event(pubsub, kind: str, timeout: float = 3.0) -> dict:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is not None:
            event = json.loads(message["data"])
            if event["type"] == kind:
                return event
    raise AssertionError(f"no {kind} event within {timeout} s")


async def test_escalation_tells_the_customer_their_place(client):
    replies = await say(client, "c1", "我要转人工")
    texts = [r["text"] for r in replies]
    assert any("人工" in t for t in texts[:-1])
    # No real waits recorded yet: a place, and an honest "cannot estimate".
    assert "第1位" in texts[-1] and ("估不准" in texts[-1] or "说不准" in texts[-1])
    assert (await client.app[STATES].get("rest:c1")).state == "waiting"


async def test_bot_is_silent_while_people_have_it_but_logs_classifies_and_shows(client, sign_in):
    await say(client, "c1", "我要转人工")
    redis, pubsub = await events_of(client)
    try:
        assert await say(client, "c1", "我的快递到哪了") == []
        event = await next_event(pubsub, "customer_message")
        assert (event["text"], event["intent"], event["state"]) == (
            "我的快递到哪了",
            "order_status",
            "waiting",
        )
        inbound = (await entries(client, "rest:c1"))[-1]
        assert (inbound["direction"], inbound["intent"]) == ("in", "order_status")

        agent = await sign_in("agent1")
        assert (await agent.post(f"{BASE}/rest:c1/claim")).status == 200
        for text in ("你好", "我要转人工", "订单SF1234567890123"):
            assert await say(client, "c1", text) == [], text
        assert (await next_event(pubsub, "customer_message"))["state"] == "assigned"
    finally:
        await pubsub.close()
        await redis.close()
    log = await entries(client, "rest:c1")
    assert [e["text"] for e in log if e["direction"] == "in"][-3:] == [
        "你好",
        "我要转人工",
        "订单SF1234567890123",
    ]
    assert all(e["intent"] for e in log if e["direction"] == "in")
    # After the claim the customer was told a person is here, and nothing else came from the bot.
    after_claim = log[[e["text"] for e in log].index("我的快递到哪了") + 1 :]
    outbound = [e for e in after_claim if e["direction"] == "out"]
    assert [e["action"] for e in outbound] == ["agent_joined"]


async def test_waiting_customer_who_asks_again_hears_place_and_expected_wait(client):
    states = client.app[STATES]
    # Recent real waits: 2, 4 and 3 minutes (median 3).
    await client.app[REDIS].lpush(
        Keys(client.app[SETTINGS].key_prefix).handoff_waits, 120, 240, 180
    )
    await say(client, "first", "我要转人工")
    replies = await say(client, "second", "帮我转人工")
    assert "第2位" in replies[-1]["text"] and "约6分钟" in replies[-1]["text"]
    # Asking again while waiting: the place, not a new escalation or a bot answer.
    again = await say(client, "second", "人工怎么还没来")
    assert len(again) == 1 and "第2位" in again[0]["text"] and "约6分钟" in again[0]["text"]
    assert await say(client, "second", "我想退货") == []  # anything else: silence
    await states.claim("rest:first", "agent1")
    again = await say(client, "second", "客服人呢")
    assert "第1位" in again[0]["text"]
    assert (await entries(client, "rest:second"))[-1]["response"] == "queue_place_wait"


def test_waits_are_described_as_people_say_them():
    assert describe_wait(20) == "1分钟内"
    assert describe_wait(61) == "约2分钟"
    assert describe_wait(3600) == "约1小时"
    assert describe_wait(3601 * 2) == "约3小时"


async def test_after_hours_the_customer_hears_when_people_are_back(
    aiohttp_client, settings, engine
):
    app = create_app(settings, engine, clock=lambda: WEDNESDAY_NIGHT)
    client = await aiohttp_client(app, server_kwargs={"port": settings.port})
    replies = await say(client, "night", "转人工")
    assert any("明天 9:00" in r["text"] for r in replies)
    again = await say(client, "night", "人工呢")
    assert "第1位" in again[0]["text"] and "明天 9:00" in again[0]["text"]


async def age_tracker(client, conversation: str, seconds: float) -> None:  # type: ignore[no-untyped-def]
    """Move every event of Rasa's stored tracker `seconds` into the past."""
    redis = client.app[REDIS]
    key = Keys(client.app[SETTINGS].key_prefix).tracker(conversation)
    tracker = orjson.loads(await redis.get(key))
    for event in tracker["events"]:
        event["timestamp"] -= seconds
    await redis.set(key, orjson.dumps(tracker))


async def test_waiting_past_rasas_session_expiry_stays_with_people(client, sign_in):
    await say(client, "slow", "我要转人工")
    await age_tracker(client, "rest:slow", 2 * 3600)  # the domain's session expiry is 60 minutes
    assert await say(client, "slow", "还在吗？") == []
    assert (await client.app[STATES].get("rest:slow")).state == "waiting"
    agent = await sign_in("agent1")
    assert (await agent.post(f"{BASE}/rest:slow/claim")).status == 200
    await age_tracker(client, "rest:slow", 2 * 3600)
    assert await say(client, "slow", "好的谢谢") == []
    assert (await agent.post(f"{BASE}/rest:slow/release")).status == 200
    # Back with the bot: a new Rasa session starts and the message is answered normally.
    assert await say(client, "slow", "你好")
    last = (await entries(client, "rest:slow"))[-1]
    assert last["direction"] == "out" and last["action"] == "utter_greet"


async def test_first_message_after_release_is_answered_normally(client, sign_in):
    await say(client, "back", "我要转人工")
    agent = await sign_in("agent1")
    assert (await agent.post(f"{BASE}/rest:back/claim")).status == 200
    assert (
        await agent.post(f"{BASE}/rest:back/reply", {"text": "您好，我是客服小李"})
    ).status == 200
    assert (await agent.post(f"{BASE}/rest:back/release")).status == 200
    log = await entries(client, "rest:back")
    assert log[-1]["action"] == "agent_left" and "机器人" in log[-1]["text"]
    replies = await say(client, "back", "我的快递到哪了")
    assert replies and "单号" in replies[0]["text"]
    replies = await say(client, "back", "SF1234567890123")
    assert any("0123" in r["text"] for r in replies)
    assert (await client.app[STATES].get("rest:back")).state == "bot"


async def test_web_chat_customer_hears_the_agent_join_reply_and_leave(client, sign_in):
    visitor = Visitor(client)
    cid = await visitor.open()
    sent = await visitor.send("转人工")
    body = await sent.json()
    assert body["state"] == "waiting"
    ws = await visitor.live()
    agent = await sign_in("agent1")
    assert (await agent.post(f"{BASE}/{cid}/claim")).status == 200
    joined = await ws.receive_json(timeout=3)
    assert (joined["from"], joined["direction"]) == ("bot", "out") and "接入" in joined["text"]
    sent = await visitor.send("在吗")
    assert (await sent.json())["replies"] == [] and (await sent.json())["state"] == "assigned"
    reply = await agent.post(f"{BASE}/{cid}/reply", {"text": "在的，您请说"})
    assert (await reply.json())["pushed"] is True
    message = await ws.receive_json(timeout=3)
    assert (message["from"], message["text"]) == ("agent", "在的，您请说")
    assert (await agent.post(f"{BASE}/{cid}/release")).status == 200
    left = await ws.receive_json(timeout=3)
    assert left["from"] == "bot" and "机器人" in left["text"]
    await ws.close()
    await visitor.http.close()


async def test_agent_reply_to_a_rest_customer_is_logged_but_cannot_be_pushed(client, sign_in):
    await say(client, "restful", "转人工")
    agent = await sign_in("agent1")
    assert (await agent.post(f"{BASE}/rest:restful/claim")).status == 200
    view = await (await agent.get(f"{BASE}/rest:restful")).json()
    assert view["can_push"] is False
    reply = await agent.post(f"{BASE}/rest:restful/reply", {"text": "您好"})
    assert (await reply.json())["pushed"] is False
    assert (await entries(client, "rest:restful"))[-1]["text"] == "您好"


async def test_a_message_queued_behind_the_escalating_turn_is_not_answered_by_the_bot(client):
    """Message B waits for the conversation lock while turn A hands the conversation
    to a person: B must get the silence of a conversation people have, not a bot answer."""
    engine = client.app[MODEL].engine
    holding, release = asyncio.Event(), asyncio.Event()

    async def turn_a() -> None:  # stands for a turn still running when B arrives
        async with engine.agent.lock_store.lock("rest:race"):
            holding.set()
            await release.wait()
            await client.app[STATES].escalate("rest:race", "request_human")

    a = asyncio.create_task(turn_a())
    await holding.wait()
    b = asyncio.create_task(say(client, "race", "我的快递到哪了"))
    await asyncio.sleep(0.5)  # B is logged, classified and now waits for the lock
    assert not b.done()
    release.set()
    await a
    assert await b == []
    log = await entries(client, "rest:race")
    assert [e["direction"] for e in log] == ["in"]  # logged and classified, not answered
    assert log[0]["intent"] == "order_status"
