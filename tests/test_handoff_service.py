"""The handoff service is the one writer of handoff state; KPIs count each event once."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import datetime as dt
from pathlib import Path

from bot.app import create_app
from bot.app_keys import REDIS, STATS
from bot.stats.kpis import kpis
from tests.conftest import ROOT
from tests.helpers import say

# The methods of ConversationStates that change who has a conversation.
TRANSITIONS = {
    "escalate",
    "claim",
    "release",
    "close",
    "requeue",
    "transfer",
    "touch",
    "announce",
    "first_answer",
    "assign",
}
SERVICE = "bot/handoff/service.py"


def transition_calls() -> dict[str, list[str]]:
    """`path: [call, ...]` for every transition called on something named like the states."""
    found: dict[str, list[str]] = {}
    for folder in ("bot", "actions"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                receiver = ast.unparse(node.func.value)
                if node.func.attr in TRANSITIONS and "states" in receiver.lower():
                    name = str(path.relative_to(ROOT))
                    found.setdefault(name, []).append(ast.unparse(node.func))
    return found


def test_only_the_handoff_service_changes_who_has_a_conversation():
    calls = transition_calls()
    # The check sees the service's own calls, so it would see anyone else's.
    assert {"self.states.claim", "self.states.escalate"} <= set(calls.pop(SERVICE, []))
    assert calls == {}


async def test_three_processes_hearing_an_event_count_it_once(
    aiohttp_client, client, settings, tmp_path: Path
):
    # Two more bot processes on the same Redis (without a model: they only listen).
    others = [
        await aiohttp_client(create_app(dataclasses.replace(settings, model_dir=d)))
        for d in (tmp_path / "a", tmp_path / "b")
    ]
    await say(client, "once1", "你好")
    await say(client, "once1", "我要转人工")
    await asyncio.sleep(0.5)  # every process has heard both turns' events by now

    stats = client.app[STATS]
    today = dt.datetime.now(stats.tz).date()
    figures = (await kpis(client.app[REDIS], stats, today, today))["total"]
    assert figures["messages_in"] == 2 and figures["escalations"] == 1
    messages_in = {"channel": "rest", "direction": "in"}
    registry = stats.metrics.registry
    assert registry.get_sample_value("kefu_messages_total", messages_in) == 2
    for other in others:
        heard = other.app[STATS].metrics.registry
        assert heard.get_sample_value("kefu_messages_total", messages_in) is None
        assert heard.get_sample_value("kefu_escalations_total", {"reason": "request_human"}) is None
