"""The admins' per-agent view: who holds what, how fast each answers and handles, how rated."""

from __future__ import annotations

import csv
import io

import pytest

from bot.app import create_app
from bot.app_keys import STATS
from tests.helpers import Agent, say

BASE = "/console/api/conversations"


@pytest.fixture
async def app_client(aiohttp_client, settings, engine):  # type: ignore[no-untyped-def]
    return await aiohttp_client(create_app(settings, engine), server_kwargs={"port": settings.port})


async def handle(agent: Agent, conversation: str, end: str | None = "close") -> None:
    """Claim, answer twice (the first reply is the first response), then close or release."""
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
    await handle(xiaoli, "rest:pa1")
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
    metrics = await (await client.get("/metrics")).text()
    assert 'kefu_agent_handled_total{agent="xiaoli"} 2.0' in metrics
    assert 'kefu_agent_ratings_total{agent="xiaoli",rating="5"} 1.0' in metrics
    assert 'kefu_agent_first_response_seconds_count{agent="laowang"} 2.0' in metrics
    assert 'kefu_agent_handling_seconds_count{agent="laowang"} 1.0' in metrics
    assert 'kefu_agent_load{agent="laowang"} 1.0' in metrics
    registry = client.app[STATS].metrics.registry
    assert registry.get_sample_value("kefu_agent_load", {"agent": "xiaoli"}) in (None, 0.0)


async def test_the_per_agent_view_is_for_admins(app_client, logins):
    trainer = await logins.sign_in(app_client, "trainer1", "trainer")
    body = await (await trainer.get("/api/stats")).json()
    assert "by_agent" not in body and "by_team" not in body
    resp = await trainer.get("/api/stats.csv?by=agent")
    assert resp.status == 403 and (await resp.json())["error"] == "forbidden"
    boss = await logins.sign_in(app_client, "boss", "admin")
    resp = await boss.get("/api/stats?by=team")
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_by"
