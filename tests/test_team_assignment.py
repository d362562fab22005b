"""Presence, capacity, teams and automatic assignment: the rules, across processes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from redis.asyncio import Redis

from bot.handoff.presence import AWAY, OFFLINE, ONLINE
from bot.handoff.service import HandoffService
from bot.handoff.sweeper import Sweeper
from bot.handoff.teams import TeamFileError, TeamMap
from bot.redis_keys import Keys
from tests.helpers import handoff_service

ROOT = Path(__file__).resolve().parent.parent
TEAMS = TeamMap(
    ("售前", "售后", "投诉"),
    "售前",
    {"complaint": "投诉", "payment_issue": "售后"},
    {"order_status": "售后"},
)


@pytest.fixture
async def redis(redis_url):  # type: ignore[no-untyped-def]
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.close()


@pytest.fixture
def service(redis, key_prefix) -> HandoffService:  # type: ignore[no-untyped-def]
    return handoff_service(redis, Keys(key_prefix), TEAMS, auto_assign=True)


async def online(service: HandoffService, agent: str, *teams: str, capacity: int = 3) -> None:
    await service.set_roster(agent, capacity, list(teams))
    await service.console_open(agent, "p1", time.time() + 600)


def test_the_trainers_team_file_maps_reasons_then_intents_then_default() -> None:
    teams = TeamMap.load(ROOT / "nlu_data" / "teams.yml")
    assert teams.team_for("complaint", "order_status") == "投诉"
    assert teams.team_for("request_human", "return_refund") == "售后"
    assert teams.team_for("request_human", "greet") == "售前"
    with pytest.raises(TeamFileError):
        teams.check(["售前", "财务"])


def test_the_team_file_names_only_intents_the_bot_knows() -> None:
    domain = yaml.safe_load((ROOT / "nlu_data" / "domain.yml").read_text(encoding="utf-8"))
    intents = set(domain["intents"])
    teams = TeamMap.load(ROOT / "nlu_data" / "teams.yml")
    assert set(teams.intents) <= intents
    # Reasons are the escalating actions' reasons: intents, or the order-id one.
    assert set(teams.reasons) <= intents | {"order_id_invalid"}


def test_a_team_file_naming_an_unlisted_team_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "teams.yml"
    bad.write_text("teams: [售前]\nreasons:\n  complaint: 投诉\n", encoding="utf-8")
    with pytest.raises(TeamFileError, match="投诉"):
        TeamMap.load(bad)


async def test_an_escalation_goes_to_an_online_agent_of_its_team(service):
    await online(service, "pre", "售前")
    await online(service, "post", "售后")
    await service.request("rest:a", "payment_issue", "付款失败")
    await service.request("rest:b", "request_human", "人工", intent="order_status")
    await service.request("rest:c", "request_human", "人工", intent="promotion")
    agents = {c: (await service.states.get(c)).agent for c in ("rest:a", "rest:b", "rest:c")}
    assert agents == {"rest:a": "post", "rest:b": "post", "rest:c": "pre"}
    # Nobody of 投诉 is here: the complaint waits for them (or a manual claim).
    await service.request("rest:d", "complaint", "投诉")
    assert (await service.states.get("rest:d")).state == "waiting"


async def test_least_loaded_then_longest_since_given_one(service):
    await online(service, "a1", "售前")
    await online(service, "a2", "售前")
    await service.request("rest:1", "request_human", "x")
    first = (await service.states.get("rest:1")).agent
    await service.request("rest:2", "request_human", "x")
    second = (await service.states.get("rest:2")).agent
    assert {first, second} == {"a1", "a2"}  # least loaded: one each
    await service.close("rest:1", "done", first)  # now `first` holds none
    await service.request("rest:3", "request_human", "x")
    assert (await service.states.get("rest:3")).agent == first
    # Both hold one; `second` was given theirs longer ago.
    await service.request("rest:4", "request_human", "x")
    assert (await service.states.get("rest:4")).agent == second


async def test_nobody_is_given_more_than_their_capacity_and_manual_claims_count(service):
    await online(service, "solo", "售前", capacity=2)
    await service.request("rest:m", "request_human", "x")
    assert (await service.states.get("rest:m")).agent == "solo"
    await service.set_presence("solo", AWAY)  # away: nothing new
    await service.request("rest:w1", "request_human", "x")
    await service.claim("rest:w1", "solo")  # a manual claim still works, and counts
    await service.set_presence("solo", ONLINE)
    await service.request("rest:w2", "request_human", "x")
    assert (await service.states.get("rest:w2")).state == "waiting"  # full: 2 of 2
    assert (await service.states.loads()) == {"solo": 2}
    await service.release("rest:m", "solo")  # room again: the waiting one is given
    assert (await service.states.get("rest:w2")).agent == "solo"


async def test_a_conversation_taken_from_an_idle_agent_is_not_given_back_to_them(service):
    await online(service, "idler", "售前")
    await service.request("rest:idle", "request_human", "x")
    assert (await service.states.get("rest:idle")).agent == "idler"
    sweeper = Sweeper(service.states, service, reannounce_after=60, idle_after=0.01)
    await asyncio.sleep(0.02)
    assert (await sweeper.sweep()).requeued == ["rest:idle"]
    assert (await service.states.get("rest:idle")).state == "waiting"
    await online(service, "fresh", "售前")  # someone else: given to them
    assert (await service.states.get("rest:idle")).agent == "fresh"


async def test_complaints_are_assigned_first(service):
    await service.set_roster("any", 1, ["售前", "投诉"])
    await service.request("rest:plain", "request_human", "x")
    await service.request("rest:angry", "complaint", "投诉")
    await service.console_open("any", "p1", time.time() + 60)  # comes online: one slot
    assert (await service.states.get("rest:angry")).agent == "any"
    assert (await service.states.get("rest:plain")).state == "waiting"


async def test_an_agent_whose_last_console_closed_goes_offline_and_their_conversations_return(
    service, redis, key_prefix
):
    await service.set_roster("gone", 5, ["售前"])
    for cid in ("rest:q1", "rest:q2", "rest:q3"):
        await service.request(cid, "request_human", "x")
    await service.claim("rest:q2", "someone-else")
    await service.console_open("gone", "p1", time.time() + 60)
    assert (await service.states.get("rest:q1")).agent == "gone"
    assert (await service.states.get("rest:q3")).agent == "gone"
    await service.set_presence("gone", AWAY)
    await service.request("rest:q4", "request_human", "x")  # joins the queue after them
    # The console closes; the grace period (0.3 s here) runs out.
    await service.console_kept("gone", "p1", time.time() + 0.3)
    sweeper = Sweeper(service.states, service, reannounce_after=60, idle_after=60)
    assert (await sweeper.sweep()).offline == []
    await asyncio.sleep(0.4)
    results = await asyncio.gather(*(sweeper.sweep() for _ in range(3)))
    assert sorted(a for r in results for a in r.offline) == ["gone"]  # reported once
    # Back in their first places, ahead of the one queued after them.
    assert await service.states.waiting() == ["rest:q1", "rest:q3", "rest:q4"]
    assert (await service.presence.status("gone")) == OFFLINE
    assert (await service.states.loads()).get("gone") is None
    # An agent who never opened a console (the API alone) is never "gone".
    assert (await service.states.get("rest:q2")).agent == "someone-else"
    # Back (a new console): what was returned may go to them again, in queue order.
    await service.console_open("gone", "p2", time.time() + 60)
    agents = [(await service.states.get(c)).agent for c in ("rest:q1", "rest:q3", "rest:q4")]
    assert agents == ["gone", "gone", "gone"]


async def test_a_reload_within_the_grace_period_keeps_the_agent_online(service):
    await online(service, "blink", "售前")
    await service.console_kept("blink", "p1", time.time() + 0.3)  # closed...
    await service.console_open("blink", "p2", time.time() + 60)  # ...reopened elsewhere
    await asyncio.sleep(0.4)
    assert await service.expire_presence() == []
    assert await service.presence.status("blink") == ONLINE


async def test_a_burst_across_processes_never_assigns_twice_or_over_capacity(
    service, redis, redis_url, key_prefix
):
    capacities = {"b1": 3, "b2": 2, "b3": 4, "c1": 2}
    for agent, room in capacities.items():
        await online(service, agent, *(("投诉",) if agent == "c1" else ("售前",)), capacity=room)
    assigned: Counter[str] = Counter()
    pubsub = redis.pubsub()
    await pubsub.subscribe(Keys(key_prefix).events)

    async def listen() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message:
                event = json.loads(message["data"])
                if event["type"] == "state" and event.get("why") == "assigned":
                    assigned[event["conversation"]] += 1

    listener = asyncio.create_task(listen())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.assign_worker",
            redis_url,
            key_prefix,
            str(w),
            "20",
            env=env,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for w in range(3)
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert await worker.stdout.readline() == b"ready\n"
    for worker in workers:  # go, all at once
        assert worker.stdin is not None
        worker.stdin.write(b"go\n")
        await worker.stdin.drain()
    assert [await w.wait() for w in workers] == [0, 0, 0]
    await asyncio.sleep(0.5)
    listener.cancel()
    await pubsub.close()

    holders: Counter[str] = Counter()
    for cid in await service.states.assigned():
        holders[(await service.states.get(cid)).agent] += 1
    assert holders == Counter(capacities)  # everyone full, nobody over
    assert await service.states.loads() == capacities
    assert max(assigned.values()) == 1 and len(assigned) == sum(capacities.values())
    waiting = await service.states.waiting()
    assert len(waiting) == 60 - sum(capacities.values())
    # Complaints were served first: only 2 went to 投诉's one agent, the rest wait ahead.
    reasons = [(await service.states.get(c)).reason for c in waiting]
    assert reasons == sorted(reasons, key=lambda r: r != "complaint")
