"""A Chinese message in, a Chinese reply out, both sides in the conversation log."""

from __future__ import annotations

from bot.app_keys import ACTION_SERVER, REDIS, SETTINGS
from bot.redis_keys import Keys
from tests.helpers import has_chinese, say, timeline


async def test_rest_webhook_answers_chinese_and_logs_both_sides(client, admin_headers, engine):
    replies = await say(client, "u1", "你好")
    assert len(replies) >= 1
    assert replies[0]["recipient_id"] == "u1"
    assert has_chinese(replies[0]["text"])

    messages = await timeline(client, "rest:u1", admin_headers)
    assert [m["direction"] for m in messages] == ["in", "out"]
    inbound, outbound = messages
    assert inbound["text"] == "你好"
    assert inbound["channel"] == "rest"
    assert inbound["intent"] == "greet"
    assert 0 < inbound["confidence"] <= 1
    assert inbound["model"] == engine.version
    assert outbound["text"] == replies[0]["text"]
    assert outbound["action"] == "utter_greet"
    assert outbound["model"] == engine.version
    assert outbound["ts"] >= inbound["ts"]


async def test_greeting_says_it_is_an_automated_assistant(client):
    replies = await say(client, "honest-1", "你好呀")
    text = "".join(r["text"] for r in replies)
    assert "机器人" in text or "自动" in text or "智能" in text


async def test_conversation_list_is_latest_first_and_paginated(client, admin_headers):
    for sender in ("a", "b", "c"):
        await say(client, sender, "谢谢")
    resp = await client.get("/api/conversations?limit=2", headers=admin_headers)
    assert resp.status == 200
    page = await resp.json()
    assert [c["id"] for c in page["conversations"]] == ["rest:c", "rest:b"]
    assert page["total"] == 3
    assert page["next_offset"] == 2
    first = page["conversations"][0]
    assert first["channel"] == "rest"
    assert first["messages"] == 2
    resp = await client.get("/api/conversations?limit=2&offset=2", headers=admin_headers)
    page = await resp.json()
    assert [c["id"] for c in page["conversations"]] == ["rest:a"]
    assert page["next_offset"] is None


async def test_order_status_is_never_invented(client, admin_headers):
    replies = await say(client, "o1", "我的快递到哪了")
    text = "".join(r["text"] for r in replies)
    assert "订单号" in text  # it asks; it does not guess
    for claim in ("已发货", "已签收", "运输中", "派送中"):
        assert claim not in text
    inbound = (await timeline(client, "rest:o1", admin_headers))[0]
    assert inbound["intent"] == "order_status"


async def test_order_number_is_extracted_as_entity(client, admin_headers):
    await say(client, "o2", "订单号202611250009876543帮我查一下")
    inbound = (await timeline(client, "rest:o2", admin_headers))[0]
    values = [(e["entity"], e["value"]) for e in inbound["entities"]]
    assert ("order_id", "202611250009876543") in values


async def test_request_for_a_person_is_recorded_and_answered_honestly(client, admin_headers):
    replies = await say(client, "h1", "我要转人工客服")
    text = "".join(r["text"] for r in replies)
    assert "人工" in text
    redis = client.app[REDIS]
    keys = Keys(client.app[SETTINGS].key_prefix)
    assert await redis.zscore(keys.handoff_waiting, "rest:h1") is not None  # in the queue
    details = await redis.hgetall(keys.handoff("rest:h1"))
    assert details["reason"] == "request_human"
    assert details["text"] == "我要转人工客服"
    outbound = (await timeline(client, "rest:h1", admin_headers))[1]
    assert outbound["action"] == "action_request_human"
    assert outbound["response"] in ("handoff_in_hours", "handoff_after_hours")
    assert outbound["error"] is False


async def test_failing_action_keeps_the_message_and_apologises(client, admin_headers):
    async def broken(dispatcher, tracker, domain):  # type: ignore[no-untyped-def]
        raise RuntimeError("order system exploded")

    executor = client.app[ACTION_SERVER].executor
    assert executor is not None
    executor.register_function("action_request_human", broken)

    replies = await say(client, "f1", "转人工")
    assert len(replies) == 1
    assert "出了点" in replies[0]["text"]
    # Nothing was recorded, so nothing may claim a person is coming.
    assert "转人工客服了" not in replies[0]["text"] and "排队" not in replies[0]["text"]

    messages = await timeline(client, "rest:f1", admin_headers)
    assert [m["direction"] for m in messages] == ["in", "out"]
    assert messages[0]["text"] == "转人工"
    assert messages[0]["intent"] == "request_human"
    assert messages[1]["error"] is True
    assert messages[1]["action"] == "action_request_human"


async def test_out_of_scope_is_declined_honestly(client, admin_headers):
    replies = await say(client, "s1", "明天北京会下雨吗")
    assert has_chinese(replies[0]["text"])
    inbound = (await timeline(client, "rest:s1", admin_headers))[0]
    assert inbound["intent"] in ("out_of_scope", "nlu_fallback")


async def test_actions_also_run_over_http_through_the_action_route(
    aiohttp_client, settings, engine
):
    from bot.app import create_app

    over_http = settings.with_(action_url=f"http://127.0.0.1:{settings.port}/webhooks/actions")
    client = await aiohttp_client(
        create_app(over_http, engine), server_kwargs={"port": over_http.port}
    )
    text = "".join(r["text"] for r in await say(client, "via-http", "转人工"))
    assert "人工" in text
    keys = Keys(over_http.key_prefix)
    assert await client.app[REDIS].lrange(keys.handoff_reasons("rest:via-http"), 0, -1) == [
        "request_human"
    ]
