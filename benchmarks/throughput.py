"""Throughput of the REST webhook: N concurrent senders for a fixed time.

    python benchmarks/throughput.py --spawn            # start a bot, measure, stop it
    python benchmarks/throughput.py --spawn --workers 2  # one worker process per core
    python benchmarks/throughput.py --compare          # vs stock `rasa run`, one table
    python benchmarks/throughput.py --long 200         # one conversation's growth
    python benchmarks/throughput.py --url http://127.0.0.1:8080 --prefix kefu

Prints messages/s, p50 and p99 latency, errors, the longest event-loop stall
of the bot (its `kefu_loop_stall_*` metrics), and checks that every answered
message is in the conversation log (Redis), inbound and outbound. The load
generator runs in a process of its own at nice 10, for every server measured:
sharing the cores, it must not take the CPU from a server mid-turn.

`--compare` runs, one after the other with the same load (20 senders,
ten-message conversations of messages answered by domain responses, the same
model): stock `rasa run` with Redis tracker and lock stores (how Rasa runs in
production), stock `rasa run` with its in-memory stores, and this project with
one process and with one process per core (BOT_WORKERS), then one process per
core with every message through the NLU (BOT_PARSE_CACHE=0); it prints one
table and our ratios to each. `--long N` has one customer write N
messages in one conversation and compares the median turn of messages 2-21
with that of the last 20.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis as redis_sync

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent

from benchmarks.ports import free_port  # noqa: E402
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
    # The load generator's own full collections would count as server latency.
    gc.collect()
    gc.freeze()
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


# The load generator's niceness: it shares the cores with the server under test
# (and with Redis), and must not take the CPU from them in the middle of a turn:
# in a deployment it is not there. The same for every server measured.
LOAD_NICENESS = 10


def _load_in_child(args: tuple[Any, ...], results: Any) -> None:
    os.nice(LOAD_NICENESS)
    results.put(asyncio.run(run(*args)))


def generate_load(args: tuple[Any, ...]) -> tuple[list[float], list[str], dict[str, int], float]:
    """`run(*args)` in a process of its own, at a lower priority than the servers."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_load_in_child, args=(args, results))
    child.start()
    try:
        found = results.get()
    finally:
        child.join(timeout=30)
    return found  # type: ignore[no-any-return]


