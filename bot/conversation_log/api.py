"""Read API over the conversation log, for reviewers and tools.

Behind the admin bearer token (``BOT_ADMIN_TOKEN``). With no token configured,
these endpoints refuse every request: conversations are never readable by
default.
"""

from __future__ import annotations

from aiohttp import web

from bot.app_keys import AUDIT, CONVERSATION_LOG, SETTINGS
from bot.customer_data.audit import READ
from bot.errors import ApiError
from bot.jsonutil import json_response
from bot.security.tokens import bearer_matches

MAX_LIMIT = 100


def require_admin(request: web.Request) -> None:
    token = request.app[SETTINGS].admin_token
    if token is None:
        raise ApiError(
            403, "admin_api_disabled", "The admin API is closed: set BOT_ADMIN_TOKEN to open it."
        )
    if not bearer_matches(request.headers.get("Authorization"), token):
        raise ApiError(
            401, "unauthorised", "Send the admin token as `Authorization: Bearer <token>`."
        )


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", f"`{name}` must be a whole number.") from exc
    if not low <= value <= high:
        raise ApiError(400, "invalid_parameter", f"`{name}` must be between {low} and {high}.")
    return value


async def list_conversations(request: web.Request) -> web.Response:
    require_admin(request)
    limit = _int_param(request, "limit", 20, 1, MAX_LIMIT)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    log = request.app[CONVERSATION_LOG]
    total = await log.count()
    items = await log.recent(offset=offset, limit=limit)
    next_offset = offset + len(items) if offset + len(items) < total else None
    return json_response(
        {
            "conversations": [item.as_json() for item in items],
            "total": total,
            "offset": offset,
            "limit": limit,
            "next_offset": next_offset,
        }
    )


async def get_conversation(request: web.Request) -> web.Response:
    require_admin(request)
    conversation = request.match_info["conversation_id"]
    log = request.app[CONVERSATION_LOG]
    timeline = await log.timeline(conversation)
    if not timeline:
        raise ApiError(404, "not_found", f"No conversation {conversation!r}.")
    await request.app[AUDIT].record("admin-token", READ, "admin_api", conversation)
    return json_response({"id": conversation, "messages": timeline})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/conversations", list_conversations)
    app.router.add_get("/api/conversations/{conversation_id}", get_conversation)
