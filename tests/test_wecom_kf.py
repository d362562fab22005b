"""WeChat Customer Service (WeCom kf) against a local fake of WeCom's API.

Callbacks are signed and encrypted by wechatpy's WeCom crypto (wechatpy.enterprise), an independent
implementation of the scheme, with the corp id as the receiver.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
import redis as redis_sync
from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto
from wechatpy.utils import WeChatSigner

from bot.app import create_app
from bot.app_keys import CONVERSATION_LOG, STATES
from bot.channels.wechat.xml import parse
from bot.redis_keys import Keys
from bot.settings import Rate
from tests.conftest import ROOT, free_port
from tests.fake_wecom_kf import FakeWeComKf
from tests.test_multiprocess import _wait_ready

CORP = "ww0123456789abcdef"
SECRET = "kfsecret-" + "x" * 34
TOKEN = "kefukftoken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
KFID = "wkAbCdEf0123456789"
PATH = "/webhooks/wecom-kf"
BASE = "/console/api/conversations"


def cid(user: str, open_kfid: str = KFID) -> str:
    return f"wecomkf:{open_kfid}/{user}"


class WeCom:
    """What WeCom's servers do: sign and encrypt each callback for our corp."""

    def __init__(self, client, fake: FakeWeComKf, corp: str = CORP) -> None:  # type: ignore[no-untyped-def]
        self.client, self.fake = client, fake
        self.crypto = WeChatCrypto(TOKEN, AES_KEY, corp)

    async def announce(self, open_kfid: str = KFID, token: str | None = None):  # type: ignore[no-untyped-def]
        token = token or self.fake.new_callback_token()
        xml = (
            f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime>"
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event>"
            f"<Token><![CDATA[{token}]]></Token><OpenKfId><![CDATA[{open_kfid}]]></OpenKfId></xml>"
        )
        ts, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
        body = self.crypto.encrypt_message(xml, nonce, ts)
        params = {"msg_signature": parse(body)["MsgSignature"], "timestamp": ts, "nonce": nonce}
        resp = await self.client.post(PATH, params=params, data=body.encode())
        assert resp.status == 200, await resp.text()
        return resp


