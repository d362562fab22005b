"""Reading and checking what a channel receives, with a clear 4xx for each fault."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from bot.errors import ApiError

# curl -d sends form encoding, and many webhook senders send text/plain or no
# type at all, with a JSON body: those are accepted; anything else is refused.
JSON_LIKE_TYPES = frozenset(
    {
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/octet-stream",
        "",
    }
)

MAX_SENDER_CHARS = 128


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or an ApiError saying what is wrong."""
    content_type = request.content_type if request.headers.get("Content-Type") else ""
    if content_type not in JSON_LIKE_TYPES and not content_type.endswith("+json"):
        raise ApiError(
            415, "unsupported_media_type", f"Send JSON (application/json), not {content_type}."
        )
    raw = await request.read()
    if not raw.strip():
        raise ApiError(400, "empty_body", "The request body is empty; send a JSON object.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400, "invalid_utf8", f"The body is not valid UTF-8 (byte {exc.start})."
        ) from exc
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {exc}.") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The body must be a JSON object.")
    return body


def message_text(value: Any, max_chars: int, field: str = "message") -> str:
    """A customer message: a non-empty string of at most `max_chars` characters."""
    if value is None:
        raise ApiError(400, "missing_message", f"`{field}` is required.")
    if not isinstance(value, str):
        raise ApiError(400, "invalid_message", f"`{field}` must be a string.")
    text = value.strip()
    if not text:
        raise ApiError(400, "empty_message", f"`{field}` is empty.")
    if len(text) > max_chars:
        raise ApiError(
            400,
            "message_too_long",
            f"`{field}` has {len(text)} characters; the limit is {max_chars}.",
        )
    if "\x00" in text:
        raise ApiError(400, "invalid_message", f"`{field}` contains a NUL character.")
    return text


def sender_id(value: Any, field: str = "sender") -> str:
    if value is None or value == "":
        raise ApiError(400, "missing_sender", f"`{field}` is required: it names the conversation.")
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ApiError(400, "invalid_sender", f"`{field}` must be a string.")
    sender = str(value).strip()
    if not sender or len(sender) > MAX_SENDER_CHARS or not sender.isprintable():
        raise ApiError(
            400,
            "invalid_sender",
            f"`{field}` must be 1 to {MAX_SENDER_CHARS} printable characters.",
        )
    return sender


MAX_MESSAGE_ID_CHARS = 128


def message_id(value: Any, field: str = "message_id") -> str | None:
    """A client's id for one message (optional): 1 to 128 printable ASCII characters."""
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= MAX_MESSAGE_ID_CHARS
        or not value.isascii()
        or not value.isprintable()
    ):
        raise ApiError(
            400,
            "invalid_message_id",
            f"`{field}` must be 1 to {MAX_MESSAGE_ID_CHARS} printable ASCII characters.",
        )
    return value
