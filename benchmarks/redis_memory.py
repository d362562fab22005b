"""Redis memory per 10,000 conversations, measured through a real bot.

Starts a private redis-server and one bot on loopback ports, has customers
write `--messages` messages each (the chaos benchmark's mix: knowledge
questions and small talk, each with a `message_id`) for `--conversations`
conversations, then reads Redis's `used_memory` and `MEMORY USAGE` of every
key the run wrote, grouped by kind (Rasa tracker, log, NLU, message ids…),
and scales the total to 10,000 conversations.

    python benchmarks/redis_memory.py --conversations 300 --messages 10
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.chaos import TEXTS  # noqa: E402
from benchmarks.ha_local import Bot, Process, client, free_port, wait_until  # noqa: E402


def kind_of(key: str, prefix: str) -> str:
    """`P:c:{id}:log` -> `c:log`, `P:{stats}:2026-12-01:in` -> `stats`: what a key is for."""
    rest = key[len(prefix) + 1 :]
    if rest.startswith("c:{"):
        tail = rest[rest.index("}") + 2 :]
        what = tail.split(":")[0]
        return f"conversation {what}"
    return "shared " + rest.split(":")[0].strip("{}")


async def drive(url: str, conversations: int, messages: int, concurrency: int) -> int:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(conversations):
        queue.put_nowait(i)
    sent = 0
    run = uuid.uuid4().hex[:6]

    async def worker() -> None:
        nonlocal sent
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(url, timeout=timeout) as http:
            while not queue.empty():
                i = queue.get_nowait()
                rng = random.Random(i)
                for _ in range(messages):
                    body = {"sender": f"mem-{run}-{i}", "message": rng.choice(TEXTS),
                            "message_id": uuid.uuid4().hex}  # fmt: skip
                    async with http.post("/webhooks/rest/webhook", json=body) as resp:
                        assert resp.status == 200, await resp.text()
                    sent += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=300)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models")
    args = parser.parse_args()
    prefix = "kefumem"
    with tempfile.TemporaryDirectory(prefix="kefu-mem-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        server = shutil.which("redis-server") or "redis-server"
        argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", tmp]  # fmt: skip
        redis = Process("redis", argv, workdir / "redis.log")
        redis.start()
        bot = Bot(free_port(), {"REDIS_URL": f"redis://127.0.0.1:{port}/0",
                                "BOT_KEY_PREFIX": prefix, "BOT_MODEL_DIR": str(args.model_dir),
                                "BOT_LOG_LEVEL": "WARNING"}, workdir / "bot.log")  # fmt: skip
        try:
            wait_until(lambda: client(port).ping(), 10, "redis-server")
            bot.start()
            bot.wait_ready()
            db = client(port)
            before = int(db.info("memory")["used_memory"])
            keys_before = set(db.scan_iter(match=f"{prefix}:*", count=1000))
            started = time.monotonic()
            sent = asyncio.run(
                drive(bot.url, args.conversations, args.messages, args.concurrency)
            )
            seconds = time.monotonic() - started
            after = int(db.info("memory")["used_memory"])
            by_kind: dict[str, int] = defaultdict(int)
            for key in db.scan_iter(match=f"{prefix}:*", count=1000):
                if key not in keys_before:
                    by_kind[kind_of(key, prefix)] += int(db.memory_usage(key, samples=0) or 0)
        finally:
            if bot.process is not None:
                bot.process.stop()
            redis.kill9()
    scale = 10_000 / args.conversations
    print(f"{args.conversations} conversations x {args.messages} messages ({sent} messages, "
          f"{sent / seconds:.0f} msg/s through one bot)")  # fmt: skip
    print(f"used_memory grew {(after - before) / 2**20:.1f} MiB: "
          f"{(after - before) * scale / 2**20:.0f} MiB per 10,000 such conversations")
    print("by kind of key (MEMORY USAGE, per 10,000 conversations):")
    for kind, size in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:<28} {size * scale / 2**20:8.1f} MiB")


if __name__ == "__main__":
    main()
