"""A satisfaction rating is asked once, when a helped customer says goodbye."""

from __future__ import annotations

import pytest

from bot.app_keys import SATISFACTION
from bot.satisfaction.store import parse_rating
from tests.helpers import say, timeline


@pytest.mark.parametrize(
    ("text", "rating"),
    [
        ("5", 5),
        ("4分", 4),
        ("五星", 5),
        ("给3分", 3),
        ("1！", 1),
        ("６", None),
        ("5个快递", None),
        ("不错", None),
    ],
)
def test_parse_rating(text, rating):
    from bot.nlu.normalizer import normalize

    assert parse_rating(normalize(text)) == rating


async def text_of(client, sender: str, message: str) -> str:  # type: ignore[no-untyped-def]
    return "".join(r["text"] for r in await say(client, sender, message))


async def test_helped_customer_is_asked_once_and_the_rating_is_kept(client, admin_headers):
    await say(client, "s1", "满多少包邮")
    bye = await text_of(client, "s1", "好的拜拜")
    assert "1–5" in bye or "1 到 5" in bye
    thanks = await text_of(client, "s1", "5")
    assert "评分" in thanks
    stored = await client.app[SATISFACTION].get("rest:s1")
    assert (stored["status"], stored["rating"], stored["trigger"]) == ("rated", "5", "goodbye")
    inbound = [
        m for m in await timeline(client, "rest:s1", admin_headers) if m["direction"] == "in"
    ]
    assert inbound[-1]["intent"] == "csat_rating"
    # Never asked again in this conversation.
    await say(client, "s1", "能开发票吗")
    again = await text_of(client, "s1", "拜拜")
    assert "1–5" not in again and "1 到 5" not in again


async def test_small_talk_only_is_not_asked(client):
    await say(client, "s2", "你好")
    bye = await text_of(client, "s2", "拜拜")
    assert "1–5" not in bye and "1 到 5" not in bye
    assert await client.app[SATISFACTION].status("rest:s2") is None


async def test_a_non_answer_is_fine_and_ends_the_question(client):
    await say(client, "s3", "我要退货")
    await say(client, "s3", "再见")
    text = await text_of(client, "s3", "能开发票吗")
    assert "评分" not in text  # answered as a question, not taken as a rating
    assert await client.app[SATISFACTION].status("rest:s3") == "declined"
    later = await text_of(client, "s3", "拜拜")
    assert "1–5" not in later and "1 到 5" not in later
