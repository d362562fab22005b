"""Nobody took it, or the agent walked away: re-announced once, returned to the queue once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from bot.app import create_app
from bot.app_keys import STATES
from bot.channels.delivery import Delivery
from bot.content.messages import Messages
from bot.conversation_log.store import ConversationLog
from bot.events import Events
from bot.handoff.states import ConversationStates, InvalidTransition
from bot.handoff.sweeper import Sweeper
from bot.redis_keys import Keys
from tests.helpers import handoff_service, say

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def parts(redis_url, key_prefix):  # type: ignore[no-untyped-def]
    redis = Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(key_prefix)
    events, log = Events(redis, keys), ConversationLog(redis, keys)
    parts = {
        "redis": redis,
        "keys": keys,
        "states": ConversationStates(redis, keys),
        "log": log,
        "events": events,
        "delivery": Delivery(events, log),
        "messages": Messages.load(ROOT / "nlu_data" / "messages.yml"),
    }
    yield parts
    await redis.close()


def sweeper(parts, reannounce: float = 60, idle: float = 60) -> Sweeper:  # type: ignore[no-untyped-def]
    return Sweeper(
        parts["states"],
        handoff_service(parts["redis"], parts["keys"]),
        reannounce_after=reannounce,
        idle_after=idle,
    )


async def test_a_waiting_conversation_is_reannounced_once_per_quiet_period(parts):
    states = parts["states"]
    await states.escalate("w1", "request_human")
    sweep = sweeper(parts, reannounce=0.3)
    assert (await sweep.sweep()).announced == []  # not waited long enough
    await asyncio.sleep(0.35)
    # Three processes sweeping at once: one announcement.
    results = await asyncio.gather(*(sweeper(parts, reannounce=0.3).sweep() for _ in range(3)))
    assert sorted(len(r.announced) for r in results) == [0, 0, 1]
    assert (await sweep.sweep()).announced == []  # announced just now
    await asyncio.sleep(0.35)
    assert (await sweep.sweep()).announced == ["w1"]  # still nobody: again
    await states.claim("w1", "agent1")
    await asyncio.sleep(0.35)
    assert (await sweep.sweep()).announced == []  # taken


async def test_an_idle_agent_loses_the_conversation_to_the_queue_in_its_old_place(parts):
    states, log = parts["states"], parts["log"]
    await log.append_inbound("early", "webchat", "转人工")
    await states.escalate("early", "request_human")
    await states.claim("early", "agent1")
    await states.escalate("later", "request_human")
    sweep = sweeper(parts, idle=0.4)
    await asyncio.sleep(0.25)
    await states.touch("early", "agent1")  # the agent replied: still working on it
    await asyncio.sleep(0.25)
    assert (await sweep.sweep()).requeued == []
    await asyncio.sleep(0.25)
    results = await asyncio.gather(sweep.sweep(), sweeper(parts, idle=0.4).sweep())
    assert sorted(len(r.requeued) for r in results) == [0, 1]
    handoff = await states.get("early")
    assert (handoff.state, handoff.agent) == ("waiting", "")
    assert await states.waiting() == ["early", "later"]  # it keeps its place
    told = (await log.timeline("early"))[-1]
    assert told["direction"] == "out" and told["action"] == "handoff_requeued"


async def test_touch_by_someone_who_does_not_hold_it_changes_nothing(parts):
    states = parts["states"]
    await states.escalate("t1", "request_human")
    await states.claim("t1", "agent1")
    before = time.time()
    await asyncio.sleep(0.05)
    with pytest.raises(InvalidTransition):
        await states.touch("t1", "agent2")
    assert await states.idle(before) == ["t1"]


async def test_the_running_bot_returns_an_idle_conversation_by_itself(
    aiohttp_client, settings, engine
):
    quick = settings.with_(
        handoff_idle_seconds=0.5, handoff_reannounce_seconds=60, handoff_sweep_seconds=0.1
    )
    client = await aiohttp_client(create_app(quick, engine), server_kwargs={"port": quick.port})
    await say(client, "idle1", "我要转人工")
    states = client.app[STATES]
    await states.claim("rest:idle1", "agent1")
    deadline = time.monotonic() + 5
    while (await states.get("rest:idle1")).state != "waiting":
        assert time.monotonic() < deadline, "the idle conversation was never requeued"
        await asyncio.sleep(0.1)
