"""Two agents in real Chromium: escalations assigned to the right one, alerts, an agent leaving.

Browser notifications and the chime are intercepted before the console loads
(an init script replaces `Notification` and wraps the audio oscillator, and
marks each call in the page as a hidden element, which locators can find: the
console's CSP forbids evaluated strings).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from bot.app import create_app
from bot.app_keys import ACCOUNTS, HANDOFF, STATES
from bot.settings import ServiceLevels
from tests.conftest import needs_chromium
from tests.helpers import PASSWORD, quick_team

pytestmark = needs_chromium

NOON = dt.datetime(2026, 11, 25, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))

INTERCEPT = """
(function () {
  function mark(cls, text) {
    var add = function () {
      var d = document.createElement("div");
      d.className = cls; d.hidden = true; d.textContent = text;
      document.body.appendChild(d);
    };
    if (document.body) add(); else document.addEventListener("DOMContentLoaded", add);
  }
  function FakeNotification(title, options) {
    mark("test-notification", title + "|" + ((options && options.body) || ""));
  }
  FakeNotification.permission = "default";
  FakeNotification.requestPermission = function () {
    mark("test-permission", "asked");
    FakeNotification.permission = "granted";
    return Promise.resolve("granted");
  };
  window.Notification = FakeNotification;
  var Ctx = window.AudioContext;
  if (Ctx) {
    var create = Ctx.prototype.createOscillator;
    Ctx.prototype.createOscillator = function () {
      mark("test-chime", "");
      return create.apply(this, arguments);
    };
  }
})();
"""


@pytest.fixture
async def server(aiohttp_server, settings, engine):  # type: ignore[no-untyped-def]
    own = quick_team(settings, service_levels=ServiceLevels(default=3.0))
    app = create_app(own, engine, clock=lambda: NOON)
    server = await aiohttp_server(app, port=own.port)
    for name, teams in (("xiaoqian", ["售前"]), ("xiaohou", ["售后"])):
        await app[ACCOUNTS].add(name, PASSWORD, "agent")
        await app[HANDOFF].set_roster(name, 2, teams)
    return server


async def signed_in(browser, base: str, name: str, errors: list[str]):  # type: ignore[no-untyped-def]
    context = await browser.new_context()
    await context.add_init_script(INTERCEPT)
    page = await context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(base + "/console")
    await page.fill("#login-user", name)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-form button")
    await page.wait_for_selector("#live.live--on")
    return context, page


async def test_escalations_go_to_the_right_agent_who_is_alerted_and_return_when_they_leave(
    browser, server, artifacts
):
    base = f"http://127.0.0.1:{server.port}"
    errors: list[str] = []
    _, pre = await signed_in(browser, base, "xiaoqian", errors)
    after_context, after = await signed_in(browser, base, "xiaohou", errors)
    for page in (pre, after):
        assert await page.locator(".test-permission").count() == 1  # asked once
    # Each sees the other online.
    await pre.locator("#team li[data-agent='xiaohou'][data-status='online']").wait_for()
    await after.locator("#team li[data-agent='xiaoqian'][data-status='online']").wait_for()

    # A customer asks for a person (售前 by default); another has a payment problem (售后).
    customer = await (await browser.new_context()).new_page()
    await customer.goto(base + "/")
    await customer.wait_for_selector(".msg--out")
    await customer.fill("#input", "我要转人工")
    await customer.press("#input", "Enter")
    await pre.locator("#mine .item").wait_for()
    webchat = await pre.locator("#mine .item").first.get_attribute("data-conversation")
    assert webchat and webchat.startswith("webchat:")
    await customer.wait_for_selector(".msg--out:has-text('接入')")  # told a person joined
    await server.app[HANDOFF].request("rest:pay1", "payment_issue", "付款失败了")
    await after.locator("#mine .item[data-conversation='rest:pay1']").wait_for()
    assert await pre.locator("#mine .item[data-conversation='rest:pay1']").count() == 0
    assert (await server.app[STATES].get(webchat)).agent == "xiaoqian"

    # Each was told with a notification and a chime, about their own assignment only.
    await pre.locator(".test-notification", has_text="新会话分配给你").wait_for(state="attached")
    await after.locator(".test-notification", has_text="rest:pay1").first.wait_for(state="attached")
    assert await pre.locator(".test-notification", has_text="rest:pay1").count() == 0
    assert await pre.locator(".test-chime").count() >= 1
    await pre.locator("#team li[data-agent='xiaoqian'] .member__load", has_text="1/2").wait_for()
    await pre.screenshot(path=str(artifacts / "console-team.png"))

    # The first-response timer (target 3 s here) turns amber, then red; a reply stops it.
    timer = pre.locator(f"#mine .item[data-conversation='{webchat}'] .sla")
    await pre.locator(f"#mine .item[data-conversation='{webchat}'] .sla--amber").wait_for()
    await pre.locator(f"#mine .item[data-conversation='{webchat}'] .sla--red").wait_for()
    await pre.locator("#mine .item").first.click()
    await pre.fill("#reply-text", "您好，我是小前")
    await pre.press("#reply-text", "Enter")
    await customer.wait_for_selector(".msg--agent:has-text('小前')")
    await pre.locator(
        f"#mine .item[data-conversation='{webchat}'] .sla", has_text="已回复"
    ).wait_for()
    assert "sla--red" in (await timer.get_attribute("class") or "")

    # 售后's agent closes the console: after the grace period they are offline,
    # and their conversation is back in the queue, seen by the other agent.
    await after_context.close()
    await pre.locator("#team li[data-agent='xiaohou'][data-status='offline']").wait_for()
    await pre.locator("#queue .item[data-conversation='rest:pay1']").wait_for()
    handoff = await server.app[STATES].get("rest:pay1")
    assert (handoff.state, handoff.agent) == ("waiting", "")

    # Stepping away: the agent stays, nothing new is given.
    await pre.select_option("#presence", "away")
    await pre.locator("#team li[data-agent='xiaoqian'][data-status='away']").wait_for()
    await server.app[HANDOFF].request("rest:later", "request_human", "人工")
    await asyncio.sleep(0.5)
    assert (await server.app[STATES].get("rest:later")).state == "waiting"
    assert errors == []
