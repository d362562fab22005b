"""Whatever arrives at `/webhooks/wechat` with a valid signature, the answer is never a 500.

Hypothesis generates bodies (random bytes, XML-looking noise, and well-formed
WeChat messages with random fields and values, in plain and safe mode); each
is posted over real HTTP to a bot serving in a thread of its own.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from xml.sax.saxutils import escape

import pytest
import redis as redis_sync
from aiohttp import web
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bot.app import create_app
from bot.channels.wechat.crypto import signature
from bot.settings import Settings
from tests.conftest import free_port

TOKEN, APPID, SECRET = "fuzztoken", "wxfuzz000000000000", "f" * 32
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.fixture(scope="module")
def bot_url(engine, redis_url, model_dir) -> Iterator[str]:  # type: ignore[no-untyped-def]
    prefix = "kefufuzz" + uuid.uuid4().hex[:8]
    port = free_port()
    settings = Settings.from_env(
        {
            "REDIS_URL": redis_url,
            "BOT_PORT": str(port),
            "BOT_KEY_PREFIX": prefix,
            "BOT_MODEL_DIR": str(model_dir),
            "BOT_BCRYPT_ROUNDS": "4",
            "WECHAT_TOKEN": TOKEN,
            "WECHAT_APPID": APPID,
            "WECHAT_SECRET": SECRET,
            "WECHAT_AES_KEY": AES_KEY,
            "WECHAT_API_BASE": "http://127.0.0.1:9",  # nothing to call: replies are passive
        },
        dotenv=None,
    )
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(create_app(settings, engine))
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(60), "the bot did not start"
    yield f"http://127.0.0.1:{port}/webhooks/wechat"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)
    client = redis_sync.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)


FIELDS = [
    "ToUserName",
    "FromUserName",
    "CreateTime",
    "MsgType",
    "Content",
    "MsgId",
    "Event",
    "PicUrl",
    "MediaId",
    "Recognition",
    "Location_X",
    "Label",
    "Url",
    "Encrypt",
]
FRESH_ID = "@@fresh-id@@"
# Text that can stand in an XML document (most generated messages should parse).
XML_TEXT = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=60)
MSG_TYPES = ["text", "image", "voice", "video", "shortvideo", "location", "link", "event", "file"]


@st.composite
def messages(draw: st.DrawFn) -> str:
    fields = {
        "ToUserName": draw(XML_TEXT),
        "FromUserName": draw(XML_TEXT),
        "CreateTime": draw(st.one_of(st.integers().map(str), XML_TEXT)),
        "MsgType": draw(st.one_of(st.sampled_from(MSG_TYPES), XML_TEXT)),
        # Mostly a fresh id (filled in per request): a repeated one only tests deduplication.
        "MsgId": draw(st.one_of(st.just(FRESH_ID), st.just(FRESH_ID), XML_TEXT)),
    }
    extra = draw(st.dictionaries(st.sampled_from(FIELDS), XML_TEXT, max_size=6))
    fields.update(extra)
    if draw(st.booleans()):
        fields["MsgType"] = "event"
        fields["Event"] = draw(st.sampled_from(["subscribe", "unsubscribe", "CLICK", ""]))
    inner = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields.items())
    return f"<xml>{inner}</xml>"


NOISE = st.text(alphabet="<>/!?[]&;=\"' xmlCDATDOCYPENIY文字\x00\x01", max_size=200)
BODIES = st.one_of(
    st.binary(max_size=300),
    NOISE.map(lambda s: s.encode("utf-8", "surrogatepass")),
    messages().map(lambda s: s.encode("utf-8")),
    messages().map(lambda s: s.encode("utf-8")),
    messages().map(lambda s: s.encode("utf-8")),
)


def post(url: str, body: bytes, params: dict[str, str]) -> int:
    request = urllib.request.Request(
        url + "?" + urllib.parse.urlencode(params), data=body, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@hypothesis_settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES, safe=st.booleans(), encrypt=st.binary(max_size=80))
def test_no_body_with_a_valid_signature_gets_a_500(bot_url, body, safe, encrypt):
    ts, nonce = str(int(time.time())), uuid.uuid4().hex[:8]
    params = {"timestamp": ts, "nonce": nonce, "signature": signature(TOKEN, ts, nonce)}
    if safe:
        # A correctly signed but arbitrary Encrypt field, wrapped like WeChat's.
        field = base64.b64encode(encrypt).decode()
        body = f"<xml><ToUserName>x</ToUserName><Encrypt>{field}</Encrypt></xml>".encode()
        params.update(encrypt_type="aes", msg_signature=signature(TOKEN, ts, nonce, field))
    body = body.replace(FRESH_ID.encode(), uuid.uuid4().hex.encode())
    status = post(bot_url, body, params)
    assert status < 500, (status, body[:200])
