"""Weibo's pushed messages and passive replies (JSON, the platform's default format).

Pushes (https://open.weibo.com/wiki/Receive_General_Message and
https://open.weibo.com/wiki/Receive_Event_Push)::

    {"type": "text" | "position" | "voice" | "image" | "event" | …,
     "receiver_id": <our account>, "sender_id": <the follower>,
     "created_at": "Mon Jul 16 18:09:20 +0800 2012", "text": "…",
     "data": {…}}   # events: {"subtype": "follow" | "scan" | "click" | …, "key": …}

A passive reply (https://open.weibo.com/wiki/Send_Passive_Response_Message)
goes back in the response, with ``data`` the URL-encoded JSON ``{"text": …}``::

    {"result": true, "sender_id": "<our account>", "receiver_id": "<the follower>",
     "type": "text", "data": "%7B%22text%22%3A…%7D"}

Weibo has no message id: a redelivery is recognised by sender and
``created_at`` (as the platform recommends) plus a digest of the push, so two
messages sent within the same second are still two.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from bot.errors import ApiError

MEDIA = {"position": "位置", "voice": "语音", "image": "图片"}
MAX_ID_DIGITS = 20  # int64


@dataclass(frozen=True)
class Push:
    kind: str
    sender: str  # the follower's uid
    receiver: str  # our account's uid
    created_at: str
    text: str
    data: dict[str, Any]
    digest: str

    @property
    def subtype(self) -> str:
        return str(self.data.get("subtype") or "").lower()

    @property
    def key(self) -> str:
        return str(self.data.get("key") or "").strip()

    @property
    def claim(self) -> str:
        """What a redelivery of this push has in common with it, and no other push has."""
        return f"{self.created_at}:{self.digest}"

    def describe(self) -> str:
        """How a message the bot cannot read appears in the log and to agents."""
        label = MEDIA.get(self.kind, self.kind or "未知消息")
        if self.kind == "position":
            where = f"{self.data.get('latitude', '')}, {self.data.get('longitude', '')}"
            return f"[{label}] {self.text} ({where})".replace("  ", " ")
        media = self.data.get("tovfid") or self.data.get("vfid") or ""
        return f"[{label}] {media}".strip()


def parse(body: dict[str, Any]) -> Push:
    """The push in `body`, or a 400 saying what is missing."""
    kind, data = body.get("type"), body.get("data")
    if not isinstance(kind, str) or not kind:
        raise ApiError(400, "invalid_message", "`type` is required.")
    sender, receiver = (
        _uid(body.get("sender_id"), "sender_id"),
        _uid(body.get("receiver_id"), "receiver_id"),
    )
    if data in (None, "", []):
        data = {}
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_message", "`data` must be a JSON object.")
    text = body.get("text")
    if text is not None and not isinstance(text, str):
        raise ApiError(400, "invalid_message", "`text` must be a string.")
    created_at = body.get("created_at")
    if not isinstance(created_at, str) or not created_at:
        raise ApiError(400, "invalid_message", "`created_at` is required.")
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")
    digest = hashlib.sha256(canonical).hexdigest()[:16]
    return Push(kind, sender, receiver, created_at, text or "", data, digest)


def _uid(value: Any, field: str) -> str:
    uid = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not uid.isdigit() or len(uid) > MAX_ID_DIGITS or uid.startswith("0"):
        raise ApiError(400, "invalid_message", f"`{field}` must be a Weibo uid (digits).")
    return uid


def passive_reply(push: Push, text: str) -> dict[str, Any]:
    """The response that answers `push` with `text` (under 300 characters)."""
    return {
        "result": True,
        "sender_id": push.receiver,
        "receiver_id": push.sender,
        "type": "text",
        "data": quote(json.dumps({"text": text}, ensure_ascii=False), safe=""),
    }