async def until(check: Callable[[], bool], what: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def fake(aiohttp_server):  # type: ignore[no-untyped-def]
    fake = FakeWeComKf(CORP, SECRET)
    fake.server = await aiohttp_server(fake.app())
    return fake


@pytest.fixture
async def make_client(aiohttp_client, settings, engine, fake):  # type: ignore[no-untyped-def]
    async def make(**changes: object):  # type: ignore[no-untyped-def]
        own = settings.with_(
            wecom_corp_id=CORP,
            wecom_kf_secret=SECRET,
            wecom_token=TOKEN,
            wecom_aes_key=AES_KEY,
            wecom_api_base=str(fake.server.make_url("")).rstrip("/"),
            wecom_kf_retry_seconds=0.2,
            **changes,
        )
        return await aiohttp_client(create_app(own, engine), server_kwargs={"port": own.port})

    return make


@pytest.fixture
async def client(make_client):  # type: ignore[no-untyped-def]
    return await make_client()


async def inbound(client, user: str) -> list[dict]:  # type: ignore[no-untyped-def]
    timeline = await client.app[CONVERSATION_LOG].timeline(cid(user))
    return [e for e in timeline if e["direction"] == "in"]


async def test_url_check_answers_the_decrypted_echostr_only_when_signed(client):
    wecom = WeCom(client, None)  # type: ignore[arg-type]
    echostr = PrpCrypto(wecom.crypto.key).encrypt("echo-4711", CORP).decode()
    ts, nonce = str(int(time.time())), "n0nce"
    signer = WeChatSigner()
    signer.add_data(TOKEN, ts, nonce, echostr)
    params = {"timestamp": ts, "nonce": nonce, "echostr": echostr}
    ok = await client.get(PATH, params={**params, "msg_signature": signer.signature})
    assert (ok.status, await ok.text()) == (200, "echo-4711")
    bad = await client.get(PATH, params={**params, "msg_signature": "0" * 40})
    assert bad.status == 403 and (await bad.json())["error"] == "bad_signature"
    stale = {**params, "timestamp": str(int(time.time()) - 3600)}
    assert (
        await client.get(PATH, params={**stale, "msg_signature": signer.signature})
    ).status == 403


async def test_callbacks_for_another_corp_or_garbled_are_refused(client, fake):
    fake.customer_says(KFID, "wmUser0", "你好")
    other = WeCom(client, fake, corp="wwsomeoneelse000000")
    ts, nonce = str(int(time.time())), "abc"
    body = other.crypto.encrypt_message("<xml><Event>kf_msg_or_event</Event></xml>", nonce, ts)
    params = {"msg_signature": parse(body)["MsgSignature"], "timestamp": ts, "nonce": nonce}
    resp = await client.post(PATH, params=params, data=body.encode())
    assert resp.status == 403 and (await resp.json())["error"] == "wrong_corp"
    garbage = await client.post(PATH, params=params, data=b"not xml")
    assert garbage.status == 400 and (await garbage.json())["error"] == "invalid_xml"
    await asyncio.sleep(0.3)
    assert fake.sync_calls == [] and fake.sent == []


async def test_a_text_is_pulled_and_answered_through_send_msg(client, fake):
    fake.customer_says(KFID, "wmUser1", "你是机器人吗")
    await WeCom(client, fake).announce()
    await until(lambda: fake.texts_to("wmUser1"), "the answer")
    (answer,) = fake.to("wmUser1")
    assert answer["open_kfid"] == KFID and answer["msgtype"] == "text"
    assert "机器人" in answer["text"]["content"]
    (entry,) = await inbound(client, "wmUser1")
    assert (entry["text"], entry["intent"], entry["channel"]) == (
        "你是机器人吗",
        "ask_is_bot",
        "wecomkf",
    )
    assert fake.sync_calls[0]["token"] in fake.callback_tokens


async def test_redelivered_callbacks_get_one_answer(client, fake):
    fake.customer_says(KFID, "wmUser2", "你好")
    wecom = WeCom(client, fake)
    token = fake.new_callback_token()
    await asyncio.gather(*(wecom.announce(token=token) for _ in range(3)))
    await until(lambda: fake.texts_to("wmUser2"), "the answer")
    await wecom.announce(token=token)  # redelivered later, too
    await asyncio.sleep(0.8)
    assert len(fake.texts_to("wmUser2")) == 1
    assert len(await inbound(client, "wmUser2")) == 1


async def test_a_restart_between_pulls_loses_and_repeats_nothing(make_client, fake):
    fake.page_size = 1  # every page says has_more until the end
    first = await make_client()
    fake.customer_says(KFID, "wmUser3", "你好")
    await WeCom(first, fake).announce()
    await until(lambda: len(fake.texts_to("wmUser3")) == 1, "the first answer")
    await first.close()
    fake.customer_says(KFID, "wmUser3", "你是机器人吗")
    fake.customer_says(KFID, "wmUser3", "谢谢")
    second = await make_client()
    await WeCom(second, fake).announce()
    await until(lambda: len(fake.texts_to("wmUser3")) == 3, "the answers after the restart")
    await asyncio.sleep(0.5)
    assert len(fake.texts_to("wmUser3")) == 3
    texts = [e["text"] for e in await inbound(second, "wmUser3")]
    assert texts == ["你好", "你是机器人吗", "谢谢"]
    # The restarted process went on from the saved cursor, page by page.
    assert [c.get("cursor") for c in fake.sync_calls] == [None, "1", "2"]


async def test_two_processes_pulling_at_once_answer_each_message_once(make_client, fake, settings):
    a = await make_client()
    b = await make_client(port=free_port())
    users = [f"wmPair{i}" for i in range(6)]
    for user in users:
        fake.customer_says(KFID, user, "你好")
    wecoms = [WeCom(a, fake), WeCom(b, fake)]
    await asyncio.gather(*(wecoms[i % 2].announce() for i in range(6)))
    await until(lambda: all(fake.texts_to(u) for u in users), "every answer")
    await asyncio.sleep(0.8)
    assert [len(fake.texts_to(u)) for u in users] == [1] * 6
    for user in users:
        assert len(await inbound(a, user)) == 1


async def test_an_agents_reply_goes_out_and_the_window_is_shown(client, fake, logins):
    fake.customer_says(KFID, "wmUser4", "转人工")
    await WeCom(client, fake).announce()
    conversation = cid("wmUser4")
    await until(lambda: fake.texts_to("wmUser4"), "the handoff line")
    await until_state(client, conversation, "waiting")
    agent = await logins.sign_in(client, "agent1")
    path = f"{BASE}/{conversation.replace('/', '%2F')}"
    assert (await agent.post(f"{path}/claim")).status == 200
    reply = await agent.post(f"{path}/reply", {"text": "您好，我是客服小李"})
    assert (await reply.json())["pushed"] is True
    assert fake.texts_to("wmUser4")[-1] == "您好，我是客服小李"
    view = await (await agent.get(path)).json()
    assert view["can_push"] is True and view["channel"] == "wecomkf"
    left = 5 - len(fake.texts_to("wmUser4"))
    assert f"还能发 {left}/5 条" in view["push_window"] and "47 小时" in view["push_window"]


async def until_logged(client, user: str, count: int) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 10
    while len(await inbound(client, user)) < count:
        assert time.monotonic() < deadline, f"{user}'s messages were never all logged"
        await asyncio.sleep(0.05)


async def until_state(client, conversation: str, state: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 10
    while (await client.app[STATES].get(conversation)).state != state:
        assert time.monotonic() < deadline, f"{conversation} never became {state}"
        await asyncio.sleep(0.05)


async def test_five_messages_per_window_then_refused_and_shown(client, fake, logins):
    fake.customer_says(KFID, "wmUser5", "转人工")
    await WeCom(client, fake).announce()
    conversation = cid("wmUser5")
    await until_state(client, conversation, "waiting")
    agent = await logins.sign_in(client, "agent1")
    path = f"{BASE}/{conversation.replace('/', '%2F')}"
    assert (await agent.post(f"{path}/claim")).status == 200  # "an agent joined" is sent too
    results = []
    for i in range(6):
        results.append(await (await agent.post(f"{path}/reply", {"text": f"第{i}条"})).json())
    assert len(fake.texts_to("wmUser5")) == 5
    assert results[-1]["pushed"] is False and results[-1]["error"] == "window_closed"
    assert fake.refused == []  # held back here, not sent to be refused
    view = await (await agent.get(path)).json()
    assert view["can_push"] is False and "5 条" in view["push_note"]
    fake.customer_says(KFID, "wmUser5", "还在吗")  # the customer writes: five more
    await WeCom(client, fake).announce()
    deadline = time.monotonic() + 10
    while not (await (await agent.get(path)).json())["can_push"]:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def test_a_message_older_than_48_hours_cannot_be_answered_and_agents_see_why(
    client, fake, logins
):
    old = int(time.time()) - 49 * 3600
    fake.customer_says(KFID, "wmUser6", "你是机器人吗", send_time=old)
    await WeCom(client, fake).announce()
    conversation = cid("wmUser6")
    await until_logged(client, "wmUser6", 1)
    await asyncio.sleep(0.5)
    assert fake.to("wmUser6") == [] and fake.refused == []
    agent = await logins.sign_in(client, "agent1")
    view = await (await agent.get(f"{BASE}/{conversation.replace('/', '%2F')}")).json()
    assert view["can_push"] is False and "48" in view["push_note"]
    assert view["push_window"] is None


async def test_entering_the_session_gets_the_welcome_through_its_code(client, fake):
    fake.customer_enters(KFID, "wmUser7", scene="video")
    await WeCom(client, fake).announce()
    await until(lambda: fake.welcomes, "the welcome")
    (welcome,) = fake.welcomes
    assert welcome["msgtype"] == "text" and "机器人" in welcome["text"]["content"]
    assert "人工" in welcome["text"]["content"]
    assert [e["text"] for e in await inbound(client, "wmUser7")] == ["[进入会话]"]


async def test_a_clarification_is_a_click_menu_and_a_click_answers_it(client, fake):
    wecom = WeCom(client, fake)
    fake.customer_says(KFID, "wmUser8", "退的优惠券")
    await wecom.announce()
    await until(lambda: fake.to("wmUser8"), "the question")
    (question,) = fake.to("wmUser8")
    assert question["msgtype"] == "msgmenu"
    items = question["msgmenu"]["list"]
    labels = [i["click"]["content"] for i in items]
    assert sorted(labels) == sorted(["退货退款", "问优惠活动"])
    assert all(i["type"] == "click" and i["click"]["id"] for i in items)
    # WeCom sends the click back as a text with the item's label and id.
    chosen = items[1]["click"]
    fake.customer_says(KFID, "wmUser8", chosen["content"], menu_id=chosen["id"])
    await wecom.announce()
    await until(lambda: len(fake.to("wmUser8")) == 2, "the answer")
    first, second = await inbound(client, "wmUser8")
    expected = {"退货退款": "return_refund", "问优惠活动": "promotion"}[chosen["content"]]
    assert (first["intent"], second["intent"]) == ("nlu_fallback", expected)
    assert fake.to("wmUser8")[1]["msgtype"] == "text"


async def test_media_is_answered_honestly_with_an_offer_of_a_person(client, fake):
    fake.customer_sends(KFID, "wmUser9", "image", {"media_id": "MEDIA1"})
    await WeCom(client, fake).announce()
    await until(lambda: fake.texts_to("wmUser9"), "the answer")
    (answer,) = fake.texts_to("wmUser9")
    assert "文字" in answer and "人工" in answer
    assert [e["text"] for e in await inbound(client, "wmUser9")] == ["[图片] media_id=MEDIA1"]


async def test_an_expired_token_is_renewed_and_a_rate_limited_pull_retried(client, fake):
    wecom = WeCom(client, fake)
    fake.customer_says(KFID, "wmUserA", "你好")
    await wecom.announce()
    await until(lambda: fake.texts_to("wmUserA"), "the first answer")
    fake.expire_tokens()
    fake.rate_limited_calls = 1
    fake.customer_says(KFID, "wmUserA", "谢谢")
    await wecom.announce()
    await until(lambda: len(fake.texts_to("wmUserA")) == 2, "the second answer")
    assert fake.token_requests == 2


async def test_handoff_to_a_wecom_servicer_when_configured(make_client, fake):
    client = await make_client(wecom_kf_handoff="servicer", wecom_kf_servicer="zhangsan")
    wecom = WeCom(client, fake)
    fake.customer_says(KFID, "wmUserB", "转人工")
    await wecom.announce()
    await until(lambda: fake.transfers, "the transfer")
    (transfer,) = fake.transfers
    assert transfer == {
        "open_kfid": KFID,
        "external_userid": "wmUserB",
        "service_state": 3,
        "servicer_userid": "zhangsan",
    }
    # Recorded here once WeCom accepted the transfer (just after the call returns).
    await until_state(client, cid("wmUserB"), "closed")
    handoff = await client.app[STATES].get(cid("wmUserB"))
    assert (handoff.state, handoff.tag) == ("closed", "wecom_servicer")
    sent = len(fake.to("wmUserB"))
    fake.customer_says(KFID, "wmUserB", "你好")  # the servicer answers now, not the bot
    await wecom.announce()
    await until_logged(client, "wmUserB", 2)
    await asyncio.sleep(0.3)
    assert len(fake.to("wmUserB")) == sent


async def test_messages_over_the_rate_limit_are_not_processed_and_told_once(make_client, fake):
    client = await make_client(rate_conversation=Rate(2, 60.0))
    for text in ("你好", "你是机器人吗", "谢谢", "再见"):
        fake.customer_says(KFID, "wmFast", text)
    await WeCom(client, fake).announce()
    await until(lambda: len(fake.texts_to("wmFast")) == 3, "two answers and the rate line")
    await asyncio.sleep(0.5)
    texts = fake.texts_to("wmFast")
    assert len(texts) == 3 and ("太快" in texts[-1] or "太频繁" in texts[-1])
    # The excess messages were neither logged nor given to the dialogue.
    assert [e["text"] for e in await inbound(client, "wmFast")] == ["你好", "你是机器人吗"]


async def test_what_a_wecom_servicer_types_is_logged_as_theirs_and_not_answered(client, fake):
    fake.customer_says(KFID, "wmUserC", "你好")
    fake.servicer_says(KFID, "wmUserC", "lisi", "您好，我是李四，有什么可以帮您？")
    await WeCom(client, fake).announce()
    await until_logged(client, "wmUserC", 1)
    deadline = time.monotonic() + 10
    while True:
        log = await client.app[CONVERSATION_LOG].timeline(cid("wmUserC"))
        theirs = [e for e in log if e.get("action") == "agent:wecom:lisi"]
        if theirs or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    (entry,) = theirs
    assert (entry["direction"], entry["text"]) == ("out", "您好，我是李四，有什么可以帮您？")
    await asyncio.sleep(0.5)
    assert len(fake.texts_to("wmUserC")) == 1  # the bot answered the customer, not the servicer
    assert len(await inbound(client, "wmUserC")) == 1


async def test_without_configuration_the_channel_is_off(aiohttp_client, settings, engine):
    client = await aiohttp_client(
        create_app(settings, engine), server_kwargs={"port": settings.port}
    )
    assert (await client.post(PATH, data=b"<xml/>")).status == 404
    assert (await client.get(PATH)).status == 404


# -- a real crash: a bot process killed (-9) mid-turn ------------------------------------
#
# The process pulled the customer's message, claimed it, logged it and its reply,
# and was sending the reply when it died (the fake WeCom holds that send and never
# delivers it). The next pull, by another process, must answer the message once:
# logged once, its dialogue not run again, one reply delivered.


def start_bot(settings, fake, logs: Path) -> tuple[subprocess.Popen[bytes], int]:  # type: ignore[no-untyped-def]
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": settings.redis_url,
        "BOT_HOST": "127.0.0.1",
        "BOT_PORT": str(port),
        "BOT_KEY_PREFIX": settings.key_prefix,
        "BOT_MODEL_DIR": str(settings.model_dir),
        "WECOM_CORP_ID": CORP,
        "WECOM_KF_SECRET": SECRET,
        "WECOM_TOKEN": TOKEN,
        "WECOM_AES_KEY": AES_KEY,
        "WECOM_API_BASE": str(fake.server.make_url("")).rstrip("/"),
        "WECOM_KF_RETRY_SECONDS": "0.2",
    }
    out = open(logs / f"bot-{port}.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"], cwd=ROOT, env=env, stdout=out, stderr=out
    )
    return proc, port


