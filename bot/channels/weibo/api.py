"""Weibo's customer-service message API (发送客服消息, ``2/messages/reply.json``).

Documented at https://open.weibo.com/wiki/Send_Customer_Service_Message: a
form POST (``application/x-www-form-urlencoded``) with ``access_token``,
``receiver_id``, ``type=text`` and ``data``, the JSON ``{"text": …}`` URL-encoded
(the form encoding does that). A text must stay under 300 Chinese characters.

The access token is the one the fan-service platform issues to the account
(valid for a year, WEIBO_ACCESS_TOKEN): it cannot be renewed from here, so an
expired or invalid token is reported to agents and in the log, not retried.
A rate-limited call is retried once after a pause. Errors come back as
``{"request": …, "error_code": …, "error": …}``
(https://open.weibo.com/wiki/Error_code).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp

logger = logging.getLogger(__name__)

# 21301 auth failed, 21314–21319 token used, expired, revoked, rejected; 21327
# expired_token; 21332 invalid_access_token.
TOKEN_ERRORS = frozenset({21301, 21314, 21315, 21316, 21317, 21319, 21327, 21332})
# IP, user, and user-per-API request limits.
RATE_LIMITED = frozenset({10022, 10023, 10024})
MAX_TEXT_CHARS = 300  # "文本大小必须小于300个汉字"
RATE_LIMIT_PAUSE = 1.0


class WeiboApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"Weibo API error {code}: {message}")
        self.code = code
        self.message = message

    @property
    def token_refused(self) -> bool:
        return self.code in TOKEN_ERRORS

    @property
    def rate_limited(self) -> bool:
        return self.code in RATE_LIMITED


def pieces(text: str, size: int = MAX_TEXT_CHARS - 1) -> list[str]:
    """`text` cut into messages Weibo accepts (under 300 characters each)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class WeiboClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base: str,
        access_token: str,
        timeout: float = 5.0,
        rate_limit_pause: float = RATE_LIMIT_PAUSE,
    ) -> None:
        self._session = session
        self._base = base.rstrip("/")
        self._token = access_token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._pause = rate_limit_pause

    async def send_text(self, uid: str, text: str) -> None:
        """Send `text` (in pieces if long) to the follower `uid`; WeiboApiError if refused."""
        for piece in pieces(text):
            await self._reply(uid, piece)

    async def _reply(self, uid: str, text: str) -> None:
        form = {
            "receiver_id": uid,
            "type": "text",
            "data": json.dumps({"text": text}, ensure_ascii=False),
        }
        for attempt in (1, 2):
            try:
                await self._call("/2/messages/reply.json", form)
                return
            except WeiboApiError as exc:
                if exc.rate_limited and attempt == 1:
                    logger.info("Weibo rate-limited a reply (%d); retrying once", exc.code)
                    await asyncio.sleep(self._pause)
                    continue
                raise

    async def _call(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        try:
            async with self._session.post(
                self._base + path,
                params={"access_token": self._token},
                data=form,
                timeout=self._timeout,
            ) as resp:
                status = resp.status
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise WeiboApiError(-1, f"{path}: {exc!r}") from exc
        if not isinstance(body, dict):
            raise WeiboApiError(-1, f"{path}: HTTP {status}, not a JSON object")
        if "error_code" in body:
            try:
                code = int(body["error_code"])
            except (TypeError, ValueError):
                code = -1
            raise WeiboApiError(code, str(body.get("error", "")))
        if status != 200:
            raise WeiboApiError(-1, f"HTTP {status} from {path}")
        return body
