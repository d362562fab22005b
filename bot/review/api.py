"""`/review` and `/review/api/...`: trainers find, read and relabel; admins retrain.

Same sign-in as the console (roles `trainer` and `admin`). A relabel is
appended to the training data under `BOT_DATA_ROOT` and the message leaves
the review queue; retraining runs `python -m bot train` in a child process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.accounts.routes import require
from bot.app_keys import (
    AUDIT,
    CLARIFICATIONS,
    CONVERSATION_LOG,
    FEEDBACK,
    HANDOFF_REQUESTS,
    KNOWLEDGE,
    RETRAIN,
    REVIEW_INDEX,
    SATISFACTION,
    SETTINGS,
)
from bot.channels.inbound import read_json_object
from bot.customer_data.audit import READ
from bot.errors import ApiError
from bot.feedback.store import KINDS
from bot.handoff.requests import REASONS
from bot.jsonutil import json_response
from bot.retrain import registry
from bot.retrain.cli import announce
from bot.review import training_data
from bot.review.index import Query, ref, split_ref
from bot.security.headers import page

TRAINERS = ("trainer", "admin")
STATIC = Path(__file__).parent / "static"
MAX_LIMIT = 200


def _day(request: web.Request, name: str, end: bool) -> float | None:
    """A `YYYY-MM-DD` query parameter as unix seconds in the brand's timezone."""
    raw = request.query.get(name, "").strip()
    if not raw:
        return None
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, "invalid_date", f"`{name}` must be YYYY-MM-DD.") from None
    tz = request.app[KNOWLEDGE].hours.timezone
    moment = dt.datetime.combine(day + dt.timedelta(days=1) if end else day, dt.time(), tz)
    return moment.timestamp() - (0.001 if end else 0)


def _query(request: web.Request) -> Query:
    try:
        offset = max(int(request.query.get("offset", 0)), 0)
        limit = min(max(int(request.query.get("limit", 50)), 1), MAX_LIMIT)
    except ValueError:
        raise ApiError(400, "invalid_paging", "`offset` and `limit` are numbers.") from None
    return Query(
        queue=request.query.get("queue") in ("1", "true"),
        intent=request.query.get("intent") or None,
        channel=request.query.get("channel") or None,
        text=request.query.get("q") or None,
        since=_day(request, "from", end=False),
        until=_day(request, "to", end=True),
        offset=offset,
        limit=limit,
    )


async def messages(request: web.Request) -> web.Response:
    await require(request, *TRAINERS)
    index = request.app[REVIEW_INDEX]
    total, refs = await index.find(_query(request))
    return json_response({"total": total, "messages": await _details(request, refs)})


async def _details(request: web.Request, refs: list[str]) -> list[dict[str, Any]]:
    pairs = [split_ref(r) for r in refs]
    found = await request.app[CONVERSATION_LOG].messages(pairs)
    labels = await request.app[REVIEW_INDEX].labels(refs)
    items = []
    for item_ref, (conversation, entry_id), message in zip(refs, pairs, found, strict=True):
        if message is None:
            continue  # removed by retention since it was indexed
        fields, result = message
        items.append(
            {
                "ref": item_ref,
                "conversation": conversation,
                "id": entry_id,
                "ts": float(fields.get("ts", 0)),
                "channel": fields.get("channel"),
                "text": fields.get("text", ""),
                "intent": result.get("intent"),
                "confidence": result.get("confidence"),
                "entities": result.get("entities", []),
                "model": result.get("model"),
                "label": labels.get(item_ref),
            }
        )
    return items


async def conversations(request: web.Request) -> web.Response:
    await require(request, *TRAINERS)
    reason = request.query.get("escalated") or None
    if reason and reason != "any" and reason not in REASONS:
        raise ApiError(400, "invalid_reason", f"`escalated` is one of {', '.join(REASONS)} or any.")
    reasons = list(REASONS) if reason == "any" else [reason] if reason else []
    rated_low = request.query.get("rated_low") in ("1", "true")
    total, ids = await request.app[REVIEW_INDEX].conversations(reasons, rated_low, _query(request))
    summaries = await request.app[CONVERSATION_LOG].summaries(ids)
    return json_response({"total": total, "conversations": [s.as_json() for s in summaries]})


async def conversation(request: web.Request) -> web.Response:
    session = await require(request, *TRAINERS)
    cid = request.match_info["conversation_id"]
    timeline = await request.app[CONVERSATION_LOG].timeline(cid)
    if not timeline:
        raise ApiError(404, "not_found", f"No conversation {cid!r}.")
    await request.app[AUDIT].record(session.username, READ, "review", cid)
    refs = [ref(cid, e["id"]) for e in timeline if e["direction"] == "in"]
    labels = await request.app[REVIEW_INDEX].labels(refs)
    for entry in timeline:
        if entry["direction"] == "in":
            entry["label"] = labels.get(ref(cid, entry["id"]))
    return json_response(
        {
            "conversation": cid,
            "channel": timeline[0]["channel"],
            "messages": timeline,
            "escalations": await request.app[HANDOFF_REQUESTS].reasons(cid),
            "satisfaction": await request.app[SATISFACTION].get(cid),
        }
    )


