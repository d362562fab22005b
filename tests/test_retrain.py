"""From a relabel to the running bot understanding it: retrain, gate, hot reload.

Real training (a child `python -m bot train`), real model loading, real HTTP,
on a copy of config.yml and nlu_data/.
"""

from __future__ import annotations

import asyncio
import shutil
import time

from bot.app import create_app
from bot.app_keys import CONVERSATION_LOG, EVENTS, MODEL
from bot.retrain import registry
from bot.retrain.reload import PROMOTED
from bot.settings import Rate
from tests.helpers import Logins, say
from tests.test_review import MISUNDERSTOOD, copy_project

OFF = Rate(0, 1.0)

STREAM = ["你好", "我的快递到哪了", "SF1234567890123", "满多少包邮", "你是机器人吗", "谢谢"]


async def test_reload_during_a_steady_stream_answers_every_message(
    aiohttp_client, settings, engine, tmp_path, model_path
):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(model_path, models / model_path.name)
    successor = models / "kefu-successor.tar.gz"
    shutil.copy(model_path, successor)
    registry.write(models, models / model_path.name, None)
    # A steady stream as fast as the bot answers, from one address: no rate limits.
    own = settings.with_(model_dir=models, rate_conversation=OFF, rate_address=OFF)
    client = await aiohttp_client(create_app(own, engine), server_kwargs={"port": own.port})
    before = client.app[MODEL].engine.version
    results: list[tuple[int, object]] = []
    stop = asyncio.Event()

    async def customer(i: int) -> None:
        n = 0
        while not stop.is_set():
            resp = await client.post(
                "/webhooks/rest/webhook",
                json={"sender": f"steady-{i}", "message": STREAM[n % len(STREAM)]},
            )
            results.append((resp.status, await resp.json()))
            n += 1

    customers = [asyncio.create_task(customer(i)) for i in range(12)]
    await asyncio.sleep(1.0)
    registry.write(models, successor, None)
    await client.app[EVENTS].publish(PROMOTED, "", model=successor.name)
    deadline = time.monotonic() + 60
    while client.app[MODEL].engine.version != "kefu-successor":
        assert time.monotonic() < deadline, "the new model was never swapped in"
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*customers)

    assert len(results) > 50
    assert all(status == 200 and body for status, body in results), [
        r for r in results if r[0] != 200 or not r[1]
    ][:3]
    versions = set()
    for i in range(12):
        for entry in await client.app[CONVERSATION_LOG].timeline(f"rest:steady-{i}"):
            if entry["direction"] == "in":
                versions.add(entry["model"])
    assert versions == {before, "kefu-successor"}  # each entry names the model that handled it


async def test_a_trainer_relabels_an_admin_retrains_and_the_bot_understands_without_restart(
    aiohttp_client, settings, engine, tmp_path, model_path
):
    project = copy_project(tmp_path / "project", model_path)
    models = project / "models"
    registry.write(models, models / model_path.name, None)
    own = settings.with_(data_root=project, model_dir=models)
    client = await aiohttp_client(create_app(own, engine), server_kwargs={"port": own.port})
    logins = Logins()
    try:
        await say(client, "before", MISUNDERSTOOD)
        (entry,) = [
            e
            for e in await client.app[CONVERSATION_LOG].timeline("rest:before")
            if e["direction"] == "in"
        ]
        assert entry["intent"] == "nlu_fallback"

        trainer = await logins.sign_in(client, "trainer1", "trainer")
        label = {"conversation": "rest:before", "id": entry["id"], "intent": "order_status"}
        assert (await trainer.post("/review/api/label", label)).status == 200
        admin = await logins.sign_in(client, "boss", "admin")
        started = await admin.post("/review/api/retrain")
        assert started.status == 200 and (await started.json())["state"] == "running"
        assert (await admin.post("/review/api/retrain")).status == 409  # one at a time

        deadline = time.monotonic() + 300
        percents = set()
        while True:
            job = await (await trainer.get("/review/api/retrain")).json()
            percents.add(job.get("percent"))
            if job["state"] != "running":
                break
            assert time.monotonic() < deadline, job
            await asyncio.sleep(0.5)
        assert job["state"] == "promoted", job
        assert any(line.startswith("[3/3] promoted") for line in job["log"]), job["log"]
        # Steps and percent for the page (one per component trained, the gate, the
        # promotion), kept apart from the log lines.
        assert job["percent"] == 100 and job["step"] == job["total"] >= 5, job
        assert len(percents - {None, 100}) >= 1 and not any("progress" in x for x in job["log"])
        new_model = job["gate"]["candidate"].removesuffix(".tar.gz")
        while client.app[MODEL].engine.version != new_model:
            assert time.monotonic() < deadline, "the promoted model never served"
            await asyncio.sleep(0.1)

        replies = await say(client, "after", MISUNDERSTOOD)
        (entry,) = [
            e
            for e in await client.app[CONVERSATION_LOG].timeline("rest:after")
            if e["direction"] == "in"
        ]
        assert (entry["intent"], entry["model"]) == ("order_status", new_model)
        assert "单号" in replies[0]["text"]  # the order form asks for the number
    finally:
        await logins.close()
