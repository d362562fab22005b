"""Conversation identity: ids the server assigns, keys no caller can aim at shared state."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from bot.app import create_app
from bot.app_keys import CONVERSATION_LOG, REDIS, SETTINGS, STATES
from bot.channels.identity import channel_of, conversation_id, user_of
from bot.channels.inbound import MAX_SENDER_CHARS
from bot.redis_keys import Keys
from tests.conftest import ADMIN_TOKEN, free_port
from tests.helpers import Visitor, say, timeline

KEYS = Keys("kefu")
CHANNELS = ("rest", "webchat", "wechat")

# Every id the API accepts: a REST sender is 1-128 printable characters (any
# script), a web chat session is the server's, a WeChat openid comes from WeChat.
user_ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=MAX_SENDER_CHARS
)
message_ids = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=128
)


def shared_names(keys: Keys) -> list[str]:
    """Fixed shared keys, and the namespaces whose names take a caller's string."""
    return [
        *keys.fixed_shared_keys(),
        keys.session(""),
        keys.login_backoff("", ""),
        keys.shared("login", ""),
        keys.rate_address(""),
        keys.stats(""),
        keys.review(""),
    ]


def per_conversation(keys: Keys, conversation: str, message_id: str) -> list[str]:
    return [
        *keys.conversation_keys(conversation),
        keys.message_claim(conversation, message_id),
        keys.wechat_message(conversation, message_id),
        keys.rate_conversation(conversation),
    ]


def related(a: str, b: str) -> bool:
    return a.startswith(b) or b.startswith(a)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CHANNELS), user_ids, message_ids)
def test_no_conversation_key_equals_or_prefixes_a_shared_key(channel, user, message_id):
    conversation = conversation_id(channel, user)
    for key in per_conversation(KEYS, conversation, message_id):
        for shared in shared_names(KEYS):
            assert not related(key, shared), (key, shared)
        assert KEYS.conversation_of(key) == conversation


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CHANNELS), user_ids, st.sampled_from(CHANNELS), user_ids, message_ids)
def test_one_conversations_keys_never_reach_into_anothers(c1, u1, c2, u2, message_id):
    a, b = conversation_id(c1, u1), conversation_id(c2, u2)
    if a == b:
        return
    heads_a = [KEYS.conv(a, ""), *KEYS.off_tag_keys(a)]
    for key in per_conversation(KEYS, b, message_id):
        for head in heads_a:
            assert not key.startswith(head), (key, head)
    # The hash tag of a conversation is its whole (encoded) id: one Cluster slot
    # each; the keys kept elsewhere are on their feature's (the handoff queues').
    elsewhere = KEYS.off_tag_keys(a)
    slots = {
        key_slot(k.encode()) for k in per_conversation(KEYS, a, message_id) if k not in elsewhere
    }
    assert slots == {key_slot(KEYS.conv(a, "x").encode())}
    assert {key_slot(k.encode()) for k in elsewhere} == {key_slot(KEYS.handoff_waiting.encode())}


@given(st.sampled_from(CHANNELS), user_ids)
def test_conversation_ids_name_their_channel(channel, user):
    conversation = conversation_id(channel, user)
    assert channel_of(conversation) == channel and user_of(conversation) == user


async def test_senders_named_like_shared_keys_leave_the_queue_and_ratings_working(
    client, sign_in, admin_headers
):
    redis = client.app[REDIS]
    keys = Keys(client.app[SETTINGS].key_prefix)
    for sender in ("waiting", "assigned", "waits", "ratings", "handoff:waiting", "c", "{x}", "*"):
        replies = await say(client, sender, "转人工")
        assert "人工" in "".join(r["text"] for r in replies), sender
    assert await redis.type(keys.handoff_waiting) == "zset"
    assert await redis.type(keys.handoff_assigned) in ("zset", "none")
    agent = await sign_in("agent1")
    queue = await (await agent.get("/console/api/queue")).json()
    assert {w["conversation"] for w in queue["waiting"]} >= {"rest:waiting", "rest:assigned"}
    claim = await agent.post("/console/api/conversations/rest:waiting/claim")
    assert claim.status == 200
    assert await redis.type(keys.handoff_assigned) == "zset"
    # A customer's rating still lands in the shared ratings stream.
    await say(client, "rater", "满多少包邮")
    await say(client, "rater", "好的拜拜")
    await say(client, "rater", "5")
    assert await redis.type(keys.csat_ratings) == "stream"
    assert await redis.xlen(keys.csat_ratings) == 1
    # The conversation named "*" is one conversation, not a pattern over all of them.
    assert (await timeline(client, "rest:*", admin_headers))[0]["text"] == "转人工"


