"""Trainers' review over real HTTP: finding messages, relabelling into nlu_data/, the gate.

Each test works on its own copy of config.yml and nlu_data/, so the project's
own training data is never touched.
"""

from __future__ import annotations

import datetime as dt
import difflib
import shutil
from pathlib import Path

import pytest

from bot.app import create_app
from bot.app_keys import STATES
from bot.retrain import registry
from bot.retrain.gate import MAX_DROP, decide, gate
from tests.conftest import ROOT
from tests.helpers import say

MISUNDERSTOOD = "货在哪个旮旯"  # "which corner is my stuff in", in slang: not understood


def copy_project(target: Path, model: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "config.yml", target / "config.yml")
    shutil.copytree(ROOT / "nlu_data", target / "nlu_data")
    (target / "models").mkdir()
    shutil.copy(model, target / "models" / model.name)
    # The sentence-embedding cache is shared by every training, as on one machine.
    cache = ROOT / "var" / "embeddings"
    if cache.is_dir():
        (target / "var").mkdir()
        (target / "var" / "embeddings").symlink_to(cache)
    return target


@pytest.fixture
def project(tmp_path, model_path) -> Path:  # type: ignore[no-untyped-def]
    return copy_project(tmp_path / "project", model_path)


@pytest.fixture
async def client(aiohttp_client, settings, engine, project):  # type: ignore[no-untyped-def]
    own = settings.with_(data_root=project, model_dir=project / "models")
    return await aiohttp_client(create_app(own, engine), server_kwargs={"port": own.port})


async def test_relabel_appends_one_line_to_the_right_block(client, sign_in, project):
    await say(client, "r1", MISUNDERSTOOD)
    trainer = await sign_in("trainer1", "trainer")
    queue = await (await trainer.get("/review/api/messages?queue=1")).json()
    (item,) = [m for m in queue["messages"] if m["text"] == MISUNDERSTOOD]
    assert item["intent"] == "nlu_fallback"

    before = (ROOT / "nlu_data/nlu/orders.yml").read_text(encoding="utf-8")
    resp = await trainer.post(
        "/review/api/label",
        {"conversation": "rest:r1", "id": item["id"], "intent": "order_status", "entities": []},
    )
    assert resp.status == 200, await resp.text()
    after = (project / "nlu_data/nlu/orders.yml").read_text(encoding="utf-8")
    diff = [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=1)
        if not line.startswith(("---", "+++", "@@"))
    ]
    assert diff == [
        "       - 我的包裹呢",
        f"+      - {MISUNDERSTOOD}",
        " ",
    ]
    # Out of the queue, and labelled; the same label again changes nothing.
    queue = await (await trainer.get("/review/api/messages?queue=1")).json()
    assert all(m["text"] != MISUNDERSTOOD for m in queue["messages"])
    again = await trainer.post(
        "/review/api/label", {"conversation": "rest:r1", "id": item["id"], "intent": "order_status"}
    )
    assert (await again.json())["label"]["line"] == 0
    assert (project / "nlu_data/nlu/orders.yml").read_text(encoding="utf-8") == after


async def test_entities_are_written_as_rasa_markup(client, sign_in, project):
    await say(client, "r2", "东西寄出来没 SF1234567890123")
    trainer = await sign_in("trainer1", "trainer")
    body = await (await trainer.get("/review/api/messages?q=寄出来")).json()
    (item,) = body["messages"]
    assert any(e["entity"] == "order_id" for e in item["entities"])
    start = item["text"].index("SF")  # the trainer marks the whole tracking number
    resp = await trainer.post(
        "/review/api/label",
        {"conversation": "rest:r2", "id": item["id"], "intent": "order_status",
         "entities": [{"entity": "order_id", "start": start, "end": start + 15}]},
    )  # fmt: skip
    assert resp.status == 200, await resp.text()
    text = (project / "nlu_data/nlu/orders.yml").read_text(encoding="utf-8")
    assert "      - 东西寄出来没 [SF1234567890123](order_id)\n" in text


