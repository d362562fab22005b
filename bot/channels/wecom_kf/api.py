"""WeCom's kf API: pull messages, send them, the welcome on entering, handing over.

The access token comes from ``gettoken`` (corp id + the kf secret) and is
shared by every process like the Official Account's (bot/channels/wechat/token.py).
"""

from __future__ import annotations

from typing import Any

import aiohttp
from redis.asyncio import Redis

from bot.channels.wechat.token import PlatformApiError, TokenClient
from bot.redis_keys import Keys

# Refusals of kf/send_msg that mean "not now": the 48-hour window closed or its
# five messages used (95001), the session not in a state the API may write in
# (95018: a WeCom servicer has it, or it ended).
WINDOW_CLOSED = frozenset({95001, 95018})
# kf/service_state/trans: 2 = WeCom's waiting pool, 3 = a named servicer.
POOL, SERVICER = 2, 3
SYNC_LIMIT = 1000  # sync_msg's largest page

KfApiError = PlatformApiError


class WeComKfClient(TokenClient):
    def __init__(
        self,
        session: aiohttp.ClientSession,
        redis: Redis,
        keys: Keys,
        base: str,
        corp_id: str,
        secret: str,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(
            session,
            redis,
            keys.wecom_token,
            keys.wecom_token_lock,
            base,
            "/cgi-bin/gettoken",
            {"corpid": corp_id, "corpsecret": secret},
            timeout,
        )

    async def sync_msg(
        self, open_kfid: str, cursor: str, token: str, limit: int = SYNC_LIMIT
    ) -> dict[str, Any]:
        """One page after `cursor`: ``next_cursor``, ``has_more``, ``msg_list``.

        `token` is the callback's ``Token`` (valid ten minutes); without it
        WeCom applies a much stricter rate limit.
        """
        payload: dict[str, Any] = {"open_kfid": open_kfid, "limit": limit}
        if cursor:
            payload["cursor"] = cursor
        if token:
            payload["token"] = token
        return await self.post("/cgi-bin/kf/sync_msg", payload)

    async def send(self, open_kfid: str, external_userid: str, message: dict[str, Any]) -> str:
        """Send one message (``msgtype`` and its body); WeCom's msgid of it."""
        payload = {"touser": external_userid, "open_kfid": open_kfid, **message}
        body = await self.post("/cgi-bin/kf/send_msg", payload)
        return str(body.get("msgid", ""))

    async def send_on_event(self, code: str, message: dict[str, Any]) -> None:
        """The reply an event's `code` allows once (the welcome: enter_session's welcome_code)."""
        await self.post("/cgi-bin/kf/send_msg_on_event", {"code": code, **message})

    async def trans(
        self, open_kfid: str, external_userid: str, state: int, servicer: str | None
    ) -> None:
        payload: dict[str, Any] = {
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            "service_state": state,
        }
        if servicer:
            payload["servicer_userid"] = servicer
        await self.post("/cgi-bin/kf/service_state/trans", payload)


def text_message(text: str) -> dict[str, Any]:
    return {"msgtype": "text", "text": {"content": text}}


def menu_message(head: str, options: list[tuple[str, str]]) -> dict[str, Any]:
    """A ``msgmenu`` of click items (id, label): a click comes back as a text with ``menu_id``."""
    return {
        "msgtype": "msgmenu",
        "msgmenu": {
            "head_content": head,
            "list": [{"type": "click", "click": {"id": i, "content": c}} for i, c in options],
        },
    }