@pytest.mark.slow
async def test_a_process_killed_mid_turn_loses_nothing_and_the_next_pull_answers_once(
    make_client, fake, settings, tmp_path
):
    user = "wmCrash1"
    fake.customer_says(KFID, user, "你是机器人吗")
    fake.hold_to.add(user)
    proc, port = start_bot(settings, fake, tmp_path)
    try:
        await asyncio.to_thread(_wait_ready, [port], [proc], tmp_path)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            await WeCom(http, fake).announce()
            await until(lambda: fake.held, "the reply on its way out", 60)
        proc.kill()  # SIGKILL: no cleanup, no giving the claim back
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    fake.hold_to.clear()
    fake.let_go.set()
    conversation = cid(user)
    # The dead process left its claim and the saved cursor before the message.
    keys = Keys(settings.key_prefix)
    redis = redis_sync.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        msgid = fake.messages[KFID][0]["msgid"]
        assert redis.get(keys.wecomkf_message(conversation, msgid)) not in (None, "done")
        assert redis.get(keys.wecomkf_cursor(KFID)) is None
    finally:
        redis.close()
    assert fake.texts_to(user) == []

    survivor = await make_client()
    started = time.monotonic()
    await WeCom(survivor, fake).announce()  # the next callback, for anything at all
    await until(lambda: fake.texts_to(user), "the answer after the crash", 40)
    await asyncio.sleep(1.0)
    (answer,) = fake.texts_to(user)
    assert "机器人" in answer
    assert fake.held[0]["text"]["content"] == answer  # what the dead process was sending
    log = await survivor.app[CONVERSATION_LOG].timeline(conversation)
    inbound = [e for e in log if e["direction"] == "in"]
    outbound = [e for e in log if e["direction"] == "out"]
    assert [e["text"] for e in inbound] == ["你是机器人吗"]
    # The dialogue ran once (in the dead process): its reply is logged once.
    assert [e["text"] for e in outbound] == [answer]
    # Taken over once the leases ran out, not after the claim's two days.
    assert time.monotonic() - started < 30
