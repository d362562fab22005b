"""The admins' per-agent view in real Chromium: the stats page's table and the console's team."""

from __future__ import annotations

import pytest

from bot.app import create_app
from bot.app_keys import HANDOFF
from tests.conftest import needs_chromium
from tests.helpers import say
from tests.test_review_browser import sign_in as sign_in_page
from tests.test_stats_agents import handle

pytestmark = needs_chromium


@pytest.fixture
async def app_client(aiohttp_client, settings, engine):  # type: ignore[no-untyped-def]
    return await aiohttp_client(create_app(settings, engine), server_kwargs={"port": settings.port})


async def test_an_admin_sees_two_agents_figures_on_the_stats_page_and_in_the_console(
    app_client, logins, browser, artifacts
):
    client = app_client
    for sender in ("pb1", "pb2", "pb3", "pb4"):
        await say(client, sender, "我要转人工")
    xiaoli = await logins.sign_in(client, "xiaoli")
    laowang = await logins.sign_in(client, "laowang")
    for name in ("xiaoli", "laowang"):
        await client.app[HANDOFF].set_roster(name, 4, ["售前"])
    await handle(xiaoli, "rest:pb1")
    await handle(xiaoli, "rest:pb2", end="release")
    await handle(laowang, "rest:pb3")
    await handle(laowang, "rest:pb4", end=None)  # still his
    for sender, rating in (("pb1", "5"), ("pb2", "3"), ("pb3", "4")):
        await say(client, sender, "再见")
        await say(client, sender, rating)
    await logins.sign_in(client, "boss", "admin")

    base = str(client.make_url("/")).rstrip("/")
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(base + "/stats")
    await sign_in_page(page, "boss")
    people = page.locator("#people")
    await people.wait_for(state="visible")
    mine = page.locator("#agents tr[data-agent=xiaoli] td")
    his = page.locator("#agents tr[data-agent=laowang] td")
    await mine.first.wait_for()
    mine_cells, his_cells = await mine.all_inner_texts(), await his.all_inner_texts()
    # 客服, 状态, 接待中 / 上限, 已处理, 首次回复, 达标率, 处理时长, 满意度, 接待中的会话
    assert mine_cells[:4] == ["xiaoli", "离线", "0 / 4", "2"]
    assert his_cells[:4] == ["laowang", "离线", "1 / 4", "1"]
    assert "秒" in mine_cells[4] and "（2 次）" in mine_cells[5] and "秒" in mine_cells[6]
    assert mine_cells[7] == "4.00（2 条）" and his_cells[7] == "4.00（1 条）"
    assert (mine_cells[8], his_cells[8]) == ("—", "rest:pb4")
    assert await page.locator("#sla-agents-box").is_visible()  # per-agent service level
    team = await page.locator("#teams tr", has_text="售前").locator("td").all_inner_texts()
    assert team[1] == "3" and team[5] == "4.00（3 条）"
    await page.screenshot(path=str(artifacts / "stats-agents.png"), full_page=True)

    # The console's team list: what each holds, and the way to their figures.
    await page.goto(base + "/console")
    member = page.locator("#team li[data-agent=laowang]")
    await member.wait_for()
    assert await member.get_attribute("title") == "接待中：rest:pb4"
    assert await page.locator("#team li[data-agent=xiaoli]").get_attribute("title") == (
        "暂无接待中的会话"
    )
    assert await page.locator("#team li[data-agent=laowang] .member__load").inner_text() == "1/4"
    link = page.locator("#people-link")
    assert await link.is_visible()
    await link.click()
    await page.locator("#agents tr[data-agent=laowang]").wait_for()

    # A trainer sees the KPIs but not the people, nor the service level per agent.
    trainer_context = await browser.new_context()
    try:
        trainer = await trainer_context.new_page()
        trainer.on("pageerror", lambda e: errors.append(str(e)))
        await logins.sign_in(client, "trainer1", "trainer")
        await trainer.goto(base + "/stats")
        await sign_in_page(trainer, "trainer1")
        await trainer.locator(".card", has_text="会话").first.wait_for()
        await trainer.locator("#sla-teams tr").first.wait_for()  # the tables are drawn
        assert not await trainer.locator("#people").is_visible()
        assert not await trainer.locator("#sla-agents-box").is_visible()
        assert not await trainer.get_by_text("首次回复达标率（按客服）").is_visible()
        assert await trainer.locator("#sla-teams").is_visible()
    finally:
        await trainer_context.close()
    assert errors == []
    await context.close()
