"""The KPI page's charts in real headless Chromium, and the KPIs as CSV."""

from __future__ import annotations

import csv
import io

import pytest

from tests.conftest import needs_chromium
from tests.helpers import say
from tests.test_review_browser import say_over, server
from tests.test_review_browser import sign_in as sign_in_page

__all__ = ["server"]  # the fixture, shared with the review page's tests

CHARTS = ("chart-conversations", "chart-escalations", "chart-response")
# Recorded by the page before any script runs: CSP violations the browser reports.
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI);
});
"""


async def test_csv_of_the_daily_table_and_of_any_range(client, sign_in):
    await say(client, "c1", "你好")
    await say(client, "c1", "我要转人工")
    await say(client, "c2", "你好")
    trainer = await sign_in("trainer1", "trainer")
    body = await (await trainer.get("/api/stats")).json()
    today = body["to"]

    resp = await trainer.get(f"/api/stats.csv?from={body['from']}&to={today}")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert len(rows) == 30 and rows[-1]["date"] == today
    assert rows[-1]["conversations"] == "2" and rows[-1]["automation_rate"] == "0.5"
    assert rows[-1]["escalations_request_human"] == "1" and rows[0]["automation_rate"] == ""

    same = await trainer.get(f"/api/stats?format=csv&from={today}&to={today}")
    assert len((await same.text()).splitlines()) == 2  # header and one day
    assert (await trainer.get("/api/stats?format=xml")).status == 400
    assert (await trainer.get("/api/stats.csv?from=2026-11-02&to=2026-11-01")).status == 400
    assert (await client.get("/api/stats.csv")).status == 401
    agent = await sign_in("agent1")
    assert (await agent.get("/api/stats.csv")).status == 403


@needs_chromium
@pytest.mark.parametrize("scale", [2])
async def test_chartjs_draws_the_charts_with_tooltips_hidpi_and_resizing_under_the_csp(
    browser, server, artifacts, scale
):
    base = f"http://127.0.0.1:{server.port}"
    for sender, text in (("g1", "你好"), ("g2", "我要转人工"), ("g3", "你好"), ("g3", "谢谢")):
        await say_over(server, sender, text)
    context = await browser.new_context(
        device_scale_factor=scale, viewport={"width": 1280, "height": 900}, accept_downloads=True
    )
    await context.add_init_script(WATCH_CSP)
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"error: {e}"))
    page.on(
        "console",
        lambda m: (
            problems.append(f"{m.text} {m.location.get('url')}")
            if m.type in ("error", "warning")
            else None
        ),
    )
    await page.goto(base + "/stats")
    await sign_in_page(page, "trainer1")
    await page.locator(".card", has_text="会话").first.wait_for()
    await page.wait_for_function(
        "ids => ids.every(id => window.Chart && Chart.getChart(id))", arg=list(CHARTS)
    )

    for chart in CHARTS:
        drawn = await page.evaluate(
            """id => {
              const c = document.getElementById(id), chart = Chart.getChart(id);
              const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
              let ink = 0;
              for (let i = 3; i < px.length; i += 4) if (px[i]) ink++;
              return {ink, width: c.width, css: c.clientWidth, sets: chart.data.datasets.length};
            }""",
            chart,
        )
        assert drawn["ink"] > 1000 and drawn["sets"] >= 1, (chart, drawn)
        assert drawn["width"] == drawn["css"] * scale  # hi-DPI: backing store at device pixels

    # A tooltip on hover: over today's bar of the conversations chart.
    box = await page.locator("#chart-conversations").bounding_box()
    assert box is not None
    point = await page.evaluate(
        """() => { const c = Chart.getChart("chart-conversations");
                   const bar = c.getDatasetMeta(0).data.at(-1); return {x: bar.x, y: bar.y}; }"""
    )
    await page.mouse.move(box["x"] + point["x"], box["y"] + point["y"] + 2)
    await page.wait_for_function(
        "() => Chart.getChart('chart-conversations').tooltip.getActiveElements().length > 0"
    )
    title = await page.evaluate("() => Chart.getChart('chart-conversations').tooltip.title")
    assert title and title[0] == (await page.locator("#to").input_value())[5:]
    await page.screenshot(path=str(artifacts / "stats-charts.png"))

    # Resizing: the charts follow the page's width.
    before = await page.evaluate("() => document.getElementById('chart-response').clientWidth")
    await page.set_viewport_size({"width": 560, "height": 900})
    await page.wait_for_function(
        f"() => document.getElementById('chart-response').clientWidth < {before}"
    )
    await page.wait_for_function(
        "() => { const c = document.getElementById('chart-response');"
        f" return c.width === c.clientWidth * {scale}; }}"
    )

    # The CSV link downloads the range shown.
    async with page.expect_download() as download_info:
        await page.click("#csv")
    download = await download_info.value
    assert download.suggested_filename.startswith("kefu-stats-")
    text = (await download.path()).read_text(encoding="utf-8")  # type: ignore[union-attr]
    assert text.startswith("date,conversations,")

    assert await page.evaluate("() => window.__csp") == []
    # Expected: "who am I?" before signing in (401), and the browser asking for a favicon.
    expected = ("401 (Unauthorized) " + base + "/console/api/me", "/favicon.ico")
    assert [p for p in problems if not p.endswith(expected)] == []
