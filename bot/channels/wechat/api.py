"""WeChat's customer-service message API: one access_token for every process.

The token is cached in Redis, shared by every bot process, and expires there
five minutes before WeChat's copy does, so it is renewed before it fails. One
process at a time renews it (a Redis lock; the others wait for its result).
A call refused with 40001 / 42001 (token invalid or expired) renews the token
and is retried once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

import aiohttp
from redis.asyncio import Redis

from bot.redis_keys import Keys

logger = logging.getLogger(__name__)

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
WINDOW_CLOSED = 45015  # the customer has not written for 48 hours
EARLY_RENEWAL = 300  # seconds before WeChat's expiry the cached token is dropped
LOCK_MS = 10_000
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class WeChatApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"WeChat API error {code}: {message}")
        self.code = code
        self.message = message


class WeChatClient:
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
        self._session = session
        self._redis = redis
        self._keys = keys
        self._base = base.rstrip("/")
        self._appid = appid
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._release = redis.register_script(_RELEASE)

    async def token(self) -> str:
        cached = await self._redis.get(self._keys.wechat_token)
        return cached if cached else await self._renew(stale=None)

    async def _renew(self, stale: str | None) -> str:
        """A token other than `stale`: fetched by this process, or by whoever holds the lock."""
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + LOCK_MS / 1000
        while True:
            current = await self._redis.get(self._keys.wechat_token)
            if current and current != stale:
                return current
            if await self._redis.set(self._keys.wechat_token_lock, owner, nx=True, px=LOCK_MS):
                try:
                    current = await self._redis.get(self._keys.wechat_token)
                    if current and current != stale:
                        return current
                    return await self._fetch_token()
                finally:
                    await self._release(keys=[self._keys.wechat_token_lock], args=[owner])
            if time.monotonic() > deadline:
                raise WeChatApiError(-1, "timed out waiting for another process to renew the token")
            await asyncio.sleep(0.05)

    async def _fetch_token(self) -> str:
        params = {"grant_type": "client_credential", "appid": self._appid, "secret": self._secret}
        body = await self._call("GET", "/cgi-bin/token", params=params)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise WeChatApiError(int(body.get("errcode", -1)), str(body.get("errmsg", "no token")))
        expires_in = int(body.get("expires_in", 7200))
        await self._redis.set(
            self._keys.wechat_token, token, ex=max(expires_in - EARLY_RENEWAL, 30)
        )
        logger.info("renewed the WeChat access_token (valid %d s)", expires_in)
        return token

    async def send_text(self, openid: str, text: str) -> None:
        """Send `text` to the customer; WeChatApiError if WeChat refuses (45015: window closed)."""
        payload = {"touser": openid, "msgtype": "text", "text": {"content": text}}
        token = await self.token()
        for attempt in (1, 2):
            body = await self._call(
                "POST", "/cgi-bin/message/custom/send", {"access_token": token}, payload
            )
            code = int(body.get("errcode", 0) or 0)
            if code == 0:
                return
            if code in TOKEN_ERRORS and attempt == 1:
                logger.info("WeChat refused the access_token (%d); renewing it", code)
                token = await self._renew(stale=token)
                continue
            raise WeChatApiError(code, str(body.get("errmsg", "")))

    async def _call(
        self, method: str, path: str, params: dict[str, str], payload: Any = None
    ) -> dict[str, Any]:
        data = None if payload is None else _dumps(payload)
        headers = {"Content-Type": "application/json; charset=utf-8"} if data else {}
        try:
            async with self._session.request(
                method,
                self._base + path,
                params=params,
                data=data,
                headers=headers,
                timeout=self._timeout,
            ) as resp:
                if resp.status != 200:
                    raise WeChatApiError(-1, f"HTTP {resp.status} from {path}")
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise WeChatApiError(-1, f"{path}: {exc!r}") from exc
        if not isinstance(body, dict):
            raise WeChatApiError(-1, f"{path}: not a JSON object")
        return body


def _dumps(payload: Any) -> bytes:
    # Chinese as UTF-8, not \u escapes, which some WeChat APIs show literally.
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")
