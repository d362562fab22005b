"""Small helpers shared by tests."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from bot.accounts.sessions import CSRF_HEADER
from bot.keys import ACCOUNTS

PASSWORD = "a long enough password"

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


class Agent:
    """A signed-in console user: a cookie session and its CSRF token."""

    def __init__(self, client: TestClient, session: aiohttp.ClientSession, csrf: str) -> None:
        self.client, self.session, self.csrf = client, session, csrf

    def url(self, path: str) -> str:
        return str(self.client.make_url(path))

    async def get(self, path: str) -> aiohttp.ClientResponse:
        return await self.session.get(self.url(path))

    async def post(
        self, path: str, body: dict[str, Any] | None = None, csrf: bool = True
    ) -> aiohttp.ClientResponse:
        headers = {CSRF_HEADER: self.csrf} if csrf else {}
        return await self.session.post(self.url(path), json=body or {}, headers=headers)


class Logins:
    """Signs agents in to test apps and closes their HTTP sessions afterwards."""

    def __init__(self) -> None:
        self.sessions: list[aiohttp.ClientSession] = []

    async def sign_in(
        self, client: TestClient, username: str, role: str = "agent", create: bool = True
    ) -> Agent:
        if create:
            await client.app[ACCOUNTS].add(username, PASSWORD, role)
        # unsafe=True: accept cookies from an IP address (127.0.0.1), as browsers do.
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.sessions.append(session)
        resp = await session.post(
            str(client.make_url("/console/api/login")),
            json={"username": username, "password": PASSWORD},
        )
        assert resp.status == 200, await resp.text()
        return Agent(client, session, (await resp.json())["csrf"])

    async def close(self) -> None:
        for session in self.sessions:
            await session.close()
