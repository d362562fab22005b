"""The conversation read API is closed to anyone without the admin token."""

from __future__ import annotations

import pytest

from bot.app import create_app
from tests.helpers import say


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "test-admin-token-0123456789"},
        {"Authorization": "Basic dGVzdDp0ZXN0"},
        {"Authorization": "Bearer test-admin-token-012345678"},
    ],
    ids=["none", "wrong", "no-scheme", "basic", "prefix-of-token"],
)
async def test_refused_without_the_right_token(client, headers):
    await say(client, "secret", "你好")
    for path in ("/api/conversations", "/api/conversations/secret"):
        resp = await client.get(path, headers=headers)
        assert resp.status == 401
        body = await resp.json()
        assert body["error"] == "unauthorised"
        assert "你好" not in await resp.text()


async def test_every_request_refused_when_no_token_is_configured(aiohttp_client, settings, engine):
    closed = settings.with_(admin_token=None)
    client = await aiohttp_client(create_app(closed, engine), server_kwargs={"port": closed.port})
    await say(client, "secret", "你好")
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
        resp = await client.get("/api/conversations", headers=headers)
        assert resp.status == 403
        assert (await resp.json())["error"] == "admin_api_disabled"


async def test_unknown_conversation_is_404(client, admin_headers):
    resp = await client.get("/api/conversations/nobody", headers=admin_headers)
    assert resp.status == 404


async def test_bad_paging_parameters_are_400(client, admin_headers):
    for query in ("limit=0", "limit=1000", "offset=-1", "limit=abc"):
        resp = await client.get(f"/api/conversations?{query}", headers=admin_headers)
        assert resp.status == 400, query
        assert (await resp.json())["error"] == "invalid_parameter"


async def test_action_route_refuses_strangers(client):
    call = {"next_action": "action_request_human", "tracker": {"sender_id": "x"}, "domain": {}}
    for headers in ({}, {"Authorization": "Bearer guess"}):
        resp = await client.post("/webhooks/actions", json=call, headers=headers)
        assert resp.status == 401
