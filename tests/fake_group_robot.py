"""A local group-robot webhook answering as WeCom, DingTalk or Feishu do.

WeCom (`/cgi-bin/webhook/send?key=`) and DingTalk (`/robot/send?access_token=`)
take `{"msgtype": "text", "text": {"content"}}` and answer `{"errcode": 0,
"errmsg": "ok"}` (an unknown key: WeCom 93000, DingTalk 300001); Feishu
(`/open-apis/bot/v2/hook/<token>`) takes `{"msg_type": "text", "content":
{"text"}}` and answers `{"code": 0, "msg": "success"}` (an unknown hook 19001).
A message in the wrong shape gets the platform's "invalid" code.

With a `secret` (the robot's 加签 / 签名校验 setting) every message must be
signed, computed here independently of bot/handoff/alerts.py: DingTalk wants
`timestamp` (ms) and `sign` in the query (else errcode 310000 "sign not
match"), Feishu `timestamp` (s) and `sign` in the body (else code 19021);
both refuse a timestamp more than an hour from now.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from aiohttp import web

HOUR = 3600


def _b64_hmac(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


class FakeGroupRobot:
    def __init__(self, fmt: str, token: str = "robot-key", secret: str | None = None) -> None:
        self.fmt, self.token, self.secret = fmt, token, secret
        self.texts: list[str] = []
        self.refused: list[dict[str, Any]] = []  # the answers to badly signed messages

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/cgi-bin/webhook/send", self.wecom)
        app.router.add_post("/robot/send", self.dingtalk)
        app.router.add_post("/open-apis/bot/v2/hook/{token}", self.feishu)
        return app

    def path(self) -> str:
        return {
            "wecom": f"/cgi-bin/webhook/send?key={self.token}",
            "dingtalk": f"/robot/send?access_token={self.token}",
            "feishu": f"/open-apis/bot/v2/hook/{self.token}",
        }[self.fmt]

    async def _text(self, request: web.Request, outer: str, inner: str) -> str | None:
        body: Any = await request.json()
        part = body.get(outer) if isinstance(body, dict) else None
        text = part.get(inner) if isinstance(part, dict) else None
        return text if isinstance(text, str) and text else None

    async def wecom(self, request: web.Request) -> web.Response:
        if request.query.get("key") != self.token:
            return web.json_response({"errcode": 93000, "errmsg": "invalid webhook url"})
        text = await self._text(request, "text", "content")
        if text is None:
            return web.json_response({"errcode": 40008, "errmsg": "invalid message type"})
        self.texts.append(text)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    def _dingtalk_signed(self, request: web.Request) -> bool:
        assert self.secret is not None
        timestamp, sign = request.query.get("timestamp", ""), request.query.get("sign", "")
        if not timestamp.isdigit() or abs(int(timestamp) / 1000 - time.time()) > HOUR:
            return False
        secret = self.secret.encode()
        expected = _b64_hmac(secret, timestamp.encode() + b"\n" + secret)
        return hmac.compare_digest(expected, sign)

    def _feishu_signed(self, body: Any) -> bool:
        assert self.secret is not None
        timestamp = str(body.get("timestamp", "")) if isinstance(body, dict) else ""
        sign = body.get("sign") if isinstance(body, dict) else None
        if not timestamp.isdigit() or abs(int(timestamp) - time.time()) > HOUR:
            return False
        expected = _b64_hmac(f"{timestamp}\n{self.secret}".encode(), b"")
        return isinstance(sign, str) and hmac.compare_digest(expected, sign)

    def _refuse(self, answer: dict[str, Any]) -> web.Response:
        self.refused.append(answer)
        return web.json_response(answer)

    async def dingtalk(self, request: web.Request) -> web.Response:
        if request.query.get("access_token") != self.token:
            return web.json_response({"errcode": 300001, "errmsg": "token is not exist"})
        if self.secret is not None and not self._dingtalk_signed(request):
            return self._refuse({"errcode": 310000, "errmsg": "sign not match"})
        text = await self._text(request, "text", "content")
        if text is None:
            return web.json_response({"errcode": 40035, "errmsg": "缺少参数 json"})
        self.texts.append(text)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def feishu(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"code": 19001, "msg": "param invalid: incoming webhook access token invalid"}
            )
        if self.secret is not None and not self._feishu_signed(await request.json()):
            return self._refuse(
                {
                    "code": 19021,
                    "msg": "sign match fail or timestamp is not within one hour from current time",
                    "data": {},
                }
            )
        text = await self._text(request, "content", "text")
        if text is None:
            return web.json_response({"code": 9499, "msg": "Bad Request"})
        self.texts.append(text)
        return web.json_response({"code": 0, "msg": "success", "data": {}})
