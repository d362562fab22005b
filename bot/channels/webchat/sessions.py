"""Web chat sessions, issued by the server in a signed HttpOnly cookie.

A browser's first visit gets a session: 192 random bits, signed with HMAC-SHA256
by the server's secret (``BOT_WEBCHAT_SECRET``, or one generated once and shared
by every process through Redis). The session names the conversation
(``webchat:<session>``) and is the only key to its history and its live
replies. A client cannot pick its own: an unsigned or altered value is ignored
and a new session issued. The cookie is HttpOnly (page scripts never see it)
and SameSite=Lax (other sites' pages cannot send messages or open the socket
with it); it never travels in a URL, so access logs do not hold it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from aiohttp import web
from redis.asyncio import Redis

from bot.redis_keys import Keys

COOKIE = "kefu_chat"
# Half a year: a returning customer finds the conversation again.
MAX_AGE = 180 * 86400


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class WebchatSessions:
    def __init__(self, redis: Redis, keys: Keys, configured_secret: str | None) -> None:
        self._redis = redis
        self._keys = keys
        self._secret = configured_secret.encode() if configured_secret else None

    async def _key(self) -> bytes:
        if self._secret is None:
            await self._redis.set(self._keys.webchat_secret, secrets.token_urlsafe(32), nx=True)
            shared = await self._redis.get(self._keys.webchat_secret)
            if not shared:
                raise RuntimeError("could not read the shared web chat secret from Redis")
            self._secret = str(shared).encode()
        return self._secret

    async def _sign(self, session: str) -> str:
        return _b64(hmac.new(await self._key(), session.encode(), hashlib.sha256).digest())

    async def issue(self) -> tuple[str, str]:
        """(session, cookie value) for a new visitor."""
        session = _b64(secrets.token_bytes(24))
        return session, f"{session}.{await self._sign(session)}"

    async def verify(self, cookie: str | None) -> str | None:
        """The session a cookie carries, or None if it is missing or not ours."""
        if not cookie or cookie.count(".") != 1 or len(cookie) > 200:
            return None
        session, signature = cookie.split(".")
        if not session or not hmac.compare_digest(signature, await self._sign(session)):
            return None
        return session

    async def of(self, request: web.Request) -> str | None:
        return await self.verify(request.cookies.get(COOKIE))


def set_cookie(request: web.Request, response: web.StreamResponse, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=MAX_AGE,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=request.secure,
    )
