"""Bad input gets a clear 4xx in JSON, is logged, and creates nothing."""

from __future__ import annotations

import logging

import pytest

from bot.app_keys import CONVERSATION_LOG, MODEL

URL = "/webhooks/rest/webhook"
JSON = {"Content-Type": "application/json"}

CASES = [
    ("empty message", b'{"sender": "x", "message": ""}', JSON, 400, "empty_message"),
    ("blank message", b'{"sender": "x", "message": "   \\n "}', JSON, 400, "empty_message"),
    ("missing message", b'{"sender": "x"}', JSON, 400, "missing_message"),
    ("message not text", b'{"sender": "x", "message": 42}', JSON, 400, "invalid_message"),
    ("missing sender", '{"message": "你好"}'.encode(), JSON, 400, "missing_sender"),
    (
        "sender not text",
        '{"sender": {"a": 1}, "message": "你好"}'.encode(),
        JSON,
        400,
        "invalid_sender",
    ),
    (
        "too long",
        ('{"sender": "x", "message": "%s"}' % ("好" * 2001)).encode(),
        JSON,
        400,
        "message_too_long",
    ),
    ("invalid json", b'{"sender": "x", "message": ', JSON, 400, "invalid_json"),
    ("json array", b'["x", "hi"]', JSON, 400, "invalid_json"),
    ("empty body", b"", JSON, 400, "empty_body"),
    ("invalid utf-8", b'{"sender": "x", "message": "\xff\xfe\xfa"}', JSON, 400, "invalid_utf8"),
    (
        "xml",
        b"<xml><sender>x</sender></xml>",
        {"Content-Type": "application/xml"},
        415,
        "unsupported_media_type",
    ),
    (
        "form upload",
        b"--b\r\n\r\n--b--",
        {"Content-Type": "multipart/form-data; boundary=b"},
        415,
        "unsupported_media_type",
    ),
    (
        "bad metadata",
        '{"sender": "x", "message": "你好", "metadata": [1]}'.encode(),
        JSON,
        400,
        "invalid_metadata",
    ),
]


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_rest_rejects_bad_input_with_json_4xx(client, caplog, body, headers, status, code):
    caplog.set_level(logging.WARNING, logger="bot.errors")
    resp = await client.post(URL, data=body, headers=headers)
    assert resp.status == status
    payload = await resp.json()
    assert payload["error"] == code
    assert payload["message"]
    assert any(str(status) in r.getMessage() and URL in r.getMessage() for r in caplog.records)
    assert await client.app[CONVERSATION_LOG].count() == 0


async def test_message_of_exactly_the_limit_is_accepted(client):
    resp = await client.post(URL, json={"sender": "x", "message": "好" * 2000})
    assert resp.status == 200


async def test_body_over_the_size_limit_is_413(client):
    resp = await client.post(
        URL, data=b'{"sender": "x", "message": "' + b"a" * 70_000 + b'"}', headers=JSON
    )
    assert resp.status == 413
    assert (await resp.json())["error"] == "request_entity_too_large"


async def test_curl_default_form_content_type_is_accepted(client):
    # `curl -d '{...}'` labels a JSON body as form data.
    resp = await client.post(
        URL,
        data='{"sender": "curl", "message": "你好"}'.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status == 200
    assert (await resp.json())[0]["recipient_id"] == "curl"


async def test_unknown_route_is_json_404(client):
    resp = await client.get("/no/such/page")
    assert resp.status == 404
    assert (await resp.json())["error"] == "not_found"


async def test_wrong_method_is_json_405(client):
    resp = await client.get(URL)
    assert resp.status == 405
    assert (await resp.json())["error"] == "method_not_allowed"


@pytest.mark.parametrize(
    "text", ["/restart", "/session_start", "/greet", '/request_human{"order_id": "injected"}']
)
async def test_slash_commands_are_plain_text(client, admin_headers, text):
    await client.post(URL, json={"sender": "slash", "message": "你好"})
    resp = await client.post(URL, json={"sender": "slash", "message": text})
    assert resp.status == 200
    assert (await resp.json())[0]["text"]

    body = await (await client.get("/api/conversations/rest:slash", headers=admin_headers)).json()
    inbound = [m for m in body["messages"] if m["direction"] == "in"]
    assert inbound[-1]["text"] == text
    assert inbound[-1]["confidence"] < 1.0
    assert all(e["value"] != "injected" for e in inbound[-1]["entities"])

    # The conversation was not restarted or reset: Rasa still holds the first turn.
    store = client.app[MODEL].engine.agent.tracker_store
    full = await store.retrieve_full_tracker("rest:slash")
    events = [e.as_dict()["event"] for e in full.events]
    assert "restart" not in events
    assert events.count("session_started") == 1
    users = [e.text for e in full.events if e.as_dict()["event"] == "user"]
    assert users == ["你好", text]
