"""The WeChat Official Account channel against a local fake of WeChat's API.

Messages are signed and encrypted by wechatpy, an independent implementation
of the protocol, and our encrypted replies are decrypted by it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from redis.asyncio import Redis
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from bot.app import create_app
from bot.app_keys import CONVERSATION_LOG, STATES
from bot.channels.wechat.api import WeChatClient
from bot.channels.wechat.xml import parse
from bot.redis_keys import Keys
from bot.settings import Settings
from tests.conftest import ADMIN_TOKEN, free_port
from tests.fake_wechat import FakeWeChat

TOKEN = "kefutesttoken"
APPID = "wx1234567890abcdef"
SECRET = "s" * 32
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeChat issues them
ACCOUNT = "gh_0123456789ab"
NOON = dt.datetime(2026, 11, 25, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
BASE = "/console/api/conversations"


def sign(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


def text_xml(openid: str, text: str, msg_id: str | None = None, kind: str = "text", **extra) -> str:  # type: ignore[no-untyped-def]
    fields = {
        "ToUserName": ACCOUNT,
        "FromUserName": openid,
        "CreateTime": str(int(time.time())),
        "MsgType": kind,
        **({"Content": text} if kind == "text" else {}),
        **extra,
    }
    if msg_id is not None:
        fields["MsgId"] = msg_id
    inner = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return f"<xml>{inner}</xml>"


class WeChatServer:
    """What WeChat's servers do: sign (and in safe mode encrypt) each push."""

    def __init__(self, client, aes: bool = False, appid: str = APPID) -> None:  # type: ignore[no-untyped-def]
        self.client = client
        self.crypto = WeChatCrypto(TOKEN, AES_KEY, appid) if aes else None

    async def push(
        self, xml: str, timestamp: int | None = None, signature: str | None = None
    ) -> aiohttp.ClientResponse:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = uuid.uuid4().hex[:10]
        params = {"timestamp": ts, "nonce": nonce, "openid": "x"}
        params["signature"] = signature or sign(TOKEN, ts, nonce)
        body = xml
        if self.crypto is not None:
            body = self.crypto.encrypt_message(xml, nonce, ts)
            params["encrypt_type"] = "aes"
            params["msg_signature"] = parse(body)["MsgSignature"]
        return await self.client.post("/webhooks/wechat", params=params, data=body.encode())

    async def reply_text(self, resp: aiohttp.ClientResponse) -> str | None:
        """The passive reply's text, None for `success`."""
        assert resp.status == 200, await resp.text()
        body = await resp.text()
        if body == "success":
            return None
        if self.crypto is not None:
            outer = parse(body)
            body = self.crypto.decrypt_message(
                body, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"]
            )
        fields = parse(body)
        assert fields["MsgType"] == "text" and fields["ToUserName"]
        return fields["Content"]


@pytest.fixture
async def fake(aiohttp_server):  # type: ignore[no-untyped-def]
    fake = FakeWeChat(APPID, SECRET)
    fake.server = await aiohttp_server(fake.app())
    return fake


def wechat_settings(settings: Settings, fake: FakeWeChat, **changes: object) -> Settings:
    return settings.with_(
        wechat_token=TOKEN,
        wechat_appid=APPID,
        wechat_secret=SECRET,
        wechat_aes_key=AES_KEY,
        wechat_api_base=str(fake.server.make_url("")).rstrip("/"),
        **changes,
    )


@pytest.fixture
async def make_client(aiohttp_client, settings, engine, fake):  # type: ignore[no-untyped-def]
    async def make(**changes: object):  # type: ignore[no-untyped-def]
        own = wechat_settings(settings, fake, **changes)
        app = create_app(own, engine, clock=lambda: NOON)
        return await aiohttp_client(app, server_kwargs={"port": own.port})

    return make


@pytest.fixture
async def client(make_client):  # type: ignore[no-untyped-def]
    return await make_client()


