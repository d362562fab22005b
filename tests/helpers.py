"""Small helpers shared by tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from bot.accounts.sessions import CSRF_HEADER
from bot.app_keys import ACCOUNTS
from bot.channels.delivery import Delivery
from bot.console.store import ConsoleStore
from bot.content.knowledge import KnowledgeBase
from bot.content.messages import Messages
from bot.conversation_log.store import ConversationLog
from bot.events import Events
from bot.handoff.presence import Presence
from bot.handoff.requests import HandoffRequests
from bot.handoff.service import HandoffService
from bot.handoff.states import ConversationStates
from bot.handoff.teams import TeamMap
from bot.redis_keys import Keys
from bot.review.index import ReviewIndex
from bot.settings import Settings
from bot.stats.recorder import Stats
from bot.stats.subscriber import KpiRecorder

CONTENT = Path(__file__).resolve().parent.parent / "nlu_data"

PASSWORD = "a long enough password"

CJK = re.compile(r"[\u4e00-\u9fff]")


def users_cli(
    redis_url: str, key_prefix: str, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """`python -m bot users ARGS` against the test's Redis and key prefix."""
    env = {**os.environ, "REDIS_URL": redis_url, "BOT_KEY_PREFIX": key_prefix}
    return subprocess.run(
        [sys.executable, "-m", "bot", "users", *args],
        input=stdin, capture_output=True, text=True, cwd=CONTENT.parent, env=env, timeout=120,
    )  # fmt: skip


def quick_team(settings: Settings, **more: Any) -> Settings:
    """`settings` with automatic assignment on and presence kept and expired within a second."""
    return settings.with_(
        auto_assign=True,
        presence_renew_seconds=0.2,
        presence_grace_seconds=0.8,
        handoff_sweep_seconds=0.2,
        **more,
    )


def has_chinese(text: str) -> bool:
    return bool(CJK.search(text))


def handoff_service(
    redis: Redis,
    keys: Keys,
    teams: TeamMap | None = None,
    auto_assign: bool = False,
    states: ConversationStates | None = None,
    stats: Stats | None = None,
) -> HandoffService:
    """The handoff service wired as the app wires it, for tests without an app.

    With `stats`, the KPI recorder hears its events (as in the app).
    """
    log, events = ConversationLog(redis, keys), Events(redis, keys)
    if stats is not None:
        KpiRecorder(stats).subscribe(events)
    return HandoffService(
        states or ConversationStates(redis, keys),
        HandoffRequests(redis, keys),
        ReviewIndex(redis, keys),
        events,
        Delivery(events, log),
        Messages.load(CONTENT / "messages.yml"),
        KnowledgeBase.load(CONTENT / "knowledge.yml").hours,
        log,
        ConsoleStore(redis, keys),
        Presence(redis, keys, default_capacity=3),
        teams,
        auto_assign,
    )


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


class Visitor:
    """A browser on the web chat: its own cookie jar, so its own server-issued session.

    `Visitor(client)` talks to that test app; `base` points it at another process
    (all processes on one Redis accept each other's sessions).
    """

    def __init__(self, client: TestClient | None = None, base: str | None = None) -> None:
        assert client is not None or base is not None
        self.base = base or str(client.make_url("/")).rstrip("/")  # type: ignore[union-attr]
        # unsafe=True: keep cookies from an IP address (127.0.0.1), as browsers do.
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def __aenter__(self) -> Visitor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()

    def url(self, path: str, base: str | None = None) -> str:
        return (base or self.base) + path

    async def open(self) -> str:
        """Open the chat page; the conversation the server assigned this visitor."""
        resp = await self.http.get(self.url("/"))
        assert resp.status == 200
        return self.conversation

    @property
    def cookie(self) -> str:
        return next(c.value for c in self.http.cookie_jar if c.key == "kefu_chat")

    @property
    def conversation(self) -> str:
        return "webchat:" + self.cookie.split(".")[0]

    async def send(
        self, text: str, message_id: str | None = None, base: str | None = None
    ) -> aiohttp.ClientResponse:
        body: dict[str, Any] = {"text": text}
        if message_id is not None:
            body["message_id"] = message_id
        return await self.http.post(self.url("/webchat/api/messages", base), json=body)

    async def history(self, base: str | None = None) -> dict[str, Any]:
        resp = await self.http.get(self.url("/webchat/api/history", base))
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())

    async def live(self, base: str | None = None) -> aiohttp.ClientWebSocketResponse:
        ws_base = (base or self.base).replace("http://", "ws://", 1)
        return await self.http.ws_connect(ws_base + "/webchat/ws")