async def test_a_rest_caller_cannot_write_into_a_web_chat_or_wechat_conversation(
    client, admin_headers
):
    async with Visitor(client) as visitor:
        web = await visitor.open()
        await visitor.send("你好")
        session = web.removeprefix("webchat:")
        for forged in (web, f"web-{session}", "wechat:oReal", "wx-oReal"):
            await say(client, forged, "我是本人，请把收货地址改成火星")
        # Nothing reached the web chat's history or the WeChat customer's conversation.
        texts = [m["text"] for m in (await visitor.history())["messages"]]
        assert "我是本人，请把收货地址改成火星" not in texts
    log = client.app[CONVERSATION_LOG]
    assert await log.timeline("wechat:oReal") == []
    assert (await client.app[STATES].get("wechat:oReal")).state == "bot"
    # Each went to a REST conversation of its own, and says so.
    for forged in (web, "wechat:oReal"):
        entries = await timeline(client, f"rest:{forged}", admin_headers)
        assert {e["channel"] for e in entries} == {"rest"}
    summaries = await log.summaries([f"rest:{web}", web])
    assert [s.channel for s in summaries] == ["rest", "webchat"]


async def test_every_entry_of_a_conversation_comes_from_its_own_channel(client, admin_headers):
    await say(client, "mix", "我要转人工")
    async with Visitor(client) as visitor:
        web = await visitor.open()
        await visitor.send("你好")
    for conversation, channel in (("rest:mix", "rest"), (web, "webchat")):
        entries = await timeline(client, conversation, admin_headers)
        assert entries and {e["channel"] for e in entries} == {channel}


@pytest.fixture
async def rest_locked(aiohttp_client, settings, engine):  # type: ignore[no-untyped-def]
    own = settings.with_(rest_token="rest-token-0123456789", port=free_port())
    return await aiohttp_client(create_app(own, engine), server_kwargs={"port": own.port})


async def test_rest_token_is_required_when_set(rest_locked):
    body = {"sender": "p1", "message": "你好"}
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "rest-token-0123456789"},
        {"Authorization": f"Bearer {ADMIN_TOKEN}"},
        {"Authorization": "Bearer \udcff\udcfe"},
    ):
        resp = await rest_locked.post("/webhooks/rest/webhook", json=body, headers=headers)
        assert resp.status == 401, headers
        assert (await resp.json())["error"] == "unauthorised"
    ok = await rest_locked.post(
        "/webhooks/rest/webhook",
        json=body,
        headers={"Authorization": "Bearer rest-token-0123456789"},
    )
    assert ok.status == 200 and (await ok.json())[0]["recipient_id"] == "p1"


async def test_non_utf8_rest_authorization_is_refused_not_crashed(rest_locked):
    reader, writer = await asyncio.open_connection("127.0.0.1", rest_locked.port)
    body = b'{"sender": "p2", "message": "hi"}'
    writer.write(
        b"POST /webhooks/rest/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer \xff\xfe\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
        % (len(body), body)
    )
    await writer.drain()
    status = (await reader.readline()).decode()
    writer.close()
    assert " 401 " in status


async def test_the_open_rest_webhook_is_warned_about_once_at_start(
    aiohttp_client, settings, engine, caplog
):
    with caplog.at_level("WARNING"):
        await aiohttp_client(create_app(settings, engine), server_kwargs={"port": free_port()})
    warnings = [r for r in caplog.records if "BOT_REST_TOKEN" in r.getMessage()]
    assert len(warnings) == 1
