"""Custom actions, run the way rasa_sdk runs them, against a real Redis."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from redis.asyncio import Redis

from actions import ActionDeps, build_actions
from bot.content.knowledge import KnowledgeBase
from bot.content.messages import MAX_REPLY_CHARS, Messages
from bot.feedback.store import FeedbackLog
from bot.orders.demo import RedisDemoOrders
from bot.redis_keys import Keys
from bot.satisfaction.store import SatisfactionStore
from tests.conftest import ROOT
from tests.helpers import handoff_service

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
WEDNESDAY_NOON = dt.datetime(2026, 11, 25, 12, 0, tzinfo=SHANGHAI)
WEDNESDAY_NIGHT = dt.datetime(2026, 11, 25, 23, 30, tzinfo=SHANGHAI)


def tracker(sender: str, text: str, intent: str, history: list[str] = ()) -> Tracker:  # type: ignore[assignment]
    events = [{"event": "session_started"}]
    for name in [*history, intent]:
        events.append({"event": "user", "text": "…", "parse_data": {"intent": {"name": name}}})
    return Tracker(
        sender_id=sender,
        slots={},
        latest_message={"text": text, "intent": {"name": intent, "confidence": 0.97}},
        events=events,
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


@pytest.fixture
async def deps(redis_url, key_prefix):
    redis = Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(key_prefix)
    yield ActionDeps(
        handoff=handoff_service(redis, keys),
        feedback=FeedbackLog(redis, keys),
        knowledge=KnowledgeBase.load(ROOT / "nlu_data" / "knowledge.yml"),
        messages=Messages.load(ROOT / "nlu_data" / "messages.yml"),
        orders=RedisDemoOrders(redis, keys),
        satisfaction=SatisfactionStore(redis, keys),
        clock=lambda: WEDNESDAY_NOON,
    )
    await redis.close()


def action(deps: ActionDeps, name: str):  # type: ignore[no-untyped-def]
    return next(a for a in build_actions(deps) if a.name() == name)


async def run(deps: ActionDeps, name: str, t: Tracker) -> list[str]:
    dispatcher = CollectingDispatcher()
    await action(deps, name).run(dispatcher, t, {})
    return [m["text"] for m in dispatcher.messages]


async def test_request_human_records_the_reason_then_says_a_person_will_answer(deps):
    said = await run(deps, "action_request_human", tracker("c1", "找真人", "request_human"))
    assert len(said) == 2 and "人工" in said[0] and "第1位" in said[1]
    assert await deps.handoff.reasons("c1") == ["request_human"]
    assert (await deps.handoff.details("c1"))["text"] == "找真人"


async def test_after_hours_the_customer_is_told_when_someone_will_reply(deps):
    night = ActionDeps(**{**deps.__dict__, "clock": lambda: WEDNESDAY_NIGHT})
    (said,) = await run(night, "action_request_human", tracker("c2", "人工", "request_human"))
    assert "明天 9:00" in said
    assert await deps.handoff.reasons("c2") == ["request_human"]


async def test_first_insult_gets_a_calm_reply_the_second_a_person(deps):
    first = await run(deps, "action_handle_abuse", tracker("c3", "滚", "abuse"))
    assert len(first) == 1 and await deps.handoff.reasons("c3") == []
    second = await run(
        deps, "action_handle_abuse", tracker("c3", "傻逼", "abuse", ["abuse", "greet"])
    )
    assert len(second) == 3  # the calm line, the handoff, the place in the queue
    assert await deps.handoff.reasons("c3") == ["abuse"]


async def test_two_misunderstood_turns_in_a_row_escalate(deps):
    await run(
        deps,
        "action_handle_fallback",
        tracker("c4", "asdf", "nlu_fallback", ["nlu_fallback", "greet"]),
    )
    assert await deps.handoff.reasons("c4") == []
    await run(
        deps, "action_handle_fallback", tracker("c4", "asdf", "nlu_fallback", ["nlu_fallback"])
    )
    assert await deps.handoff.reasons("c4") == ["low_confidence"]


async def test_complaint_is_kept_in_the_customers_words_and_escalated(deps):
    said = await run(deps, "action_handle_complaint", tracker("c5", "质量太差了", "complaint"))
    assert len(said) == 3
    (entry,) = await deps.feedback.recent()
    assert (entry["kind"], entry["conversation"], entry["text"]) == (
        "complaint",
        "c5",
        "质量太差了",
    )
    assert await deps.handoff.reasons("c5") == ["complaint"]


async def test_knowledge_answers_only_what_the_file_holds(deps):
    (known,) = await run(
        deps, "action_answer_from_knowledge", tracker("c6", "包邮吗", "shipping_policy")
    )
    assert "99" in known
    (unknown,) = await run(
        deps, "action_answer_from_knowledge", tracker("c6", "能发冰岛吗", "shipping_policy")
    )
    assert unknown in deps.messages.variants["not_sure"]


def test_an_entry_past_its_review_age_is_not_used(tmp_path: Path):
    data = yaml.safe_load((ROOT / "nlu_data" / "knowledge.yml").read_text(encoding="utf-8"))
    path = tmp_path / "knowledge.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    kb = KnowledgeBase.load(path, max_age_days=30)
    reviewed = next(e for e in kb.entries if e.id == "free_shipping").reviewed
    assert kb.answer("shipping_policy", "包邮吗", today=reviewed + dt.timedelta(days=30))
    assert kb.answer("shipping_policy", "包邮吗", today=reviewed + dt.timedelta(days=31)) is None


def test_service_hours_follow_the_week_and_holidays():
    hours = KnowledgeBase.load(ROOT / "nlu_data" / "knowledge.yml").hours
    assert hours.is_open(WEDNESDAY_NOON)
    assert not hours.is_open(WEDNESDAY_NIGHT)
    new_year = dt.datetime(2027, 1, 1, 12, 0, tzinfo=SHANGHAI)  # a Friday, but a holiday
    assert not hours.is_open(new_year)
    assert hours.describe_next_open(new_year) == "明天 10:00"  # Saturday hours


def test_every_line_has_two_variations_and_is_short():
    messages = Messages.load(ROOT / "nlu_data" / "messages.yml")
    sample = {
        "hours": "工作日 9:00–21:00，周末 10:00–18:00（法定节假日休息）",
        "next_open": "明天 9:00",
        "order": "尾号4321",
        "status": "运输中，已到达杭州转运中心",
        "updated": "2026-11-25 09:10",
        "place": "12",
        "wait": "约15分钟",
        "first": "改订单或取消订单",
        "second": "问客服上班时间",
    }
    for key, texts in messages.variants.items():
        assert len(texts) >= 2, key
        for text in texts:
            assert len(text.format(**sample)) <= MAX_REPLY_CHARS, (key, text)
    domain = yaml.safe_load((ROOT / "nlu_data" / "domain.yml").read_text(encoding="utf-8"))
    for name, variants in domain["responses"].items():
        assert len(variants) >= 2, name
        assert all(len(v["text"]) <= MAX_REPLY_CHARS for v in variants), name
    knowledge = yaml.safe_load((ROOT / "nlu_data" / "knowledge.yml").read_text(encoding="utf-8"))
    for entry in knowledge["entries"]:
        assert all(len(a) <= MAX_REPLY_CHARS for a in entry["answers"]), entry["id"]
