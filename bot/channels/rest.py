"""The REST channel, compatible with Rasa's: `POST /webhooks/rest/webhook`.

Request ``{"sender": "u1", "message": "你好", "metadata": {...}}``; response
``[{"recipient_id": "u1", "text": "..."}, ...]``. Unlike Rasa's, a missing
``sender`` is refused rather than lumped into one shared "default" conversation.
"""

from __future__ import annotations

from aiohttp import web

from bot.channels.inbound import message_text, metadata_object, read_json_object, sender_id
from bot.jsonutil import json_response
from bot.keys import CHAT, RATE_LIMITS, SETTINGS

CHANNEL = "rest"


async def webhook(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    sender = sender_id(body.get("sender"))
    settings = request.app[SETTINGS]
    text = message_text(body.get("message"), settings.max_message_chars)
    metadata = metadata_object(
        body.get("metadata"), settings.max_metadata_bytes, settings.max_metadata_depth
    )
    await request.app[RATE_LIMITS].admit(request, sender)
    turn = await request.app[CHAT].handle(CHANNEL, sender, text, metadata)
    return json_response([reply.payload for reply in turn.replies])


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


def setup(app: web.Application) -> None:
    app.router.add_get("/webhooks/rest/", health)
    app.router.add_post("/webhooks/rest/webhook", webhook)
