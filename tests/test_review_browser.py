"""The review and stats pages in real headless Chromium, as a trainer uses them."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from bot.app import create_app
from bot.app_keys import ACCOUNTS, CONVERSATION_LOG, MODEL
from bot.retrain import registry
from tests.conftest import needs_chromium
from tests.helpers import PASSWORD
from tests.test_review import MISUNDERSTOOD, copy_project

pytestmark = needs_chromium


@pytest.fixture
async def server(aiohttp_server, settings, engine, tmp_path, model_path):  # type: ignore[no-untyped-def]
    project = copy_project(tmp_path / "project", model_path)
    registry.write(project / "models", project / "models" / model_path.name, None)
    own = settings.with_(data_root=project, model_dir=project / "models")
    app = create_app(own, engine)
    server = await aiohttp_server(app, port=own.port)
    await app[ACCOUNTS].add("trainer1", PASSWORD, "trainer")
    await app[ACCOUNTS].add("agent1", PASSWORD, "agent")
    await app[ACCOUNTS].add("boss", PASSWORD, "admin")
    server.project = project
    return server


async def sign_in(page, username: str) -> None:  # type: ignore[no-untyped-def]
    await page.wait_for_selector("#login-form")
    await page.fill("#login-user", username)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-form button")


async def test_pages_refuse_without_sign_in_and_to_agents(browser, server):
    base = f"http://127.0.0.1:{server.port}"
    for path in ("/review", "/stats"):
        page = await (await browser.new_context()).new_page()
        await page.goto(base + path)
        await page.wait_for_selector("#login-form")
        assert await page.locator("#app").is_hidden()
        await sign_in(page, "agent1")
        await page.wait_for_selector("#login-error:has-text('trainer')")
        assert await page.locator("#app").is_hidden()


async def test_trainer_relabels_from_the_review_page_and_reads_the_kpis(browser, server, artifacts):
    base = f"http://127.0.0.1:{server.port}"
    client_messages = [
        ("k1", MISUNDERSTOOD),
        ("k2", "你好"),
        ("k3", "我要转人工"),
        ("k4", "<b>粗体</b>"),
    ]
    for sender, text in client_messages:
        await say_over(server, sender, text)
    page = await (await browser.new_context()).new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(base + "/review")
    await sign_in(page, "trainer1")
    row = page.locator(".row", has_text=MISUNDERSTOOD)
    await row.wait_for()
    assert "nlu_fallback" in await row.inner_text()
    await row.locator("select.label-intent").select_option("order_status")
    await row.locator("button.label-save").click()
    await row.locator(".done:has-text('orders.yml')").wait_for()
    await page.screenshot(path=str(artifacts / "review.png"))
    orders = (server.project / "nlu_data/nlu/orders.yml").read_text(encoding="utf-8")
    assert f"      - {MISUNDERSTOOD}\n" in orders

    # Search by words; markup in a customer's message stays text.
    await page.click("button[data-tab=search]")
    await page.fill("#f-q", "粗体")
    await page.click("#filters button[type=submit]")
    found = page.locator(".row__text", has_text="粗体")
    await found.wait_for()
    assert await found.inner_text() == "<b>粗体</b>"
    assert await page.locator(".results b").count() == 0

    await page.goto(base + "/stats")
    await page.locator(".card", has_text="会话").first.wait_for()
    cards = await page.locator(".card").all_inner_texts()
    conversations = next(c for c in cards if c.startswith("会话"))
    assert conversations.split()[-1] == "4"
    assert any(c.startswith("自动化率") and "75.0%" in c for c in cards)
    assert "客户要求" in await page.locator("#reasons").inner_text()
    await page.screenshot(path=str(artifacts / "stats.png"), full_page=True)
    assert dialogs == [] and errors == []


async def say_over(server, sender: str, text: str) -> None:  # type: ignore[no-untyped-def]
    async with aiohttp.ClientSession() as session:
        resp = await session.post(
            f"http://127.0.0.1:{server.port}/webhooks/rest/webhook",
            json={"sender": sender, "message": text},
        )
        assert resp.status == 200


async def test_admin_retrains_from_the_page_and_the_bot_understands_without_restart(
    browser, server, artifacts
):
    """The whole loop in the browser: find, relabel, retrain, and the bot has learnt it."""
    base = f"http://127.0.0.1:{server.port}"
    await say_over(server, "loop-1", MISUNDERSTOOD)
    page = await (await browser.new_context()).new_page()
    await page.goto(base + "/review")
    await sign_in(page, "boss")
    row = page.locator(".row", has_text=MISUNDERSTOOD)
    await row.locator("select.label-intent").select_option("order_status")
    await row.locator("button.label-save").click()
    await row.locator(".done").wait_for()

    before = server.app[MODEL].engine.version
    await page.click("button[data-tab=model]")
    await page.click("#retrain")
    await page.locator("#retrain-state", has_text="新模型已上线").wait_for(timeout=240_000)
    assert "promoted" in await page.locator("#retrain-log").inner_text()
    assert await page.locator("#retrain-bar").get_attribute("value") == "100"
    assert "100%" in await page.locator("#retrain-step").inner_text()
    await page.screenshot(path=str(artifacts / "review-retrained.png"))
    for _ in range(100):
        if server.app[MODEL].engine.version != before:
            break
        await asyncio.sleep(0.1)
    assert server.app[MODEL].engine.version != before

    await say_over(server, "loop-2", MISUNDERSTOOD)
    (entry,) = [
        e
        for e in await server.app[CONVERSATION_LOG].timeline("rest:loop-2")
        if e["direction"] == "in"
    ]
    assert entry["intent"] == "order_status"
