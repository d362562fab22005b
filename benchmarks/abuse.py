"""What an attack does to other customers: reply latency idle, under sign-in attack, flooded.

    python benchmarks/abuse.py            # start a bot (default settings, bcrypt cost 12)
    python benchmarks/abuse.py --phase 30 # seconds per phase

Starts one bot process behind a "trusted proxy" (the benchmark itself, at
127.0.0.1, so every client can have its own address in X-Forwarded-For), then
runs three phases of the same customer traffic (four customers at a time
writing short conversations to the REST webhook, each from their own address):

1. idle: customers only;
2. sign-in attack: 40 wrong sign-ins in flight at all times, each for
   `admin` from a different address (a botnet: the worst case, since every
   attempt then passes the per-address throttles and costs a bcrypt check);
3. flood: one sender posting 300 messages in 10 seconds, from one address.

Prints customer latency p50/p99 per phase, the ratio of each attack's p99 to
the idle p99 (target: at most 2), what the attackers got, and a loop-stall
probe: the latency of `/healthz`, which does no work, so any delay is the
event loop being blocked.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import redis as redis_sync

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.ports import free_port  # noqa: E402

CUSTOMERS = 4
TURNS = ["你好", "退货政策是什么", "谢谢", "在吗", "好的拜拜"]
THINK = 0.2
SIGNIN_CONCURRENCY = 40
FLOOD_MESSAGES = 300
FLOOD_SECONDS = 10.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("the bot exited before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit("the bot never became ready")


async def customer(
    http: aiohttp.ClientSession, url: str, n: int, stop: float, latencies: list[float]
) -> None:
    """One customer after another, each from their own address: short conversations."""
    conversation = 0
    while time.monotonic() < stop:
        conversation += 1
        address = f"203.0.{n}.{conversation % 250 + 1}"
        sender = f"c{n}-{uuid.uuid4().hex[:8]}"
        for text in TURNS:
            if time.monotonic() >= stop:
                return
            started = time.monotonic()
            async with http.post(
                f"{url}/webhooks/rest/webhook",
                json={"sender": sender, "message": text},
                headers={"X-Forwarded-For": address},
            ) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"a customer got {resp.status}")
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(THINK)


async def probe(http: aiohttp.ClientSession, url: str, stop: float, lags: list[float]) -> None:
    while time.monotonic() < stop:
        started = time.monotonic()
        async with http.get(f"{url}/healthz") as resp:
            await resp.read()
        lags.append(time.monotonic() - started)
        await asyncio.sleep(0.05)


async def signin_attacker(
    http: aiohttp.ClientSession, url: str, stop: float, outcomes: Counter[int]
) -> None:
    """Keeps SIGNIN_CONCURRENCY wrong sign-ins in flight, each from a new address."""

    async def one(k: int) -> None:
        while time.monotonic() < stop:
            address = f"198.18.{k % 250}.{int(time.monotonic() * 1000) % 250}"
            async with http.post(
                f"{url}/console/api/login",
                json={"username": "admin", "password": f"guess-{uuid.uuid4().hex}"},
                headers={"X-Forwarded-For": address},
            ) as resp:
                await resp.read()
                outcomes[resp.status] += 1

    await asyncio.gather(*(one(k) for k in range(SIGNIN_CONCURRENCY)))


async def flooder(
    http: aiohttp.ClientSession, url: str, stop: float, outcomes: Counter[int]
) -> None:
    """One sender, one address: FLOOD_MESSAGES messages evenly over FLOOD_SECONDS."""
    sender = f"flood-{uuid.uuid4().hex[:8]}"
    gap = FLOOD_SECONDS / FLOOD_MESSAGES
    tasks = []

    async def one(i: int) -> None:
        async with http.post(
            f"{url}/webhooks/rest/webhook",
            json={"sender": sender, "message": f"你好{i}"},
            headers={"X-Forwarded-For": "192.0.2.66"},
        ) as resp:
            await resp.read()
            outcomes[resp.status] += 1

    for i in range(FLOOD_MESSAGES):
        if time.monotonic() >= stop:
            break
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(gap)
    await asyncio.gather(*tasks)


async def phase(url: str, seconds: float, attack: str | None) -> dict[str, object]:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        stop = time.monotonic() + seconds
        latencies: list[float] = []
        lags: list[float] = []
        outcomes: Counter[int] = Counter()
        jobs = [customer(http, url, n, stop, latencies) for n in range(CUSTOMERS)]
        jobs.append(probe(http, url, stop, lags))
        if attack == "signin":
            jobs.append(signin_attacker(http, url, stop, outcomes))
        elif attack == "flood":
            jobs.append(flooder(http, url, stop, outcomes))
        await asyncio.gather(*jobs)
    return {"latencies": latencies, "lags": lags, "outcomes": dict(outcomes)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phase", type=float, default=20.0, help="seconds per phase")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://localhost:6379/0")
    )
    args = parser.parse_args()
    port, prefix = free_port(), f"kefuabuse{uuid.uuid4().hex[:8]}"
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "RASA_TELEMETRY_ENABLED": "false",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "BOT_PORT": str(port),
        "BOT_HOST": "127.0.0.1",
        "BOT_KEY_PREFIX": prefix,
        "REDIS_URL": args.redis_url,
        "BOT_LOG_LEVEL": "ERROR",
        "BOT_TRUSTED_PROXIES": "127.0.0.1",
    }
    for name in ("BOT_BCRYPT_ROUNDS", "BOT_RATE_CONVERSATION", "BOT_RATE_ADDRESS"):
        env.pop(name, None)  # the defaults, as deployed
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"{url}/readyz", proc)
        asyncio.run(phase(url, 3, None))  # warm-up
        results = {}
        for name, attack in (("idle", None), ("sign-in attack", "signin"), ("flood", "flood")):
            results[name] = asyncio.run(phase(url, args.phase, attack))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        client = redis_sync.Redis.from_url(args.redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    idle_p99 = percentile(results["idle"]["latencies"], 0.99)  # type: ignore[arg-type]
    print(f"customers={CUSTOMERS} phase={args.phase:.0f}s bcrypt cost=12 (default settings)")
    print("| phase | replies | p50 ms | p99 ms | p99 / idle p99 | /healthz p99 ms | attacker got |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, result in results.items():
        latencies: list[float] = result["latencies"]  # type: ignore[assignment]
        lags: list[float] = result["lags"]  # type: ignore[assignment]
        p99 = percentile(latencies, 0.99)
        got = ", ".join(f"{n}×{s}" for s, n in sorted(result["outcomes"].items())) or "-"  # type: ignore[attr-defined]
        print(
            f"| {name} | {len(latencies)} | {statistics.median(latencies) * 1000:.0f} "
            f"| {p99 * 1000:.0f} | {p99 / idle_p99:.2f} | {percentile(lags, 0.99) * 1000:.0f} "
            f"| {got} |"
        )
    ratios = [
        percentile(results[n]["latencies"], 0.99) / idle_p99  # type: ignore[arg-type]
        for n in ("sign-in attack", "flood")
    ]
    met = all(r <= 2 for r in ratios)
    print(
        f"target p99 ratio <= 2: {'met' if met else 'NOT met'} "
        f"({', '.join(f'{r:.2f}' for r in ratios)})"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