def wait_ready(
    url: str, proc: subprocess.Popen[bytes], timeout: float = 240, workers: int = 1
) -> None:
    """Until `workers` processes sharing the port have each answered ready (each
    request is a new connection, which the kernel hands to any of them)."""
    deadline = time.monotonic() + timeout
    ready: set[int] = set()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("the server exited before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    try:
                        ready.add(json.loads(resp.read()).get("pid", 0))
                    except (ValueError, AttributeError):  # stock Rasa: no pid
                        return
                    if len(ready) >= workers:
                        return
                    continue
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit("the server never became ready")


@dataclass
class Result:
    name: str
    senders: int
    latencies: list[float]
    errors: list[str]
    total: int
    duration: float
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.duration

    def row(self) -> str:
        p50 = statistics.median(self.latencies) * 1000 if self.latencies else float("nan")
        p99 = percentile(self.latencies, 0.99) * 1000 if self.latencies else float("nan")
        return (
            f"| {self.name} | {self.rate:.1f} | {p50:.0f} ms | {p99:.0f} ms "
            f"| {len(self.errors)} of {self.total} |"
        )

    def report(self) -> None:
        print(f"[{self.name}] senders={self.senders} measured={self.duration:.0f}s")
        print(f"[{self.name}] messages/s={self.rate:.1f}")
        if self.latencies:
            print(
                f"[{self.name}] p50_ms={statistics.median(self.latencies) * 1000:.0f} "
                f"p99_ms={percentile(self.latencies, 0.99) * 1000:.0f}"
            )
        print(f"[{self.name}] errors={len(self.errors)} of {self.total}")
        for err in self.errors[:5]:
            print("  ", err)
        for note in self.notes:
            print(f"[{self.name}] {note}")


def redis_parts(url: str) -> tuple[str, int, int]:
    """(host, port, db) of a redis:// URL, for Rasa's endpoints.yml."""
    parsed = urllib.parse.urlparse(url)
    db = int(parsed.path.strip("/") or 0)
    return parsed.hostname or "localhost", parsed.port or 6379, db


def drop_keys(redis_url: str, pattern: str) -> None:
    client = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    keys = list(client.scan_iter(match=pattern, count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])


def measure_rasa(args: argparse.Namespace, run_id: str, redis_stores: bool) -> Result:
    """Stock `rasa run` with its REST channel, same model: in-memory stores, or
    Rasa's RedisTrackerStore and RedisLockStore (as Rasa is run in production)."""
    import tempfile

    from bot.engine.runtime import latest_model
    from bot.settings import Settings

    model = latest_model(Settings.from_env().model_dir)
    port = free_port()
    prefix = f"rasabench{run_id}"
    name = "rasa run, Redis stores" if redis_stores else "rasa run, in memory"
    with tempfile.TemporaryDirectory() as tmp:
        credentials = Path(tmp) / "credentials.yml"
        credentials.write_text("rest:\n")
        command = [
            str(Path(sys.executable).with_name("rasa")),
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
        ]
        if redis_stores:
            host, redis_port, db = redis_parts(args.redis_url)
            endpoints = Path(tmp) / "endpoints.yml"
            endpoints.write_text(
                "".join(
                    f"{store}:\n  type: redis\n  url: {host}\n  port: {redis_port}\n"
                    f"  db: {db}\n  key_prefix: {prefix}\n"
                    for store in ("tracker_store", "lock_store")
                )
            )
            command += ["--endpoints", str(endpoints)]
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(f"http://127.0.0.1:{port}/webhooks/rest/", proc)
            latencies, errors, counts, duration = generate_load(
                (
                    f"http://127.0.0.1:{port}",
                    args.senders,
                    args.duration,
                    args.warmup,
                    run_id + ("rr" if redis_stores else "rm"),
                    RESPONSES_ONLY,
                    args.turns,
                )
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            if redis_stores:
                drop_keys(args.redis_url, f"{prefix}*")
    counts.pop("handed over", None)
    return Result(name, args.senders, latencies, errors, sum(counts.values()), duration)


class Bot:
    """A bot process started for the run (--spawn), or one already running (--url)."""

    def __init__(self, args: argparse.Namespace, run_id: str) -> None:
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.url, self.prefix = args.url, args.prefix
        if not args.spawn:
            return
        port = free_port()
        self.prefix = f"kefubench{run_id}"
        self.url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "BOT_PORT": str(port),
            "BOT_HOST": "127.0.0.1",
            "BOT_KEY_PREFIX": self.prefix,
            "REDIS_URL": args.redis_url,
            "BOT_LOG_LEVEL": "WARNING",
            "BOT_WORKERS": str(args.workers),
            "BOT_PARSE_CACHE": str(args.parse_cache),
            # A capacity test from one address with long conversations: no rate limits.
            "BOT_RATE_CONVERSATION": "off",
            "BOT_RATE_ADDRESS": "off",
        }
        subprocess.run(
            [sys.executable, "-m", "bot", "seed-demo-orders"], cwd=ROOT, env=env, check=True
        )
        self.proc = subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=ROOT, env=env)
        wait_ready(f"{self.url}/readyz", self.proc, workers=args.workers)

    def stalls(self) -> dict[str, float]:
        """The bot's loop-stall histogram (cumulative counts by bucket bound) and the
        longest stall since it started (`max`)."""
        found: dict[str, float] = {}
        try:
            with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            return found
        for line in text.splitlines():
            if line.startswith("kefu_loop_stall_seconds_bucket{"):
                bound = line.split('le="', 1)[1].split('"', 1)[0]
                found[bound] = float(line.split()[-1])
            elif line.startswith("kefu_loop_stall_max_seconds"):
                found["max"] = float(line.split()[-1])
        return found

    def logged(self, counts: dict[str, int]) -> tuple[int, int]:
        """Inbound and outbound entries in the conversation logs of these conversations."""
        client = redis_sync.Redis.from_url(self.args.redis_url, decode_responses=True)
        inbound = outbound = 0
        for conversation in counts:
            for _, fields in client.xrange(Keys(self.prefix).conv_log(f"rest:{conversation}")):
                if fields["direction"] == "in":
                    inbound += 1
                else:
                    outbound += 1
        return inbound, outbound

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            drop_keys(self.args.redis_url, f"{self.prefix}:*")


def stall_note(before: dict[str, float], after: dict[str, float]) -> str:
    """The event-loop stalls of the measured run, from two scrapes of the histogram."""
    delta = {k: after[k] - before.get(k, 0.0) for k in after if k != "max"}
    ticks = delta.get("+Inf", 0.0)
    over = ticks - delta.get("0.02", 0.0)
    bounds = sorted((float(k), v) for k, v in delta.items() if k != "+Inf")
    largest = next((b for b, count in bounds if count >= ticks), float("inf"))
    return (
        f"event loop: {over:.0f} stalls over 20 ms in {ticks:.0f} ticks of the run, "
        f"the longest <= {largest * 1000:.0f} ms; since start (loading included) "
        f"{after.get('max', 0) * 1000:.0f} ms"
    )