async def inbound(client, openid: str) -> list[dict]:  # type: ignore[no-untyped-def]
    timeline = await client.app[CONVERSATION_LOG].timeline(f"wechat:{openid}")
    return [e for e in timeline if e["direction"] == "in"]


async def test_server_verification_echoes_echostr_only_when_signed(client):
    ts, nonce = str(int(time.time())), "n0nce"
    params = {"timestamp": ts, "nonce": nonce, "echostr": "echo-123"}
    ok = await client.get(
        "/webhooks/wechat", params={**params, "signature": sign(TOKEN, ts, nonce)}
    )
    assert (ok.status, await ok.text()) == (200, "echo-123")
    bad = await client.get("/webhooks/wechat", params={**params, "signature": "0" * 40})
    assert bad.status == 403 and (await bad.json())["error"] == "bad_signature"


@pytest.mark.parametrize("aes", [False, True], ids=["plain", "safe"])
async def test_a_text_message_gets_a_passive_reply(client, aes):
    wechat = WeChatServer(client, aes=aes)
    reply = await wechat.reply_text(await wechat.push(text_xml("openid-1", "你是机器人吗", "1001")))
    assert reply and "机器人" in reply
    (entry,) = await inbound(client, "openid-1")
    assert (entry["text"], entry["intent"], entry["channel"]) == (
        "你是机器人吗",
        "ask_is_bot",
        "wechat",
    )


async def test_a_message_for_another_appid_is_refused(client):
    wechat = WeChatServer(client, aes=True, appid="wxsomeoneelse00000")
    resp = await wechat.push(text_xml("openid-2", "你好", "1002"))
    assert resp.status == 403 and (await resp.json())["error"] == "wrong_appid"
    assert await inbound(client, "openid-2") == []


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ('<!DOCTYPE xml [<!ENTITY e "x">]><xml><MsgType>text</MsgType></xml>', 400, "invalid_xml"),
        ("<xml><ToUserName>a</ToUserName>", 400, "invalid_xml"),
        ("not xml at all", 400, "invalid_xml"),
        ("<html><body>hi</body></html>", 400, "invalid_xml"),
        ("<xml><Content>你好</Content></xml>", 400, "invalid_message"),
        ("<xml>" + "<Content>长</Content>" * 5000 + "</xml>", 413, "too_large"),
    ],
    ids=["dtd", "truncated", "garbage", "not-wechat", "no-sender", "too-large"],
)
async def test_bad_bodies_are_refused_cleanly(client, body, status, error):
    resp = await WeChatServer(client).push(body)
    assert resp.status == status
    assert (await resp.json())["error"] == error


async def test_bad_signatures_and_stale_timestamps_are_refused(client):
    wechat = WeChatServer(client)
    xml = text_xml("openid-3", "你好", "1003")
    assert (await wechat.push(xml, signature="f" * 40)).status == 403
    stale = await wechat.push(xml, timestamp=int(time.time()) - 3600)
    assert stale.status == 403 and (await stale.json())["error"] == "stale_timestamp"
    # Safe mode: a valid outer signature but a forged msg_signature.
    safe = WeChatServer(client, aes=True)
    ts, nonce = str(int(time.time())), "abc"
    body = safe.crypto.encrypt_message(xml, nonce, ts)
    params = {
        "timestamp": ts,
        "nonce": nonce,
        "signature": sign(TOKEN, ts, nonce),
        "encrypt_type": "aes",
        "msg_signature": "0" * 40,
    }
    forged = await client.post("/webhooks/wechat", params=params, data=body.encode())
    assert forged.status == 403
    assert await inbound(client, "openid-3") == []


