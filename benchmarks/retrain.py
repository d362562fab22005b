"""Time from a trainer's relabel to the new model answering, on the project's own data.

    python benchmarks/retrain.py            # one run
    python benchmarks/retrain.py --runs 3   # medians of three

Starts a bot process on a copy of config.yml and nlu_data/ (the project's
files are not touched), signs in a trainer and an admin, sends a message the
model does not understand, relabels it through the review API, starts the
retraining from the API and waits until the bot answers with the new model.
A few customers keep writing meanwhile, so the figures include the cost of
training next to a serving process, and their reply times before and during
the switch are printed too. Prints where the time goes:

- child start: the `python -m bot train` process importing Rasa
- training, held-out scoring (the gate), loading and swapping in the bot
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import redis as redis_sync

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.ports import free_port
from bot.retrain import registry
from bot.training import current_model, train

ROOT = Path(__file__).resolve().parent.parent
MESSAGE = "宝贝啥时候能到手"
PASSWORD = "benchmark password 123"
CUSTOMERS = ["你好", "我的快递到哪了", "满多少包邮", "你是机器人吗", "谢谢"]


def prepare(workdir: Path) -> Path:
    project = workdir / "project"
    project.mkdir()
    shutil.copy(ROOT / "config.yml", project / "config.yml")
    shutil.copytree(ROOT / "nlu_data", project / "nlu_data")
    models = project / "models"
    models.mkdir()
    model = current_model(ROOT, ROOT / "models")
    if not model.is_file():
        model = train(ROOT, ROOT / "models")
    shutil.copy(model, models / model.name)
    registry.write(models, models / model.name, None)
    return project


def run_once(redis_url: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        project = prepare(Path(tmp))
        port, prefix = free_port(), "kefubench" + uuid.uuid4().hex[:8]
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "BOT_PORT": str(port),
            "BOT_KEY_PREFIX": prefix,
            "BOT_MODEL_DIR": str(project / "models"),
            "BOT_DATA_ROOT": str(project),
            "BOT_BCRYPT_ROUNDS": "4",
            "BOT_LOG_LEVEL": "WARNING",
            "RASA_TELEMETRY_ENABLED": "false",
            # Four customers writing every 0.2 s from one address: no rate limits.
            "BOT_RATE_CONVERSATION": "off",
            "BOT_RATE_ADDRESS": "off",
        }
        subprocess.run(
            [sys.executable, "-m", "bot", "users", "add", "bench-admin", "--role", "admin",
             "--password-stdin"],
            input=PASSWORD.encode(), check=True, capture_output=True, cwd=ROOT, env=env,
        )  # fmt: skip
        with open(Path(tmp) / "bot.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve"], cwd=project, env=env, stdout=log, stderr=log
            )
            try:
                return asyncio.run(measure(f"http://127.0.0.1:{port}"))
            except BaseException:
                print((Path(tmp) / "bot.log").read_text(errors="replace")[-3000:], file=sys.stderr)
                raise
            finally:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    print("the bot did not stop within 30 s of SIGTERM", file=sys.stderr)
                    proc.kill()
                client = redis_sync.Redis.from_url(redis_url)
                keys = list(client.scan_iter(match=f"{prefix}:*"))
                if keys:
                    client.delete(*keys)


async def served_model(session: aiohttp.ClientSession, base: str) -> str | None:
    try:
        async with session.get(f"{base}/readyz") as resp:
            return (await resp.json()).get("model") if resp.status == 200 else None
    except aiohttp.ClientError:
        return None


async def wait_for_model(session: aiohttp.ClientSession, base: str, model: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if await served_model(session, base) == model:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{model} never served")


async def measure(base: str) -> dict[str, float]:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        deadline = time.monotonic() + 180
        while await served_model(session, base) is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the bot never became ready")
            await asyncio.sleep(0.3)
        old_model = await served_model(session, base)
        login = await session.post(
            f"{base}/console/api/login", json={"username": "bench-admin", "password": PASSWORD}
        )
        headers = {"X-CSRF-Token": (await login.json())["csrf"]}
        await session.post(
            f"{base}/webhooks/rest/webhook", json={"sender": "bench-0", "message": MESSAGE}
        )
        found = await (await session.get(f"{base}/review/api/messages?q={MESSAGE}")).json()
        item = found["messages"][0]

        latencies: list[tuple[float, float]] = []  # (when, seconds)
        stop = asyncio.Event()

        async def customer(i: int) -> None:
            n = 0
            while not stop.is_set():
                started = time.monotonic()
                await session.post(
                    f"{base}/webhooks/rest/webhook",
                    json={"sender": f"bench-c{i}", "message": CUSTOMERS[n % len(CUSTOMERS)]},
                )
                latencies.append((started, time.monotonic() - started))
                n += 1
                await asyncio.sleep(0.2)

        customers = [asyncio.create_task(customer(i)) for i in range(4)]
        await asyncio.sleep(3)

        t0 = time.monotonic()
        label = {"conversation": "bench-0", "id": item["id"], "intent": "order_status"}
        resp = await session.post(f"{base}/review/api/label", json=label, headers=headers)
        assert resp.status == 200, await resp.text()
        t_label = time.monotonic()
        await session.post(f"{base}/review/api/retrain", json={}, headers=headers)
        t_announced = None
        while True:
            job = await (await session.get(f"{base}/review/api/retrain")).json()
            if t_announced is None and any(
                line.startswith("[3/3] promoted") for line in job["log"]
            ):
                t_announced = time.monotonic()  # the child has told the bot processes
            if job["state"] != "running":
                break
            await asyncio.sleep(0.1)
        t_promoted = time.monotonic()
        t_announced = t_announced or t_promoted
        if job["state"] != "promoted":
            raise RuntimeError(f"retraining ended {job['state']}: {job.get('log')}")
        new_model = job["gate"]["candidate"].removesuffix(".tar.gz")
        await wait_for_model(session, base, new_model)
        t_serving = time.monotonic()
        await asyncio.sleep(2)
        stop.set()
        await asyncio.gather(*customers)

        reply = await session.post(
            f"{base}/webhooks/rest/webhook", json={"sender": "bench-1", "message": MESSAGE}
        )
        understood = "单号" in (await reply.json())[0]["text"]
        trained = next(float(line.split()[2]) for line in job["log"] if "trained in" in line)
        scored = job["gate"]["seconds"]
        before = [s for w, s in latencies if w < t0]
        during = [s for w, s in latencies if t_label <= w <= t_serving]
        return {
            "total": t_serving - t0,
            "label": t_label - t0,
            "job": t_promoted - t_label,
            "training": trained,
            "gate": scored,
            "child_start": t_announced - t_label - trained - scored,
            "loading": max(t_serving - t_announced, 0.0),
            "understood": float(understood),
            "old_model_was": float(old_model != new_model),
            "reply_p50_before": statistics.median(before),
            "reply_max_before": max(before),
            "reply_p50_during": statistics.median(during) if during else float("nan"),
            "reply_max_during": max(during) if during else float("nan"),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    runs = [run_once(args.redis) for _ in range(args.runs)]
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"relabel -> new model serving, median of {len(runs)} run(s), 2 cores shared:")
    print(f"  total                  {median['total']:6.1f} s")
    print(f"    relabel (YAML write)  {median['label']:6.2f} s")
    print(f"    child process start   {median['child_start']:6.1f} s  (importing Rasa, TensorFlow)")
    print(f"    training              {median['training']:6.1f} s")
    print(f"    held-out gate         {median['gate']:6.1f} s  (loading and scoring both models)")
    print(
        f"    loading + swap in bot {median['loading']:6.1f} s  (promotion to serving, 0.1 s polls)"
    )
    print(f"  message answered by the new model: {'yes' if median['understood'] else 'NO'}")
    print(
        f"  customers' reply time: median {median['reply_p50_before'] * 1000:.0f} ms "
        f"(max {median['reply_max_before'] * 1000:.0f}) before, "
        f"{median['reply_p50_during'] * 1000:.0f} ms (max {median['reply_max_during'] * 1000:.0f})"
        " while retraining and switching"
    )


if __name__ == "__main__":
    main()
