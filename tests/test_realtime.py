"""Live events across processes: two apps on one Redis, websockets on each."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from bot.accounts.sessions import CSRF_HEADER
from bot.app import create_app
from bot.app_keys import ACCOUNTS
from tests.conftest import free_port
from tests.helpers import Visitor, say

PASSWORD = "a long enough password"


@pytest.fixture
async def two_apps(aiohttp_client, settings, engine):  # type: ignore[no-untyped-def]
    a = await aiohttp_client(create_app(settings, engine), server_kwargs={"port": settings.port})
    other = settings.with_(port=free_port())
    b = await aiohttp_client(create_app(other, engine), server_kwargs={"port": other.port})
    await a.app[ACCOUNTS].add("agent1", PASSWORD, "agent")
    return a, b


async def signed_in(client) -> tuple[aiohttp.ClientSession, str]:  # type: ignore[no-untyped-def]
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    resp = await session.post(
        str(client.make_url("/console/api/login")),
        json={"username": "agent1", "password": PASSWORD},
    )
    assert resp.status == 200
    return session, (await resp.json())["csrf"]


async def next_event(ws, kind: str) -> dict:  # type: ignore[no-untyped-def]
    while True:
        message = await asyncio.wait_for(ws.receive(), 5)
        event = json.loads(message.data)
        if event.get("type") == kind:
            return event


async def test_agent_reply_on_one_process_reaches_the_customer_on_another(two_apps):
    a, b = two_apps
    visitor = Visitor(a)
    cid = await visitor.open()
    customer = await visitor.live()
    # The session process A issued is valid on process B (one shared secret).
    assert (await visitor.send("我要转人工", base=str(b.make_url("")).rstrip("/"))).status == 200
    session, csrf = await signed_in(b)
    base = str(b.make_url(f"/console/api/conversations/{cid}"))
    assert (await session.post(f"{base}/claim", headers={CSRF_HEADER: csrf})).status == 200
    joined = await next_event(customer, "message")
    assert joined["from"] == "bot" and "接入" in joined["text"]  # told that a person is here
    reply = await session.post(
        f"{base}/reply", json={"text": "您好，我是客服小李"}, headers={CSRF_HEADER: csrf}
    )
    assert reply.status == 200
    event = await next_event(customer, "message")
    assert event == {"type": "message", "direction": "out", "text": "您好，我是客服小李",
                     "id": (await reply.json())["id"], "from": "agent"}  # fmt: skip
    await customer.close()
    await session.close()
    await visitor.http.close()


async def test_console_on_one_process_sees_a_customer_writing_to_another(two_apps):
    a, b = two_apps
    session, _ = await signed_in(a)
    console = await session.ws_connect(str(a.make_url("/console/ws")))
    await say(b, "live-1", "我的快递到哪了")
    event = await next_event(console, "customer_message")
    assert (event["conversation"], event["text"], event["intent"]) == (
        "rest:live-1",
        "我的快递到哪了",
        "order_status",
    )
    bot = await next_event(console, "bot_message")
    assert bot["conversation"] == "rest:live-1" and bot["texts"]
    await console.close()
    await session.close()


async def test_console_socket_needs_a_signed_in_agent(two_apps):
    a, _ = two_apps
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await a.ws_connect("/console/ws")
    assert refused.value.status == 401


async def test_customer_socket_needs_a_session_the_server_issued(two_apps):
    a, _ = two_apps
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await a.ws_connect("/webchat/ws?session=" + "b" * 32)
    assert refused.value.status == 401
