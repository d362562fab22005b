"""The conversation state machine: atomic, ordered, and exactly one winner per claim."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from bot.handoff.states import (
    ASSIGNED,
    BOT,
    CLOSED,
    WAITING,
    ConversationStates,
    InvalidTransition,
)
from bot.redis_keys import Keys


@pytest.fixture
async def states(redis_url, key_prefix):  # type: ignore[no-untyped-def]
    redis = Redis.from_url(redis_url, decode_responses=True)
    yield ConversationStates(redis, Keys(key_prefix))
    await redis.close()


async def test_full_cycle(states):
    assert (await states.get("c")).state == BOT
    assert await states.escalate("c", "request_human")
    assert (await states.get("c")).state == WAITING
    await states.claim("c", "agent1")
    handoff = await states.get("c")
    assert (handoff.state, handoff.agent, handoff.reason) == (ASSIGNED, "agent1", "request_human")
    await states.transfer("c", "agent1", "agent2")
    assert (await states.get("c")).agent == "agent2"
    await states.release("c")
    assert (await states.get("c")).state == BOT
    await states.escalate("c", "complaint")
    await states.claim("c", "agent2")
    with pytest.raises(InvalidTransition):
        await states.close("c", "resolved", agent="agent1")  # not agent1's any more
    await states.close("c", "resolved", agent="agent2")
    closed = await states.get("c")
    assert (closed.state, closed.tag, closed.agent) == (CLOSED, "resolved", "")


@pytest.mark.parametrize(
    ("setup", "action"),
    [
        ([], ("claim", "a")),  # nothing to claim
        ([], ("release",)),
        ([], ("close", "done")),
        ([("escalate", "request_human")], ("release",)),  # waiting, not assigned
        ([("escalate", "request_human")], ("transfer", "a", "b")),
        ([("escalate", "request_human"), ("claim", "a")], ("claim", "b")),  # taken
        ([("escalate", "request_human"), ("claim", "a")], ("transfer", "b", "c")),  # not b's
    ],
)
async def test_invalid_transitions_change_nothing(states, setup, action):
    for step in setup:
        await getattr(states, step[0])("x", *step[1:])
    before = await states.get("x")
    with pytest.raises(InvalidTransition):
        await getattr(states, action[0])("x", *action[1:])
    assert await states.get("x") == before


async def test_escalating_twice_keeps_the_place(states):
    assert await states.escalate("a", "request_human")
    assert await states.escalate("b", "request_human")
    assert not await states.escalate("a", "request_human")
    assert await states.waiting() == ["a", "b"]


async def test_complaints_are_served_first(states):
    await states.escalate("early", "request_human")
    await states.escalate("angry", "complaint")
    assert await states.waiting() == ["angry", "early"]
    assert await states.position("early") == 1
    assert await states.position("nobody") is None


async def test_fifty_concurrent_claims_have_exactly_one_winner(redis_url, key_prefix):
    clients = [Redis.from_url(redis_url, decode_responses=True) for _ in range(5)]
    machines = [ConversationStates(c, Keys(key_prefix)) for c in clients]
    await machines[0].escalate("race", "request_human")

    async def claim(i: int) -> bool:
        try:
            await machines[i % 5].claim("race", f"agent{i}")
            return True
        except InvalidTransition as refused:
            assert refused.current == ASSIGNED
            return False

    results = await asyncio.gather(*(claim(i) for i in range(50)))
    assert results.count(True) == 1 and results.count(False) == 49
    winner = f"agent{results.index(True)}"
    assert (await machines[0].get("race")).agent == winner
    assert await machines[0].waiting() == []
    for client in clients:
        await client.close()


async def test_expected_wait_comes_from_real_waits(states):
    assert await states.expected_wait(0) is None  # no data: no made-up figure
    await states.escalate("w", "request_human")
    await asyncio.sleep(0.2)
    await states.claim("w", "agent")
    wait = await states.expected_wait(ahead=2)
    assert wait is not None and 0.5 <= wait <= 3.0  # three times a ~0.2 s median


async def test_a_wait_that_began_outside_service_hours_is_not_a_recent_wait(states):
    await states.escalate("night", "request_human")
    await asyncio.sleep(0.1)
    await states.claim("night", "agent", counts_as_wait=False)
    assert await states.expected_wait(0) is None  # nothing learnt from the night's wait
    assert (await states.get("night")).state == ASSIGNED
