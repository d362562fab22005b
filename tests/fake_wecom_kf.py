"""A local server speaking WeCom's token and WeChat Customer Service (kf) APIs.

As on the real service: ``gettoken`` takes the corp id and the kf secret;
unknown tokens are 40014, expired ones 42001; ``kf/sync_msg`` pages a kf
account's messages after a cursor (``next_cursor``, ``has_more``, ``msg_list``
with ``origin`` 3 for the customer, 4 for events); ``kf/send_msg`` refuses
(95001) outside the 48 hours after the customer's last message or past five
messages since it; ``kf/send_msg_on_event`` takes a ``welcome_code`` once,
within 20 seconds; any API can be made to answer 45009 (rate limited).
Messages a servicer typed in WeCom's own client come back with ``origin`` 5.
A send to a user in ``hold_to`` hangs until ``let_go`` is set and is then
refused, never delivered: the moment to kill the process that sent it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import Any

from aiohttp import web

INVALID_TOKEN, EXPIRED_TOKEN, RATE_LIMITED = 40014, 42001, 45009
WINDOW_CLOSED = 95001  # out of the 48-hour window, or its five messages used
INVALID_CODE = 95002  # a welcome_code unknown, used or older than 20 seconds
WINDOW_SECONDS, WINDOW_MESSAGES, WELCOME_SECONDS = 48 * 3600, 5, 20


class FakeWeComKf:
    def __init__(self, corp_id: str, secret: str, token_ttl: int = 7200) -> None:
        self.corp_id, self.secret = corp_id, secret
        self.token_ttl = token_ttl
        self.tokens: dict[str, float] = {}  # token -> when it expires
        self.token_requests = 0
        self.messages: dict[str, list[dict[str, Any]]] = {}  # open_kfid -> msg_list, in order
        self.page_size = 1000
        self.sync_calls: list[dict[str, Any]] = []
        self.rate_limited_calls = 0  # the next this many calls to any kf API get 45009
        self.sent: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        self.welcomes: list[dict[str, Any]] = []
        self.codes: dict[str, float] = {}  # welcome_code -> when issued
        self.transfers: list[dict[str, Any]] = []
        self.callback_tokens: set[str] = set()
        self.hold_to: set[str] = set()
        self.held: list[dict[str, Any]] = []
        self.let_go = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cgi-bin/gettoken", self.gettoken)
        app.router.add_post("/cgi-bin/kf/sync_msg", self.sync_msg)
        app.router.add_post("/cgi-bin/kf/send_msg", self.send_msg)
        app.router.add_post("/cgi-bin/kf/send_msg_on_event", self.send_msg_on_event)
        app.router.add_post("/cgi-bin/kf/service_state/trans", self.trans)
        return app

    # -- what customers do (each returns the msgid) ----------------------------------

    def _add(self, open_kfid: str, item: dict[str, Any]) -> str:
        msgid = item.setdefault("msgid", secrets.token_hex(12))
        item.setdefault("send_time", int(time.time()))
        self.messages.setdefault(open_kfid, []).append(item)
        return msgid

    def customer_says(
        self,
        open_kfid: str,
        user: str,
        text: str,
        menu_id: str | None = None,
        send_time: int | None = None,
    ) -> str:
        body: dict[str, Any] = {"content": text}
        if menu_id is not None:
            body["menu_id"] = menu_id
        item = {"open_kfid": open_kfid, "external_userid": user, "origin": 3, "msgtype": "text"}
        if send_time is not None:
            item["send_time"] = send_time
        return self._add(open_kfid, {**item, "text": body})

    def customer_sends(self, open_kfid: str, user: str, kind: str, body: dict[str, Any]) -> str:
        item = {"open_kfid": open_kfid, "external_userid": user, "origin": 3, "msgtype": kind}
        return self._add(open_kfid, {**item, kind: body})

    def servicer_says(self, open_kfid: str, user: str, servicer: str, text: str) -> str:
        """A servicer writes to the customer from WeCom's own client (origin 5)."""
        item = {
            "open_kfid": open_kfid,
            "external_userid": user,
            "servicer_userid": servicer,
            "origin": 5,
            "msgtype": "text",
            "text": {"content": text},
        }
        return self._add(open_kfid, item)

    def customer_enters(self, open_kfid: str, user: str, scene: str = "") -> str:
        code = secrets.token_hex(16)
        self.codes[code] = time.time()
        event = {
            "event_type": "enter_session",
            "open_kfid": open_kfid,
            "external_userid": user,
            "scene": scene,
            "welcome_code": code,
        }
        return self._add(open_kfid, {"origin": 4, "msgtype": "event", "event": event})

    def new_callback_token(self) -> str:
        token = "ENC" + secrets.token_hex(16)
        self.callback_tokens.add(token)
        return token

    def expire_tokens(self) -> None:
        for token in self.tokens:
            self.tokens[token] = 0.0

    def texts_to(self, user: str) -> list[str]:
        return [
            m["text"]["content"] if m["msgtype"] == "text" else m["msgmenu"]["head_content"]
            for m in self.sent
            if m["touser"] == user
        ]

    def to(self, user: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["touser"] == user]

    # -- the API -------------------------------------------------------------------

    async def gettoken(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        q = request.query
        if q.get("corpid") != self.corp_id or q.get("corpsecret") != self.secret:
            return web.json_response({"errcode": 40013, "errmsg": "invalid corpid"})
        token = secrets.token_hex(16)
        self.tokens[token] = time.time() + self.token_ttl
        return web.json_response(
            {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": self.token_ttl}
        )

    def _refusal(self, request: web.Request) -> web.Response | None:
        token = request.query.get("access_token", "")
        if token not in self.tokens:
            return web.json_response({"errcode": INVALID_TOKEN, "errmsg": "invalid access_token"})
        if self.tokens[token] <= time.time():
            return web.json_response({"errcode": EXPIRED_TOKEN, "errmsg": "access_token expired"})
        if self.rate_limited_calls:
            self.rate_limited_calls -= 1
            return web.json_response({"errcode": RATE_LIMITED, "errmsg": "api freq out of limit"})
        return None

    async def sync_msg(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        body = await request.json()
        self.sync_calls.append(body)
        token = body.get("token")
        if token is not None and token not in self.callback_tokens:
            return web.json_response({"errcode": 95007, "errmsg": "invalid msg token"})
        messages = self.messages.get(body.get("open_kfid", ""), [])
        start = int(body.get("cursor") or 0)
        limit = min(int(body.get("limit") or 1000), 1000, self.page_size)
        page = messages[start : start + limit]
        end = start + len(page)
        return web.json_response(
            {
                "errcode": 0,
                "errmsg": "ok",
                "next_cursor": str(end),
                "has_more": int(end < len(messages)),
                "msg_list": page,
            }
        )

    def _window(self, open_kfid: str, user: str) -> tuple[float, int]:
        """(the customer's last message time, messages sent since)."""
        last = max(
            (
                m["send_time"]
                for m in self.messages.get(open_kfid, [])
                if m.get("origin") == 3 and m.get("external_userid") == user
            ),
            default=0.0,
        )
        since = sum(
            1 for m in self.sent if m["touser"] == user and m["open_kfid"] == open_kfid
            and m["_at"] >= last
        )  # fmt: skip
        return last, since

    async def send_msg(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        body = await request.json()
        if body.get("touser") in self.hold_to:
            self.held.append(body)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.let_go.wait(), 60)
            return web.json_response({"errcode": 45009, "errmsg": "held, never delivered"})
        last, since = self._window(body.get("open_kfid", ""), body.get("touser", ""))
        if time.time() - last > WINDOW_SECONDS or since >= WINDOW_MESSAGES:
            self.refused.append(body)
            return web.json_response(
                {"errcode": WINDOW_CLOSED, "errmsg": "send msg count or time limit"}
            )
        kind = body.get("msgtype")
        if kind not in ("text", "msgmenu") or not body.get(kind):
            return web.json_response({"errcode": 40008, "errmsg": "invalid message type"})
        msgid = secrets.token_hex(8)
        self.sent.append({**body, "_at": time.time(), "msgid": msgid})
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": msgid})

    async def send_msg_on_event(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        body = await request.json()
        issued = self.codes.pop(body.get("code", ""), None)
        if issued is None or time.time() - issued > WELCOME_SECONDS:
            return web.json_response({"errcode": INVALID_CODE, "errmsg": "invalid code"})
        self.welcomes.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": secrets.token_hex(8)})

    async def trans(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        body = await request.json()
        self.transfers.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})
