"""Asking which of two readings the customer meant, resolved on the server.

The unit tests pin the rules (what can be offered, what picks an option); the
end-to-end tests run the real model through the REST channel. The web chat's
buttons are driven in a real browser in tests/test_webchat_browser.py, WeChat's
numbered replies in tests/test_wechat.py.
"""

from __future__ import annotations

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from redis.asyncio import Redis

from actions.clarification import ActionHandleFallback
from actions.escalation import Escalator
from bot.app_keys import CLARIFICATIONS, CONVERSATION_LOG
from bot.content.knowledge import KnowledgeBase
from bot.content.messages import Messages
from bot.nlu.clarification import (
    ClarificationStore,
    Option,
    load_readings,
    match_choice,
    readings_to_offer,
)
from bot.redis_keys import Keys
from tests.conftest import ROOT
from tests.helpers import handoff_service, say

READINGS = load_readings(ROOT / "nlu_data" / "clarification.yml")
OPTIONS = [
    Option("return_refund", READINGS["return_refund"]),
    Option("order_status", READINGS["order_status"]),
]
# A return and a coupon at once: the model hesitates between the two readings.
AMBIGUOUS = "退的优惠券"


def ranking(*pairs: tuple[str, float]) -> list[dict[str, object]]:
    return [{"name": n, "confidence": c} for n, c in pairs]


def test_two_readings_are_offered_only_when_both_can_be_named():
    both = ranking(("nlu_fallback", 0.4), ("return_refund", 0.38), ("order_status", 0.35))
    assert [o.intent for o in readings_to_offer(both, READINGS)] == [
        "return_refund",
        "order_status",
    ]
    # An insult or a refusal is never offered as a reading.
    assert readings_to_offer(ranking(("abuse", 0.4), ("complaint", 0.39)), READINGS) == []
    # A runner-up far behind is not a reading worth asking about.
    assert readings_to_offer(ranking(("praise", 0.35), ("complaint", 0.02)), READINGS) == []


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("1", "return_refund"),
        ("2", "order_status"),
        ("２", "order_status"),
        ("第一个", "return_refund"),
        ("选2", "order_status"),
        ("退货退款", "return_refund"),
        (" 查订单物流。", "order_status"),
    ],
)
def test_a_reply_picks_an_option_by_number_or_label(text, intent):
    assert (match_choice(text, OPTIONS) or Option("", "")).intent == intent


@pytest.mark.parametrize(
    "text", ["3", "/order_status", "order_status", "退货退款和查订单物流", "好的"]
)
def test_anything_else_picks_nothing(text):
    assert match_choice(text, OPTIONS) is None


