"""The web chat in a real headless Chromium, as a customer uses it."""

from __future__ import annotations

import pytest

from bot.app import create_app
from tests.conftest import needs_chromium

pytestmark = needs_chromium


@pytest.fixture
async def page_url(aiohttp_server, settings, engine):  # type: ignore[no-untyped-def]
    server = await aiohttp_server(create_app(settings, engine), port=settings.port)
    return f"http://127.0.0.1:{server.port}/"


async def test_customer_chats_in_chinese_and_a_reload_keeps_the_conversation(
    browser, page_url, artifacts
):
    page = await browser.new_page()
    await page.goto(page_url)
    await page.fill("#input", "你好")
    await page.press("#input", "Enter")
    reply = page.locator(".msg--out").last
    await reply.wait_for()
    await page.locator(".msg--out").nth(1).wait_for()  # the page's CSP forbids eval
    texts = await page.locator(".msg").all_inner_texts()
    assert "你好" in texts
    assert any("助手" in t for t in texts[1:])

    await page.screenshot(path=str(artifacts / "webchat.png"))

    await page.reload()
    await page.locator(".msg").nth(1).wait_for()
    after = await page.locator(".msg").all_inner_texts()
    assert after[0] == "你好"
    assert after[1] == texts[-1]


async def test_markup_from_the_customer_is_shown_as_text(browser, page_url):
    page = await browser.new_page()
    fired: list[str] = []
    page.on("dialog", lambda d: (fired.append(d.message), d.dismiss()))
    await page.goto(page_url)
    payload = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    await page.fill("#input", payload)
    await page.click("#send")
    await page.locator(".msg--out").nth(1).wait_for()  # the page's CSP forbids eval
    mine = page.locator(".msg--in").last
    assert await mine.inner_text() == payload
    assert await page.locator(".msg img, .msg script").count() == 0
    assert fired == []


async def test_enter_that_confirms_an_ime_candidate_does_not_send(browser, page_url):
    page = await browser.new_page()
    await page.goto(page_url)
    await page.wait_for_selector(".msg--out")
    await page.fill("#input", "nihao")
    await page.dispatch_event("#input", "compositionstart")
    await page.press("#input", "Enter")
    assert await page.locator(".msg--in").count() == 0
    await page.dispatch_event("#input", "compositionend")
    await page.press("#input", "Enter")
    await page.wait_for_selector(".msg--in")
    assert await page.locator(".msg--in").inner_text() == "nihao"


async def test_unsure_bot_offers_two_readings_as_buttons_and_a_click_answers(
    browser, page_url, artifacts
):
    page = await browser.new_page()
    await page.goto(page_url)
    await page.wait_for_selector(".msg--out")
    await page.fill("#input", "退的优惠券")  # a return or a coupon: the model hesitates
    await page.press("#input", "Enter")
    choices = page.locator(".choices .choice")
    await choices.first.wait_for()
    assert sorted(await choices.all_inner_texts()) == ["退货退款", "问优惠活动"]
    question = await page.locator(".msg--out").last.inner_text()
    assert "退货退款" in question and "问优惠活动" in question
    await page.screenshot(path=str(artifacts / "webchat-clarify.png"))

    answered = await page.locator(".msg--out").count()
    await page.get_by_role("button", name="问优惠活动").click()
    # (Locators, not wait_for_function: the page's CSP forbids evaluating strings.)
    await page.locator(".msg--out").nth(answered).wait_for()
    # The click is the customer's answer, shown as theirs; the buttons are gone.
    assert await page.locator(".msg--in").last.inner_text() == "问优惠活动"
    assert await page.locator(".choices").count() == 0
    reply = await page.locator(".msg--out").last.inner_text()
    assert "你是想" not in reply
    await page.screenshot(path=str(artifacts / "webchat-clarify-answered.png"))
