"""`/console/api/...`: what a signed-in agent can see and do.

Agents and admins work conversations; every state change goes through the
atomic transitions of `ConversationStates` and answers 409 when the
conversation is not in a state that allows it (someone else claimed it first,
it is not yours, it is not waiting). Replies are logged like any outbound
message and published for the customer's channel; notes stay internal.
"""

from __future__ import annotations

import datetime as dt
import time

from aiohttp import web

from bot.accounts.routes import require
from bot.channels.delivery import DeliveryFailed
from bot.channels.inbound import message_text, read_json_object
from bot.conversation_log.store import Outbound
from bot.customer_data.audit import READ
from bot.errors import ApiError
from bot.handoff.states import ASSIGNED, InvalidTransition
from bot.jsonutil import json_response
from bot.keys import (
    ACCOUNTS,
    AUDIT,
    CONSOLE,
    CONVERSATION_LOG,
    DELIVERY,
    EVENTS,
    HUB,
    KNOWLEDGE,
    MESSAGES,
    SETTINGS,
    STATES,
    STATS,
)
from bot.security.origin import check_origin

WORKERS = ("agent", "admin")
MAX_TAG = 40


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
                "channel": summary.channel if summary else "",
                "last_text": summary.last_customer_text if summary else "",
            }
        )
    return json_response({"waiting": items})


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
            "state": handoff.state,
            "agent": handoff.agent,
            "reason": handoff.reason,
            "messages": timeline,
            "notes": await request.app[CONSOLE].notes(cid),
        }
    )


async def _transition(request: web.Request, action: str) -> web.Response:
    session = await require(request, *WORKERS)
    cid = request.match_info["conversation_id"]
    states = request.app[STATES]
    # An admin may act on a conversation another agent holds; an agent only on their own.
    holder = "" if session.role == "admin" else session.username
    before = await states.get(cid)
    try:
        if action == "claim":
            hours = request.app[KNOWLEDGE].hours
            queued = dt.datetime.fromtimestamp(before.waiting_since or time.time(), dt.timezone.utc)
            await states.claim(cid, session.username, counts_as_wait=hours.is_open(queued))
        elif action == "release":
            await states.release(cid, holder)
        elif action == "close":
            body = await read_json_object(request)
            tag = body.get("tag")
            if not isinstance(tag, str) or not tag.strip() or len(tag) > MAX_TAG:
                raise ApiError(400, "invalid_tag", f"`tag` is 1 to {MAX_TAG} characters.")
            await states.close(cid, tag.strip(), holder)
        elif action == "transfer":
            body = await read_json_object(request)
            target = body.get("to")
            accounts = {a.username: a.role for a in await request.app[ACCOUNTS].list()}
            if not isinstance(target, str) or accounts.get(target) not in WORKERS:
                raise ApiError(400, "invalid_agent", "`to` must name an agent account.")
            current = (await states.get(cid)).agent if session.role == "admin" else session.username
            await states.transfer(cid, current, target)
    except InvalidTransition as exc:
        raise ApiError(409, "conflict", str(exc)) from exc
    handoff = await states.get(cid)
    stats = request.app[STATS]
    if action == "claim":
        await stats.duration("queue_wait", handoff.claimed_at - handoff.waiting_since)
    elif action in ("release", "close") and before.claimed_at:
        await stats.duration("handling", handoff.since - before.claimed_at)
    await request.app[EVENTS].publish("state", cid, state=handoff.state, agent=handoff.agent)
    notice = NOTICES.get(action)
    if notice is not None:
        text = request.app[MESSAGES].pick(notice)
        await request.app[DELIVERY].notify(cid, notice, text, state=handoff.state)
    return json_response({"conversation": cid, "state": handoff.state, "agent": handoff.agent})


# What the customer is told when a person joins or leaves: they always know who answers.
NOTICES = {"claim": "agent_joined", "release": "agent_left", "close": "agent_left"}


async def claim(request: web.Request) -> web.Response:
    return await _transition(request, "claim")


async def release(request: web.Request) -> web.Response:
    return await _transition(request, "release")


async def close(request: web.Request) -> web.Response:
    return await _transition(request, "close")


async def transfer(request: web.Request) -> web.Response:
    return await _transition(request, "transfer")


async def reply(request: web.Request) -> web.Response:
    session = await require(request, *WORKERS)
    cid = request.match_info["conversation_id"]
    body = await read_json_object(request)
    text = message_text(body.get("text"), request.app[SETTINGS].max_message_chars, field="text")
    handoff = await request.app[STATES].get(cid)
    if handoff.state != ASSIGNED or handoff.agent != session.username:
        raise ApiError(409, "conflict", "Claim the conversation before replying.")
    channel = request.app[CONVERSATION_LOG].channel_of(cid)
    (entry_id,) = await request.app[CONVERSATION_LOG].append_outbound(
        cid, channel, [Outbound(text=text, action=f"agent:{session.username}")]
    )
    await _touch(request, cid, session.username)
    if await request.app[STATES].first_answer(cid):
        await request.app[STATS].duration("human_response", time.time() - handoff.queued_at)
    # `pushed` false: the channel cannot send unprompted (the REST webhook) or
    # refused (WeChat's 48-hour window); the reply is logged either way.
    try:
        pushed = await request.app[DELIVERY].push(
            "agent_message", channel, cid, entry_id, text, agent=session.username
        )
    except DeliveryFailed as exc:
        return json_response(
            {
                "id": entry_id,
                "conversation": cid,
                "pushed": False,
                "error": exc.code,
                "message": exc.message,
            }
        )
    return json_response({"id": entry_id, "conversation": cid, "pushed": pushed})


async def _touch(request: web.Request, cid: str, agent: str) -> None:
    """The holding agent is working on it: not idle (nothing if someone else holds it)."""
    try:
        await request.app[STATES].touch(cid, agent)
    except InvalidTransition:
        pass


async def add_note(request: web.Request) -> web.Response:
    session = await require(request, *WORKERS)
    cid = request.match_info["conversation_id"]
    body = await read_json_object(request)
    text = message_text(body.get("text"), request.app[SETTINGS].max_message_chars, field="text")
    # The rule of every other action: an agent works on their own conversations
    # (or unheld ones), an admin on anyone's.
    holder = (await request.app[STATES].get(cid)).agent
    if session.role != "admin" and holder and holder != session.username:
        raise ApiError(409, "conflict", f"{holder} holds this conversation.")
    note = await request.app[CONSOLE].add_note(cid, session.username, text)
    await _touch(request, cid, session.username)
    await request.app[EVENTS].publish("note", cid, **note)
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
    return await hub.serve(request, hub.agents, who=session.username)


def setup(app: web.Application) -> None:
    app.router.add_get("/console/ws", live)
    base = "/console/api/conversations/{conversation_id}"
    app.router.add_get("/console/api/queue", queue)
    app.router.add_get("/console/api/assigned", assigned)
    app.router.add_get("/console/api/agents", agents)
    app.router.add_get(base, conversation)
    app.router.add_post(f"{base}/claim", claim)
    app.router.add_post(f"{base}/release", release)
    app.router.add_post(f"{base}/close", close)
    app.router.add_post(f"{base}/transfer", transfer)
    app.router.add_post(f"{base}/reply", reply)
    app.router.add_post(f"{base}/notes", add_note)
    app.router.add_get("/console/api/canned", get_canned)
    app.router.add_put("/console/api/canned", put_canned)