async def label(request: web.Request) -> web.Response:
    session = await require(request, *TRAINERS)
    body = await read_json_object(request)
    cid, entry_id = body.get("conversation"), body.get("id")
    if not isinstance(cid, str) or not isinstance(entry_id, str):
        raise ApiError(400, "invalid_message", "Send the message's `conversation` and `id`.")
    [found] = await request.app[CONVERSATION_LOG].messages([(cid, entry_id)])
    if found is None or found[0].get("direction") != "in":
        raise ApiError(404, "not_found", "No such customer message.")
    text = found[0].get("text", "")
    item = ref(cid, entry_id)
    record: dict[str, Any] = {"by": session.username, "at": time.time()}
    if body.get("ignore") is True:
        record["ignore"] = True
        await request.app[REVIEW_INDEX].label(item, record)
        return json_response({"ref": item, "label": record})
    intent = body.get("intent")
    entities = body.get("entities") or []
    if not isinstance(intent, str) or not isinstance(entities, list):
        raise ApiError(400, "invalid_label", "Send `intent` (and `entities`), or `ignore`: true.")
    for e in entities:
        if not (isinstance(e, dict) and {"entity", "start", "end"} <= e.keys()):
            raise ApiError(400, "invalid_entities", "Each entity has `entity`, `start`, `end`.")
    root = request.app[SETTINGS].data_root.resolve()
    known = set(await asyncio.to_thread(training_data.entity_names, root))
    if any(e["entity"] not in known for e in entities):
        raise ApiError(400, "invalid_entities", "Entities must be entities of the domain.")
    try:
        appended = await asyncio.to_thread(
            training_data.append_example, root, intent, text, entities
        )
    except training_data.LabelError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from exc
    record.update(intent=intent, entities=entities, file=appended.file, line=appended.line)
    await request.app[REVIEW_INDEX].label(item, record)
    return json_response({"ref": item, "label": record, "example": appended.example})


async def meta(request: web.Request) -> web.Response:
    await require(request, *TRAINERS)
    root = request.app[SETTINGS].data_root.resolve()
    return json_response(
        {
            "intents": await asyncio.to_thread(training_data.intents, root),
            "entities": await asyncio.to_thread(training_data.entity_names, root),
            "reasons": list(REASONS),
            "feedback_kinds": list(KINDS),
        }
    )


async def feedback(request: web.Request) -> web.Response:
    await require(request, *TRAINERS)
    kind = request.query.get("kind") or None
    if kind and kind not in KINDS:
        raise ApiError(400, "invalid_kind", f"`kind` is one of {', '.join(KINDS)}.")
    rows = await request.app[FEEDBACK].recent(500)
    items = [row for row in rows if kind is None or row.get("kind") == kind]
    return json_response({"feedback": items[:200]})


async def confirmed(request: web.Request) -> web.Response:
    """Readings customers chose when the bot asked: labels to review and add to the data.

    Each names the conversation and log entry of the original message, so a
    trainer can add it with `POST /review/api/label`.
    """
    await require(request, *TRAINERS)
    return json_response({"confirmed": await request.app[CLARIFICATIONS].confirmed(MAX_LIMIT)})


async def retrain(request: web.Request) -> web.Response:
    session = await require(request, "admin")
    return json_response(await request.app[RETRAIN].start(session.username))


async def retrain_status(request: web.Request) -> web.Response:
    await require(request, *TRAINERS)
    return json_response(await request.app[RETRAIN].status())


async def reload(request: web.Request) -> web.Response:
    """Every process switches to the promoted model (models/serving.json)."""
    await require(request, "admin")
    settings = request.app[SETTINGS]
    record = registry.read(settings.model_dir)
    if record is None:
        raise ApiError(409, "nothing_promoted", "No model has been promoted yet.")
    told = await asyncio.to_thread(announce, settings, record.model)
    return json_response({"model": record.model, "result": told})


async def index(request: web.Request) -> web.FileResponse:
    return page(STATIC / "index.html")


def setup(app: web.Application) -> None:
    app.router.add_get("/review", index)
    app.router.add_static("/review/static/", STATIC, append_version=True)
    app.router.add_get("/review/api/meta", meta)
    app.router.add_get("/review/api/messages", messages)
    app.router.add_get("/review/api/conversations", conversations)
    app.router.add_get("/review/api/conversations/{conversation_id}", conversation)
    app.router.add_post("/review/api/label", label)
    app.router.add_get("/review/api/feedback", feedback)
    app.router.add_get("/review/api/confirmed", confirmed)
    app.router.add_get("/review/api/retrain", retrain_status)
    app.router.add_post("/review/api/retrain", retrain)
    app.router.add_post("/review/api/reload", reload)