def fallback_tracker(sender: str, channel: str) -> Tracker:
    latest = {
        "text": AMBIGUOUS,
        "intent": {"name": "nlu_fallback", "confidence": 0.4},
        "intent_ranking": ranking(
            ("nlu_fallback", 0.4), ("return_refund", 0.38), ("order_status", 0.35)
        ),
        "entities": [],
        "message_id": "1700000000000-0",
    }
    return Tracker(
        sender_id=sender,
        slots={},
        latest_message=latest,
        events=[
            {"event": "session_started"},
            {"event": "user", "text": AMBIGUOUS, "parse_data": latest, "input_channel": channel},
        ],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


@pytest.fixture
async def store(redis_url, key_prefix):  # type: ignore[no-untyped-def]
    redis = Redis.from_url(redis_url, decode_responses=True)
    yield ClarificationStore(redis, Keys(key_prefix))
    await redis.close()


@pytest.fixture
def action(redis_url, key_prefix, store):  # type: ignore[no-untyped-def]
    redis = Redis.from_url(redis_url, decode_responses=True)
    escalator = Escalator(
        handoff_service(redis, Keys(key_prefix)),
        KnowledgeBase.load(ROOT / "nlu_data" / "knowledge.yml").hours,
        Messages.load(ROOT / "nlu_data" / "messages.yml"),
    )
    return ActionHandleFallback(escalator, store, READINGS)


@pytest.mark.parametrize("channel", ["webchat", "wechat", "rest"])
async def test_the_question_names_both_readings_in_each_channel_and_is_remembered(
    action, store, channel
):
    dispatcher = CollectingDispatcher()
    await action.run(dispatcher, fallback_tracker(f"c-{channel}", channel), {})
    (said,) = dispatcher.messages
    assert "退货退款" in said["text"] and "查订单物流" in said["text"]
    if channel == "webchat":
        # Buttons carry their label as text: no `/intent` a customer could forge.
        assert [b["payload"] for b in said["buttons"]] == ["退货退款", "查订单物流"]
    else:
        assert not said.get("buttons")
    if channel == "wechat":
        assert "1" in said["text"] and "2" in said["text"]
    pending = await store.take(f"c-{channel}")
    assert pending is not None
    assert (pending.text, pending.entry) == (AMBIGUOUS, "1700000000000-0")
    assert [o.intent for o in pending.options] == ["return_refund", "order_status"]


async def test_a_numbered_reply_answers_the_original_question_and_is_kept_as_a_label(client):
    store = client.app[CLARIFICATIONS]
    await store.ask("rest:u-pick", OPTIONS, "七天无理由能退吗", [], "1700000000000-0")
    reply = await say(client, "u-pick", "1")
    texts = " ".join(r["text"] for r in reply)
    assert "7 天" in texts or "7天" in texts  # the return policy, from the knowledge file
    (confirmed,) = await store.confirmed()
    assert (confirmed["intent"], confirmed["text"], confirmed["entry"]) == (
        "return_refund",
        "七天无理由能退吗",
        "1700000000000-0",
    )
    # The question is closed: "1" again is just a message.
    assert await store.take("rest:u-pick") is None


async def test_a_reply_that_picks_nothing_is_understood_as_a_new_message(client):
    store = client.app[CLARIFICATIONS]
    await store.ask("rest:u-other", OPTIONS, "七天无理由能退吗", [], "1700000000000-0")
    reply = await say(client, "u-other", "你是机器人吗")
    assert any("机器人" in r["text"] for r in reply)
    assert await store.confirmed() == []


async def test_an_ambiguous_message_gets_the_question_and_a_label_answers_it(client, sign_in):
    asked = await say(client, "u-real", AMBIGUOUS)
    (question,) = asked
    assert "退货退款" in question["text"] and "问优惠活动" in question["text"]
    answer = await say(client, "u-real", "问优惠活动")
    assert answer and all("你是想" not in r["text"] for r in answer)
    (confirmed,) = await client.app[CLARIFICATIONS].confirmed()
    assert (confirmed["intent"], confirmed["text"]) == ("promotion", AMBIGUOUS)
    # Trainers find it on the review API, pointing at the original message.
    trainer = await sign_in("trainer-c", "trainer")
    listed = (await (await trainer.get("/review/api/confirmed")).json())["confirmed"]
    assert [(c["conversation"], c["intent"]) for c in listed] == [("rest:u-real", "promotion")]
    (original, _answer) = [
        e
        for e in await client.app[CONVERSATION_LOG].timeline("rest:u-real")
        if e["direction"] == "in"
    ]
    assert listed[0]["entry"] == original["id"] and original["text"] == AMBIGUOUS


async def test_slash_text_is_read_as_text_not_as_an_intent_command(client):
    # Rasa would run "/affirm" as the intent affirm with confidence 1.0, with entities.
    for n, text in enumerate(("/affirm", '/request_human{"x": 1}', "/restart")):
        assert await say(client, f"u-slash{n}", text)
        (entry,) = [
            e
            for e in await client.app[CONVERSATION_LOG].timeline(f"rest:u-slash{n}")
            if e["direction"] == "in"
        ]
        assert entry["confidence"] < 1.0 and not entry.get("entities")
