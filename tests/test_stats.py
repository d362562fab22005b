"""KPIs on a synthetic log whose right answers are worked out by hand, and over real HTTP."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from bot.app_keys import CHAT, STATES
from bot.redis_keys import Keys
from bot.stats.kpis import kpis, percentile
from bot.stats.metrics import MAX_SOURCE_LABELS, Metrics
from bot.stats.recorder import MAX_SOURCE_CHARS, MAX_SOURCES, Stats, source_label
from tests.helpers import say

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY1, DAY2 = dt.date(2026, 11, 24), dt.date(2026, 11, 25)


def at(day: dt.date, hour: int, minute: int = 0) -> float:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI).timestamp()


@pytest.fixture
async def stats(redis_url, key_prefix):  # type: ignore[no-untyped-def]
    redis = Redis.from_url(redis_url, decode_responses=True)
    yield Stats(redis, Keys(key_prefix), SHANGHAI, 30, Metrics())
    await redis.close()


async def synthetic_log(stats: Stats) -> None:
    """Two days. Day 1: a, b, c, d write; c and d go to people. Day 2: a again, e (abuse)."""
    messages = [
        ("a", "order_status", "我的快递到哪了"),
        ("a", "order_status", "SF1234567890123"),
        ("a", "nlu_fallback", "瞎说的话"),
        ("b", "greet", "你好"),
        ("b", "nlu_fallback", "瞎说的话"),
        ("c", "request_human", "转人工"),
        ("d", "complaint", "太差了"),
        ("d", "order_status", "订单呢"),
    ]
    for i, (conversation, intent, text) in enumerate(messages):
        ts = at(DAY1, 10, i)
        await stats.inbound(conversation, "webchat" if conversation != "d" else "wechat", ts)
        await stats.classified(intent, text, ts)
    await stats.outbound("webchat", 8, ts=at(DAY1, 11))
    await stats.outbound("wechat", 2, by_agent=True, ts=at(DAY1, 12))
    await stats.escalation("c", "request_human", at(DAY1, 10, 5))
    await stats.escalation("d", "complaint", at(DAY1, 10, 6))
    for seconds in (0.3, 0.1, 0.5, 0.2, 0.4):
        await stats.duration("bot_response", seconds, at(DAY1, 10))
    for name, values in (
        ("queue_wait", (120, 60)),
        ("human_response", (150, 90)),
        ("handling", (300,)),
    ):
        for seconds in values:
            await stats.duration(name, seconds, at(DAY1, 13))
    await stats.rating(5, at(DAY1, 14))
    await stats.rating(4, at(DAY1, 15))
    # Day 2; one message just after midnight Shanghai time (still 24 Nov in UTC).
    await stats.inbound("a", "webchat", at(DAY2, 0, 30))
    await stats.classified("greet", "你好", at(DAY2, 0, 30))
    await stats.inbound("e", "webchat", at(DAY2, 9))
    await stats.classified("abuse", "骂人的话", at(DAY2, 9))
    await stats.escalation("e", "abuse", at(DAY2, 9))


async def test_kpis_on_a_synthetic_log(stats):
    await synthetic_log(stats)
    result = await kpis(stats._redis, stats, DAY1, DAY2)
    day1, day2 = result["days"]
    assert (day1["date"], day2["date"]) == ("2026-11-24", "2026-11-25")
    assert day1["conversations"] == 4 and day1["escalated_conversations"] == 2
    assert day1["automation_rate"] == 0.5 and day1["escalation_rate"] == 0.5
    assert day1["escalations_by_reason"] == {"complaint": 1, "request_human": 1}
    assert (day1["messages_in"], day1["messages_out"]) == (8, 10)
    assert day1["messages_by_channel"] == {
        "webchat:in": 6, "wechat:in": 2, "webchat:out": 8, "wechat:out": 2,
    }  # fmt: skip
    assert day1["fallback_rate"] == 0.25
    assert (day1["bot_response_p50"], day1["bot_response_p90"]) == (0.3, 0.5)
    assert (day1["human_response_p50"], day1["human_response_p90"]) == (90, 150)
    assert (day1["queue_wait_p50"], day1["handling_p50"]) == (60, 300)
    assert (day1["csat_average"], day1["csat_count"]) == (4.5, 2)
    assert day1["top_intents"][0] == {"intent": "order_status", "count": 3}
    assert day1["unrecognized"] == [{"text": "瞎说的话", "count": 2}]

    assert day2["conversations"] == 2 and day2["automation_rate"] == 0.5
    assert day2["fallback_rate"] == 0.0 and day2["csat_average"] is None

    total = result["total"]
    assert total["conversations"] == 5 and total["escalated_conversations"] == 3
    assert total["automation_rate"] == pytest.approx(0.4)
    assert total["escalation_rate"] == pytest.approx(0.6)
    assert total["messages_in"] == 10 and total["fallback_rate"] == 0.2
    assert total["queue_wait_p50"] == 60 and total["csat_count"] == 2


async def test_an_empty_range_has_no_rates(stats):
    result = await kpis(stats._redis, stats, DAY1, DAY1)
    day = result["days"][0]
    assert day["conversations"] == 0
    assert day["automation_rate"] is None and day["fallback_rate"] is None
    assert day["bot_response_p50"] is None and day["csat_average"] is None


def test_percentiles_are_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([3, 1, 2], 50) == 2
    assert percentile([1, 2, 3, 4], 50) == 2
    assert percentile(list(range(1, 11)), 90) == 9


async def test_kpis_and_metrics_over_http(client, sign_in):
    await say(client, "s1", "你好")
    await say(client, "s1", "我要转人工")
    await say(client, "s2", "你好")
    agent = await sign_in("agent1")
    base = "/console/api/conversations/rest:s1"
    assert (await agent.post(f"{base}/claim")).status == 200
    assert (await agent.post(f"{base}/reply", {"text": "您好"})).status == 200
    assert (await agent.post(f"{base}/reply", {"text": "还在吗"})).status == 200
    assert (await agent.post(f"{base}/release")).status == 200
    assert (await client.app[STATES].get("rest:s1")).state == "bot"

    assert (await agent.get("/api/stats")).status == 403  # agents do not see KPIs
    assert (await client.get("/api/stats")).status == 401
    trainer = await sign_in("trainer1", "trainer")
    body = await (await trainer.get("/api/stats")).json()
    assert len(body["days"]) == 30
    today = body["days"][-1]
    assert today["conversations"] == 2 and today["automation_rate"] == 0.5
    assert today["escalations_by_reason"] == {"request_human": 1}
    assert today["queue_wait_p50"] is not None and today["handling_p50"] is not None
    assert today["human_response_p50"] is not None  # once: only the first reply counts
    assert today["bot_response_p50"] is not None and today["messages_in"] == 3
    assert (await trainer.get("/api/stats?from=2026-13-01")).status == 400
    assert (await trainer.get("/api/stats?from=2026-11-02&to=2026-11-01")).status == 400

    metrics = await (await client.get("/metrics")).text()
    assert 'kefu_messages_total{channel="rest",direction="in"} 3.0' in metrics
    assert 'kefu_escalations_total{reason="request_human"} 1.0' in metrics
    assert "kefu_queue_length 0.0" in metrics
    assert "kefu_model_info{version=" in metrics
    assert "kefu_nlu_seconds_count 3.0" in metrics


async def test_kpis_split_by_channel_and_campaign_source(client, sign_in):
    await say(client, "k1", "我要转人工")
    await say(client, "k2", "你好")
    chat = client.app[CHAT]
    # Followers arriving from QR codes, as the WeChat and Weibo channels record them.
    for follower in ("oQR1", "oQR2"):
        await chat.handle_unreadable(
            "wechat", f"wechat:{follower}", "[扫码] spring", "scan_hello", source="spring-sale"
        )
    await chat.handle_unreadable("weibo", "weibo:u9", "[扫码] ad", None, source=" 地铁广告{A}*")
    agent = await sign_in("agent1")
    assert (await agent.post("/console/api/conversations/rest:k1/claim")).status == 200

    trainer = await sign_in("trainer1", "trainer")
    body = await (await trainer.get("/api/stats")).json()
    for figures in (body["total"], body["days"][-1]):
        rest = figures["by_channel"]["rest"]
        assert (rest["conversations"], rest["messages_in"]) == (2, 2)
        assert (rest["escalations"], rest["handoffs"]) == (1, 1)
        assert rest["messages_out"] >= 3  # the bot's replies and "an agent joined"
        wechat = figures["by_channel"]["wechat"]
        assert (wechat["conversations"], wechat["messages_in"], wechat["escalations"]) == (2, 2, 0)
        assert figures["by_channel"]["weibo"]["conversations"] == 1
        assert figures["by_channel"]["wecomkf"] == dict.fromkeys(wechat, 0)
        assert figures["by_source"] == [
            {"source": "spring-sale", "conversations": 2},
            {"source": "地铁广告_A", "conversations": 1},
        ]
    assert body["days"][0]["by_source"] == [] and body["days"][0]["by_channel"]["rest"] == {
        "conversations": 0, "messages_in": 0, "messages_out": 0, "escalations": 0, "handoffs": 0
    }  # fmt: skip

    csv = await (await trainer.get("/api/stats.csv")).text()
    header, *rows = [line.split(",") for line in csv.strip().split("\r\n")]
    today = dict(zip(header, rows[-1], strict=True))
    assert (today["conversations_rest"], today["handoffs_rest"]) == ("2", "1")
    assert today["conversations_wechat"] == "2" and today["escalations_rest"] == "1"
    assert today["conversations_source_spring-sale"] == "2"
    assert today["conversations_source_地铁广告_A"] == "1"

    metrics = await (await client.get("/metrics")).text()
    assert 'kefu_conversations_total{channel="rest"} 2.0' in metrics
    assert 'kefu_conversations_total{channel="wechat"} 2.0' in metrics
    assert 'kefu_channel_escalations_total{channel="rest"} 1.0' in metrics
    assert 'kefu_handoffs_total{channel="rest",to="console"} 1.0' in metrics
    assert 'kefu_campaign_arrivals_total{source="spring-sale"} 2.0' in metrics

    page = await (await trainer.get("/stats")).text()
    script = await (await trainer.get("/stats/static/stats.js")).text()
    assert 'id="channels"' in page and 'id="sources"' in page
    assert "by_channel" in script and "by_source" in script


async def test_campaign_sources_cannot_make_keys_or_series_without_bound(stats, redis_url):
    assert source_label("   ") is None and source_label("a:b{c}*?") == "a_b_c"
    assert len(source_label("x" * 1000) or "") == MAX_SOURCE_CHARS
    ts = at(DAY1, 9)
    labels = [
        await stats.sourced(f"wechat:o{i}", f"qr-{i}-" + "长" * 200, ts)
        for i in range(MAX_SOURCES + 30)
    ]
    assert len(set(labels)) == MAX_SOURCES + 1 and labels[-1] == "other"
    assert all(label and len(label) <= MAX_SOURCE_CHARS for label in labels)
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        match = stats.source_key(DAY1.isoformat(), "*")
        keys = [k async for k in redis.scan_iter(match=match)]
    finally:
        await redis.close()
    assert len(keys) == MAX_SOURCES + 1
    metrics = Metrics()
    assert len({metrics.source(f"s{i}") for i in range(100)}) == MAX_SOURCE_LABELS + 1
    assert metrics.source("s0") == "s0" and metrics.source("s99") == "other"
