"""A local server speaking WeChat's token and customer-service message APIs.

Tokens expire (`token_ttl`), unknown tokens are 40001, expired ones 42001, a
customer whose 48-hour window is closed is 45015, and each customer has a
message quota (45047), as on the real service.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from aiohttp import web

INVALID_TOKEN, EXPIRED_TOKEN, WINDOW_CLOSED, OVER_QUOTA = 40001, 42001, 45015, 45047


class FakeWeChat:
    def __init__(self, appid: str, secret: str, token_ttl: int = 7200, quota: int = 100) -> None:
        self.appid, self.secret = appid, secret
        self.token_ttl = token_ttl
        self.quota = quota
        self.tokens: dict[str, float] = {}  # token -> when it expires
        self.token_requests = 0
        self.token_delay = 0.0
        self.sent: list[dict[str, Any]] = []
        self.closed_windows: set[str] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self.token)
        app.router.add_post("/cgi-bin/message/custom/send", self.send)
        return app

    def expire_tokens(self) -> None:
        for token in self.tokens:
            self.tokens[token] = 0.0

    def texts_to(self, openid: str) -> list[str]:
        return [m["text"]["content"] for m in self.sent if m["touser"] == openid]

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        q = request.query
        if q.get("grant_type") != "client_credential":
            return web.json_response({"errcode": 40002, "errmsg": "invalid grant_type"})
        if q.get("appid") != self.appid or q.get("secret") != self.secret:
            return web.json_response({"errcode": 40013, "errmsg": "invalid appid"})
        token = secrets.token_hex(16)
        self.tokens[token] = time.time() + self.token_ttl
        return web.json_response({"access_token": token, "expires_in": self.token_ttl})

    async def send(self, request: web.Request) -> web.Response:
        token = request.query.get("access_token", "")
        if token not in self.tokens:
            return web.json_response({"errcode": INVALID_TOKEN, "errmsg": "invalid credential"})
        if self.tokens[token] <= time.time():
            return web.json_response({"errcode": EXPIRED_TOKEN, "errmsg": "access_token expired"})
        body = await request.json()
        openid = body.get("touser")
        if openid in self.closed_windows:
            return web.json_response(
                {"errcode": WINDOW_CLOSED, "errmsg": "response out of time limit"}
            )
        if len(self.texts_to(openid)) >= self.quota:
            return web.json_response({"errcode": OVER_QUOTA, "errmsg": "out of response count"})
        if body.get("msgtype") != "text" or not body.get("text", {}).get("content"):
            return web.json_response({"errcode": 44003, "errmsg": "empty news data"})
        self.sent.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})
