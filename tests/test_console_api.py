"""The agents' console API over real HTTP: roles, CSRF, conflicts, and what each action does."""

from __future__ import annotations

import asyncio
import json

from redis.asyncio import Redis

from bot.accounts.sessions import CSRF_HEADER
from bot.app_keys import SETTINGS, STATES
from bot.redis_keys import Keys
from tests.helpers import Visitor, say

BASE = "/console/api/conversations"


async def waiting_conversation(client, sender: str = "cust") -> str:  # type: ignore[no-untyped-def]
    await say(client, sender, "我要转人工")
    assert (await client.app[STATES].get(f"rest:{sender}")).state == "waiting"
    return f"rest:{sender}"


async def test_everything_is_refused_without_sign_in_wrong_role_or_csrf(client, sign_in):
    cid = await waiting_conversation(client)
    assert (await client.get("/console/api/queue")).status == 401
    assert (await client.post(f"{BASE}/{cid}/claim")).status == 401
    trainer = await sign_in("trainer1", "trainer")
    assert (await trainer.get("/console/api/queue")).status == 403
    assert (await trainer.post(f"{BASE}/{cid}/claim")).status == 403
    agent = await sign_in("agent1")
    for action in ("claim", "release", "reply", "notes", "close", "transfer"):
        resp = await agent.post(
            f"{BASE}/{cid}/{action}", {"text": "x", "tag": "t", "to": "a"}, csrf=False
        )
        assert resp.status == 403, action
        assert (await resp.json())["error"] == "csrf_token_missing"
    assert (await client.app[STATES].get(cid)).state == "waiting"  # nothing changed


async def test_queue_shows_waiting_conversations_with_reason_and_last_message(client, sign_in):
    await say(client, "first", "我要转人工")
    await say(client, "angry", "质量太差了，我要投诉")
    agent = await sign_in("agent1")
    body = await (await agent.get("/console/api/queue")).json()
    rows = [(r["conversation"], r["reason"], r["position"]) for r in body["waiting"]]
    assert rows == [
        ("rest:angry", "complaint", 0),
        ("rest:first", "request_human", 1),
    ]  # complaints first
    assert body["waiting"][1]["channel"] == "rest"
    assert body["waiting"][1]["last_text"] == "我要转人工"  # the customer's words, not the bot's


async def test_claim_race_between_two_agents_has_one_winner(client, sign_in):
    cid = await waiting_conversation(client)
    a, b = await sign_in("agent1"), await sign_in("agent2")
    results = await asyncio.gather(a.post(f"{BASE}/{cid}/claim"), b.post(f"{BASE}/{cid}/claim"))
    assert sorted(r.status for r in results) == [200, 409]


async def test_reply_is_logged_and_published_only_by_the_holder(client, sign_in, redis_url):
    cid = await waiting_conversation(client)
    a, b = await sign_in("agent1"), await sign_in("agent2")
    assert (await a.post(f"{BASE}/{cid}/reply", {"text": "您好"})).status == 409  # not claimed
    assert (await a.post(f"{BASE}/{cid}/claim")).status == 200

    redis = Redis.from_url(redis_url, decode_responses=True)
    pubsub = redis.pubsub()
    await pubsub.subscribe(Keys(client.app[SETTINGS].key_prefix).events)
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    resp = await a.post(f"{BASE}/{cid}/reply", {"text": "您好，我是客服小李，我来帮你看看。"})
    assert resp.status == 200
    event = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
    assert event is not None
    payload = json.loads(event["data"])
    assert (payload["type"], payload["conversation"], payload["agent"]) == (
        "agent_message",
        cid,
        "agent1",
    )
    await pubsub.close()
    await redis.close()

    assert (await b.post(f"{BASE}/{cid}/reply", {"text": "插一句"})).status == 409
    view = await (await a.get(f"{BASE}/{cid}")).json()
    assert view["messages"][-1]["text"].startswith("您好，我是客服小李")
    assert view["messages"][-1]["action"] == "agent:agent1"


async def test_notes_stay_internal(client, sign_in):
    async with Visitor(client) as visitor:
        cid = await visitor.open()
        await visitor.send("我要转人工")
        agent = await sign_in("agent1")
        assert (await agent.post(f"{BASE}/{cid}/notes", {"text": "老客户，优先处理"})).status == 200
        view = await (await agent.get(f"{BASE}/{cid}")).json()
        assert [n["text"] for n in view["notes"]] == ["老客户，优先处理"]
        history = await visitor.history()
        assert history["messages"] and all("老客户" not in m["text"] for m in history["messages"])


async def test_release_close_and_transfer(client, sign_in):
    cid = await waiting_conversation(client)
    a, b = await sign_in("agent1"), await sign_in("agent2")
    await sign_in("boss", "admin")
    assert (await a.post(f"{BASE}/{cid}/claim")).status == 200
    assert (await b.post(f"{BASE}/{cid}/release")).status == 409  # not b's
    assert (await a.post(f"{BASE}/{cid}/transfer", {"to": "nobody"})).status == 400
    assert (await a.post(f"{BASE}/{cid}/transfer", {"to": "agent2"})).status == 200
    assert (await client.app[STATES].get(cid)).agent == "agent2"
    assert (await b.post(f"{BASE}/{cid}/release")).status == 200
    assert (await client.app[STATES].get(cid)).state == "bot"
    assert (await b.post(f"{BASE}/{cid}/release")).status == 409  # already released

    await say(client, cid.removeprefix("rest:"), "我还是要人工")
    assert (await a.post(f"{BASE}/{cid}/claim")).status == 200
    assert (await a.post(f"{BASE}/{cid}/close", {"tag": ""})).status == 400
    assert (await a.post(f"{BASE}/{cid}/close", {"tag": "已解决"})).status == 200
    handoff = await client.app[STATES].get(cid)
    assert (handoff.state, handoff.tag) == ("closed", "已解决")


async def test_canned_replies_are_read_by_agents_and_edited_by_admins(client, sign_in):
    agent, admin = await sign_in("agent1"), await sign_in("boss", "admin")
    replies = {"replies": ["您好，我是人工客服，请问有什么可以帮您？", "稍等，我查一下。"]}
    put = await agent.session.put(
        agent.url("/console/api/canned"), json=replies, headers={CSRF_HEADER: agent.csrf}
    )
    assert put.status == 403
    put = await admin.session.put(
        admin.url("/console/api/canned"), json=replies, headers={CSRF_HEADER: admin.csrf}
    )
    assert put.status == 200
    assert (await (await agent.get("/console/api/canned")).json())["replies"] == replies["replies"]
