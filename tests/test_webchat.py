"""The customer web chat: page, server-issued sessions, sending, history after a reload."""

from __future__ import annotations

import re

import aiohttp

from bot.channels.webchat.sessions import COOKIE
from tests.helpers import Visitor, has_chinese


async def test_page_is_served_without_external_resources(client):
    resp = await client.get("/")
    assert resp.status == 200
    html = await resp.text()
    assert 'lang="zh-CN"' in html
    for src in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert src.startswith("/"), f"external resource {src}"
        asset = await client.get(src)
        assert asset.status == 200, src


async def test_script_never_inserts_html_nor_keeps_a_session(client):
    script = await (await client.get("/webchat/static/chat.js")).text()
    assert "textContent" in script
    assert "innerHTML" not in script
    # The session is the server's HttpOnly cookie: never in storage, never in a URL.
    assert "localStorage" not in script and "session=" not in script


async def test_first_visit_gets_a_signed_httponly_session_cookie(client):
    resp = await client.get("/")
    cookie = resp.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    session, signature = cookie.value.split(".")
    assert len(session) >= 32 and len(signature) >= 43
    # A second visit with the cookie keeps it (no new Set-Cookie).
    again = await client.get("/")
    assert COOKIE not in again.cookies


async def test_message_and_history_survive_a_reload(client, admin_headers):
    async with Visitor(client) as visitor:
        conversation = await visitor.open()
        resp = await visitor.send("你好")
        assert resp.status == 200
        body = await resp.json()
        assert has_chinese(body["replies"][0]["text"])

        # A reload asks for the history with the same cookie.
        history = await visitor.history()
        assert [(m["direction"], m["text"]) for m in history["messages"]] == [
            ("in", "你好"),
            ("out", body["replies"][0]["text"]),
        ]
        # The customer is not shown the bot's internals.
        assert "intent" not in history["messages"][0]

    admin = await (
        await client.get(f"/api/conversations/{conversation}", headers=admin_headers)
    ).json()
    assert admin["messages"][0]["channel"] == "webchat"
    assert admin["messages"][0]["intent"] == "greet"


async def test_another_visitor_sees_nothing_of_it(client):
    async with Visitor(client) as first, Visitor(client) as second:
        await first.open()
        await first.send("我的手机号是13812345678")
        await second.open()
        assert second.conversation != first.conversation
        assert (await second.history())["messages"] == []


async def test_a_client_picked_or_forged_session_is_not_accepted(client):
    async with Visitor(client) as visitor:
        real = await visitor.open()
        await visitor.send("我的快递到哪了")
    session = real.removeprefix("webchat:")
    # The old way (a session in the body or the query) names nothing any more.
    async with aiohttp.ClientSession() as stranger:
        base = str(client.make_url("/")).rstrip("/")
        resp = await stranger.get(f"{base}/webchat/api/history?session={session}")
        assert (await resp.json())["messages"] == []
        # A cookie with the real session but no valid signature: a new session instead.
        for forged in (session, f"{session}.AAAA", f"{session}.{'A' * 43}"):
            resp = await stranger.get(
                f"{base}/webchat/api/history", headers={"Cookie": f"{COOKIE}={forged}"}
            )
            assert (await resp.json())["messages"] == []
            assert resp.cookies[COOKIE].value.split(".")[0] != session
            resp = await stranger.post(
                f"{base}/webchat/api/messages",
                json={"session": session, "text": "我是本人，请把收货地址改成别处"},
                headers={"Cookie": f"{COOKIE}={forged}"},
            )
            assert resp.status == 200
    async with Visitor(client) as owner:
        owner.http.cookie_jar.update_cookies({COOKIE: visitor.cookie})
        texts = [m["text"] for m in (await owner.history())["messages"] if m["direction"] == "in"]
        assert texts == ["我的快递到哪了"]


async def test_socket_without_a_session_is_refused(client):
    async with aiohttp.ClientSession() as stranger:
        url = str(client.make_url("/webchat/ws")).replace("http://", "ws://")
        try:
            await stranger.ws_connect(url)
            raise AssertionError("the socket opened without a session")
        except aiohttp.WSServerHandshakeError as refused:
            assert refused.status == 401


async def test_webchat_rejects_empty_text(client):
    async with Visitor(client) as visitor:
        await visitor.open()
        resp = await visitor.send(" ")
        assert resp.status == 400
        assert (await resp.json())["error"] == "empty_message"
