"""The REST channel, compatible with Rasa's: `POST /webhooks/rest/webhook`.

Request ``{"sender": "u1", "message": "你好", "metadata": {...}}``; response
``[{"recipient_id": "u1", "text": "..."}, ...]``. Unlike Rasa's, a missing
``sender`` is refused rather than lumped into one shared "default" conversation.
"""

from __future__ import annotations

from aiohttp import web

from bot.channels.inbound import message_text, read_json_object, sender_id
from bot.errors import ApiError
from bot.jsonutil import json_response
from bot.keys import CHAT, SETTINGS

CHANNEL = "rest"


async def webhook(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    sender = sender_id(body.get("sender"))
    text = message_text(body.get("message"), request.app[SETTINGS].max_message_chars)
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ApiError(400, "invalid_metadata", "`metadata` must be a JSON object.")
    turn = await request.app[CHAT].handle(CHANNEL, sender, text, metadata)
    return json_response([reply.payload for reply in turn.replies])


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


def setup(app: web.Application) -> None:
    app.router.add_get("/webhooks/rest/", health)
    app.router.add_post("/webhooks/rest/webhook", webhook)