async def test_redeliveries_of_one_message_get_one_reply_and_one_log_entry(client):
    wechat = WeChatServer(client, aes=True)
    xml = text_xml("openid-4", "你好", "2001")
    replies = [await wechat.reply_text(await wechat.push(xml)) for _ in range(3)]
    assert replies[0] and replies[1:] == [None, None]
    concurrent = text_xml("openid-4", "谢谢", "2002")
    responses = await asyncio.gather(*(wechat.push(concurrent) for _ in range(3)))
    texts = [await wechat.reply_text(r) for r in responses]
    assert sum(t is not None for t in texts) == 1
    assert [e["text"] for e in await inbound(client, "openid-4")] == ["你好", "谢谢"]


async def test_a_slow_turn_answers_success_then_sends_exactly_once_through_the_api(
    make_client, fake
):
    client = await make_client(wechat_reply_budget=0.001)
    wechat = WeChatServer(client)
    resp = await wechat.push(text_xml("openid-5", "你是机器人吗", "3001"))
    assert await wechat.reply_text(resp) is None  # `success`, at once
    deadline = time.monotonic() + 10
    while not fake.texts_to("openid-5"):
        assert time.monotonic() < deadline, "the late reply never went out"
        await asyncio.sleep(0.05)
    await wechat.push(text_xml("openid-5", "你是机器人吗", "3001"))  # WeChat retries anyway
    await asyncio.sleep(0.5)
    (sent,) = fake.texts_to("openid-5")
    assert "机器人" in sent
    assert len(await inbound(client, "openid-5")) == 1


async def test_events_and_media(client):
    wechat = WeChatServer(client)
    openid = "openid-6"
    welcome = await wechat.reply_text(
        await wechat.push(text_xml(openid, "", kind="event", Event="subscribe"))
    )
    assert welcome and "机器人" in welcome and "人工" in welcome
    picture = await wechat.reply_text(
        await wechat.push(
            text_xml(openid, "", "4001", kind="image", PicUrl="http://x/p.jpg", MediaId="m1")
        )
    )
    assert picture and "文字" in picture
    voice = await wechat.reply_text(
        await wechat.push(
            text_xml(
                openid,
                "",
                "4002",
                kind="voice",
                MediaId="m2",
                Format="amr",
                Recognition="你是机器人吗",
            )
        )
    )
    assert voice and "机器人" in voice
    location = await wechat.reply_text(
        await wechat.push(
            text_xml(
                openid,
                "",
                "4003",
                kind="location",
                Location_X="31.2",
                Location_Y="121.4",
                Label="上海",
            )
        )
    )
    assert location and "文字" in location
    gone = await wechat.push(text_xml(openid, "", kind="event", Event="unsubscribe"))
    assert await wechat.reply_text(gone) is None
    texts = [e["text"] for e in await inbound(client, openid)]
    assert texts == [
        "[关注了公众号]",
        "[图片] http://x/p.jpg",
        "你是机器人吗",
        "[位置] 上海 (31.2, 121.4)",
        "[取消关注]",
    ]


async def test_agent_replies_go_out_through_the_api_and_survive_token_expiry(client, fake, logins):
    wechat = WeChatServer(client)
    await wechat.push(text_xml("openid-7", "转人工", "5001"))
    cid = "wechat:openid-7"
    assert (await client.app[STATES].get(cid)).state == "waiting"
    agent = await logins.sign_in(client, "agent1")
    assert (await agent.post(f"{BASE}/{cid}/claim")).status == 200
    # The bot is silent while the agent has it; the agent's words go out through the API.
    assert await wechat.reply_text(await wechat.push(text_xml("openid-7", "在吗", "5002"))) is None
    reply = await agent.post(f"{BASE}/{cid}/reply", {"text": "您好，我是客服小李"})
    assert (await reply.json())["pushed"] is True
    fake.expire_tokens()  # mid-conversation
    reply = await agent.post(f"{BASE}/{cid}/reply", {"text": "帮您查到了"})
    assert (await reply.json())["pushed"] is True
    sent = fake.texts_to("openid-7")
    assert sent[-2:] == ["您好，我是客服小李", "帮您查到了"] and "接入" in sent[0]
    assert fake.token_requests == 2


