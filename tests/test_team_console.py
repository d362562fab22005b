"""The team in the console: presence kept by the websocket, rosters set by admins."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import aiohttp
import pytest

from bot.accounts.sessions import CSRF_HEADER
from bot.app import create_app
from bot.app_keys import ACCOUNTS, HANDOFF, STATES, STATS
from bot.settings import ServiceLevels, Settings, SettingsError
from tests.helpers import PASSWORD, Agent, quick_team, say, users_cli


@pytest.fixture
async def team_client(aiohttp_client, settings, engine):  # type: ignore[no-untyped-def]
    own = quick_team(settings)
    return await aiohttp_client(create_app(own, engine), server_kwargs={"port": own.port})


async def put(agent: Agent, path: str, body: Any) -> aiohttp.ClientResponse:
    return await agent.session.put(agent.url(path), json=body, headers={CSRF_HEADER: agent.csrf})


async def members(agent: Agent) -> dict[str, dict[str, Any]]:
    resp = await agent.get("/console/api/team")
    assert resp.status == 200, await resp.text()
    return {m["agent"]: m for m in (await resp.json())["members"]}


async def eventually(check: Any, seconds: float = 5.0) -> None:
    """Poll `check()` (async, truthy when done) until it holds or `seconds` pass."""
    for _ in range(int(seconds / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    assert await check()


async def test_an_open_console_keeps_its_agent_online_and_gets_them_conversations(
    team_client, logins
):
    client = team_client
    admin = await logins.sign_in(client, "boss", "admin")
    agent = await logins.sign_in(client, "xiaoli")
    assert (
        await put(admin, "/console/api/team/xiaoli", {"capacity": 1, "teams": ["售前"]})
    ).status == 200

    console = await agent.session.ws_connect(agent.url("/console/ws"))
    seen = await members(admin)
    assert seen["xiaoli"] == {
        "agent": "xiaoli", "status": "online", "capacity": 1, "teams": ["售前"], "load": 0,
        "holding": [],  # admins see what each holds
    }  # fmt: skip

    # Automatic assignment: the escalation goes straight to the one online agent.
    await say(client, "auto1", "我要转人工")
    handoff = await client.app[STATES].get("rest:auto1")
    assert (handoff.state, handoff.agent, handoff.team) == ("assigned", "xiaoli", "售前")
    # Full (capacity 1): the next one waits.
    await say(client, "auto2", "我要转人工")
    assert (await client.app[STATES].get("rest:auto2")).state == "waiting"
    assert (await members(admin))["xiaoli"]["load"] == 1
    assert (await members(admin))["xiaoli"]["holding"] == ["rest:auto1"]
    assert "holding" not in (await members(agent))["xiaoli"]  # agents see loads only

    # Away: nothing new even with room; back online: the waiting one is given.
    assert (await put(agent, "/console/api/presence", {"status": "away"})).status == 200
    await client.app[HANDOFF].release("rest:auto1", "xiaoli")
    assert (await client.app[STATES].get("rest:auto2")).state == "waiting"
    assert (await put(agent, "/console/api/presence", {"status": "online"})).status == 200
    assert (await client.app[STATES].get("rest:auto2")).agent == "xiaoli"

    # The console closes: after the grace period the agent is offline, and
    # what they held is back in the queue.
    await console.close()
    assert (await members(admin))["xiaoli"]["status"] == "online"  # within the grace period

    async def returned() -> bool:
        return (await client.app[STATES].get("rest:auto2")).state == "waiting"

    await eventually(returned)
    assert (await members(admin))["xiaoli"]["status"] == "offline"


async def test_erasing_a_held_conversation_frees_its_agents_room(
    team_client, logins, admin_headers
):
    client = team_client
    agent = await logins.sign_in(client, "xiaoli")
    await client.app[HANDOFF].set_roster("xiaoli", 1, ["售前"])
    console = await agent.session.ws_connect(agent.url("/console/ws"))
    await say(client, "erase1", "我要转人工")
    assert (await client.app[STATES].get("rest:erase1")).agent == "xiaoli"
    resp = await client.delete("/api/conversations/rest:erase1", headers=admin_headers)
    assert resp.status == 200, await resp.text()
    assert await client.app[STATES].loads() == {}
    await say(client, "erase2", "我要转人工")  # room again: given at once
    assert (await client.app[STATES].get("rest:erase2")).agent == "xiaoli"
    await console.close()


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"capacity": -1}, 400, "invalid_capacity"),
        ({"capacity": "3"}, 400, "invalid_capacity"),
        ({"capacity": True}, 400, "invalid_capacity"),
        ({"capacity": 2, "teams": "售前"}, 400, "invalid_teams"),
        ({"capacity": 2, "teams": ["财务"]}, 400, "invalid_teams"),
    ],
)
async def test_a_roster_that_cannot_be_used_is_refused(team_client, logins, body, status, error):
    admin = await logins.sign_in(team_client, "boss", "admin")
    await team_client.app[ACCOUNTS].add("xiaoli", PASSWORD, "agent")
    resp = await put(admin, "/console/api/team/xiaoli", body)
    assert resp.status == status and (await resp.json())["error"] == error


async def test_only_admins_set_rosters_and_only_for_agents(team_client, logins):
    admin = await logins.sign_in(team_client, "boss", "admin")
    agent = await logins.sign_in(team_client, "xiaoli")
    await team_client.app[ACCOUNTS].add("trainer1", PASSWORD, "trainer")
    assert (await put(agent, "/console/api/team/xiaoli", {"capacity": 9})).status == 403
    assert (await put(admin, "/console/api/team/trainer1", {"capacity": 2})).status == 404
    assert (await put(admin, "/console/api/team/nobody", {"capacity": 2})).status == 404
    bad = await put(agent, "/console/api/presence", {"status": "busy"})
    assert bad.status == 400 and (await bad.json())["error"] == "invalid_status"


def test_users_team_command_sets_capacity_and_teams(redis_url, key_prefix):
    def users(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return users_cli(redis_url, key_prefix, *args, stdin=stdin)

    assert users("add", "zhang", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    done = users("team", "zhang", "--capacity", "4", "--teams", "售后,投诉")
    assert done.returncode == 0 and "4 at once" in done.stdout and "售后, 投诉" in done.stdout
    unknown = users("team", "zhang", "--teams", "财务")
    assert unknown.returncode == 2 and "财务" in unknown.stderr
    assert users("team", "ghost", "--capacity", "2").returncode == 2


@pytest.mark.parametrize("raw", ["0", "abc", "wechat=", "wechat=-5", "we chat=30"])
def test_unusable_first_response_targets_are_refused(raw: str) -> None:
    with pytest.raises(SettingsError, match="BOT_SLA_FIRST_RESPONSE"):
        Settings.from_env({"BOT_SLA_FIRST_RESPONSE": raw}, dotenv=None)


def test_first_response_targets_per_channel() -> None:
    levels = Settings.from_env(
        {"BOT_SLA_FIRST_RESPONSE": "90, wechat=300,webchat=45"}, dotenv=None
    ).service_levels
    assert (levels.target("wechat"), levels.target("webchat"), levels.target("rest")) == (
        300.0, 45.0, 90.0,
    )  # fmt: skip


async def test_the_share_answered_within_target_per_agent_and_team(
    aiohttp_client, settings, engine, logins
):
    own = settings.with_(service_levels=ServiceLevels(default=60, by_channel=(("rest", 0.5),)))
    client = await aiohttp_client(create_app(own, engine), server_kwargs={"port": own.port})
    agent = await logins.sign_in(client, "xiaoli")
    base = "/console/api/conversations"
    for sender, delay in (("sla-fast", 0.0), ("sla-slow", 0.6)):
        await say(client, sender, "我要转人工")
        await asyncio.sleep(delay)
        assert (await agent.post(f"{base}/rest:{sender}/claim")).status == 200
        assert (await agent.post(f"{base}/rest:{sender}/reply", {"text": "您好"})).status == 200
        # Only the first reply counts.
        assert (await agent.post(f"{base}/rest:{sender}/reply", {"text": "还在吗"})).status == 200
    held = (await (await agent.get("/console/api/assigned")).json())["assigned"]
    assert {row["target"] for row in held} == {0.5} and all(row["answered_at"] for row in held)

    boss = await logins.sign_in(client, "boss", "admin")
    resp = await boss.get("/api/stats")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    level = body["service_level"]
    assert (level["answered"], level["within"], level["share"]) == (2, 1, 0.5)
    assert level["by_agent"] == {"xiaoli": {"answered": 2, "within": 1, "share": 0.5}}
    assert level["by_team"] == {"售前": {"answered": 2, "within": 1, "share": 0.5}}
    registry = client.app[STATS].metrics.registry
    for within in ("yes", "no"):
        labels = {"team": "售前", "within_target": within}
        assert registry.get_sample_value("kefu_first_responses_total", labels) == 1
