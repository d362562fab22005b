"""Order facts come only from the order system; changes go to a person."""

from __future__ import annotations

import asyncio
import datetime as dt

import aiohttp
import pytest
from aiohttp import web

from bot.app import create_app
from bot.app_keys import ORDERS, REDIS, SETTINGS
from bot.handoff.requests import HandoffRequests
from bot.orders.backend import Order, OrderBackendError, OrderNotFound, mask_phone
from bot.orders.demo import RedisDemoOrders
from bot.orders.http import HttpOrderBackend
from bot.redis_keys import Keys
from tests.helpers import say

NOON = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
TOKEN = "order-system-token"


@pytest.fixture
async def bot(aiohttp_client, settings, engine):  # type: ignore[no-untyped-def]
    client = await aiohttp_client(
        create_app(settings, engine, clock=lambda: NOON), server_kwargs={"port": settings.port}
    )
    await client.app[ORDERS].seed()  # type: ignore[attr-defined]
    return client


async def text_of(client, sender: str, message: str) -> str:  # type: ignore[no-untyped-def]
    return "".join(r["text"] for r in await say(client, sender, message))


def reasons(client, sender: str):  # type: ignore[no-untyped-def]
    return HandoffRequests(client.app[REDIS], Keys(client.app[SETTINGS].key_prefix)).reasons(sender)


async def test_status_of_a_known_order_is_told_masked(bot):
    text = await text_of(bot, "o1", "订单202611240007654321到哪了")
    assert "运输中" in text and "尾号4321" in text
    assert "202611240007654321" not in text


async def test_the_order_number_is_asked_for_when_missing(bot):
    ask = await text_of(bot, "o2", "我的快递到哪了")
    assert "订单号" in ask
    text = await text_of(bot, "o2", "２０２６１１２００００１２３４５６７")  # full-width, as typed
    assert "已签收" in text and "尾号4567" in text


async def test_a_tracking_number_works_too(bot):
    text = await text_of(bot, "o3", "帮我查下SF1234567890123")
    assert "运输中" in text


async def test_wrong_formats_are_explained_and_the_third_brings_a_person(bot):
    await say(bot, "o4", "查一下我的订单")
    first = await text_of(bot, "o4", "abc")
    assert "不像订单号" in first or "不是订单号" in first
    await say(bot, "o4", "12345")
    assert await reasons(bot, "rest:o4") == []
    last = await text_of(bot, "o4", "好的吧")
    assert "客服" in last
    assert await reasons(bot, "rest:o4") == ["order_id_invalid"]


async def test_unknown_order_is_said_plainly_with_a_person_offered(bot):
    text = await text_of(bot, "o5", "订单999999999999到哪了")
    assert "没" in text and "人工" in text
    for status in ("已签收", "运输中", "待发货", "已取消"):
        assert status not in text


async def test_asking_for_a_person_ends_the_order_form(bot):
    await say(bot, "o6", "我的订单到哪了")
    text = await text_of(bot, "o6", "转人工")
    assert "人工" in text
    assert await reasons(bot, "rest:o6") == ["request_human"]
    # The form is over: a greeting is a greeting again, not a wrong order number.
    assert "订单号" not in await text_of(bot, "o6", "你好")


async def test_changing_an_order_is_recorded_and_handed_to_a_person(bot):
    text = await text_of(bot, "o7", "我想取消订单202611250001112223")
    assert "尾号2223" in text and "客服" in text
    assert await reasons(bot, "rest:o7") == ["order_change"]
    details = await HandoffRequests(bot.app[REDIS], Keys(bot.app[SETTINGS].key_prefix)).details(
        "rest:o7"
    )
    assert "202611250001112223" in details["text"] and "取消" in details["text"]


# --- the HTTP backend against a local order system --------------------------------------------


@pytest.fixture
async def order_system(aiohttp_server):  # type: ignore[no-untyped-def]
    """A local order system that answers, does not know, fails, or hangs."""

    async def get_order(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "unauthorised"}, status=401)
        order_id = request.match_info["order_id"]
        if order_id == "202611240000000001":
            return web.json_response(
                {
                    "order_id": order_id,
                    "status": "shipped",
                    "status_text": "已发货",
                    "updated_at": "2026-11-25T10:00:00+08:00",
                    "carrier": "中通快递",
                }
            )
        if order_id == "202611240000000002":
            return web.json_response({"error": "internal"}, status=500)
        if order_id == "202611240000000003":
            await asyncio.sleep(10)
        if order_id == "202611240000000004":
            return web.Response(text="<html>gateway</html>", content_type="text/html")
        return web.json_response({"error": "not found"}, status=404)

    app = web.Application()
    app.router.add_get("/orders/{order_id}", get_order)
    return await aiohttp_server(app)


async def test_http_backend_reads_answers_and_maps_failures(order_system):
    base = str(order_system.make_url(""))
    async with aiohttp.ClientSession() as session:
        backend = HttpOrderBackend(session, base, TOKEN, timeout=0.5)
        order = await backend.get_order("202611240000000001")
        assert order == Order(
            "202611240000000001", "shipped", "已发货", "2026-11-25T10:00:00+08:00", "中通快递"
        )
        with pytest.raises(OrderNotFound):
            await backend.get_order("202611249999999999")
        for failing in ("202611240000000002", "202611240000000003", "202611240000000004"):
            with pytest.raises(OrderBackendError):
                await backend.get_order(failing)
        wrong_token = HttpOrderBackend(session, base, "nope", timeout=0.5)
        with pytest.raises(OrderBackendError):
            await wrong_token.get_order("202611240000000001")


@pytest.mark.parametrize(
    ("order_id", "expect", "never"),
    [
        ("202611240000000001", "已发货", ()),
        ("202611249999999999", "没", ("已发货",)),
        ("202611240000000002", "查不了", ("已发货",)),  # the order system fails
        ("202611240000000003", "查不了", ("已发货",)),  # the order system hangs
    ],
)
async def test_bot_with_http_backend_never_invents_a_status(
    aiohttp_client, settings, engine, order_system, order_id, expect, never
):
    own = settings.with_(
        order_backend="http",
        order_api_url=str(order_system.make_url("")),
        order_api_token=TOKEN,
        order_api_timeout=0.5,
    )
    client = await aiohttp_client(
        create_app(own, engine, clock=lambda: NOON), server_kwargs={"port": own.port}
    )
    text = await text_of(client, "http", f"订单{order_id}到哪了")
    assert expect in text or "连不上" in text if expect == "查不了" else expect in text
    for status in never:
        assert status not in text


def test_masking():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+86 139 1234 5678") == "139****5678"


async def test_demo_backend_finds_orders_by_tracking_number(redis_url, key_prefix):
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url, decode_responses=True)
    demo = RedisDemoOrders(redis, Keys(key_prefix))
    assert await demo.seed() == 4
    assert (await demo.get_order("ZTO12345678901234")).order_id == "202611200001234567"
    with pytest.raises(OrderNotFound):
        await demo.get_order("202611259999999999")
    await redis.close()


def test_order_number_formats_match_the_nlu_regexes():
    import yaml

    from bot.orders.backend import ORDER_NUMBER, TRACKING_NUMBER
    from tests.conftest import ROOT

    data = yaml.safe_load((ROOT / "nlu_data" / "nlu" / "entities.yml").read_text(encoding="utf-8"))
    (regex,) = [r for r in data["nlu"] if r.get("regex") == "order_id"]
    patterns = [line[2:] for line in regex["examples"].strip().splitlines()]
    assert patterns == [ORDER_NUMBER, TRACKING_NUMBER]
