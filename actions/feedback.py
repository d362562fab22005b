"""Praise and suggestions: thanked, and kept for the brand in the customer's words."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import Feedback, latest_intent, say
from bot.content.messages import Messages


class ActionRecordFeedback(Action):
    def __init__(self, feedback: Feedback, messages: Messages) -> None:
        self._feedback = feedback
        self._messages = messages

    def name(self) -> str:
        return "action_record_feedback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        kind = "suggestion" if latest_intent(tracker) == "suggestion" else "praise"
        text = tracker.latest_message.get("text") or ""
        await self._feedback.record(
            kind, tracker.sender_id, text, tracker.get_latest_input_channel() or ""
        )
        say(dispatcher, self._messages, f"{kind}_thanks")
        return []
