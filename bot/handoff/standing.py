"""What a waiting customer is told about the queue: honest place and expected wait.

The expected wait comes from real recent waits (the median time from joining
the queue to an agent taking the conversation), scaled by the customer's
place; with no recent waits the bot says it cannot estimate. Outside service
hours the customer hears when people are back instead of a made-up wait.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from bot.handoff.hours import ServiceHours
from bot.handoff.states import ConversationStates


@dataclass(frozen=True)
class Standing:
    """A message key of nlu_data/messages.yml and the values for its placeholders."""

    key: str
    values: dict[str, str]


def describe_wait(seconds: float) -> str:
    """`1分钟内`, `约5分钟`, `约2小时`: rounded up, as a person would say it."""
    if seconds < 60:
        return "1分钟内"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"约{minutes}分钟"
    return f"约{math.ceil(minutes / 60)}小时"


async def standing(
    states: ConversationStates,
    hours: ServiceHours,
    conversation: str,
    now: dt.datetime,
) -> Standing | None:
    """What to tell the customer of `conversation` about their wait; None if not waiting."""
    ahead = await states.position(conversation)
    if ahead is None:
        return None
    place = str(ahead + 1)
    if not hours.is_open(now):
        return Standing(
            "queue_after_hours",
            {"place": place, "hours": hours.described, "next_open": hours.describe_next_open(now)},
        )
    expected = await states.expected_wait(ahead)
    if expected is None:
        return Standing("queue_place", {"place": place})
    return Standing("queue_place_wait", {"place": place, "wait": describe_wait(expected)})
