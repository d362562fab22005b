from __future__ import annotations

import asyncio
import os

from bot.app import create_app


async def test_ready_when_model_and_redis_are_there(client, engine):
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/readyz")
    assert resp.status == 200
    body = await resp.json()
    assert body == {"status": "ready", "model": engine.version, "redis": "ok", "pid": os.getpid()}


async def test_not_ready_without_a_model_but_alive(aiohttp_client, settings, tmp_path):
    empty = settings.with_(model_dir=tmp_path)
    client = await aiohttp_client(create_app(empty), server_kwargs={"port": empty.port})
    assert (await client.get("/healthz")).status == 200
    for _ in range(50):
        body = await (await client.get("/readyz")).json()
        if body["model"] != "loading":
            break
        await asyncio.sleep(0.1)
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert "no trained model" in (await resp.json())["model"]
    resp = await client.post("/webhooks/rest/webhook", json={"sender": "x", "message": "你好"})
    assert resp.status == 503
    assert (await resp.json())["error"] == "model_not_ready"
