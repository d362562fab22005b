"""Several bot processes sharing one Redis and one conversation.

Proves the lock store across processes: every message is answered, in order,
none is lost from Rasa's tracker, and none waits for a dead holder longer than
the lock lifetime. And the handoff: an agent signed in to one process works a
conversation whose messages arrive at the others.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import redis as redis_sync
from redis.asyncio import Redis

from bot.accounts.store import Accounts
from bot.engine.lock_store import RedisTicketLockStore
from bot.redis_keys import Keys
from tests.conftest import ADMIN_TOKEN, ROOT, free_port
from tests.helpers import PASSWORD, Visitor

pytestmark = pytest.mark.slow

PROCESSES = 3
LOCK_LIFETIME = 2.0


@pytest.fixture(scope="module")
def cluster(redis_url: str, model_path: Path, tmp_path_factory) -> Iterator[dict]:  # type: ignore[no-untyped-def]
    prefix = "kefump" + uuid.uuid4().hex[:10]
    logs = tmp_path_factory.mktemp("bots")
    procs, ports = [], []
    for i in range(PROCESSES):
        port = free_port()
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "BOT_HOST": "127.0.0.1",
            "BOT_PORT": str(port),
            "BOT_KEY_PREFIX": prefix,
            "BOT_MODEL_DIR": str(model_path.parent),
            "BOT_ADMIN_TOKEN": ADMIN_TOKEN,
            "BOT_LOCK_LIFETIME": str(LOCK_LIFETIME),
        }
        out = open(logs / f"bot{i}.log", "wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "bot", "serve"], cwd=ROOT, env=env, stdout=out, stderr=out
            )
        )
        ports.append(port)
    try:
        _wait_ready(ports, procs, logs)
        yield {"ports": ports, "prefix": prefix}
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        client = redis_sync.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)


def _wait_ready(ports: list[int], procs: list[subprocess.Popen], logs: Path) -> None:  # type: ignore[type-arg]
    import urllib.request

    deadline = time.monotonic() + 240
    pending = set(ports)
    while pending and time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                text = "\n".join(p.read_text(errors="replace")[-2000:] for p in logs.glob("*.log"))
                raise RuntimeError(f"a bot process exited early:\n{text}")
        for port in list(pending):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        pending.discard(port)
            except OSError:
                pass
        time.sleep(0.5)
    if pending:
        raise RuntimeError(f"bot processes on {sorted(pending)} never became ready")


async def _send(
    session: aiohttp.ClientSession, port: int, sender: str, text: str
) -> tuple[int, list]:
    async with session.post(
        f"http://127.0.0.1:{port}/webhooks/rest/webhook", json={"sender": sender, "message": text}
    ) as resp:
        return resp.status, await resp.json()


def _tracker_turns(redis_url: str, prefix: str, sender: str) -> list[tuple[str, list[str]]]:
    """(user text, bot texts that followed it) in the order Rasa recorded them."""
    raw = redis_sync.Redis.from_url(redis_url, decode_responses=True).get(
        Keys(prefix).tracker(f"rest:{sender}")
    )
    assert raw, "no tracker stored"
    turns: list[tuple[str, list[str]]] = []
    for event in json.loads(raw)["events"]:
        if event["event"] == "user":
            turns.append((event["text"], []))
        elif event["event"] == "bot":
            assert turns, "a bot message before any user message"
            turns[-1][1].append(event["text"])
    return turns


TEXTS = ["你好", "谢谢", "我的快递到哪了", "在吗", "多谢啦", "查一下我的订单"]
BURST = ["你好", "谢谢", "你是机器人吗", "满多少包邮", "你们几点上班", "好的"]


async def test_queued_messages_are_answered_in_arrival_order(cluster, redis_url):
    ports, prefix, sender = cluster["ports"], cluster["prefix"], "order-" + uuid.uuid4().hex[:6]
    redis = Redis.from_url(redis_url, decode_responses=True)
    locks = RedisTicketLockStore(redis, Keys(prefix), lifetime=LOCK_LIFETIME)
    async with aiohttp.ClientSession() as session:
        async with locks.lock(f"rest:{sender}"):
            # While the test holds the conversation, messages arrive one after
            # another at different processes and queue up behind it.
            tasks = []
            for i, text in enumerate(TEXTS):
                tasks.append(
                    asyncio.create_task(_send(session, ports[i % PROCESSES], sender, text))
                )
                await asyncio.sleep(0.3)
            assert not any(t.done() for t in tasks), "a message went past a held lock"
        results = await asyncio.wait_for(asyncio.gather(*tasks), 60)
    await redis.close()
    assert [status for status, _ in results] == [200] * len(TEXTS)
    assert all(body and body[0]["text"] for _, body in results)
    turns = _tracker_turns(redis_url, prefix, sender)
    assert [user for user, _ in turns] == TEXTS
    assert all(len(bot) >= 1 for _, bot in turns)


async def test_burst_from_all_processes_loses_nothing(cluster, redis_url):
    ports, prefix, sender = cluster["ports"], cluster["prefix"], "burst-" + uuid.uuid4().hex[:6]
    # No order questions: answers that are not order numbers would hand the
    # conversation to a person, and messages queued behind that turn are then
    # (rightly) kept from the bot.
    texts = [f"{BURST[i % len(BURST)]}{'啊' * (i // len(BURST))}" for i in range(15)]
    async with aiohttp.ClientSession() as session:
        results = await asyncio.wait_for(
            asyncio.gather(
                *(_send(session, ports[i % PROCESSES], sender, t) for i, t in enumerate(texts))
            ),
            90,
        )
    assert [status for status, _ in results] == [200] * len(texts)
    turns = _tracker_turns(redis_url, prefix, sender)
    assert sorted(user for user, _ in turns) == sorted(texts)
    # Each message was handled whole before the next began: its reply follows it.
    replies = {
        user: [m["text"] for m in body] for user, (_, body) in zip(texts, results, strict=True)
    }
    for user, bot in turns:
        assert bot == replies[user], f"turn of {user!r} interleaved with another"


async def test_nobody_waits_for_a_dead_holder(cluster, redis_url):
    ports, prefix, sender = cluster["ports"], cluster["prefix"], "dead-" + uuid.uuid4().hex[:6]
    # A process that takes the conversation's lock and is killed while holding it.
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.lock_holder",
        redis_url,
        prefix,
        f"rest:{sender}",
        str(LOCK_LIFETIME),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert (await asyncio.wait_for(holder.stdout.readline(), 30)).strip() == b"held"
    holder.kill()
    await holder.wait()

    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        results = await asyncio.wait_for(
            asyncio.gather(
                *(_send(session, ports[i % PROCESSES], sender, t) for i, t in enumerate(BURST))
            ),
            60,
        )
    elapsed = time.monotonic() - started
    assert [status for status, _ in results] == [200] * len(BURST)
    assert elapsed < LOCK_LIFETIME + 8, f"waited {elapsed:.1f}s behind a dead holder"
    assert sorted(u for u, _ in _tracker_turns(redis_url, prefix, sender)) == sorted(BURST)


def _serve(redis_url: str, model_path: Path, port: int, **env: str) -> subprocess.Popen[bytes]:
    """One `python -m bot serve` on `port`, with its own key prefix and `env` on top."""
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"],
        cwd=ROOT,
        env={
            **os.environ,
            "REDIS_URL": redis_url,
            "BOT_PORT": str(port),
            "BOT_KEY_PREFIX": "kefuproc" + uuid.uuid4().hex[:8],
            "BOT_MODEL_DIR": str(model_path.parent),
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_workers_share_one_port_and_stop_together(redis_url, model_path):
    import urllib.request

    port = free_port()
    proc = _serve(redis_url, model_path, port, BOT_WORKERS="2")
    try:
        pids: set[int] = set()
        deadline = time.monotonic() + 180
        while len(pids) < 2 and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    pids.add(json.loads(r.read())["pid"])
            except OSError:
                time.sleep(0.2)
        assert len(pids) == 2, f"answers came from {pids}"
        assert proc.pid not in pids  # the parent only supervises
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def _next(ws: aiohttp.ClientWebSocketResponse, match, timeout: float = 10.0) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = await ws.receive_json(timeout=deadline - time.monotonic())
        if match(event):
            return event
    raise AssertionError("no matching event")


async def test_an_agent_on_one_process_works_a_web_chat_served_by_others(cluster, redis_url):
    ports, prefix = cluster["ports"], cluster["prefix"]
    redis = Redis.from_url(redis_url, decode_responses=True)
    await Accounts(redis, Keys(prefix), rounds=4).add("mp-agent", PASSWORD, "agent")
    await redis.close()
    url = "http://127.0.0.1:{}{}".format
    jar = aiohttp.CookieJar(unsafe=True)
    async with (
        aiohttp.ClientSession(cookie_jar=jar) as agent,
        Visitor(base=url(ports[0], "")) as customer,
    ):
        cid = await customer.open()
        login = await agent.post(
            url(ports[1], "/console/api/login"), json={"username": "mp-agent", "password": PASSWORD}
        )
        headers = {"X-CSRF-Token": (await login.json())["csrf"]}
        console = await agent.ws_connect(url(ports[1], "/console/ws"))
        chat = await customer.live()

        async def write(port: int, text: str) -> dict:
            resp = await customer.send(text, base=url(port, ""))
            assert resp.status == 200
            return await resp.json()

        assert (await write(ports[0], "我要转人工"))["state"] == "waiting"
        await _next(console, lambda e: e["type"] == "customer_message" and e["conversation"] == cid)
        base = url(ports[1], f"/console/api/conversations/{cid}")
        assert (await agent.post(f"{base}/claim", headers=headers)).status == 200
        await _next(chat, lambda e: e["from"] == "bot" and "接入" in e["text"])
        assert (await agent.post(f"{base}/reply", json={"text": "您好"}, headers=headers)).ok
        await _next(chat, lambda e: e["from"] == "agent" and e["text"] == "您好")
        # A third process gets the next message: silent there too, and the agent sees it.
        assert (await write(ports[2], "好的，在等"))["replies"] == []
        seen = await _next(
            console, lambda e: e["type"] == "customer_message" and e["text"] == "好的，在等"
        )
        assert seen["state"] == "assigned"
        assert (await agent.post(f"{base}/release", headers=headers)).status == 200
        assert (await write(ports[2], "你好"))["replies"]
        await console.close()
        await chat.close()


def test_a_bot_stops_within_seconds_of_sigterm_after_running_a_while(redis_url, model_path):
    """aiohttp 3.9 waits for tasks created after start before cleaning up: background
    loops (which create a task per wait) must be stopped at shutdown, not in cleanup."""
    import urllib.request

    port = free_port()
    proc = _serve(redis_url, model_path, port, BOT_HANDOFF_SWEEP="0.1")  # new tasks every 0.1 s
    try:
        _wait_ready([port], [proc], ROOT)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
            pass
        time.sleep(1.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0 and time.monotonic() - started < 10
