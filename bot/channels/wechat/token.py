"""An access token shared by every bot process, for Tencent's APIs (WeChat and WeCom).

The Official Account (``/cgi-bin/token``, AppID + secret) and WeCom
(``/cgi-bin/gettoken``, corp id + secret) hand out a token that lasts about two
hours and is invalidated when another one is fetched too often. So it is
cached in Redis, shared by every bot process, and expires there five minutes
before the platform's copy does. One process at a time renews it (a Redis
lock; the others wait for its result). A call refused with 40001 / 40014 /
42001 (token invalid or expired) renews the token and is retried once.
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

logger = logging.getLogger(__name__)

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
RATE_LIMITED = 45009  # the API's call frequency limit
EARLY_RENEWAL = 300  # seconds before the platform's expiry the cached token is dropped
LOCK_MS = 10_000
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class PlatformApiError(Exception):
    """The platform refused a call (its `errcode`), or could not be reached (-1)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"API error {code}: {message}")
        self.code = code
        self.message = message


class TokenClient:
    """Calls to one platform API with a shared access token.

    `token_path` and `token_params` say how the platform issues the token;
    `token_key` and `lock_key` are the Redis keys it is shared under.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        redis: Redis,
        token_key: str,
        lock_key: str,
        base: str,
        token_path: str,
        token_params: dict[str, str],
        timeout: float = 5.0,
    ) -> None:
        self._session = session
        self._redis = redis
        self._token_key = token_key
        self._lock_key = lock_key
        self._base = base.rstrip("/")
        self._token_path = token_path
        self._token_params = token_params
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._release = redis.register_script(_RELEASE)

    async def token(self) -> str:
        cached = await self._redis.get(self._token_key)
        return cached if cached else await self._renew(stale=None)

    async def _renew(self, stale: str | None) -> str:
        """A token other than `stale`: fetched by this process, or by whoever holds the lock."""
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + LOCK_MS / 1000
        while True:
            current = await self._redis.get(self._token_key)
            if current and current != stale:
                return current
            if await self._redis.set(self._lock_key, owner, nx=True, px=LOCK_MS):
                try:
                    current = await self._redis.get(self._token_key)
                    if current and current != stale:
                        return current
                    return await self._fetch_token()
                finally:
                    await self._release(keys=[self._lock_key], args=[owner])
            if time.monotonic() > deadline:
                raise PlatformApiError(
                    -1, "timed out waiting for another process to renew the token"
                )
            await asyncio.sleep(0.05)

    async def _fetch_token(self) -> str:
        body = await self._call("GET", self._token_path, params=self._token_params)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise PlatformApiError(
                int(body.get("errcode", -1)), str(body.get("errmsg", "no token"))
            )
        expires_in = int(body.get("expires_in", 7200))
        await self._redis.set(self._token_key, token, ex=max(expires_in - EARLY_RENEWAL, 30))
        logger.info("renewed the access_token of %s (valid %d s)", self._base, expires_in)
        return token

    async def post(self, path: str, payload: Any) -> dict[str, Any]:
        """POST `payload` with the token; the body, or PlatformApiError for a non-zero errcode."""
        token = await self.token()
        for attempt in (1, 2):
            body = await self._call("POST", path, {"access_token": token}, payload)
            code = int(body.get("errcode", 0) or 0)
            if code == 0:
                return body
            if code in TOKEN_ERRORS and attempt == 1:
                logger.info("the platform refused the access_token (%d); renewing it", code)
                token = await self._renew(stale=token)
                continue
            raise PlatformApiError(code, str(body.get("errmsg", "")))
        raise AssertionError("unreachable")  # pragma: no cover

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
                    raise PlatformApiError(-1, f"HTTP {resp.status} from {path}")
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise PlatformApiError(-1, f"{path}: {exc!r}") from exc
        if not isinstance(body, dict):
            raise PlatformApiError(-1, f"{path}: not a JSON object")
        return body


def _dumps(payload: Any) -> bytes:
    # Chinese as UTF-8, not \u escapes, which some of these APIs show literally.
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")
