"""`/console/api/...`: what a signed-in agent can see and do.

Agents and admins work conversations through the handoff service
(`bot/handoff/service.py`), which answers 409 when the conversation is not in
a state that allows it (someone else claimed it first, it is not yours, it is
not waiting). Replies are logged like any outbound message and published for
the customer's channel; notes stay internal.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable

from aiohttp import web

from bot.accounts.routes import require
from bot.accounts.sessions import Session
from bot.app_keys import (
    ACCOUNTS,
    AUDIT,
    CONSOLE,
    CONSOLE_PRESENCE,
    CONVERSATION_LOG,
    DELIVERY,
    HANDOFF,
    HUB,
    SETTINGS,
    STATES,
)
from bot.channels.inbound import message_text, read_json_object
from bot.customer_data.audit import READ
from bot.errors import ApiError
from bot.handoff.presence import STATUSES
from bot.handoff.service import Conflict
from bot.handoff.states import Handoff, InvalidTransition
from bot.handoff.teams import TeamFileError
from bot.jsonutil import json_response
from bot.security.origin import check_origin

WORKERS = ("agent", "admin")
MAX_TAG = 40
MAX_CAPACITY = 50


async def queue(request: web.Request) -> web.Response:
    await require(request, *WORKERS)
    states = request.app[STATES]
    ids = await states.waiting()
    summaries = {s.id: s for s in await request.app[CONVERSATION_LOG].summaries(ids)}
    now = time.time()
    items = []
    for position, conversation in enumerate(ids):
        handoff = await states.get(conversation)
        summary = summaries.get(conversation)
        items.append(
            {
                "conversation": conversation,
                "position": position,
                "reason": handoff.reason,
                "priority": handoff.priority,
                "waiting_seconds": round(now - handoff.waiting_since, 1),
                **_first_response(request, handoff, summary.channel if summary else ""),
                "channel": summary.channel if summary else "",
                "last_text": summary.last_customer_text if summary else "",
            }
        )
    return json_response({"waiting": items})


def _first_response(request: web.Request, handoff: Handoff, channel: str) -> dict[str, float]:
    """What the console's first-response timer needs: since when, until what, done when."""
    target = request.app[HANDOFF].service_levels.target(channel)
    return {"queued_at": handoff.queued_at, "answered_at": handoff.answered, "target": target}


async def assigned(request: web.Request) -> web.Response:
    """Conversations agents hold: an agent's own, or everyone's for an admin."""
    session = await require(request, *WORKERS)
    states = request.app[STATES]
    ids = await states.assigned()
    summaries = {s.id: s for s in await request.app[CONVERSATION_LOG].summaries(ids)}
    items = []
    for conversation_id in ids:
        handoff = await states.get(conversation_id)
        if session.role != "admin" and handoff.agent != session.username:
            continue
        summary = summaries.get(conversation_id)
        items.append(
            {
                "conversation": conversation_id,
                "agent": handoff.agent,
                "reason": handoff.reason,
                "since": handoff.since,
                **_first_response(request, handoff, summary.channel if summary else ""),
                "channel": summary.channel if summary else "",
                "last_text": summary.last_customer_text if summary else "",
            }
        )
    return json_response({"assigned": items})


async def agents(request: web.Request) -> web.Response:
    """Who a conversation can be transferred to."""
    await require(request, *WORKERS)
    accounts = await request.app[ACCOUNTS].list()
    return json_response(
        {
            "agents": [
                {"username": a.username, "role": a.role} for a in accounts if a.role in WORKERS
            ]
        }
    )


async def team(request: web.Request) -> web.Response:
    """Who of the team is online, away or offline, their room, teams and load.

    Admins also get which conversations each holds (`holding`).
    """
    session = await require(request, *WORKERS)
    handoff = request.app[HANDOFF]
    members = await handoff.team()
    held = await handoff.holdings() if session.role == "admin" else None
    return json_response(
        {
            "auto_assign": handoff.auto_assign,
            "teams": list(handoff.teams.teams),
            "members": [
                {
                    "agent": m.agent,
                    "status": m.status,
                    "capacity": m.capacity,
                    "teams": m.teams,
                    "load": m.load,
                    **({"holding": held.get(m.agent, [])} if held is not None else {}),
                }
                for m in members
            ],
        }
    )


