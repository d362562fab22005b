"""The whole handoff round trip in real headless Chromium: a customer and an agent, side by side.

The customer writes in the web chat and asks for a person; an agent signs in to
`/console`, claims the conversation, replies; the customer sees the reply at
once; the agent releases it and the bot answers the customer's next message.
Screenshots of the console go to test-artifacts/.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from bot.app import create_app
from bot.app_keys import ACCOUNTS, STATES
from tests.conftest import needs_chromium
from tests.helpers import PASSWORD

pytestmark = needs_chromium

NOON = dt.datetime(2026, 11, 25, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
XSS = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


@pytest.fixture
async def server(aiohttp_server, settings, engine):  # type: ignore[no-untyped-def]
    app = create_app(settings, engine, clock=lambda: NOON)
    server = await aiohttp_server(app, port=settings.port)
    await app[ACCOUNTS].add("xiaowang", PASSWORD, "agent")
    return server


async def test_customer_asks_for_a_person_agent_answers_then_the_bot_takes_over(
    browser, server, artifacts
):
    base = f"http://127.0.0.1:{server.port}"
    dialogs: list[str] = []
    customer = await (await browser.new_context()).new_page()
    agent = await (await browser.new_context()).new_page()  # its own cookies, as another person
    errors: list[str] = []
    for page in (customer, agent):
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: errors.append(str(e)))

    # The customer asks for a person and is told their place in the queue.
    await customer.goto(base + "/")
    await customer.wait_for_selector(".msg--out")
    await customer.fill("#input", "我要转人工")
    await customer.press("#input", "Enter")
    # Locator waits: the page's CSP forbids the eval a string wait_for_function needs.
    await customer.locator(".msg--out").nth(2).wait_for()
    assert "第1位" in (await customer.locator(".msg--out").all_inner_texts())[-1]
    assert await customer.locator("#handoff").is_visible()

    # The console refuses to show anything before sign-in.
    await agent.goto(base + "/console")
    await agent.wait_for_selector("#login-form")
    assert await agent.locator("#app").is_hidden()
    await agent.fill("#login-user", "xiaowang")
    await agent.fill("#login-password", "wrong password")
    await agent.click("#login-form button")
    await agent.wait_for_selector("#login-error:has-text('Wrong')")
    await agent.fill("#login-password", PASSWORD)
    await agent.click("#login-form button")
    await agent.wait_for_selector("#live.live--on")
    await agent.wait_for_selector("#queue .item")
    conversation = await agent.locator("#queue .item").first.get_attribute("data-conversation")
    assert conversation and conversation.startswith("webchat:")
    assert "客户要求人工" in await agent.locator("#queue .item").first.inner_text()
    await agent.screenshot(path=str(artifacts / "console-queue.png"))

    # Claim: the customer is told a person has joined.
    await agent.locator("#queue .item").first.click()
    await agent.wait_for_selector("#claim:visible")
    await agent.click("#claim")
    await agent.wait_for_selector("#mine .item")
    assert await agent.locator("#queue .item").count() == 0
    await customer.wait_for_selector(".msg--out:has-text('接入')")

    # While people have it, the bot says nothing; the agent sees the message live, with its intent.
    outs = await customer.locator(".msg--out").count()
    await customer.fill("#input", "我的快递到哪了")
    await customer.press("#input", "Enter")
    await agent.wait_for_selector(".msg--customer:has-text('我的快递到哪了') .intent")
    assert "order_status" in await agent.locator(".msg--customer .intent").last.inner_text()
    assert await customer.locator(".msg--out").count() == outs

    # The agent replies; the customer sees it at once, marked as a person's reply.
    await agent.fill("#reply-text", "您好，我是客服小王，我帮您查一下物流。")
    await agent.press("#reply-text", "Enter")
    await customer.wait_for_selector(".msg--agent:has-text('客服小王')")
    assert "人工客服" in await customer.locator(".msg--agent").last.inner_text()

    # Markup from the customer is shown as text in the console and runs nothing.
    await customer.fill("#input", XSS)
    await customer.press("#input", "Enter")
    shown = agent.locator(".msg--customer .msg__text").filter(has_text="onerror")
    await shown.wait_for()  # (a locator: the console's CSP rightly forbids evaluated strings)
    assert await shown.text_content() == XSS
    assert await agent.locator("#transcript img, #transcript script").count() == 0

    # An internal note, never shown to the customer.
    await agent.fill("#note-text", "老客户，物流已催")
    await agent.press("#note-text", "Enter")
    await agent.wait_for_selector("#notes li:has-text('老客户')")
    await agent.screenshot(path=str(artifacts / "console-conversation.png"))

    # Release: the customer is told the bot is back, and the bot answers again.
    await agent.click("#release")
    await customer.wait_for_selector(".msg--out:has-text('机器人')")
    assert (await server.app[STATES].get(conversation)).state == "bot"
    outs = await customer.locator(".msg--out").count()
    await customer.fill("#input", "你好")
    await customer.press("#input", "Enter")
    await customer.locator(".msg--out").nth(outs).wait_for()
    assert await customer.locator("#handoff").is_hidden()
    await customer.screenshot(path=str(artifacts / "webchat-after-handoff.png"))

    texts = "\n".join(await customer.locator(".msg").all_inner_texts())
    assert "老客户" not in texts
    assert dialogs == [] and errors == []
