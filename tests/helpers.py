"""Small helpers shared by tests."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

CJK = re.compile(r"[\u4e00-\u9fff]")


def has_chinese(text: str) -> bool:
    return bool(CJK.search(text))


async def say(client: TestClient, sender: str, message: str) -> list[dict[str, Any]]:
    resp = await client.post("/webhooks/rest/webhook", json={"sender": sender, "message": message})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert isinstance(body, list)
    return body


async def timeline(
    client: TestClient, conversation: str, headers: dict[str, str]
) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/conversations/{conversation}", headers=headers)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["messages"]
