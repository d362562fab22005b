"""Redis going away gives a clear 503; the service recovers by itself when it is back."""

from __future__ import annotations

from bot.app import create_app
from tests.helpers import say


async def test_503_while_redis_is_down_then_recovers_without_restart(
    aiohttp_client, settings, engine, private_redis, admin_headers
):
    own = settings.with_(redis_url=private_redis.url, redis_timeout=0.5)
    client = await aiohttp_client(create_app(own, engine), server_kwargs={"port": own.port})
    await say(client, "r1", "你好")

    private_redis.stop()
    resp = await client.post("/webhooks/rest/webhook", json={"sender": "r1", "message": "在吗"})
    assert resp.status == 503
    body = await resp.json()
    assert body["error"] == "storage_unavailable"
    assert "Redis" in body["message"]
    assert (await client.get("/readyz")).status == 503
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/api/conversations", headers=admin_headers)).status == 503

    private_redis.start()  # same port, empty data
    replies = await say(client, "r1", "你好")
    assert replies and replies[0]["text"]
    assert (await client.get("/readyz")).status == 200
    listing = await (await client.get("/api/conversations", headers=admin_headers)).json()
    assert [c["id"] for c in listing["conversations"]] == ["rest:r1"]
