"""The trained model gets canonical customer messages right."""

from __future__ import annotations

import json

import pytest

CANONICAL = [
    ("你好", "greet"),
    ("拜拜", "goodbye"),
    ("谢谢你", "thank"),
    ("是的", "affirm"),
    ("不用了", "deny"),
    ("你是机器人吗", "ask_is_bot"),
    ("你叫什么名字", "chitchat"),
    ("转人工", "request_human"),
    ("我的快递到哪了", "order_status"),
    ("包邮吗", "shipping_policy"),
    ("我想改一下收货地址", "modify_order"),
    ("我要退货", "return_refund"),
    ("云朵羽绒服有L码吗", "product_inquiry"),
    ("有优惠券吗", "promotion"),
    ("付款失败了", "payment_issue"),
    ("能开发票吗", "invoice"),
    ("忘记密码了", "account_issue"),
    ("我有多少积分", "membership_points"),
    ("客服几点上班", "business_hours"),
    ("质量太差了，我要投诉", "complaint"),
    ("非常满意，好评", "praise"),
    ("建议你们出个大码", "suggestion"),
    ("你支持哪个政党", "sensitive_topic"),
    ("你是傻逼吗", "abuse"),
    ("今天天气怎么样", "out_of_scope"),
    # The way customers actually type it.
    ("訂單怎麼還沒到？？？", "order_status"),
    ("ＳＦ１２３４５６７８９０１２３到哪了", "order_status"),
    ("你是真人嗎", "ask_is_bot"),
    ("好评👍👍", "praise"),
    # Slang, pinyin initials, near misses.
    ("yyds", "praise"),
    ("rg", "request_human"),
    ("你们家和隔壁那家比谁更便宜", "out_of_scope"),
]


@pytest.mark.parametrize(("text", "intent"), CANONICAL)
def test_canonical_message(engine, text, intent):
    parsed = engine.parse(text)
    assert parsed["intent"]["name"] == intent, parsed.get("intent_ranking", [])[:3]


def test_entities_come_out_canonical(engine):
    parsed = engine.parse("小方杯能装热水吗，订单ＳＦ１２３４５６７８９０１２３，电话13812345678")
    found = {(e["entity"], e["value"]) for e in parsed["entities"]}
    assert ("product", "小方保温杯") in found  # synonym mapped to the catalogue name
    assert ("order_id", "SF1234567890123") in found  # full-width normalised
    assert ("phone_number", "13812345678") in found


def test_comparing_prices_with_another_shop_is_never_praise(engine):
    """It was once read as praise and got "收到你的夸奖", filing a false praise record."""
    parsed = engine.parse("你们家和隔壁那家比谁更便宜")
    assert parsed["intent"]["name"] != "praise"
    assert all(r["name"] != "praise" or r["confidence"] < 0.05 for r in parsed["intent_ranking"])


async def test_a_text_seen_recently_is_not_parsed_again_and_each_caller_gets_its_own_copy(
    engine,
):
    text = "我的快递到哪了呀亲"
    misses, hits = engine.parses.misses, engine.parses.hits
    first = await engine.understand(text)
    assert (engine.parses.misses, engine.parses.hits) == (misses + 1, hits)
    first["intent"]["name"] = "changed by the first caller"
    again = await engine.understand(text)  # the same words again (whoever wrote them)
    assert engine.parses.hits == hits + 1
    fresh = json.loads(json.dumps(engine.parse(text)))  # token spans as lists
    assert again == fresh and again["intent"]["name"] == "order_status"
    # Long texts are hardly ever repeated: parsed every time, not kept.
    long_text = "你好，" * 30 + "我的快递到哪了"
    await engine.understand(long_text)
    await engine.understand(long_text)
    assert engine.parses.misses == misses + 3