async def set_presence(request: web.Request) -> web.Response:
    """The signed-in agent is online, away (no new conversations) or offline (theirs return)."""
    session = await require(request, *WORKERS)
    status = (await read_json_object(request)).get("status")
    if status not in STATUSES:
        raise ApiError(400, "invalid_status", f"`status` is one of {', '.join(STATUSES)}.")
    await request.app[HANDOFF].set_presence(session.username, status)
    return json_response({"agent": session.username, "status": status})


async def set_roster(request: web.Request) -> web.Response:
    """An admin sets an agent's capacity (null: the default) and teams."""
    await require(request, "admin")
    agent = request.match_info["agent"]
    accounts = {a.username: a.role for a in await request.app[ACCOUNTS].list()}
    if accounts.get(agent) not in WORKERS:
        raise ApiError(404, "not_found", f"No agent account {agent!r}.")
    body = await read_json_object(request)
    capacity, teams = body.get("capacity"), body.get("teams", [])
    if capacity is not None and (
        not isinstance(capacity, int) or isinstance(capacity, bool)
        or not 0 <= capacity <= MAX_CAPACITY
    ):  # fmt: skip
        raise ApiError(400, "invalid_capacity", f"`capacity` is 0 to {MAX_CAPACITY}, or null.")
    if not isinstance(teams, list) or not all(isinstance(t, str) for t in teams):
        raise ApiError(400, "invalid_teams", "`teams` is a list of team names.")
    try:
        await request.app[HANDOFF].set_roster(agent, capacity, teams)
    except TeamFileError as exc:
        raise ApiError(400, "invalid_teams", str(exc)) from exc
    return json_response({"agent": agent, "capacity": capacity, "teams": teams})


async def conversation(request: web.Request) -> web.Response:
    session = await require(request, *WORKERS)
    cid = request.match_info["conversation_id"]
    timeline = await request.app[CONVERSATION_LOG].timeline(cid)
    if not timeline:
        raise ApiError(404, "not_found", f"No conversation {cid!r}.")
    await request.app[AUDIT].record(session.username, READ, "console", cid)
    handoff = await request.app[STATES].get(cid)
    channel = timeline[0]["channel"]
    unreachable = await request.app[DELIVERY].unreachable(channel, cid)
    return json_response(
        {
            "conversation": cid,
            "channel": channel,
            "source": await request.app[CONVERSATION_LOG].source_of(cid),
            "can_push": unreachable is None,
            "push_note": unreachable,
            "push_window": await request.app[DELIVERY].window_note(channel, cid),
            "state": handoff.state,
            "agent": handoff.agent,
            "reason": handoff.reason,
            "messages": timeline,
            "notes": await request.app[CONSOLE].notes(cid),
        }
    )


async def _worker(request: web.Request) -> tuple[Session, str]:
    """The signed-in agent or admin, and the conversation the path names."""
    return await require(request, *WORKERS), request.match_info["conversation_id"]


async def _changed(cid: str, change: Awaitable[Handoff]) -> web.Response:
    """Who has the conversation after `change`; 409 when its state does not allow it."""
    try:
        handoff = await change
    except InvalidTransition as exc:
        raise ApiError(409, "conflict", str(exc)) from exc
    return json_response({"conversation": cid, "state": handoff.state, "agent": handoff.agent})


def _holder(session: Session) -> str:
    """An admin may act on a conversation another agent holds ('': whoever holds it)."""
    return "" if session.role == "admin" else session.username


async def claim(request: web.Request) -> web.Response:
    session, cid = await _worker(request)
    return await _changed(cid, request.app[HANDOFF].claim(cid, session.username))


async def release(request: web.Request) -> web.Response:
    session, cid = await _worker(request)
    return await _changed(cid, request.app[HANDOFF].release(cid, _holder(session)))


