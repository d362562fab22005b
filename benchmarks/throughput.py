"""Throughput of the REST webhook: N concurrent senders for a fixed time.

    python benchmarks/throughput.py --spawn            # start a bot, measure, stop it
    python benchmarks/throughput.py --spawn --workers 2  # one worker process per core
    python benchmarks/throughput.py --spawn --responses-only --rasa  # vs stock `rasa run`
    python benchmarks/throughput.py --url http://127.0.0.1:8080 --prefix kefu

Prints messages/s, p50 and p99 latency, errors, and checks that every answered
message is in the conversation log (Redis), inbound and outbound.
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
from pathlib import Path

import aiohttp
import redis as redis_sync

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent

from bot.redis_keys import Keys  # noqa: E402

# Messages whose answers are domain responses only: stock `rasa run` (which has no
# action server here) can answer them too, for a like-for-like comparison.
RESPONSES_ONLY = [
    "你好",
    "谢谢",
    "你是机器人吗",
    "今天天气怎么样",
    "你叫什么名字",
    "好的",
    "不用了",
    "多谢啦",
]
# The realistic mix: knowledge answers, order look-ups (forms, the demo order
# backend), goodbyes and small talk. Every order question is followed by the
# number, as customers do; three wrong answers in the form would hand the
# conversation to a person, after which the bot (rightly) stays silent.
MESSAGES = [
    "你好",
    "我的快递到哪了",
    "查一下订单202611250001234567",
    "谢谢",
    "在吗",
    "今天天气怎么样",
    "物流怎么不更新",
    "202611250001234567",
    "好的拜拜",
    "多谢啦",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def sender(
    turns: int,
    messages: list[str],
    session: aiohttp.ClientSession,
    url: str,
    sender_id: str,
    stop_at: float,
    warm_until: float,
    latencies: list[float],
    errors: list[str],
    counts: dict[str, int],
) -> None:
    i = handed_over = 0
    while time.monotonic() < stop_at:
        text = messages[i % len(messages)]
        # With --turns, a sender is a series of customers, each writing `turns` messages.
        conversation = f"{sender_id}-c{i // turns}" if turns else f"{sender_id}-h{handed_over}"
        i += 1
        started = time.monotonic()
        try:
            async with session.post(url, json={"sender": conversation, "message": text}) as resp:
                body = await resp.json()
                ok = resp.status == 200 and bool(body) and bool(body[0].get("text"))
                if resp.status == 200 and body == []:
                    # The conversation went to a person (three messages that were not
                    # order numbers, say): the bot rightly stays silent. A new customer
                    # takes this sender's place.
                    ok, handed_over = True, handed_over + 1
                    counts["handed over"] = counts.get("handed over", 0) + 1
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            ok, body = False, repr(exc)
        elapsed = time.monotonic() - started
        counts[conversation] = counts.get(conversation, 0) + 1
        if not ok:
            errors.append(str(body)[:200])
        elif started >= warm_until:
            latencies.append(elapsed)


async def run(
    url: str,
    senders: int,
    duration: float,
    warmup: float,
    run_id: str,
    messages: list[str],
    turns: int = 0,
) -> tuple[list[float], list[str], dict[str, int], float]:
    latencies: list[float] = []
    errors: list[str] = []
    counts: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=senders)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.monotonic()
        warm_until = start + warmup
        stop_at = warm_until + duration
        await asyncio.gather(
            *(
                sender(
                    turns,
                    messages,
                    session,
                    f"{url}/webhooks/rest/webhook",
                    f"bench-{run_id}-{i}",
                    stop_at,
                    warm_until,
                    latencies,
                    errors,
                    counts,
                )
                for i in range(senders)
            )
        )
    return latencies, errors, counts, duration


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("the server exited before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit("the server never became ready")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def report(
    name: str, senders: int, latencies: list[float], errors: list[str], total: int, duration: float
) -> None:
    print(f"[{name}] senders={senders} measured={duration:.0f}s")
    print(f"[{name}] messages/s={len(latencies) / duration:.1f}")
    if latencies:
        print(
            f"[{name}] p50_ms={statistics.median(latencies) * 1000:.0f} "
            f"p99_ms={percentile(latencies, 0.99) * 1000:.0f}"
        )
    print(f"[{name}] errors={len(errors)} of {total}")
    for err in errors[:5]:
        print("  ", err)


def measure_rasa(args: argparse.Namespace, run_id: str) -> None:
    """Stock `rasa run` with its REST channel and in-memory tracker store, same model."""
    import tempfile

    from bot.engine.runtime import latest_model
    from bot.settings import Settings

    model = latest_model(Settings.from_env().model_dir)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        credentials = Path(tmp) / "credentials.yml"
        credentials.write_text("rest:\n")
        rasa = Path(sys.executable).with_name("rasa")
        proc = subprocess.Popen(
            [
                str(rasa),
                "run",
                "-m",
                str(model),
                "--credentials",
                str(credentials),
                "--port",
                str(port),
                "--interface",
                "127.0.0.1",
                "--quiet",
            ],
            cwd=ROOT,
            env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(f"http://127.0.0.1:{port}/webhooks/rest/", proc)
            latencies, errors, counts, duration = asyncio.run(
                run(
                    f"http://127.0.0.1:{port}",
                    args.senders,
                    args.duration,
                    args.warmup,
                    run_id + "r",
                    RESPONSES_ONLY,
                )
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    counts.pop("handed over", None)
    report("rasa run", args.senders, latencies, errors, sum(counts.values()), duration)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--spawn", action="store_true", help="start a bot process for the run")
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://localhost:6379/0")
    )
    parser.add_argument("--prefix", default=None, help="BOT_KEY_PREFIX of the bot under test")
    parser.add_argument(
        "--rasa", action="store_true", help="also measure stock `rasa run` (no logging)"
    )
    parser.add_argument("--workers", type=int, default=1, help="BOT_WORKERS of the spawned bot")
    parser.add_argument(
        "--turns",
        type=int,
        default=0,
        help="messages per conversation; 0 = each sender keeps one conversation all run",
    )
    parser.add_argument(
        "--responses-only",
        action="store_true",
        help="send only messages answered by domain responses (as --rasa does)",
    )
    args = parser.parse_args()

    run_id = uuid.uuid4().hex[:8]
    messages = RESPONSES_ONLY if args.responses_only else MESSAGES
    proc = None
    url, prefix = args.url, args.prefix
    if args.spawn:
        port = free_port()
        prefix = f"kefubench{run_id}"
        url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "BOT_PORT": str(port),
            "BOT_HOST": "127.0.0.1",
            "BOT_KEY_PREFIX": prefix,
            "REDIS_URL": args.redis_url,
            "BOT_LOG_LEVEL": "WARNING",
            "BOT_WORKERS": str(args.workers),
        }
        subprocess.run(
            [sys.executable, "-m", "bot", "seed-demo-orders"], cwd=ROOT, env=env, check=True
        )
        proc = subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=ROOT, env=env)
        wait_ready(f"{url}/readyz", proc)
    try:
        latencies, errors, counts, duration = asyncio.run(
            run(url, args.senders, args.duration, args.warmup, run_id, messages, args.turns)
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)

    handed_over = counts.pop("handed over", 0)
    total = sum(counts.values())
    report(f"kefu x{args.workers}", args.senders, latencies, errors, total, duration)
    print(f"[kefu x{args.workers}] conversations handed to people (then silent): {handed_over}")
    if prefix:
        client = redis_sync.Redis.from_url(args.redis_url, decode_responses=True)
        inbound = outbound = 0
        for conversation in counts:
            for _, fields in client.xrange(Keys(prefix).conv_log(f"rest:{conversation}")):
                if fields["direction"] == "in":
                    inbound += 1
                else:
                    outbound += 1
        print(f"[kefu] logged in Redis: inbound={inbound} outbound={outbound} (sent {total})")
        if args.spawn:
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])
    if args.rasa:
        measure_rasa(args, run_id)


if __name__ == "__main__":
    main()
