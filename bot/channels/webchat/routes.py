"""Routes of the web chat channel."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bot.app_keys import (
    CHAT,
    CONVERSATION_LOG,
    HUB,
    RATE_LIMITS,
    SETTINGS,
    STATES,
    WEBCHAT_SESSIONS,
)
from bot.channels.identity import conversation_id
from bot.channels.inbound import message_id, message_text, read_json_object
from bot.channels.webchat.sessions import set_cookie
from bot.errors import ApiError
from bot.jsonutil import json_response
from bot.names import is_agent_action
from bot.security.headers import page
from bot.security.origin import check_origin

CHANNEL = "webchat"
STATIC = Path(__file__).parent / "static"


async def _session(request: web.Request) -> tuple[str, str | None]:
    """(this visitor's session, a new cookie to set or None): a visitor without one gets one."""
    sessions = request.app[WEBCHAT_SESSIONS]
    session = await sessions.of(request)
    if session is not None:
        return session, None
    return await sessions.issue()


def _answer(request: web.Request, response: web.StreamResponse, cookie: str | None) -> None:
    if cookie is not None:
        set_cookie(request, response, cookie)


async def index(request: web.Request) -> web.StreamResponse:
    _, cookie = await _session(request)
    response = page(STATIC / "index.html")
    _answer(request, response, cookie)
    return response


async def send(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    session, cookie = await _session(request)
    conversation = conversation_id(CHANNEL, session)
    text = message_text(body.get("text"), request.app[SETTINGS].max_message_chars, field="text")
    mid = message_id(body.get("message_id"))
    await request.app[RATE_LIMITS].admit(request, conversation)
    turn = await request.app[CHAT].handle(CHANNEL, conversation, text, message_id=mid)
    # After a bot turn, whether it handed the conversation to people.
    state = turn.state or (await request.app[STATES].get(conversation)).state
    response = json_response(
        {
            "id": turn.inbound_id,
            "replies": [
                {
                    "text": r.text,
                    **{k: v for k, v in r.payload.items() if k in ("buttons", "image")},
                }
                for r in turn.replies
            ],
            # waiting / assigned: people have the conversation and answer over the socket
            "state": state,
        }
    )
    _answer(request, response, cookie)
    return response


async def history(request: web.Request) -> web.Response:
    session, cookie = await _session(request)
    conversation = conversation_id(CHANNEL, session)
    timeline = [] if cookie else await request.app[CONVERSATION_LOG].timeline(conversation)
    # The customer sees the conversation, not the bot's internals.
    messages = [
        {
            "id": e["id"],
            "ts": e["ts"],
            "direction": e["direction"],
            "text": e["text"],
            **({"from": _author(e)} if e["direction"] == "out" else {}),
        }
        for e in timeline
    ]
    state = (await request.app[STATES].get(conversation)).state
    response = json_response({"messages": messages, "state": state})
    _answer(request, response, cookie)
    return response


def _author(entry: dict[str, object]) -> str:
    """`agent` for a person's reply, `bot` for everything else (never the agent's name)."""
    return "agent" if is_agent_action(entry.get("action")) else "bot"


async def live(request: web.Request) -> web.WebSocketResponse:
    """Replies that do not answer a request of the customer's (an agent's), as they come."""
    check_origin(request, request.app[SETTINGS].public_origin)
    session = await request.app[WEBCHAT_SESSIONS].of(request)
    if session is None:
        raise ApiError(401, "no_session", "Open the chat page first: it starts your session.")
    conversation = conversation_id(CHANNEL, session)
    hub = request.app[HUB]
    try:
        return await hub.serve(request, hub.customers[conversation])
    finally:
        if not hub.customers.get(conversation):
            hub.customers.pop(conversation, None)


def setup(app: web.Application) -> None:
    app.router.add_get("/webchat/ws", live)
    app.router.add_get("/", index)
    app.router.add_post("/webchat/api/messages", send)
    app.router.add_get("/webchat/api/history", history)
    app.router.add_static("/webchat/static/", STATIC, append_version=True)
