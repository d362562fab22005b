"""Each agent's handling time is their own stint: a transfer passes it on, a race credits right."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from bot.handoff.service import HandoffService
from bot.handoff.states import ConversationStates, Stint
from bot.handoff.teams import TeamMap
from bot.redis_keys import Keys
from bot.stats.metrics import Metrics
from bot.stats.people import People
from bot.stats.recorder import Stats
from tests.helpers import handoff_service

TZ = ZoneInfo("Asia/Shanghai")
# Long enough that two stints and their sum cannot be confused on a busy machine.
HOLD = 0.6
TEAMS = TeamMap(teams=("售前",), default="售前")


@pytest.fixture
async def redis(redis_url):  # type: ignore[no-untyped-def]
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.close()


def recorded(redis: Redis, keys: Keys, states: ConversationStates | None = None) -> HandoffService:
    stats = Stats(redis, keys, TZ, 30, Metrics(per_agent=True))
    return handoff_service(redis, keys, TEAMS, states=states, stats=stats)


async def figures(redis: Redis, keys: Keys) -> dict[str, Any]:
    today = dt.datetime.now(TZ).date()
    return await People(redis, Stats(redis, keys, TZ, 30, Metrics())).between(today, today)


async def test_a_transfer_credits_each_agent_with_the_time_they_held_it(redis, key_prefix):
    keys = Keys(key_prefix)
    service = recorded(redis, keys)
    await service.request("rest:tr", "request_human", "人工")
    await service.claim("rest:tr", "xiaoli")
    await asyncio.sleep(HOLD)
    await service.transfer("rest:tr", "xiaoli", "laowang")
    await asyncio.sleep(HOLD)
    await service.close("rest:tr", "已解决", "laowang")

    found = await figures(redis, keys)
    mine, his = found["by_agent"]["xiaoli"], found["by_agent"]["laowang"]
    # xiaoli held it HOLD seconds and passed it on: her time, not a conversation she ended.
    assert HOLD <= mine["handling_p50"] < 2 * HOLD
    assert (mine["handled"], mine["transferred"]) == (0, 1)
    # laowang is measured from the transfer, not from xiaoli's claim.
    assert HOLD <= his["handling_p50"] < 2 * HOLD and his["handled"] == 1
    # The team's conversation: one, from the first claim to the close.
    team = found["by_team"]["售前"]
    assert team["handled"] == 1 and team["handling_p50"] >= 2 * HOLD


class TransferredMeanwhile(ConversationStates):
    """Another process transfers the conversation just before the release step runs."""

    def __init__(self, redis: Redis, keys: Keys, other: HandoffService) -> None:
        super().__init__(redis, keys)
        self.other = other

    async def release(self, conversation: str, agent: str = "") -> Stint | None:
        await self.other.transfer(conversation, "xiaoli", "laowang")
        return await super().release(conversation, agent)


async def test_an_admins_release_racing_a_transfer_credits_who_held_it_at_the_release(
    redis, key_prefix, redis_url
):
    keys = Keys(key_prefix)
    second = Redis.from_url(redis_url, decode_responses=True)  # another process's client
    try:
        other = recorded(second, keys)
        service = recorded(redis, keys, TransferredMeanwhile(redis, keys, other))
        await service.request("rest:race", "request_human", "人工")
        await service.claim("rest:race", "xiaoli")
        await asyncio.sleep(HOLD)
        await service.release("rest:race")  # an admin: whoever holds it
    finally:
        await second.close()

    found = await figures(redis, keys)
    mine, his = found["by_agent"]["xiaoli"], found["by_agent"]["laowang"]
    # laowang held it when it was released: his the conversation handled, and only his
    # (short) stint; xiaoli's stint ended at the transfer.
    assert (his["handled"], mine["handled"]) == (1, 0)
    assert his["handling_p50"] < HOLD <= mine["handling_p50"]
