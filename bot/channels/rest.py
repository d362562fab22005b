"""The REST channel, compatible with Rasa's: `POST /webhooks/rest/webhook`.

Request ``{"sender": "u1", "message": "你好", "message_id": "…", "metadata": {...}}``;
response ``[{"recipient_id": "u1", "text": "..."}, ...]``. Unlike Rasa's:

- a missing ``sender`` is refused rather than lumped into one shared "default"
  conversation, and the sender names a conversation of this channel only
  (``rest:<sender>``, see channels/identity.py): whatever it says, it cannot
  reach a web chat or WeChat conversation;
- with ``BOT_REST_TOKEN`` set, callers must send ``Authorization: Bearer <token>``
  (the webhook is for platforms and back ends; customers use the web chat);
- ``message_id`` makes a retry safe: a repeat gets the first delivery's replies.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.app_keys import CHAT, RATE_LIMITS, SETTINGS
from bot.channels.identity import conversation_id
from bot.channels.inbound import (
    message_id,
    message_text,
    metadata_object,
    read_json_object,
    sender_id,
)
from bot.errors import ApiError
from bot.jsonutil import json_response
from bot.security.tokens import bearer_matches

logger = logging.getLogger(__name__)

CHANNEL = "rest"


async def webhook(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if settings.rest_token and not bearer_matches(
        request.headers.get("Authorization"), settings.rest_token
    ):
        raise ApiError(
            401, "unauthorised", "Send the REST token as `Authorization: Bearer <token>`."
        )
    body = await read_json_object(request)
    sender = sender_id(body.get("sender"))
    text = message_text(body.get("message"), settings.max_message_chars)
    mid = message_id(body.get("message_id"))
    metadata = metadata_object(
        body.get("metadata"), settings.max_metadata_bytes, settings.max_metadata_depth
    )
    conversation = conversation_id(CHANNEL, sender)
    await request.app[RATE_LIMITS].admit(request, conversation)
    turn = await request.app[CHAT].handle(CHANNEL, conversation, text, metadata, message_id=mid)
    # Rasa's shape: the recipient is the caller's own sender id.
    return json_response([{**reply.payload, "recipient_id": sender} for reply in turn.replies])


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def open_warning_ctx(app: web.Application) -> AsyncIterator[None]:
    if not app[SETTINGS].rest_token:
        logger.warning(
            "REST webhook is open to anyone who can reach it: set BOT_REST_TOKEN "
            "outside local use (customers should use the web chat)"
        )
    yield


def setup(app: web.Application) -> None:
    app.router.add_get("/webhooks/rest/", health)
    app.router.add_post("/webhooks/rest/webhook", webhook)
    app.cleanup_ctx.append(open_warning_ctx)
