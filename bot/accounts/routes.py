"""Sign-in for the console and the review screens: `/console/api/login|logout|me`."""

from __future__ import annotations

import asyncio

from aiohttp import web

from bot.accounts.sessions import COOKIE, CSRF_HEADER, SESSION_TTL, Session
from bot.accounts.store import SignInBusy, normalise_username
from bot.app_keys import ACCOUNTS, LOGIN_THROTTLE, SESSIONS
from bot.channels.inbound import read_json_object
from bot.errors import ApiError
from bot.jsonutil import json_response

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def require(request: web.Request, *roles: str) -> Session:
    """The signed-in session, with one of `roles` (any role if none given).

    Refuses (401) without a valid session, (403) with another role, and (403)
    a state-changing request without the session's CSRF token.
    """
    session = await request.app[SESSIONS].get(request.cookies.get(COOKIE))
    if session is None:
        raise ApiError(401, "not_signed_in", "Sign in first.")
    if roles and session.role not in roles:
        raise ApiError(403, "forbidden", f"This needs the role {' or '.join(roles)}.")
    if request.method not in SAFE_METHODS and not session.csrf_ok(request.headers.get(CSRF_HEADER)):
        raise ApiError(403, "csrf_token_missing", f"Send the {CSRF_HEADER} header of this session.")
    return session


# Longest username looked at; longer ones cannot exist and are not hashed or stored.
MAX_USERNAME = 64
# A refused sign-in is answered after this pause: it costs us nothing (no CPU,
# one idle connection) and turns a guessing loop's refusals from hundreds a
# second into a trickle. No honest user is refused often enough to notice.
REFUSAL_PAUSE = 0.5


async def login(request: web.Request) -> web.Response:
    """Sign in with JSON `{username, password}`.

    JSON only (415 otherwise): a form on another site can post
    ``text/plain`` or form data cross-site without a preflight, never
    ``application/json``, so no other site can sign a browser in.
    """
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "Sign in with application/json.")
    body = await read_json_object(request)
    username, password = body.get("username"), body.get("password")
    if (
        not isinstance(username, str)
        or not isinstance(password, str)
        or not username.strip()
        or not password
    ):
        raise ApiError(400, "missing_credentials", "Send `username` and `password`.")
    username = normalise_username(username)[:MAX_USERNAME]
    address = request.remote or "unknown"
    throttle = request.app[LOGIN_THROTTLE]
    wait = await throttle.attempt(address, username)
    if wait:
        await asyncio.sleep(REFUSAL_PAUSE)
        raise ApiError(
            429,
            "too_many_attempts",
            f"Too many failed sign-ins; try again in {wait} s.",
            headers={"Retry-After": str(wait)},
        )
    try:
        account = await request.app[ACCOUNTS].verify(username, password)
    except SignInBusy:
        # Every password check is taken (a guessing botnet): shed, do not queue.
        await asyncio.sleep(REFUSAL_PAUSE)
        raise ApiError(
            429,
            "sign_in_busy",
            "Too many sign-ins at once; try again in a few seconds.",
            headers={"Retry-After": "5"},
        ) from None
    if account is None:
        raise ApiError(401, "wrong_credentials", "Wrong username or password.")
    await throttle.succeeded(address, username)
    token, session = await request.app[SESSIONS].create(account)
    response = json_response(
        {"username": session.username, "role": session.role, "csrf": session.csrf}
    )
    response.set_cookie(
        COOKIE,
        token,
        max_age=SESSION_TTL,
        httponly=True,
        samesite="Strict",
        # True over HTTPS, also when a trusted proxy says so (bot/security/proxy.py).
        secure=request.secure,
        path="/",
    )
    return response


async def logout(request: web.Request) -> web.Response:
    await require(request)
    await request.app[SESSIONS].delete(request.cookies[COOKIE])
    response = json_response({"status": "signed_out"})
    response.del_cookie(COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    return json_response(_describe(await require(request)))


def _describe(session: Session) -> dict[str, str]:
    return {"username": session.username, "role": session.role, "csrf": session.csrf}


def setup(app: web.Application) -> None:
    app.router.add_post("/console/api/login", login)
    app.router.add_post("/console/api/logout", logout)
    app.router.add_get("/console/api/me", me)
