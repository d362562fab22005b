"""A local group-robot webhook answering as WeCom, DingTalk or Feishu do.

WeCom (`/cgi-bin/webhook/send?key=`) and DingTalk (`/robot/send?access_token=`)
take `{"msgtype": "text", "text": {"content"}}` and answer `{"errcode": 0,
"errmsg": "ok"}` (an unknown key: WeCom 93000, DingTalk 300001); Feishu
(`/open-apis/bot/v2/hook/<token>`) takes `{"msg_type": "text", "content":
{"text"}}` and answers `{"code": 0, "msg": "success"}` (an unknown hook 19001).
A message in the wrong shape gets the platform's "invalid" code.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


class FakeGroupRobot:
    def __init__(self, fmt: str, token: str = "robot-key") -> None:
        self.fmt, self.token = fmt, token
        self.texts: list[str] = []

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

    async def dingtalk(self, request: web.Request) -> web.Response:
        if request.query.get("access_token") != self.token:
            return web.json_response({"errcode": 300001, "errmsg": "token is not exist"})
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
        text = await self._text(request, "content", "text")
        if text is None:
            return web.json_response({"code": 9499, "msg": "Bad Request"})
        self.texts.append(text)
        return web.json_response({"code": 0, "msg": "success", "data": {}})
