"""A local server speaking Weibo's fan-service message API, and Weibo's pushes to us.

Formats as documented on open.weibo.com:

- URL check and signed pushes: https://open.weibo.com/wiki/Messages_api_start
  (SHA-1 of the sorted app secret, timestamp and nonce; the documented
  example's timestamp is in milliseconds, 1397022061823).
- Pushed messages: https://open.weibo.com/wiki/Receive_General_Message and
  https://open.weibo.com/wiki/Receive_Event_Push (JSON: type, receiver_id,
  sender_id, created_at, text, data; events carry data.subtype and data.key).
- Passive replies: https://open.weibo.com/wiki/Send_Passive_Response_Message
  (result, sender_id, receiver_id, type, and data the URL-encoded JSON).
- Customer-service replies: https://open.weibo.com/wiki/Send_Customer_Service_Message
  (POST https://m.api.weibo.com/2/messages/reply.json?access_token=…, form
  fields receiver_id, type, data; text under 300 characters).
- Errors: https://open.weibo.com/wiki/Error_code
  ({"request": …, "error_code": …, "error": …}; 21327 expired_token,
  21332 invalid_access_token, 10023 user requests out of rate limit).

Like the real service, it refuses an expired or unknown token, a customer who
unfollowed, a text of 300 characters or more, and rate-limits on request.
`WeiboPusher` plays Weibo's side of the webhook: it signs each push and can
deliver the same push again, as Weibo does when no answer comes in 5 seconds.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any
from urllib.parse import unquote

import aiohttp
from aiohttp import web

EXPIRED_TOKEN, INVALID_TOKEN, RATE_LIMITED, PARAM_ERROR = 21327, 21332, 10023, 10008
ACCOUNT_UID = 1902538057  # the brand's Weibo account (receiver of pushes)


def error(code: int, message: str, status: int = 400) -> web.Response:
    return web.json_response(
        {"request": "/2/messages/reply.json", "error_code": code, "error": message}, status=status
    )


class FakeWeibo:
    def __init__(self, access_token: str) -> None:
        self.access_token = access_token
        self.token_expired = False
        self.rate_limited = 0  # how many of the next calls are refused as rate-limited
        self.unfollowed: set[str] = set()
        self.sent: list[dict[str, Any]] = []
        self.calls = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2/messages/reply.json", self.reply)
        return app

    def texts_to(self, uid: int | str) -> list[str]:
        return [m["text"] for m in self.sent if m["receiver_id"] == str(uid)]

    async def reply(self, request: web.Request) -> web.Response:
        self.calls += 1
        token = request.query.get("access_token", "")
        if token != self.access_token:
            return error(INVALID_TOKEN, "invalid_access_token", 403)
        if self.token_expired:
            return error(EXPIRED_TOKEN, "expired_token", 403)
        if self.rate_limited:
            self.rate_limited -= 1
            return error(RATE_LIMITED, "User requests out of rate limit!", 403)
        if request.content_type != "application/x-www-form-urlencoded":
            return error(PARAM_ERROR, "Param error, see doc for more info.")
        form = await request.post()
        receiver, kind, raw = form.get("receiver_id"), form.get("type"), form.get("data")
        if not isinstance(receiver, str) or not receiver.isdigit() or kind != "text":
            return error(PARAM_ERROR, "Param error, see doc for more info.")
        try:
            data = json.loads(str(raw))
        except ValueError:
            return error(PARAM_ERROR, "Param error, see doc for more info.")
        text = data.get("text") if isinstance(data, dict) else None
        if not isinstance(text, str) or not text or len(text) >= 300:
            return error(PARAM_ERROR, "Param error: text must be under 300 characters.")
        if receiver in self.unfollowed:
            return error(20016, "the user does not follow you", 403)
        self.sent.append({"receiver_id": receiver, "text": text})
        return web.json_response(
            {
                "id": len(self.sent),
                "sender_id": ACCOUNT_UID,
                "receiver_id": int(receiver),
                "type": "text",
                "text": text,
                "created_at": time.strftime("%a %b %d %H:%M:%S +0800 %Y"),
            }
        )


def sign(secret: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([secret, timestamp, nonce])).encode()).hexdigest()


def now_ms() -> str:
    return str(int(time.time() * 1000))


def created_at() -> str:
    return time.strftime("%a %b %d %H:%M:%S +0800 %Y")


def text_push(uid: int, text: str) -> dict[str, Any]:
    return {
        "type": "text",
        "receiver_id": ACCOUNT_UID,
        "sender_id": uid,
        "created_at": created_at(),
        "text": text,
        "data": {},
    }


def event_push(uid: int, subtype: str, key: str | None = None, text: str = "事件消息") -> dict:  # type: ignore[type-arg]
    data: dict[str, Any] = {"subtype": subtype}
    if key is not None:
        data.update(key=key, ticket="TICKET")
    return {
        "type": "event",
        "receiver_id": ACCOUNT_UID,
        "sender_id": uid,
        "created_at": created_at(),
        "text": text,
        "data": data,
    }


def media_push(uid: int, kind: str, text: str, **data: str) -> dict[str, Any]:
    return {
        "type": kind,
        "receiver_id": ACCOUNT_UID,
        "sender_id": uid,
        "created_at": created_at(),
        "text": text,
        "data": data,
    }


class WeiboPusher:
    """What Weibo's servers do: sign each request to the webhook, in milliseconds."""

    def __init__(self, client: Any, secret: str) -> None:
        self.client = client
        self.secret = secret

    def params(self, timestamp: str | None = None, signature: str | None = None) -> dict:  # type: ignore[type-arg]
        ts = timestamp or now_ms()
        nonce = uuid.uuid4().hex[:8]
        return {
            "timestamp": ts,
            "nonce": nonce,
            "signature": signature or sign(self.secret, ts, nonce),
        }

    async def verify(self, echostr: str, **kw: str) -> aiohttp.ClientResponse:
        return await self.client.get(
            "/webhooks/weibo", params={**self.params(**kw), "echostr": echostr}
        )

    async def push(self, body: dict[str, Any], **kw: str) -> aiohttp.ClientResponse:
        raw = json.dumps(body, ensure_ascii=False).encode()
        return await self.client.post(
            "/webhooks/weibo",
            params=self.params(**kw),
            data=raw,
            headers={"Content-Type": "application/json"},
        )

    @staticmethod
    async def passive_text(resp: aiohttp.ClientResponse, push: dict[str, Any]) -> str | None:
        """The passive reply's text, checked against the documented format; None if empty."""
        assert resp.status == 200, await resp.text()
        body = await resp.text()
        if body == "":
            return None
        reply = json.loads(body)
        assert reply["result"] is True and reply["type"] == "text"
        assert reply["receiver_id"] == str(push["sender_id"])
        assert reply["sender_id"] == str(push["receiver_id"])
        assert "%7B%22text%22" in reply["data"]  # URL-encoded, as documented
        text = json.loads(unquote(reply["data"]))["text"]
        assert isinstance(text, str) and len(text) < 300
        return text
