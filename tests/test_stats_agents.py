"""The admins' per-agent view: who holds what, how fast each answers and handles, how rated."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from typing import Any

import pytest
from aiohttp import WSMsgType
from prometheus_client import CollectorRegistry

from bot.app import create_app
from bot.app_keys import HANDOFF, REDIS, SATISFACTION, STATS
from bot.redis_keys import Keys
from bot.stats import metrics as metrics_module
from bot.stats.metrics import AgentMetrics
from tests.helpers import Agent, say

BASE = "/console/api/conversations"
METRICS_TOKEN = "metrics-token-0123456789abcdef"
SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}
# Figures for the KPI recorder alone (bot/events.py): never on an agent's console.
RECORDER_ONLY = {"handling", "agent_handling", "previous_agent", "human_response", "within_target"}


@pytest.fixture
async def app_client(aiohttp_client, settings, engine):  # type: ignore[no-untyped-def]
    own = settings.with_(metrics_token=METRICS_TOKEN)  # per-agent series need the token
    return await aiohttp_client(create_app(own, engine), server_kwargs={"port": own.port})


@pytest.fixture
async def open_client(aiohttp_client, settings, engine):  # type: ignore[no-untyped-def]
    """/metrics as it is by default: open, no token."""
    return await aiohttp_client(create_app(settings, engine), server_kwargs={"port": settings.port})


async def handle(
    agent: Agent, conversation: str, end: str | None = "close", claim: bool = True
) -> None:
    """Claim, answer twice (the first reply is the first response), then close or release."""
    if claim:
        assert (await agent.post(f"{BASE}/{conversation}/claim")).status == 200
    for text in ("您好，我来帮您", "还在吗"):
        assert (await agent.post(f"{BASE}/{conversation}/reply", {"text": text})).status == 200
    if end == "close":
        resp = await agent.post(f"{BASE}/{conversation}/close", {"tag": "已解决"})
        assert resp.status == 200, await resp.text()
    elif end == "release":
        assert (await agent.post(f"{BASE}/{conversation}/release")).status == 200


async def test_admins_see_each_agents_holdings_times_and_ratings(app_client, logins):
    client = app_client
    for sender in ("pa1", "pa2", "pa3", "pa4"):
        await say(client, sender, "我要转人工")
    xiaoli = await logins.sign_in(client, "xiaoli")
    laowang = await logins.sign_in(client, "laowang")
    assert (await xiaoli.post(f"{BASE}/rest:pa1/claim")).status == 200
    registry = client.app[STATS].metrics.registry
    await client.get("/metrics", headers=SCRAPER)  # a scrape while she holds one
    assert registry.get_sample_value("kefu_agent_load", {"agent": "xiaoli"}) == 1.0
    await handle(xiaoli, "rest:pa1", claim=False)
    await handle(xiaoli, "rest:pa2", end="release")
    await handle(laowang, "rest:pa3", end="release")
    await handle(laowang, "rest:pa4", end=None)  # still his
    # Back with the bot, xiaoli's customers are asked to rate; the ratings count for her.
    for sender, rating in (("pa1", "5"), ("pa2", "4")):
        asked = await say(client, sender, "再见")
        assert any("打个分" in (r.get("text") or "") for r in asked), asked
        await say(client, sender, rating)

    boss = await logins.sign_in(client, "boss", "admin")
    body = await (await boss.get("/api/stats")).json()
    mine, his = body["by_agent"]["xiaoli"], body["by_agent"]["laowang"]
    assert (mine["handled"], mine["load"], mine["holding"]) == (2, 0, [])
    assert (his["handled"], his["load"], his["holding"]) == (1, 1, ["rest:pa4"])
    assert (his["capacity"], his["status"]) == (3, "offline")  # no console open: the default
    assert (mine["first_responses"], his["first_responses"]) == (2, 2)
    for figures in (mine, his):
        assert figures["first_response_p50"] is not None
        assert figures["first_response_p90"] >= figures["first_response_p50"]
        assert figures["handling_p50"] is not None and figures["handling_p90"] is not None
        assert figures["service_level"]["answered"] == 2
    assert (mine["csat_count"], mine["csat_average"]) == (2, 4.5)
    assert (his["csat_count"], his["csat_average"]) == (0, None)
    team = body["by_team"]["售前"]
    assert (team["handled"], team["first_responses"], team["csat_count"]) == (3, 4, 2)

    # The per-agent CSV, one row per agent.
    resp = await boss.get("/api/stats.csv?by=agent")
    assert resp.status == 200 and "kefu-agents-" in resp.headers["Content-Disposition"]
    rows = {row["agent"]: row for row in csv.DictReader(io.StringIO(await resp.text()))}
    assert (rows["xiaoli"]["handled"], rows["xiaoli"]["csat_average"]) == ("2", "4.5")
    assert (rows["laowang"]["load"], rows["laowang"]["first_responses"]) == ("1", "2")

    # Prometheus: per agent.
    metrics = await (await client.get("/metrics", headers=SCRAPER)).text()
    assert 'kefu_agent_handled_total{agent="xiaoli"} 2.0' in metrics
    assert 'kefu_agent_ratings_total{agent="xiaoli",rating="5"} 1.0' in metrics
    assert 'kefu_agent_first_response_seconds_count{agent="laowang"} 2.0' in metrics
    assert 'kefu_agent_handling_seconds_count{agent="laowang"} 1.0' in metrics
    assert 'kefu_agent_load{agent="laowang"} 1.0' in metrics
    # She holds nothing now: the gauge says so, not what the last scrape saw.
    assert registry.get_sample_value("kefu_agent_load", {"agent": "xiaoli"}) == 0.0


async def test_the_per_agent_view_is_for_admins(app_client, logins):
    trainer = await logins.sign_in(app_client, "trainer1", "trainer")
    body = await (await trainer.get("/api/stats")).json()
    assert "by_agent" not in body and "by_team" not in body
    # Nor the service level per agent: the team's figures only.
    assert "by_agent" not in body["service_level"] and "by_team" in body["service_level"]
    resp = await trainer.get("/api/stats.csv?by=agent")
    assert resp.status == 403 and (await resp.json())["error"] == "forbidden"
    boss = await logins.sign_in(app_client, "boss", "admin")
    resp = await boss.get("/api/stats?by=team")
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_by"


async def test_an_agents_console_never_hears_another_agents_figures(app_client, logins):
    client = app_client
    await say(client, "pw1", "我要转人工")
    xiaoli = await logins.sign_in(client, "xiaoli")
    laowang = await logins.sign_in(client, "laowang")
    console = await xiaoli.session.ws_connect(xiaoli.url("/console/ws"))
    # laowang: claims, answers (his first response), passes it to xiaoli and takes it
    # back, releases; his customer rates him.
    assert (await laowang.post(f"{BASE}/rest:pw1/claim")).status == 200
    assert (await laowang.post(f"{BASE}/rest:pw1/reply", {"text": "您好"})).status == 200
    resp = await laowang.post(f"{BASE}/rest:pw1/transfer", {"to": "xiaoli"})
    assert resp.status == 200, await resp.text()
    assert (await xiaoli.post(f"{BASE}/rest:pw1/transfer", {"to": "laowang"})).status == 200
    assert (await laowang.post(f"{BASE}/rest:pw1/release")).status == 200
    asked = await say(client, "pw1", "再见")
    assert any("打个分" in (r.get("text") or "") for r in asked), asked
    await say(client, "pw1", "5")

    heard: list[dict[str, Any]] = []
    while not heard or heard[-1]["type"] != "rated":
        message = await asyncio.wait_for(console.receive(), 5)
        assert message.type == WSMsgType.TEXT, message
        heard.append(json.loads(message.data))
    await console.close()
    kinds = {e["type"] for e in heard}
    assert {"agent_message", "state", "rated"} <= kinds, kinds
    for event in heard:
        assert not RECORDER_ONLY & event.keys(), event
    assert "agent" not in heard[-1] and "team" not in heard[-1]  # whose rating: not said

    # The KPI recorder heard it all in-process: laowang's figures are counted.
    boss = await logins.sign_in(client, "boss", "admin")
    his = (await (await boss.get("/api/stats")).json())["by_agent"]["laowang"]
    assert (his["handled"], his["transferred"], his["first_responses"]) == (1, 1, 1)
    assert (his["csat_count"], his["csat_average"]) == (1, 5.0)


async def test_metrics_without_a_token_name_no_agent(open_client, logins):
    client = open_client
    await say(client, "pm1", "我要转人工")
    xiaoli = await logins.sign_in(client, "xiaoli")
    await handle(xiaoli, "rest:pm1", end="release")
    resp = await client.get("/metrics")  # open: anyone who can reach it
    assert resp.status == 200
    text = await resp.text()
    assert "kefu_messages_total" in text  # the rest is there
    assert "kefu_agent_" not in text and "xiaoli" not in text


async def test_a_rating_credits_only_the_agent_who_just_handled_the_conversation(
    app_client, logins, key_prefix
):
    client = app_client
    keys, redis = Keys(key_prefix), client.app[REDIS]
    xiaoli = await logins.sign_in(client, "xiaoli")
    # Handled by xiaoli, but in an earlier session: the handoff ended two hours
    # before this session began.
    await say(client, "pe1", "我要转人工")
    await handle(xiaoli, "rest:pe1")
    await redis.hset(keys.handoff_state("rest:pe1"), "since", time.time() - 7200)
    # Taken by the platform's own servicers (WeCom): not one of our agents.
    await say(client, "pe2", "我要转人工")
    await client.app[HANDOFF].hand_elsewhere("rest:pe2", "wk-servicer-1", "微信客服")
    for sender in ("pe1", "pe2"):
        asked = await say(client, sender, "再见")
        assert any("打个分" in (r.get("text") or "") for r in asked), asked
        await say(client, sender, "5")
        record = await client.app[SATISFACTION].get(f"rest:{sender}")
        assert record["rating"] == "5" and "agent" not in record

    boss = await logins.sign_in(client, "boss", "admin")
    body = await (await boss.get("/api/stats")).json()
    assert body["total"]["csat_count"] == 2  # the bot's ratings: counted, for nobody
    assert (body["by_agent"]["xiaoli"]["handled"], body["by_agent"]["xiaoli"]["csat_count"]) == (
        1,
        0,
    )
    assert "wk-servicer-1" not in body["by_agent"]
    assert all(team["csat_count"] == 0 for team in body["by_team"].values())


def test_agent_gauges_sum_a_shared_label_and_fall_to_zero(monkeypatch):
    monkeypatch.setattr(metrics_module, "MAX_AGENT_LABELS", 1)
    registry = CollectorRegistry()
    agents = AgentMetrics(registry)

    def value(name: str, agent: str) -> float | None:
        return registry.get_sample_value(name, {"agent": agent})

    assert agents.label("a") == "a"  # the one label this process gives a name
    agents.now({"a": 1, "b": 2, "c": 3}, {"a": 3, "b": 4, "c": 5})
    assert (value("kefu_agent_load", "a"), value("kefu_agent_load", "other")) == (1.0, 5.0)
    assert value("kefu_agent_capacity", "other") == 9.0  # b's and c's, not whichever came last
    agents.now({"a": 0}, {"a": 3})  # b and c hold nothing now and left the roster
    assert (value("kefu_agent_load", "a"), value("kefu_agent_load", "other")) == (0.0, 0.0)
    assert value("kefu_agent_capacity", "other") == 0.0
