"""Answers from the knowledge file, and an honest "not sure" for everything else."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import MESSAGE_KEY, latest_intent, say
from bot.clock import utc_now
from bot.content.knowledge import KnowledgeBase
from bot.content.messages import Messages
from bot.nlu.normalizer import normalize

# Intents whose questions are answered from the knowledge file.
KNOWLEDGE_INTENTS = (
    "shipping_policy",
    "return_refund",
    "product_inquiry",
    "promotion",
    "invoice",
    "membership_points",
)


class ActionAnswerFromKnowledge(Action):
    def __init__(self, knowledge: KnowledgeBase, messages: Messages, clock: Any = utc_now) -> None:
        self._knowledge = knowledge
        self._messages = messages
        self._clock = clock

    def name(self) -> str:
        return "action_answer_from_knowledge"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        intent = latest_intent(tracker)
        text = normalize(tracker.latest_message.get("text") or "")
        now: dt.datetime = self._clock()
        answer = self._knowledge.answer(intent, text, today=self._knowledge.hours.local(now).date())
        if answer is None:
            say(dispatcher, self._messages, "not_sure")
        else:
            dispatcher.utter_message(text=answer.text, **{MESSAGE_KEY: f"knowledge:{answer.entry}"})
        return []


class ActionBusinessHours(Action):
    """When people answer, from the service hours; and whether they are there now."""

    def __init__(self, knowledge: KnowledgeBase, messages: Messages, clock: Any = utc_now) -> None:
        self._hours = knowledge.hours
        self._messages = messages
        self._clock = clock

    def name(self) -> str:
        return "action_business_hours"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        now = self._clock()
        key = "hours_open_now" if self._hours.is_open(now) else "hours_closed_now"
        say(
            dispatcher,
            self._messages,
            key,
            hours=self._hours.described,
            next_open=self._hours.describe_next_open(now),
        )
        return []
