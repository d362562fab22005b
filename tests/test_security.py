"""Hostile input gets a 4xx or a timely close, pages get tight headers, sockets check Origin."""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
import pytest
import yaml

from bot.app import create_app
from bot.app_keys import CONVERSATION_LOG, STATES
from bot.security.proxy import TrustedProxies, bucket
from bot.settings import Settings
from tests.conftest import ADMIN_TOKEN, ROOT, free_port
from tests.helpers import Visitor, say


async def raw_http(port: int, request: bytes, wait: float) -> bytes:
    """Send `request` as is and read what comes back until the server closes or `wait` passes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), wait)
    finally:
        writer.close()


async def test_deeply_nested_json_is_a_400_not_a_500(client, caplog):
    caplog.set_level(logging.WARNING, logger="bot.errors")
    body = b'{"sender": "x", "message": "hi", "metadata": ' + b"[" * 20000 + b"}"
    resp = await client.post(
        "/webhooks/rest/webhook", data=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_json"
    assert await client.app[CONVERSATION_LOG].count() == 0
    nested = await client.post(
        "/webhooks/actions",
        data=b"[" * 20000,
        headers={"Authorization": f"Bearer {await _action_token(client)}"},
    )
    assert nested.status == 400


async def _action_token(client) -> str:  # type: ignore[no-untyped-def]
    from bot.app_keys import ACTION_SERVER

    token = client.app[ACTION_SERVER].token
    assert token
    return str(token)


@pytest.mark.parametrize("path", ["/api/conversations", "/webhooks/actions", "/metrics"])
async def test_a_non_utf8_authorization_header_is_refused_not_a_500(
    aiohttp_client, settings, engine, path
):
    own = settings.with_(metrics_token="metrics-token-123")
    await aiohttp_client(create_app(own, engine), server_kwargs={"port": own.port})
    method = b"POST" if path == "/webhooks/actions" else b"GET"
    request = (
        method + b" " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer \xff\xfe\x80\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    answer = await raw_http(own.port, request, wait=10)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401"), head
    assert json.loads(body)["error"] in ("unauthorised", "unauthorized")


async def test_a_body_shorter_than_its_content_length_gets_408_and_a_close(
    aiohttp_client, settings, engine
):
    own = settings.with_(body_timeout=0.5)
    client = await aiohttp_client(create_app(own, engine), server_kwargs={"port": own.port})
    request = (
        b"POST /webhooks/rest/webhook HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        b'{"sender": "x", "message": "'
    )
    answer = await raw_http(own.port, request, wait=5)  # closed by then, not held open
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert b'"error": "body_timeout"' in body
    assert await client.app[CONVERSATION_LOG].count() == 0


async def test_the_web_chat_page_has_the_same_headers_as_the_other_pages(client):
    chat = await client.get("/")
    console = await client.get("/console")
    assert chat.status == console.status == 200
    for name in ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy"):
        assert chat.headers[name] == console.headers[name], name
    assert "frame-ancestors 'none'" in chat.headers["Content-Security-Policy"]
    assert chat.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/", "/healthz", "/console", "/nothing-here", "/metrics"])
async def test_no_response_names_server_versions(client, path):
    resp = await client.get(path)
    server = resp.headers.get("Server", "")
    assert (
        "Python" not in server
        and "aiohttp" not in server
        and not any(ch.isdigit() for ch in server)
    )
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_compose_puts_metrics_behind_a_token_by_default(aiohttp_client, settings, engine):
    spec = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())
    environment = spec["services"]["bot"]["environment"]
    assert environment["BOT_METRICS_TOKEN"] == "${BOT_METRICS_TOKEN:-}"
    # The compose deployment as configured there: no token given, /metrics closed.
    own = Settings.from_env(
        {**vars_of(settings), "BOT_METRICS_OPEN": environment["BOT_METRICS_OPEN"]}, dotenv=None
    )
    client = await aiohttp_client(create_app(own, engine), server_kwargs={"port": own.port})
    closed = await client.get("/metrics")
    assert closed.status == 403 and (await closed.json())["error"] == "metrics_closed"
    token = "metrics-token-456"
    with_token = own.with_(port=free_port(), metrics_token=token)
    opened = await aiohttp_client(
        create_app(with_token, engine), server_kwargs={"port": with_token.port}
    )
    assert (await opened.get("/metrics")).status == 401
    ok = await opened.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert ok.status == 200 and "kefu_messages_total" in await ok.text()


def vars_of(settings: Settings) -> dict[str, str]:
    """The environment the test settings were made from."""
    return {
        "REDIS_URL": settings.redis_url,
        "BOT_PORT": str(settings.port),
        "BOT_KEY_PREFIX": settings.key_prefix,
        "BOT_MODEL_DIR": str(settings.model_dir),
        "BOT_BCRYPT_ROUNDS": "4",
    }


async def test_websockets_refuse_other_origins(aiohttp_client, settings, engine, sign_in, client):
    own = settings.with_(port=free_port(), public_origin="https://kefu.example.com")
    public = await aiohttp_client(create_app(own, engine), server_kwargs={"port": own.port})
    async with Visitor(public) as visitor:
        await visitor.open()
        url = visitor.url("/webchat/ws")
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await visitor.http.ws_connect(url, origin="https://evil.example.net")
        assert refused.value.status == 403
        ws = await visitor.http.ws_connect(url, origin="https://kefu.example.com")
        await ws.close()
    # Without BOT_PUBLIC_ORIGIN: the request's own origin only.
    agent = await sign_in("agent1")
    with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:
        await agent.session.ws_connect(agent.url("/console/ws"), origin="https://evil.example.net")
    assert foreign.value.status == 403
    own_origin = str(client.make_url("")).rstrip("/")
    ws = await agent.session.ws_connect(agent.url("/console/ws"), origin=own_origin)
    await ws.close()


async def test_a_note_on_another_agents_conversation_is_refused(client, sign_in):
    await say(client, "noted", "我要转人工")
    holder, other = await sign_in("agent1"), await sign_in("agent2")
    base = "/console/api/conversations/rest:noted"
    assert (await holder.post(f"{base}/claim")).status == 200
    refused = await other.post(f"{base}/notes", {"text": "不是我的"})
    assert refused.status == 409 and (await refused.json())["error"] == "conflict"
    assert (await holder.post(f"{base}/notes", {"text": "我的"})).status == 200
    admin = await sign_in("lead", "admin")
    assert (await admin.post(f"{base}/notes", {"text": "管理员"})).status == 200
    assert (await client.app[STATES].get("rest:noted")).agent == "agent1"


def test_forwarded_for_is_read_right_to_left_through_trusted_proxies_only():
    proxies = TrustedProxies(["10.0.0.0/8", "::1"])
    assert proxies.client("10.0.0.2", ["6.6.6.6, 203.0.113.5, 10.0.0.9"]) == "203.0.113.5"
    assert proxies.client("198.51.100.1", ["203.0.113.5"]) == "198.51.100.1"
    assert proxies.client("::1", ["not-an-address"]) == "::1"
    assert proxies.client("10.0.0.2", ["10.0.0.3", "10.0.0.4"]) == "10.0.0.3"
    assert proxies.scheme("10.0.0.2", "http", "https") == "https"
    assert proxies.scheme("198.51.100.1", "http", "https") == "http"
    # An IPv6 customer counts as their /64, an IPv4-mapped one as IPv4.
    assert bucket("2001:db8:1:2:3:4:5:6") == bucket("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert bucket("::ffff:192.0.2.1") == "192.0.2.1"
    assert bucket("garbage") == "unknown"


async def test_the_admin_token_still_opens_the_review_api(client):
    resp = await client.get(
        "/api/conversations", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert resp.status == 200


async def test_a_garbled_web_chat_cookie_is_a_new_visitor_not_a_500(client):
    body = '{"text": "你好"}'.encode()
    for value in (b"\xff\xfe.\xff", "会话.签名".encode(), b"abc.\xc3\xbf"):
        request = (
            b"POST /webchat/api/messages HTTP/1.1\r\nHost: x\r\nCookie: kefu_chat="
            + value
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )
        answer = await raw_http(client.server.port, request, wait=10)
        assert not answer.startswith(b"HTTP/1.1 5"), answer[:200]
