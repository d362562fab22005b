"""The customer web chat: page, sending, history after a reload."""

from __future__ import annotations

import re

from tests.helpers import has_chinese

SESSION = "0123456789abcdef0123456789abcdef"


async def test_page_is_served_without_external_resources(client):
    resp = await client.get("/")
    assert resp.status == 200
    html = await resp.text()
    assert 'lang="zh-CN"' in html
    for src in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert src.startswith("/"), f"external resource {src}"
        asset = await client.get(src)
        assert asset.status == 200, src


async def test_script_never_inserts_html(client):
    script = await (await client.get("/webchat/static/chat.js")).text()
    assert "textContent" in script
    assert "innerHTML" not in script


async def test_message_and_history_survive_a_reload(client, admin_headers):
    resp = await client.post("/webchat/api/messages", json={"session": SESSION, "text": "你好"})
    assert resp.status == 200
    body = await resp.json()
    assert has_chinese(body["replies"][0]["text"])

    # A reload asks for the history with the same session id.
    history = await (await client.get(f"/webchat/api/history?session={SESSION}")).json()
    assert [(m["direction"], m["text"]) for m in history["messages"]] == [
        ("in", "你好"),
        ("out", body["replies"][0]["text"]),
    ]
    # The customer is not shown the bot's internals.
    assert "intent" not in history["messages"][0]

    admin = await (
        await client.get(f"/api/conversations/web-{SESSION}", headers=admin_headers)
    ).json()
    assert admin["messages"][0]["channel"] == "webchat"
    assert admin["messages"][0]["intent"] == "greet"


async def test_history_of_another_session_is_empty(client):
    await client.post("/webchat/api/messages", json={"session": SESSION, "text": "你好"})
    other = "f" * 32
    history = await (await client.get(f"/webchat/api/history?session={other}")).json()
    assert history["messages"] == []


async def test_bad_session_is_refused(client):
    for session in ("short", "../../etc/passwd" + "a" * 20, "", "x" * 65):
        resp = await client.post("/webchat/api/messages", json={"session": session, "text": "你好"})
        assert resp.status == 400
        assert (await resp.json())["error"] == "invalid_session"
    resp = await client.get("/webchat/api/history")
    assert resp.status == 400


async def test_webchat_rejects_empty_text(client):
    resp = await client.post("/webchat/api/messages", json={"session": SESSION, "text": " "})
    assert resp.status == 400
    assert (await resp.json())["error"] == "empty_message"
