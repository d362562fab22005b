"""Getting the customer a person: the six escalation triggers.

Every escalation records a reason code on the conversation (the handoff queue)
and then tells the customer honestly what happens next: a person will answer
here, with their place in the queue and the wait recent customers really had,
or, outside the service hours, when people are back. The message is
sent only once the record is written; if writing fails, the action fails and
the customer gets an apology instead of a promise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Protocol

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import Feedback, latest_intent, say, session_user_intents
from bot.clock import utc_now
from bot.content.messages import Messages
from bot.handoff.hours import ServiceHours
from bot.handoff.standing import Standing


class HandoffQueue(Protocol):
    async def request(
        self, conversation: str, reason: str, text: str, intent: str = ""
    ) -> None: ...

    async def standing(
        self, conversation: str, hours: ServiceHours, now: dt.datetime
    ) -> Standing | None: ...

    async def handled_recently(self, conversation: str, since: float) -> tuple[str, str] | None: ...


# Intents that say nothing about the topic: the team is chosen by what came before.
NOT_A_TOPIC = frozenset(
    {"request_human", "affirm", "deny", "greet", "thank", "goodbye", "chitchat", "out_of_scope"}
)


def topic(tracker: Tracker) -> str:
    """What the customer was asking about this session: their latest topical intent."""
    for intent in reversed(session_user_intents(tracker)):
        if intent and intent not in NOT_A_TOPIC:
            return intent
    return ""


class Escalator:
    """Records the handoff, then says honestly when a person will answer."""

    def __init__(
        self,
        queue: HandoffQueue,
        hours: ServiceHours,
        messages: Messages,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.queue = queue
        self.hours = hours
        self.messages = messages
        self.clock = clock

    async def escalate(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        reason: str,
        text: str | None = None,
    ) -> None:
        """Record the handoff (with `text`, by default the customer's last message), then say so."""
        if text is None:
            text = tracker.latest_message.get("text") or ""
        await self.queue.request(tracker.sender_id, reason=reason, text=text, intent=topic(tracker))
        now = self.clock()
        if self.hours.is_open(now):
            say(dispatcher, self.messages, "handoff_in_hours")
            place = await self.queue.standing(tracker.sender_id, self.hours, now)
            if place is not None:
                say(dispatcher, self.messages, place.key, **place.values)
        else:
            say(
                dispatcher,
                self.messages,
                "handoff_after_hours",
                hours=self.hours.described,
                next_open=self.hours.describe_next_open(now),
            )


class ActionRequestHuman(Action):
    """Trigger 1: the customer asks for a person."""

    def __init__(self, escalator: Escalator) -> None:
        self._escalator = escalator

    def name(self) -> str:
        return "action_request_human"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        await self._escalator.escalate(dispatcher, tracker, "request_human")
        return []


class ActionHandleComplaint(Action):
    """Trigger 3: a complaint is acknowledged, recorded in the customer's words, escalated."""

    def __init__(self, escalator: Escalator, feedback: Feedback) -> None:
        self._escalator = escalator
        self._feedback = feedback

    def name(self) -> str:
        return "action_handle_complaint"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        text = tracker.latest_message.get("text") or ""
        channel = tracker.get_latest_input_channel() or ""
        await self._feedback.record("complaint", tracker.sender_id, text, channel)
        say(dispatcher, self._escalator.messages, "complaint_ack")
        await self._escalator.escalate(dispatcher, tracker, "complaint")
        return []


class SecondStrike(Action):
    """The first time: one calm line. The second time in a session: a person."""

    intent = ""
    first = ""
    again = ""

    def __init__(self, escalator: Escalator) -> None:
        self._escalator = escalator

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        strikes = session_user_intents(tracker).count(self.intent)
        if strikes >= 2:
            say(dispatcher, self._escalator.messages, self.again)
            await self._escalator.escalate(dispatcher, tracker, self.intent)
        else:
            say(dispatcher, self._escalator.messages, self.first)
        return []


class ActionHandleAbuse(SecondStrike):
    """Trigger 4: insults."""

    intent, first, again = "abuse", "abuse_first", "abuse_again"

    def name(self) -> str:
        return "action_handle_abuse"


class ActionHandleSensitive(SecondStrike):
    """Trigger 5: politics, gossip, sexual content: refused politely, then a person."""

    intent, first, again = "sensitive_topic", "sensitive_first", "sensitive_again"

    def name(self) -> str:
        return "action_handle_sensitive"


class ActionNeedsAccountAccess(Action):
    """Trigger 6: payment and account problems need a person who can see the account."""

    def __init__(self, escalator: Escalator) -> None:
        self._escalator = escalator

    def name(self) -> str:
        return "action_needs_account_access"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        intent = latest_intent(tracker)
        reason = intent if intent in ("payment_issue", "account_issue") else "account_issue"
        say(dispatcher, self._escalator.messages, "account_needs_person")
        await self._escalator.escalate(dispatcher, tracker, reason)
        return []
