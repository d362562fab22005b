"""Admin API for customers' rights: export and erase one conversation, read the audit log.

- ``GET /api/conversations/{id}/export``: everything kept about it (admin token)
- ``DELETE /api/conversations/{id}``: erase it everywhere; answers the erasure record
- ``GET /api/audit``, ``GET /api/erasures``: who read, exported or erased what
- ``GET /console/api/audit``: the audit log for admins signed in to the console
"""

from __future__ import annotations

from aiohttp import web

from bot.accounts.routes import require
from bot.app_keys import AUDIT, CUSTOMER_DATA
from bot.conversation_log.api import require_admin
from bot.customer_data.audit import ERASE, EXPORT
from bot.errors import ApiError
from bot.jsonutil import json_response

ADMIN_TOKEN = "admin-token"
ADMIN_API = "admin_api"


async def export(request: web.Request) -> web.Response:
    require_admin(request)
    conversation = request.match_info["conversation_id"]
    data = request.app[CUSTOMER_DATA]
    if not await data.exists(conversation):
        raise ApiError(404, "not_found", f"No conversation {conversation!r}.")
    await request.app[AUDIT].record(ADMIN_TOKEN, EXPORT, ADMIN_API, conversation)
    return json_response(await data.export(conversation))


async def forget(request: web.Request) -> web.Response:
    require_admin(request)
    conversation = request.match_info["conversation_id"]
    data = request.app[CUSTOMER_DATA]
    if not await data.exists(conversation):
        raise ApiError(404, "not_found", f"No conversation {conversation!r}.")
    record = await data.forget(conversation, by=ADMIN_TOKEN)
    await request.app[AUDIT].record(ADMIN_TOKEN, ERASE, ADMIN_API, conversation)
    return json_response({"erased": True, "record": record})


def _count(request: web.Request) -> int:
    raw = request.query.get("limit", "200")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise ApiError(400, "invalid_parameter", "`limit` must be between 1 and 1000.")
    return int(raw)


async def audit(request: web.Request) -> web.Response:
    require_admin(request)
    return json_response({"entries": await request.app[AUDIT].recent(_count(request))})


async def console_audit(request: web.Request) -> web.Response:
    await require(request, "admin")
    return json_response({"entries": await request.app[AUDIT].recent(_count(request))})


async def erasures(request: web.Request) -> web.Response:
    require_admin(request)
    return json_response({"erasures": await request.app[CUSTOMER_DATA].erasures(_count(request))})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/conversations/{conversation_id}/export", export)
    app.router.add_delete("/api/conversations/{conversation_id}", forget)
    app.router.add_get("/api/audit", audit)
    app.router.add_get("/api/erasures", erasures)
    app.router.add_get("/console/api/audit", console_audit)