async def test_a_closed_48_hour_window_is_shown_to_the_agent(client, fake, logins):
    wechat = WeChatServer(client)
    await wechat.push(text_xml("openid-8", "转人工", "6001"))
    cid = "wechat:openid-8"
    agent = await logins.sign_in(client, "agent1")
    fake.closed_windows.add("openid-8")
    assert (await agent.post(f"{BASE}/{cid}/claim")).status == 200  # the notice fails quietly
    reply = await (await agent.post(f"{BASE}/{cid}/reply", {"text": "您好"})).json()
    assert (reply["pushed"], reply["error"]) == (False, "window_closed")
    view = await (await agent.get(f"{BASE}/{cid}")).json()
    assert view["can_push"] is False and "48" in view["push_note"]
    fake.closed_windows.discard("openid-8")
    await wechat.push(text_xml("openid-8", "我又来了", "6002"))  # the customer writes: open again
    view = await (await agent.get(f"{BASE}/{cid}")).json()
    assert view["can_push"] is True


async def test_two_processes_renewing_the_token_at_once_renew_it_once(redis_url, key_prefix, fake):
    fake.token_delay = 0.3
    base = str(fake.server.make_url("")).rstrip("/")
    keys = Keys(key_prefix)
    redis_a = Redis.from_url(redis_url, decode_responses=True)
    redis_b = Redis.from_url(redis_url, decode_responses=True)
    async with aiohttp.ClientSession() as a, aiohttp.ClientSession() as b:
        clients = [
            WeChatClient(a, redis_a, keys, base, APPID, SECRET),
            WeChatClient(b, redis_b, keys, base, APPID, SECRET),
        ]
        tokens = await asyncio.gather(*(c.token() for c in clients))
        assert tokens[0] == tokens[1] and fake.token_requests == 1
        fake.expire_tokens()
        await asyncio.gather(*(c.send_text("openid-9", "你好") for c in clients))
        assert fake.token_requests == 2 and fake.texts_to("openid-9") == ["你好", "你好"]
    await redis_a.close()
    await redis_b.close()


async def test_without_configuration_the_channel_is_off_and_the_rest_runs(
    aiohttp_client, settings, engine, caplog
):
    caplog.set_level(logging.INFO, logger="bot.channels.wechat.routes")
    client = await aiohttp_client(
        create_app(settings, engine), server_kwargs={"port": settings.port}
    )
    assert (await client.post("/webhooks/wechat", data=b"<xml/>")).status == 404
    assert any("WeChat channel off" in r.getMessage() for r in caplog.records)
    resp = await client.post("/webhooks/rest/webhook", json={"sender": "u", "message": "你好"})
    assert resp.status == 200


def test_an_invalid_aes_key_stops_the_start():
    from bot.settings import SettingsError

    with pytest.raises(SettingsError):
        Settings.from_env({"WECHAT_AES_KEY": "too-short", "BOT_PORT": str(free_port()),
                           "BOT_ADMIN_TOKEN": ADMIN_TOKEN}, dotenv=None)  # fmt: skip


async def test_an_unsure_bot_asks_with_numbered_options_and_a_number_answers(client):
    wechat = WeChatServer(client)
    question = await wechat.reply_text(
        await wechat.push(text_xml("openid-q", "退的优惠券", "3001"))
    )
    assert question and "1" in question and "2" in question
    assert "退货退款" in question and "问优惠活动" in question
    answer = await wechat.reply_text(await wechat.push(text_xml("openid-q", "1", "3002")))
    assert answer and "你是想" not in answer
    first, second = await inbound(client, "openid-q")
    # "1" is the reading named first in the question.
    named_first = (
        "return_refund"
        if question.index("退货退款") < question.index("问优惠活动")
        else "promotion"
    )
    assert (first["intent"], second["intent"]) == ("nlu_fallback", named_first)