async def close(request: web.Request) -> web.Response:
    session, cid = await _worker(request)
    tag = (await read_json_object(request)).get("tag")
    if not isinstance(tag, str) or not tag.strip() or len(tag) > MAX_TAG:
        raise ApiError(400, "invalid_tag", f"`tag` is 1 to {MAX_TAG} characters.")
    return await _changed(cid, request.app[HANDOFF].close(cid, tag.strip(), _holder(session)))


async def transfer(request: web.Request) -> web.Response:
    session, cid = await _worker(request)
    target = (await read_json_object(request)).get("to")
    accounts = {a.username: a.role for a in await request.app[ACCOUNTS].list()}
    if not isinstance(target, str) or accounts.get(target) not in WORKERS:
        raise ApiError(400, "invalid_agent", "`to` must name an agent account.")
    return await _changed(cid, request.app[HANDOFF].transfer(cid, _holder(session), target))


async def reply(request: web.Request) -> web.Response:
    session, cid = await _worker(request)
    body = await read_json_object(request)
    text = message_text(body.get("text"), request.app[SETTINGS].max_message_chars, field="text")
    try:
        sent = await request.app[HANDOFF].reply(cid, session.username, text)
    except Conflict as exc:
        raise ApiError(409, "conflict", str(exc)) from exc
    body = {"id": sent.entry_id, "conversation": cid, "pushed": sent.pushed}
    if sent.refused is not None:
        body.update(error=sent.refused.code, message=sent.refused.message)
    return json_response(body)


async def add_note(request: web.Request) -> web.Response:
    session, cid = await _worker(request)
    body = await read_json_object(request)
    text = message_text(body.get("text"), request.app[SETTINGS].max_message_chars, field="text")
    admin = session.role == "admin"
    try:
        note = await request.app[HANDOFF].note(cid, session.username, text, admin=admin)
    except Conflict as exc:
        raise ApiError(409, "conflict", str(exc)) from exc
    return json_response(note)


async def get_canned(request: web.Request) -> web.Response:
    await require(request, *WORKERS)
    return json_response({"replies": await request.app[CONSOLE].canned()})


async def put_canned(request: web.Request) -> web.Response:
    await require(request, "admin")
    body = await read_json_object(request)
    replies = body.get("replies")
    max_chars = request.app[SETTINGS].max_message_chars
    if not isinstance(replies, list) or len(replies) > 100:
        raise ApiError(400, "invalid_replies", "`replies` is a list of at most 100 texts.")
    texts = [message_text(r, max_chars, field="replies[]") for r in replies]
    await request.app[CONSOLE].set_canned(texts)
    return json_response({"replies": texts})


async def live(request: web.Request) -> web.WebSocketResponse:
    """Every event, live, for a signed-in agent."""
    session = await require(request, *WORKERS)
    check_origin(request, request.app[SETTINGS].public_origin)
    hub = request.app[HUB]
    # An open console keeps its agent online (bot/console/presence.py).
    presence = request.app[CONSOLE_PRESENCE]
    await presence.opened(session.username)
    try:
        return await hub.serve(request, hub.agents, who=session.username)
    finally:
        await presence.closed(session.username)


def setup(app: web.Application) -> None:
    app.router.add_get("/console/ws", live)
    base = "/console/api/conversations/{conversation_id}"
    app.router.add_get("/console/api/queue", queue)
    app.router.add_get("/console/api/assigned", assigned)
    app.router.add_get("/console/api/agents", agents)
    app.router.add_get("/console/api/team", team)
    app.router.add_put("/console/api/presence", set_presence)
    app.router.add_put("/console/api/team/{agent}", set_roster)
    app.router.add_get(base, conversation)
    app.router.add_post(f"{base}/claim", claim)
    app.router.add_post(f"{base}/release", release)
    app.router.add_post(f"{base}/close", close)
    app.router.add_post(f"{base}/transfer", transfer)
    app.router.add_post(f"{base}/reply", reply)
    app.router.add_post(f"{base}/notes", add_note)
    app.router.add_get("/console/api/canned", get_canned)
    app.router.add_put("/console/api/canned", put_canned)
