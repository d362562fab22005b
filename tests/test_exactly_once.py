"""Exactly-once messages in one process: a client message id is answered by one turn."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.app_keys import CONVERSATION_LOG, REDIS, SETTINGS
from bot.channels.identity import conversation_id
from bot.chat.once import Claim, MessageClaims
from bot.redis_keys import Keys
from tests.conftest import free_port
from tests.helpers import Visitor


async def post(client: TestClient, sender: str, text: str, mid: str | None) -> Any:
    body: dict[str, Any] = {"sender": sender, "message": text}
    if mid is not None:
        body["message_id"] = mid
    resp = await client.post("/webhooks/rest/webhook", json=body)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def entries(client: TestClient, conversation: str) -> list[dict[str, Any]]:
    return await client.app[CONVERSATION_LOG].timeline(conversation)


async def test_a_repeat_of_an_id_gets_the_first_replies_and_is_logged_once(client):
    first = await post(client, "once1", "满多少包邮", "m-1")
    again = await post(client, "once1", "满多少包邮", "m-1")
    assert first and again == first
    log = await entries(client, "rest:once1")
    assert [e["direction"] for e in log] == ["in"] + ["out"] * len(first)
    assert log[0]["message_id"] == "m-1"
    # The text of a repeat is not even read: the id decides.
    assert await post(client, "once1", "完全不同的话", "m-1") == first
    assert len(await entries(client, "rest:once1")) == len(log)


async def test_other_ids_and_messages_without_an_id_are_turns_of_their_own(client):
    await post(client, "once2", "你好", "a")
    await post(client, "once2", "你好", "b")
    await post(client, "once2", "你好", None)
    await post(client, "once2", "你好", None)
    inbound = [e for e in await entries(client, "rest:once2") if e["direction"] == "in"]
    assert len(inbound) == 4
    # The same id in another conversation is another message.
    await post(client, "once3", "你好", "a")
    assert len([e for e in await entries(client, "rest:once3") if e["direction"] == "in"]) == 1


async def test_invalid_message_ids_are_refused(client):
    for bad in ("", "x" * 129, "中文", "tab\there", 42, ["a"]):
        resp = await client.post(
            "/webhooks/rest/webhook", json={"sender": "once4", "message": "你好", "message_id": bad}
        )
        assert resp.status == 400, bad
        assert (await resp.json())["error"] == "invalid_message_id"
    assert await entries(client, "rest:once4") == []


async def test_concurrent_deliveries_of_one_id_run_one_turn(aiohttp_client, settings, engine):
    # Two processes' worth of apps on one Redis, each delivered the same message at once.
    a = await aiohttp_client(create_app(settings, engine), server_kwargs={"port": settings.port})
    other = settings.with_(port=free_port())
    b = await aiohttp_client(create_app(other, engine), server_kwargs={"port": other.port})
    results = await asyncio.gather(
        *(post(c, "once5", "我的快递到哪了", "same") for c in (a, b, a, b))
    )
    assert all(r == results[0] for r in results) and results[0]
    log = await entries(a, "rest:once5")
    assert [e["direction"] for e in log].count("in") == 1
    assert [e["direction"] for e in log].count("out") == len(results[0])


async def test_the_web_chat_sends_an_id_and_a_retry_is_answered_once(client):
    async with Visitor(client) as visitor:
        conversation = await visitor.open()
        first = await (await visitor.send("你好", message_id="w-1")).json()
        again = await (await visitor.send("你好", message_id="w-1")).json()
        assert again == first
        inbound = [e for e in await entries(client, conversation) if e["direction"] == "in"]
        assert len(inbound) == 1
    script = await (await client.get("/webchat/static/chat.js")).text()
    assert "message_id" in script


async def test_a_turn_cut_short_after_logging_is_resumed_not_repeated(client):
    """A delivery that logged the message and died: the retry runs the turn, logs it once."""
    redis, keys = client.app[REDIS], Keys(client.app[SETTINGS].key_prefix)
    conversation = conversation_id("rest", "once6")
    dead = MessageClaims(redis, keys, "dead-process")
    claim = await dead.acquire(conversation, "r-1")
    assert isinstance(claim, Claim)
    await client.app[CONVERSATION_LOG].append_inbound(
        conversation, "rest", "我的快递到哪了", message_id="r-1"
    )
    # ...and the process is gone: it never renews the lease. The retry waits it out.
    replies = await post(client, "once6", "我的快递到哪了", "r-1")
    assert replies
    log = await entries(client, conversation)
    assert [e["direction"] for e in log] == ["in"] + ["out"] * len(replies)
    assert await post(client, "once6", "我的快递到哪了", "r-1") == replies


async def test_a_turn_whose_replies_were_logged_is_not_run_again(client):
    redis, keys = client.app[REDIS], Keys(client.app[SETTINGS].key_prefix)
    conversation = conversation_id("rest", "once7")
    first = await post(client, "once7", "你好", "g-1")
    # Pretend the owner died after logging its replies but before recording them.
    await redis.hset(keys.message_claim(conversation, "g-1"), mapping={"state": "pending",
                     "owner": "gone", "until": "0"})  # fmt: skip
    again = await post(client, "once7", "你好", "g-1")
    assert [r["text"] for r in again] == [r["text"] for r in first]
    assert len(await entries(client, conversation)) == 1 + len(first)