async def test_a_qr_code_subscribe_and_scan_record_the_campaign_source(client, logins):
    wechat = WeChatServer(client, aes=True)
    openid = "openid-qr"
    welcome = await wechat.reply_text(
        await wechat.push(
            text_xml(openid, "", kind="event", Event="subscribe", EventKey="qrscene_spring",
                     Ticket="TICKET")
        )
    )  # fmt: skip
    assert welcome and ("欢迎关注" in welcome or "感谢关注" in welcome)
    cid = f"wechat:{openid}"
    agent = await logins.sign_in(client, "agent1")
    view = await (await agent.get(f"{BASE}/{cid}")).json()
    assert (view["channel"], view["source"]) == ("wechat", "spring")
    # A follower scanning another campaign's code: greeted, the latest source kept.
    hello = await wechat.reply_text(
        await wechat.push(
            text_xml(openid, "", kind="event", Event="SCAN", EventKey="autumn", Ticket="T2")
        )
    )
    assert hello and "机器人" in hello and "关注" not in hello
    view = await (await agent.get(f"{BASE}/{cid}")).json()
    assert view["source"] == "autumn" and view["can_push"] is True
    assert [e["text"] for e in await inbound(client, openid)] == [
        "[关注了公众号] 扫码来源：spring",
        "[扫码] autumn",
    ]


async def test_a_plain_subscribe_has_no_source(client, logins):
    wechat = WeChatServer(client)
    await wechat.push(text_xml("openid-plain", "", kind="event", Event="subscribe"))
    agent = await logins.sign_in(client, "agent1")
    view = await (await agent.get(f"{BASE}/wechat:openid-plain")).json()
    assert view["source"] is None


async def test_menu_clicks_answer_from_the_menu_file_and_hand_over(client):
    wechat = WeChatServer(client)
    openid = "openid-menu"

    def click(key: str) -> str:
        return text_xml(openid, "", kind="event", Event="CLICK", EventKey=key)

    fee = await wechat.reply_text(await wechat.push(click("SHIPPING_FEE")))
    assert fee and "99" in fee  # nlu_data/knowledge.yml, entry free_shipping
    unknown = await wechat.reply_text(await wechat.push(click("NO_SUCH_KEY")))
    assert unknown and "人工" in unknown
    handed = await wechat.reply_text(await wechat.push(click("CONTACT_AGENT")))
    assert handed and ("人工" in handed or "客服" in handed)
    assert (await client.app[STATES].get(f"wechat:{openid}")).state == "waiting"
    entries = await inbound(client, openid)
    assert [e["text"] for e in entries] == [
        "[菜单] 运费说明",
        "[菜单] NO_SUCH_KEY",
        "[菜单] 联系客服",
    ]
    assert (entries[0]["intent"], entries[2]["intent"]) == ("shipping_policy", "request_human")


async def test_voice_without_recognition_is_answered_honestly(client):
    wechat = WeChatServer(client)
    voice = await wechat.reply_text(
        await wechat.push(
            text_xml("openid-v", "", "7001", kind="voice", MediaId="m9", Format="amr")
        )
    )
    assert voice and "文字" in voice
    (entry,) = await inbound(client, "openid-v")
    assert entry["text"] == "[语音] media_id=m9"


def test_every_menu_button_names_an_intent_of_the_domain():
    from pathlib import Path

    import yaml

    from bot.channels.menu import Menu
    from bot.content.knowledge import KnowledgeBase

    root = Path(__file__).resolve().parent.parent
    domain = yaml.safe_load((root / "nlu_data/domain.yml").read_text(encoding="utf-8"))
    knowledge = KnowledgeBase.load(root / "nlu_data/knowledge.yml")
    menu = Menu.load(root / "nlu_data/menu.yml", knowledge, set(domain["intents"]))
    assert menu.get("CONTACT_AGENT") and menu.get("CONTACT_AGENT").intent == "request_human"
    for button in menu.buttons.values():
        if button.entry:  # the words chosen for an entry are answered by that entry
            answer = knowledge.answer(button.intent, button.text)
            assert answer and answer.entry == button.entry, button
