"""WeChat's customer-service message API, with the access token every process shares.

The token's caching, renewal and retry are in bot/channels/wechat/token.py,
shared with WeCom's customer-service channel.
"""

from __future__ import annotations

import aiohttp
from redis.asyncio import Redis

from bot.channels.wechat.token import PlatformApiError, TokenClient
from bot.redis_keys import Keys

WINDOW_CLOSED = 45015  # the customer has not written for 48 hours
# WeChat's refusals are the shared client's errors (errcode and errmsg).
WeChatApiError = PlatformApiError


class WeChatClient(TokenClient):
    def __init__(
        self,
        session: aiohttp.ClientSession,
        redis: Redis,
        keys: Keys,
        base: str,
        appid: str,
        secret: str,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(
            session,
            redis,
            keys.wechat_token,
            keys.wechat_token_lock,
            base,
            "/cgi-bin/token",
            {"grant_type": "client_credential", "appid": appid, "secret": secret},
            timeout,
        )

    async def send_text(self, openid: str, text: str) -> None:
        """Send `text` to the customer; WeChatApiError if WeChat refuses (45015: window closed)."""
        payload = {"touser": openid, "msgtype": "text", "text": {"content": text}}
        await self.post("/cgi-bin/message/custom/send", payload)
