"""Exactly-once messages across real processes: kill -9 a replica, restart Redis, retry.

Bot processes share a private redis-server with an append-only file (fsync on
every write, as a deployment that acknowledges messages must run it). Clients
send every message with a `message_id` and retry on another replica until they
get an answer, as a load balancer's client would. Afterwards the log must hold
each acknowledged message exactly once, answered exactly once.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis as redis_sync

from bot.redis_keys import Keys
from tests.conftest import ROOT, RedisServer, free_port
from tests.test_multiprocess import _wait_ready

pytestmark = pytest.mark.slow


class Replicas:
    def __init__(self, redis_url: str, model_dir: Path, logs: Path, count: int) -> None:
        self.redis_url, self.model_dir, self.logs = redis_url, model_dir, logs
        self.prefix = "kefuonce" + uuid.uuid4().hex[:8]
        self.ports = [free_port() for _ in range(count)]
        self.procs: list[subprocess.Popen[bytes]] = [self._start(p) for p in self.ports]

    def _start(self, port: int) -> subprocess.Popen[bytes]:
        out = open(self.logs / f"bot-{port}.log", "ab")
        env = {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "BOT_HOST": "127.0.0.1",
            "BOT_PORT": str(port),
            "BOT_KEY_PREFIX": self.prefix,
            "BOT_MODEL_DIR": str(self.model_dir),
            "BOT_LOCK_LIFETIME": "2",
            "BOT_REDIS_TIMEOUT": "1",
        }
        return subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"], cwd=ROOT, env=env, stdout=out, stderr=out
        )

    def kill(self, i: int) -> None:
        self.procs[i].kill()
        self.procs[i].wait()

    def restart(self, i: int) -> None:
        self.procs[i] = self._start(self.ports[i])

    def ready(self) -> None:
        _wait_ready(self.ports, self.procs, self.logs)

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture
def cluster(tmp_path: Path, model_path: Path) -> Iterator[tuple[RedisServer, Replicas]]:
    server = RedisServer(tmp_path, durable=True)
    server.start()
    replicas = Replicas(server.url, model_path.parent, tmp_path, 2)
    try:
        replicas.ready()
        yield server, replicas
    finally:
        replicas.stop()
        server.stop()


async def deliver(
    http: aiohttp.ClientSession, ports: list[int], sender: str, text: str, mid: str, start: int
) -> tuple[list[Any], int]:
    """Send until some replica answers, retrying the same id (replies, attempts)."""
    attempt, deadline = 0, time.monotonic() + 90
    while time.monotonic() < deadline:
        port = ports[(start + attempt) % len(ports)]
        attempt += 1
        try:
            async with http.post(
                f"http://127.0.0.1:{port}/webhooks/rest/webhook",
                json={"sender": sender, "message": text, "message_id": mid},
                timeout=aiohttp.ClientTimeout(total=30),
            ) as resp:
                if resp.status == 200:
                    return await resp.json(), attempt
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.3)
    raise AssertionError(f"{sender}/{mid} never answered")


TEXTS = ["你好", "满多少包邮", "支持七天无理由退货吗", "发什么快递", "谢谢", "怎么开发票"]


async def test_kill_9_and_a_redis_restart_lose_nothing_and_double_nothing(cluster):
    server, replicas = cluster
    senders = [f"c{i}-{uuid.uuid4().hex[:4]}" for i in range(6)]
    per_sender = 10
    acknowledged: dict[tuple[str, str], list[Any]] = {}
    total = len(senders) * per_sender
    a_third, two_thirds = asyncio.Event(), asyncio.Event()
    retried: list[bool] = []

    async def customer(http: aiohttp.ClientSession, n: int, sender: str) -> None:
        for k in range(per_sender):
            mid = f"{sender}-{k}"
            text = TEXTS[(n + k) % len(TEXTS)]
            replies, attempts = await deliver(http, replicas.ports, sender, text, mid, n + k)
            acknowledged[(sender, mid)] = replies
            retried.append(attempts > 1)
            if len(acknowledged) >= total // 3:
                a_third.set()
            if len(acknowledged) >= 2 * total // 3:
                two_thirds.set()
            await asyncio.sleep(random.uniform(0.05, 0.2))

    async def faults() -> None:
        await a_third.wait()
        replicas.kill(0)  # mid-load, whatever it was doing
        replicas.restart(0)
        await two_thirds.wait()
        server.stop()  # kill -9 Redis; everything acknowledged is in the AOF
        await asyncio.sleep(1.0)
        server.start()

    async with aiohttp.ClientSession() as http:
        await asyncio.wait_for(
            asyncio.gather(faults(), *(customer(http, n, s) for n, s in enumerate(senders))), 300
        )
        # A retry after the storm still gets the first answer, not a second turn.
        sender = senders[0]
        again, _ = await deliver(http, replicas.ports, sender, "随便", f"{sender}-0", 1)
        assert again == acknowledged[(sender, f"{sender}-0")]

    keys = Keys(replicas.prefix)
    redis = redis_sync.Redis.from_url(server.url, decode_responses=True)
    lost, doubled = [], []
    for sender in senders:
        log = redis.xrange(keys.conv_log(f"rest:{sender}"))
        inbound = [(i, f) for i, f in log if f["direction"] == "in"]
        mids = [f.get("mid") for _, f in inbound]
        for k in range(per_sender):
            mid = f"{sender}-{k}"
            if mids.count(mid) == 0:
                lost.append(mid)
            elif mids.count(mid) > 1:
                doubled.append(mid)
        assert mids == sorted(set(mids), key=mids.index), "each message logged once"
        for entry_id, fields in inbound:
            answers = [f for _, f in log if f["direction"] == "out" and f.get("re") == entry_id]
            got = acknowledged[(sender, fields["mid"])]
            # Answered once: the replies logged are exactly the replies the client got.
            assert [a["text"] for a in answers] == [r["text"] for r in got], fields["mid"]
    assert lost == [] and doubled == []
    assert len(acknowledged) == len(senders) * per_sender
    # The faults really hit: some messages were only answered after a retry.
    assert any(retried), "no message needed a retry: the faults missed the load"
