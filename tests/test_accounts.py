"""Accounts, sign-in, sessions, CSRF and throttling, over real HTTP and Redis."""

from __future__ import annotations

import subprocess

import pytest
from redis.asyncio import Redis

from bot.accounts.sessions import COOKIE, CSRF_HEADER, MAX_FAILURES
from bot.accounts.store import AccountError, Accounts
from bot.app import create_app
from bot.app_keys import ACCOUNTS
from bot.redis_keys import Keys
from tests.helpers import users_cli

PASSWORD = "correct horse battery"


@pytest.fixture
async def signed(client):  # type: ignore[no-untyped-def]
    await client.app[ACCOUNTS].add("agent1", PASSWORD, "agent")
    return client


async def sign_in(client, username="agent1", password=PASSWORD):  # type: ignore[no-untyped-def]
    return await client.post(
        "/console/api/login", json={"username": username, "password": password}
    )


async def test_passwords_are_stored_hashed(redis_url, key_prefix):
    redis = Redis.from_url(redis_url, decode_responses=True)
    accounts = Accounts(redis, Keys(key_prefix))
    await accounts.add("zhang", PASSWORD, "trainer")
    raw = await redis.hget(Keys(key_prefix).accounts, "zhang")
    assert PASSWORD not in raw and "$2b$" in raw
    assert (await accounts.verify("zhang", PASSWORD)).role == "trainer"
    assert await accounts.verify("zhang", "wrong password") is None
    assert await accounts.verify("nobody", PASSWORD) is None
    for bad in [
        ("x", PASSWORD, "agent"),
        ("li", "short", "agent"),
        ("li", PASSWORD, "root"),
        ("li", "长" * 30, "agent"),
    ]:
        with pytest.raises(AccountError):
            await accounts.add(*bad)
    with pytest.raises(AccountError):
        await accounts.add("zhang", PASSWORD, "agent")  # exists
    await redis.close()


async def test_first_start_creates_admin_with_a_random_password_once(redis_url, key_prefix):
    redis = Redis.from_url(redis_url, decode_responses=True)
    accounts = Accounts(redis, Keys(key_prefix))
    first = await accounts.ensure_admin()
    assert first and len(first) >= 12
    assert (await accounts.verify("admin", first)).role == "admin"
    assert await accounts.ensure_admin() is None  # never again, never a default
    await redis.close()


async def test_sign_in_sets_a_strict_httponly_cookie_and_returns_a_csrf_token(signed):
    resp = await sign_in(signed)
    assert resp.status == 200
    body = await resp.json()
    assert body["username"] == "agent1" and body["role"] == "agent" and body["csrf"]
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    me = await signed.get("/console/api/me")
    assert (await me.json())["username"] == "agent1"


async def test_wrong_password_is_refused_without_saying_which_part_was_wrong(signed):
    for username, password in (("agent1", "nope nope"), ("ghost", PASSWORD)):
        resp = await sign_in(signed, username, password)
        assert resp.status == 401
        assert (await resp.json())["error"] == "wrong_credentials"
    assert (await signed.get("/console/api/me")).status == 401


async def test_repeated_failures_are_throttled(signed):
    for _ in range(MAX_FAILURES):
        assert (await sign_in(signed, password="wrong wrong")).status == 401
    resp = await sign_in(signed)  # even the right password waits now
    assert resp.status == 429
    assert (await resp.json())["error"] == "too_many_attempts"


async def test_state_changes_need_the_csrf_token(signed):
    csrf = (await (await sign_in(signed)).json())["csrf"]
    refused = await signed.post("/console/api/logout")
    assert refused.status == 403 and (await refused.json())["error"] == "csrf_token_missing"
    assert (await signed.post("/console/api/logout", headers={CSRF_HEADER: "forged"})).status == 403
    done = await signed.post("/console/api/logout", headers={CSRF_HEADER: csrf})
    assert done.status == 200
    assert (await signed.get("/console/api/me")).status == 401


async def test_a_made_up_cookie_opens_nothing(signed):
    signed.session.cookie_jar.update_cookies({COOKIE: "made-up-token"})
    assert (await signed.get("/console/api/me")).status == 401


def test_users_command_line(redis_url, key_prefix):
    def users(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return users_cli(redis_url, key_prefix, *args, stdin=stdin)

    assert (
        users(
            "add", "wang", "--role", "trainer", "--password-stdin", stdin=PASSWORD + "\n"
        ).returncode
        == 0
    )
    assert "wang\ttrainer" in users("list").stdout
    assert users("passwd", "wang", "--password-stdin", stdin="another long one\n").returncode == 0
    failed = users("add", "wang", "--password-stdin", stdin=PASSWORD + "\n")
    assert failed.returncode == 2 and "exists" in failed.stderr


async def test_app_start_prints_the_first_admin_password(aiohttp_client, settings, engine, capsys):
    await aiohttp_client(create_app(settings, engine), server_kwargs={"port": settings.port})
    out = capsys.readouterr().out
    assert "created account 'admin' with password" in out
