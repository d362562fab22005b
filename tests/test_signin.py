"""Sign-in that cannot stall customers and cannot be turned against the admin.

Real Redis, real HTTP. Addresses are told apart by X-Forwarded-For from a
trusted proxy (the test client connects from 127.0.0.1, listed as one).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from redis.asyncio import Redis

from bot.accounts.sessions import COOKIE, CSRF_HEADER, MAX_FAILURES
from bot.accounts.store import AccountError, Accounts
from bot.app import create_app
from bot.app_keys import ACCOUNTS
from bot.redis_keys import Keys
from bot.settings import Rate
from tests.conftest import ROOT, free_port

PASSWORD = "correct horse battery"
WRONG = "wrong wrong wrong"


@pytest.fixture
async def proxied(aiohttp_client, settings, engine):  # type: ignore[no-untyped-def]
    """The bot behind a trusted proxy at 127.0.0.1, with an agent and an admin."""

    async def make(**changes: object):  # type: ignore[no-untyped-def]
        own = settings.with_(trusted_proxies=("127.0.0.1", "::1"), port=free_port(), **changes)
        client = await aiohttp_client(create_app(own, engine), server_kwargs={"port": own.port})
        await client.app[ACCOUNTS].add("agent1", PASSWORD, "agent")
        await client.app[ACCOUNTS].add("boss", PASSWORD, "admin")
        return client

    return make


async def sign_in(client, username, password=PASSWORD, address="203.0.113.7"):  # type: ignore[no-untyped-def]
    return await client.post(
        "/console/api/login",
        json={"username": username, "password": password},
        headers={"X-Forwarded-For": address},
    )


async def test_concurrent_wrong_passwords_get_exactly_the_allowed_checks(proxied):
    client = await proxied()
    responses = await asyncio.gather(*(sign_in(client, "agent1", WRONG) for _ in range(20)))
    statuses = sorted(r.status for r in responses)
    # Counted and decided in one step: no attempt slips past the count.
    assert statuses.count(401) == MAX_FAILURES
    assert statuses.count(429) == 20 - MAX_FAILURES
    refused = next(r for r in responses if r.status == 429)
    assert (await refused.json())["error"] == "too_many_attempts"
    assert int(refused.headers["Retry-After"]) >= 1


async def test_usernames_are_one_account_whatever_the_case_and_spaces(proxied):
    client = await proxied()
    assert (await sign_in(client, "  AGENT1 ")).status == 200
    for _ in range(MAX_FAILURES):
        assert (await sign_in(client, "Agent1", WRONG)).status == 401
    # The same person from the same address: paused, whatever the spelling.
    assert (await sign_in(client, "agent1")).status == 429


async def test_failures_for_the_admin_from_one_address_do_not_lock_the_admin_out(proxied):
    client = await proxied()
    for _ in range(MAX_FAILURES + 3):
        await sign_in(client, "BOSS", WRONG, address="198.51.100.66")
    assert (await sign_in(client, "boss", address="198.51.100.66")).status == 429
    # The admin, from their own address, signs in at once.
    assert (await sign_in(client, "boss", address="203.0.113.10")).status == 200


async def test_failures_for_made_up_users_do_not_block_real_ones_from_that_address(proxied):
    client = await proxied()
    for i in range(MAX_FAILURES + 2):
        assert (await sign_in(client, f"ghost{i}", WRONG)).status == 401
    assert (await sign_in(client, "agent1")).status == 200


async def test_spraying_many_usernames_from_one_address_hits_the_address_ceiling(proxied):
    client = await proxied(login_address_rate=Rate(4, 600.0))
    statuses = [(await sign_in(client, f"ghost{i}", WRONG)).status for i in range(6)]
    assert statuses == [401, 401, 401, 401, 429, 429]
    # Another address is not affected.
    assert (await sign_in(client, "agent1", address="203.0.113.99")).status == 200


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(client):
    await client.app[ACCOUNTS].add("agent1", PASSWORD, "agent")
    for i in range(MAX_FAILURES):
        # Rotating made-up addresses does not escape the throttle without a trusted proxy.
        resp = await sign_in(client, "agent1", WRONG, address=f"192.0.2.{i}")
        assert resp.status == 401
    assert (await sign_in(client, "agent1", address="192.0.2.200")).status == 429


async def test_a_client_cannot_forge_its_address_through_a_trusted_proxy(proxied):
    client = await proxied()
    for i in range(MAX_FAILURES):
        # The proxy appends the real address; what the client put first is ignored.
        await sign_in(client, "agent1", WRONG, address=f"10.9.9.{i}, 198.51.100.5")
    assert (await sign_in(client, "agent1", address="10.9.9.77, 198.51.100.5")).status == 429


async def test_a_bcrypt_check_does_not_stall_other_requests(aiohttp_client, settings, engine):
    # Cost 14: about a second of CPU per check, on purpose.
    own = settings.with_(bcrypt_rounds=14)
    client = await aiohttp_client(create_app(own, engine), server_kwargs={"port": own.port})
    finished: list[str] = []

    async def login() -> None:
        await client.post("/console/api/login", json={"username": "ghost", "password": WRONG})
        finished.append("login")

    async def probe() -> None:
        await asyncio.sleep(0.05)  # the check has started
        for _ in range(5):
            assert (await client.get("/healthz")).status == 200
        finished.append("probe")

    await asyncio.gather(login(), probe())
    # The event loop kept serving while bcrypt ran in its thread.
    assert finished == ["probe", "login"]


async def test_sign_in_takes_json_only(proxied):
    client = await proxied()
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        resp = await client.post(
            "/console/api/login",
            data=f'{{"username": "agent1", "password": "{PASSWORD}"}}',
            headers={"Content-Type": content_type},
        )
        assert resp.status == 415
        assert (await resp.json())["error"] == "unsupported_media_type"


async def test_cookie_is_secure_over_https_through_a_trusted_proxy_only(proxied, client):
    behind = await proxied()
    https = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    body = {"username": "agent1", "password": PASSWORD}
    resp = await behind.post("/console/api/login", json=body, headers=https)
    assert resp.status == 200 and "Secure" in resp.headers["Set-Cookie"]
    plain = await behind.post("/console/api/login", json=body)
    assert plain.status == 200 and "Secure" not in plain.headers["Set-Cookie"]
    # Not a trusted proxy: its word about https is not taken.
    direct = await client.post("/console/api/login", json=body, headers=https)
    assert direct.status == 200 and "Secure" not in direct.headers["Set-Cookie"]


async def test_a_password_change_ends_the_accounts_sessions(proxied):
    client = await proxied()
    resp = await sign_in(client, "agent1")
    assert resp.status == 200
    assert (await client.get("/console/api/me")).status == 200
    await client.app[ACCOUNTS].set_password("agent1", "a brand new password")
    assert (await client.get("/console/api/me")).status == 401
    assert (await sign_in(client, "agent1", "a brand new password")).status == 200


def users(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "users", *args],
        input=stdin, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )  # fmt: skip


async def test_users_disable_enable_and_delete_end_sessions(proxied, redis_url, key_prefix):
    client = await proxied()
    env = {**os.environ, "REDIS_URL": redis_url, "BOT_KEY_PREFIX": key_prefix}
    assert (await sign_in(client, "agent1")).status == 200
    disabled = await asyncio.to_thread(users, env, "disable", "AGENT1")
    assert disabled.returncode == 0, disabled.stderr
    assert (await client.get("/console/api/me")).status == 401
    assert (await sign_in(client, "agent1", address="203.0.113.8")).status == 401
    assert "agent1\tagent\tdisabled" in (await asyncio.to_thread(users, env, "list")).stdout
    assert (await asyncio.to_thread(users, env, "enable", "agent1")).returncode == 0
    assert (await sign_in(client, "agent1", address="203.0.113.9")).status == 200
    deleted = await asyncio.to_thread(users, env, "delete", "agent1")
    assert deleted.returncode == 0, deleted.stderr
    assert (await client.get("/console/api/me")).status == 401
    assert "agent1" not in (await asyncio.to_thread(users, env, "list")).stdout
    # The last active admin stays: there is always someone who can sign in.
    await client.app[ACCOUNTS].delete("admin")
    last = await asyncio.to_thread(users, env, "delete", "boss")
    assert last.returncode == 2 and "last admin" in last.stderr
    with pytest.raises(AccountError):
        await client.app[ACCOUNTS].disable("boss")


async def test_a_non_utf8_csrf_header_or_cookie_is_refused_not_a_500(proxied):
    client = await proxied()
    resp = await sign_in(client, "agent1")
    token = resp.cookies[COOKIE].value
    port = client.server.port

    async def raw(method: bytes, path: bytes, headers: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            method + b" " + path + b" HTTP/1.1\r\nHost: x\r\n" + headers
            + b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        )  # fmt: skip
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        return answer

    cookie = f"Cookie: {COOKIE}={token}\r\n".encode()
    forged = await raw(
        b"POST", b"/console/api/logout", cookie + CSRF_HEADER.encode() + b": \xff\xfe\r\n"
    )
    assert forged.startswith(b"HTTP/1.1 403"), forged[:100]
    garbled = await raw(b"GET", b"/console/api/me", f"Cookie: {COOKIE}=".encode() + b"\xff\xfe\r\n")
    assert garbled.startswith(b"HTTP/1.1 401"), garbled[:100]


async def test_accounts_from_before_case_folding_are_folded_at_start(redis_url, key_prefix):
    redis = Redis.from_url(redis_url, decode_responses=True)
    accounts = Accounts(redis, Keys(key_prefix), rounds=4)
    await accounts.add("wang", PASSWORD, "agent")
    record = await redis.hget(Keys(key_prefix).accounts, "wang")
    await redis.hdel(Keys(key_prefix).accounts, "wang")
    await redis.hset(Keys(key_prefix).accounts, "XiaoWang", record)
    assert await accounts.ensure_admin() is None
    assert await accounts.verify("xiaowang", PASSWORD) is not None
    await redis.close()