def measure_bot(
    args: argparse.Namespace, run_id: str, messages: list[str], name: str | None = None
) -> Result:
    bot = Bot(args, run_id)
    try:
        before = bot.stalls()
        latencies, errors, counts, duration = generate_load(
            (bot.url, args.senders, args.duration, args.warmup, run_id, messages, args.turns)
        )
        after = bot.stalls()
        handed_over = counts.pop("handed over", 0)
        total = sum(counts.values())
        result = Result(
            name or f"kefu x{args.workers}", args.senders, latencies, errors, total, duration
        )
        result.notes.append(f"conversations handed to people (then silent): {handed_over}")
        if after:
            result.notes.append(stall_note(before, after))
        if bot.prefix:
            inbound, outbound = bot.logged(counts)
            result.notes.append(
                f"logged in Redis: inbound={inbound} outbound={outbound} (sent {total})"
            )
    finally:
        bot.close()
    return result


async def one_conversation(url: str, messages: list[str], length: int) -> list[float]:
    """Seconds per message of one customer writing `length` messages in a row."""
    conversation = f"long-{uuid.uuid4().hex[:8]}"
    timings: list[float] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for i in range(length):
            started = time.monotonic()
            async with session.post(
                f"{url}/webhooks/rest/webhook",
                json={"sender": conversation, "message": messages[i % len(messages)]},
            ) as resp:
                if resp.status != 200 or not await resp.json():
                    sys.exit(f"message {i + 1} of the long conversation got no reply")
            timings.append(time.monotonic() - started)
    return timings


def measure_growth(args: argparse.Namespace, run_id: str, messages: list[str]) -> None:
    bot = Bot(args, run_id)
    try:
        timings = asyncio.run(one_conversation(bot.url, messages, args.long))
    finally:
        bot.close()
    early = statistics.median(timings[1:21])
    late = statistics.median(timings[-20:])
    print(
        f"[growth] one conversation, {args.long} messages: median turn of messages 2-21 "
        f"{early * 1000:.1f} ms, of the last 20 {late * 1000:.1f} ms: x{late / early:.2f}"
    )


def compare(args: argparse.Namespace, run_id: str) -> None:
    """Stock Rasa twice, then the project with one process and with one per core,
    and once more with one per core and every message through the NLU (stock
    Rasa parses every message; the project keeps recent parses by text, which
    the benchmark's eight texts always hit)."""
    results = [
        measure_rasa(args, run_id, redis_stores=True),
        measure_rasa(args, run_id, redis_stores=False),
    ]
    cores = args.workers
    for workers in sorted({1, cores}):
        args.workers = workers
        name = "kefu, one process" if workers == 1 else f"kefu, {workers} processes"
        results.append(measure_bot(args, run_id, RESPONSES_ONLY, name=name))
    args.workers, cache, args.parse_cache = cores, args.parse_cache, 0
    many = "one process" if cores == 1 else f"{cores} processes"
    results.append(measure_bot(args, run_id, RESPONSES_ONLY, name=f"kefu, {many}, no parse cache"))
    args.parse_cache = cache
    for result in results:
        result.report()
    print()
    print(f"{args.senders} senders, {args.turns}-message conversations, {args.duration:.0f} s")
    print("| server | msg/s | p50 | p99 | errors |")
    print("|---|---|---|---|---|")
    for result in results:
        print(result.row())
    for ours in results[2:]:
        print(
            f"{ours.name} / rasa run with Redis stores: "
            f"x{ours.rate / max(results[0].rate, 1e-9):.2f}; "
            f"/ rasa run in memory: x{ours.rate / max(results[1].rate, 1e-9):.2f}"
        )


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
    parser.add_argument(
        "--compare",
        action="store_true",
        help="stock `rasa run` (Redis stores, then in memory), then a spawned bot: one table",
    )
    parser.add_argument(
        "--long",
        type=int,
        default=0,
        metavar="N",
        help="one conversation of N messages: the growth of a turn's cost",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="BOT_WORKERS of the spawned bot (default 1; with --compare, one per core, "
        "measured besides one process)",
    )
    parser.add_argument(
        "--parse-cache",
        type=int,
        default=4096,
        help="BOT_PARSE_CACHE of the spawned bot (0: every message goes through the NLU)",
    )
    parser.add_argument(
        "--turns",
        type=int,
        default=None,
        help="messages per conversation; 0 = each sender keeps one conversation all run "
        "(default 0; 10 with --compare)",
    )
    parser.add_argument(
        "--responses-only",
        action="store_true",
        help="send only messages answered by domain responses (as --rasa does)",
    )
    args = parser.parse_args()
    if args.turns is None:
        args.turns = 10 if args.compare else 0
    if args.workers is None:
        args.workers = (os.cpu_count() or 1) if args.compare else 1
    run_id = uuid.uuid4().hex[:8]
    messages = RESPONSES_ONLY if args.responses_only else MESSAGES
    if args.compare or args.long:
        args.spawn = True
    if args.long:
        measure_growth(args, run_id, RESPONSES_ONLY)
        return
    if args.compare:
        compare(args, run_id)
        return
    measure_bot(args, run_id, messages).report()
    if args.rasa:
        measure_rasa(args, run_id, redis_stores=False).report()


if __name__ == "__main__":
    main()
