"""Weibo fan-service direct messages against a local fake of Weibo (tests/fake_weibo.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from zoneinfo import ZoneInfo

import pytest

from bot.app import create_app
from bot.app_keys import CONVERSATION_LOG, EVENTS, STATES
from bot.events import EventKind
from bot.settings import Settings
from tests.fake_weibo import (
    ACCOUNT_UID,
    FakeWeibo,
    WeiboPusher,
    event_push,
    media_push,
    sign,
    text_push,
)

SECRET = "weibo-app-secret-0123456789abcdef"
TOKEN = "2.00weibo365daytoken"
NOON = dt.datetime(2026, 11, 25, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
BASE = "/console/api/conversations"


@pytest.fixture
async def fake(aiohttp_server):  # type: ignore[no-untyped-def]
    fake = FakeWeibo(TOKEN)
    fake.server = await aiohttp_server(fake.app())
    return fake


@pytest.fixture
async def make_client(aiohttp_client, settings: Settings, engine, fake):  # type: ignore[no-untyped-def]
    async def make(**changes: object):  # type: ignore[no-untyped-def]
        own = settings.with_(
            weibo_app_secret=SECRET,
            weibo_access_token=TOKEN,
            weibo_api_base=str(fake.server.make_url("")).rstrip("/"),
            **changes,
        )
        app = create_app(own, engine, clock=lambda: NOON)
        return await aiohttp_client(app, server_kwargs={"port": own.port})

    return make


@pytest.fixture
async def client(make_client):  # type: ignore[no-untyped-def]
    return await make_client()


@pytest.fixture
def weibo(client) -> WeiboPusher:  # type: ignore[no-untyped-def]
    return WeiboPusher(client, SECRET)


async def inbound(client, uid: int) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    timeline = await client.app[CONVERSATION_LOG].timeline(f"weibo:{uid}")
    return [e for e in timeline if e["direction"] == "in"]


async def wait_for(predicate, what: str, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_url_check_echoes_only_a_fresh_valid_signature(weibo, client):
    ok = await weibo.verify("dnPdpTZz85")
    assert (ok.status, await ok.text()) == (200, "dnPdpTZz85")
    bad = await weibo.verify("dnPdpTZz85", signature="0" * 40)
    assert bad.status == 403 and (await bad.json())["error"] == "bad_signature"
    assert "dnPdpTZz85" not in await bad.text()
    stale_ms = str(int((time.time() - 3600) * 1000))
    stale = await weibo.verify("dnPdpTZz85", timestamp=stale_ms)
    assert stale.status == 403 and (await stale.json())["error"] == "stale_timestamp"
    garbage = await weibo.verify("x", timestamp="yesterday")
    assert garbage.status == 403 and (await garbage.json())["error"] == "bad_timestamp"


def test_the_signature_is_the_documented_one():
    # The example of https://open.weibo.com/wiki/Messages_api_start.
    assert sign("xyz123xyz", "1397022061823", "57155157") == (
        "90e4c22c90a58f26526c2dd5b6c56c8822edeaa1"
    )


async def test_a_text_gets_a_passive_reply_in_the_documented_format(weibo, client, fake):
    push = text_push(2489518277, "你是机器人吗")
    reply = await weibo.passive_text(await weibo.push(push), push)
    assert reply and "机器人" in reply
    (entry,) = await inbound(client, 2489518277)
    assert (entry["text"], entry["intent"], entry["channel"]) == (
        "你是机器人吗",
        "ask_is_bot",
        "weibo",
    )
    assert fake.sent == []  # answered in the response, not through the API


async def test_a_slow_turn_answers_empty_then_once_through_the_api(make_client, fake):
    client = await make_client(weibo_reply_budget=0.001)
    weibo = WeiboPusher(client, SECRET)
    push = text_push(1001, "你是机器人吗")
    assert await weibo.passive_text(await weibo.push(push), push) is None
    await wait_for(lambda: fake.texts_to(1001), "the late reply never went out")
    await weibo.push(push)  # Weibo delivers again anyway
    await asyncio.sleep(0.5)
    (sent,) = fake.texts_to(1001)
    assert "机器人" in sent
    assert len(await inbound(client, 1001)) == 1


async def test_redeliveries_get_one_reply_and_one_log_entry(weibo, client):
    push = text_push(1002, "你好")
    replies = [await weibo.passive_text(await weibo.push(push), push) for _ in range(3)]
    assert replies[0] and replies[1:] == [None, None]
    again = text_push(1002, "谢谢")
    responses = await asyncio.gather(*(weibo.push(again) for _ in range(3)))
    texts = [await weibo.passive_text(r, again) for r in responses]
    assert sum(t is not None for t in texts) == 1
    # Another message in the same second is not a redelivery.
    other = {**again, "text": "在吗"}
    assert await weibo.passive_text(await weibo.push(other), other) is not None
    assert [e["text"] for e in await inbound(client, 1002)] == ["你好", "谢谢", "在吗"]


async def test_media_is_answered_honestly_and_logged(weibo, client):
    uid = 1003
    for push, shown in (
        (media_push(uid, "image", "分享图片", tovfid="img-1", vfid="img-0"), "[图片] img-1"),
        (media_push(uid, "voice", "发了一个语音消息", tovfid="v-1"), "[语音] v-1"),
        (
            media_push(uid, "position", "我在这里", longitude="116.308586", latitude="39.982525"),
            "[位置] 我在这里 (39.982525, 116.308586)",
        ),
    ):
        reply = await weibo.passive_text(await weibo.push(push), push)
        assert reply and "文字" in reply and "人工" in reply
        assert (await inbound(client, uid))[-1]["text"] == shown
    # Types Weibo may add later are ignored, as the platform asks.
    unknown = media_push(uid, "sticker", "表情")
    assert await weibo.passive_text(await weibo.push(unknown), unknown) is None


async def test_follow_welcomes_and_unfollow_closes_the_window(weibo, client, fake, logins):
    uid = 1004
    follow = event_push(uid, "follow", text="关注事件消息")
    welcome = await weibo.passive_text(await weibo.push(follow), follow)
    assert welcome and "机器人" in welcome and "人工" in welcome
    cid = f"weibo:{uid}"
    agent = await logins.sign_in(client, "agent1")
    view = await (await agent.get(f"{BASE}/{cid}")).json()
    assert view["channel"] == "weibo" and view["can_push"] is True
    unfollow = event_push(uid, "unfollow", text="取消关注事件消息")
    assert await weibo.passive_text(await weibo.push(unfollow), unfollow) is None
    view = await (await agent.get(f"{BASE}/{cid}")).json()
    assert view["can_push"] is False and "取消关注" in view["push_note"]
    assert [e["text"] for e in await inbound(client, uid)] == ["[关注了微博]", "[取消关注]"]


async def test_a_qr_scan_records_the_campaign_source_for_agents(weibo, client, logins):
    uid = 1005
    heard: list[dict] = []  # type: ignore[type-arg]

    async def published(conversation: str, data: dict) -> None:  # type: ignore[type-arg]
        heard.append(data)

    # What this process publishes, heard in-process (the Redis relay subscribes in
    # the background and would miss an event published before it is there).
    client.app[EVENTS].subscribe(EventKind.CUSTOMER_MESSAGE, published)
    scan = event_push(uid, "scan_follow", key="QR_SCENE_spring", text="扫描二维码")
    welcome = await weibo.passive_text(await weibo.push(scan), scan)
    assert welcome and "机器人" in welcome
    await wait_for(lambda: heard, "the message event was not published")
    assert (heard[0]["channel"], heard[0]["source"]) == ("weibo", "QR_SCENE_spring")
    agent = await logins.sign_in(client, "agent1")
    view = await (await agent.get(f"{BASE}/weibo:{uid}")).json()
    assert view["source"] == "QR_SCENE_spring"
    (entry,) = await inbound(client, uid)
    assert entry["text"] == "[扫码关注] QR_SCENE_spring"


async def test_menu_clicks_mean_what_the_menu_file_says(weibo, client):
    uid = 1006
    click = event_push(uid, "click", key="SHIPPING_FEE", text="自定义菜单点击事件消息")
    answer = await weibo.passive_text(await weibo.push(click), click)
    assert answer and "99" in answer  # the free_shipping knowledge entry
    unknown = event_push(uid, "click", key="NOT_IN_FILE")
    honest = await weibo.passive_text(await weibo.push(unknown), unknown)
    assert honest and "人工" in honest
    agent_click = event_push(uid, "click", key="CONTACT_AGENT")
    await weibo.push(agent_click)
    assert (await client.app[STATES].get(f"weibo:{uid}")).state == "waiting"
    texts = [e["text"] for e in await inbound(client, uid)]
    assert texts == ["[菜单] 运费说明", "[菜单] NOT_IN_FILE", "[菜单] 联系客服"]


async def test_an_agents_reply_goes_out_through_the_api(weibo, client, fake, logins):
    uid = 1007
    push = text_push(uid, "转人工")
    await weibo.push(push)
    cid = f"weibo:{uid}"
    assert (await client.app[STATES].get(cid)).state == "waiting"
    agent = await logins.sign_in(client, "agent1")
    assert (await agent.post(f"{BASE}/{cid}/claim")).status == 200
    reply = await agent.post(f"{BASE}/{cid}/reply", {"text": "您好，我是客服小李"})
    assert (await reply.json())["pushed"] is True
    long = "很长的说明。" * 80  # 480 characters: Weibo takes under 300 per message
    assert (await (await agent.post(f"{BASE}/{cid}/reply", {"text": long})).json())["pushed"]
    sent = fake.texts_to(uid)
    assert "接入" in sent[0] and sent[1] == "您好，我是客服小李"
    assert "".join(sent[2:]) == long and all(len(t) < 300 for t in sent)


async def test_weibo_refusals_reach_the_agent(weibo, client, fake, logins):
    uid = 1008
    await weibo.push(text_push(uid, "转人工"))
    cid = f"weibo:{uid}"
    agent = await logins.sign_in(client, "agent1")
    assert (await agent.post(f"{BASE}/{cid}/claim")).status == 200
    fake.rate_limited = 1  # one refusal: retried, delivered
    ok = await (await agent.post(f"{BASE}/{cid}/reply", {"text": "稍等"})).json()
    assert ok["pushed"] is True and fake.texts_to(uid)[-1] == "稍等"
    fake.rate_limited = 2
    limited = await (await agent.post(f"{BASE}/{cid}/reply", {"text": "再等等"})).json()
    assert (limited["pushed"], limited["error"]) == (False, "rate_limited")
    fake.token_expired = True
    expired = await (await agent.post(f"{BASE}/{cid}/reply", {"text": "在吗"})).json()
    assert (expired["pushed"], expired["error"]) == (False, "token_refused")
    assert "WEIBO_ACCESS_TOKEN" in expired["message"]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"not json", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_json"),
        (b'{"type": "text", "sender_id": "abc", "receiver_id": 1, "created_at": "x"}', 400,
         "invalid_message"),
        (b'{"sender_id": 1, "receiver_id": 2, "created_at": "x"}', 400, "invalid_message"),
        (b'{"type": "text", "sender_id": 1, "receiver_id": 2}', 400, "invalid_message"),
        (b'{"type": "text", "text": "' + "长".encode() * 30000 + b'"}', 413, "too_large"),
    ],
    ids=["garbage", "not-object", "bad-uid", "no-type", "no-time", "too-large"],
)  # fmt: skip
async def test_bad_pushes_are_refused_cleanly(weibo, client, body, status, error):
    resp = await client.post("/webhooks/weibo", params=weibo.params(), data=body)
    assert resp.status == status
    assert (await resp.json())["error"] == error


async def test_an_unsigned_push_is_refused_and_not_logged(weibo, client):
    push = text_push(1009, "你好")
    resp = await weibo.push(push, signature="f" * 40)
    assert resp.status == 403
    assert await inbound(client, 1009) == []


async def test_without_configuration_the_channel_is_off(aiohttp_client, settings, engine, caplog):
    caplog.set_level(logging.INFO, logger="bot.channels.weibo.routes")
    client = await aiohttp_client(
        create_app(settings, engine), server_kwargs={"port": settings.port}
    )
    assert (await client.get("/webhooks/weibo")).status == 404
    assert (await client.post("/webhooks/weibo", json=text_push(1, "你好"))).status == 404
    assert any("Weibo channel off" in r.getMessage() for r in caplog.records)


def test_the_settings_are_read_from_the_environment():
    from tests.conftest import ADMIN_TOKEN, free_port

    env = {"BOT_PORT": str(free_port()), "BOT_ADMIN_TOKEN": ADMIN_TOKEN}
    off = Settings.from_env(env, dotenv=None)
    assert not off.weibo_enabled and off.weibo_api_base == "https://m.api.weibo.com"
    on = Settings.from_env(
        {**env, "WEIBO_APP_SECRET": "s", "WEIBO_ACCESS_TOKEN": "t", "WEIBO_API_BASE": "http://x"},
        dotenv=None,
    )
    assert on.weibo_enabled and on.weibo_api_base == "http://x"
    assert ACCOUNT_UID  # the fake's account id is what pushes name as receiver