async def test_refusals(client, sign_in, project):
    await say(client, "r3", "客服怎么还不来")  # a sentence of the held-out file
    await say(client, "r3", "你好")
    trainer = await sign_in("trainer1", "trainer")
    entries = (await (await trainer.get("/review/api/conversations/rest:r3")).json())["messages"]
    held_out, hello = [e["id"] for e in entries if e["direction"] == "in"]

    async def label(who, body):  # type: ignore[no-untyped-def]
        return await who.post("/review/api/label", {"conversation": "rest:r3", **body})

    assert (await label(trainer, {"id": held_out, "intent": "request_human"})).status == 409
    assert (await label(trainer, {"id": hello, "intent": "no_such_intent"})).status == 400
    assert (
        await label(trainer, {"id": hello, "intent": "order_status"})
    ).status == 409  # 你好 is greet
    assert (await label(trainer, {"id": "1-0", "intent": "greet"})).status == 404
    agent = await sign_in("agent1", "agent")
    assert (await label(agent, {"id": hello, "ignore": True})).status == 403
    assert (await agent.get("/review/api/messages")).status == 403
    resp = await trainer.post(
        "/review/api/label", {"conversation": "rest:r3", "id": hello}, csrf=False
    )
    assert resp.status == 403
    assert (await client.get("/review/api/messages")).status == 401
    assert (await trainer.post("/review/api/retrain")).status == 403  # admins only
    diff = (project / "nlu_data").rglob("*.yml")
    assert all(p.read_bytes() == (ROOT / p.relative_to(project)).read_bytes() for p in diff)


async def test_finding_messages_and_conversations(client, sign_in):
    await say(client, "f1", "我的快递到哪了")
    await say(client, "f2", "快递怎么还没到，太慢了")
    await say(client, "f3", "我要转人工")
    await say(client, "f4", "质量太差了，我要投诉")
    trainer = await sign_in("trainer1", "trainer")

    async def find(query: str) -> list[str]:
        body = await (await trainer.get(f"/review/api/messages?{query}")).json()
        return [m["conversation"] for m in body["messages"]]

    assert sorted(await find("q=快递")) == ["rest:f1", "rest:f2"]
    by_intent = await (await trainer.get("/review/api/messages?q=快递&intent=order_status")).json()
    assert "rest:f1" in [m["conversation"] for m in by_intent["messages"]]
    assert {m["intent"] for m in by_intent["messages"]} == {"order_status"}
    assert await find("q=不存在的词语") == []
    today = dt.date.today()
    assert sorted(set(await find(f"q=快递&from={today - dt.timedelta(days=1)}"))) == [
        "rest:f1",
        "rest:f2",
    ]
    assert await find(f"q=快递&to={today - dt.timedelta(days=2)}") == []
    assert "rest:f1" in await find("channel=rest&intent=order_status")

    async def conversations(query: str) -> list[str]:
        body = await (await trainer.get(f"/review/api/conversations?{query}")).json()
        return [c["id"] for c in body["conversations"]]

    assert await conversations("escalated=request_human") == ["rest:f3"]
    assert sorted(await conversations("escalated=any")) == ["rest:f3", "rest:f4"]
    assert (await trainer.get("/review/api/conversations?escalated=bogus")).status == 400
    feedback = await (await trainer.get("/review/api/feedback?kind=complaint")).json()
    assert [f["conversation"] for f in feedback["feedback"]] == ["rest:f4"]
    assert (await client.app[STATES].get("rest:f3")).state == "waiting"


async def test_low_ratings_are_found(client, sign_in):
    for text in ("满多少包邮", "好的拜拜", "1"):
        await say(client, "rated", text)
    trainer = await sign_in("trainer1", "trainer")
    body = await (await trainer.get("/review/api/conversations?rated_low=1")).json()
    assert [c["id"] for c in body["conversations"]] == ["rest:rated"]


def test_the_gate_promotes_within_one_point_and_refuses_below(tmp_path, model_path):
    assert decide(0.90, None) == (True, "no model was serving")
    assert decide(0.90, 0.90 + MAX_DROP)[0] is True
    assert decide(0.90, 0.90 + MAX_DROP + 0.001)[0] is False

    project = copy_project(tmp_path / "p", model_path)
    models = project / "models"
    candidate = models / "kefu-candidate.tar.gz"
    shutil.copy(model_path, candidate)
    registry.write(models, models / model_path.name, 0.999)  # a serving model far better
    refused = gate(project, models, candidate)
    assert not refused.promoted and 0.9 < refused.candidate_f1 < 0.989
    assert registry.read(models).model == model_path.name  # unchanged
    assert "kept aside" in (project / "reports/gate.json").read_text()
    registry.write(models, models / model_path.name, refused.candidate_f1 + 0.005)
    accepted = gate(project, models, candidate)
    assert accepted.promoted and registry.read(models).model == "kefu-candidate.tar.gz"
    assert registry.serving_model(models) == candidate
