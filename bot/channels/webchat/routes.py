"""Routes of the web chat channel."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from bot.channels.inbound import message_text, read_json_object
from bot.errors import ApiError
from bot.jsonutil import json_response
from bot.keys import CHAT, CONVERSATION_LOG, HUB, RATE_LIMITS, SETTINGS, STATES
from bot.security.headers import page
from bot.security.origin import check_origin

CHANNEL = "webchat"
STATIC = Path(__file__).parent / "static"
SESSION = re.compile(r"^[A-Za-z0-9_-]{22,64}$")


def conversation_id(session: object) -> str:
    if not isinstance(session, str) or not SESSION.match(session):
        raise ApiError(
            400, "invalid_session", "`session` must be 22 to 64 letters, digits, - or _."
        )
    return f"web-{session}"


async def index(request: web.Request) -> web.FileResponse:
    return page(STATIC / "index.html")


async def send(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    conversation = conversation_id(body.get("session"))
    text = message_text(body.get("text"), request.app[SETTINGS].max_message_chars, field="text")
    await request.app[RATE_LIMITS].admit(request, conversation)
    turn = await request.app[CHAT].handle(CHANNEL, conversation, text)
    # After a bot turn, whether it handed the conversation to people.
    state = turn.state or (await request.app[STATES].get(conversation)).state
    return json_response(
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


async def history(request: web.Request) -> web.Response:
    conversation = conversation_id(request.query.get("session"))
    timeline = await request.app[CONVERSATION_LOG].timeline(conversation)
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
    return json_response({"messages": messages, "state": state})


def _author(entry: dict[str, object]) -> str:
    """`agent` for a person's reply, `bot` for everything else (never the agent's name)."""
    action = entry.get("action")
    return "agent" if isinstance(action, str) and action.startswith("agent:") else "bot"


async def live(request: web.Request) -> web.WebSocketResponse:
    """Replies that do not answer a request of the customer's (an agent's), as they come."""
    conversation = conversation_id(request.query.get("session"))
    check_origin(request, request.app[SETTINGS].public_origin)
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
