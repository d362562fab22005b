"""Goodbye, and once per conversation, a request for a satisfaction rating."""

from __future__ import annotations

from typing import Any, Protocol

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import say, session_user_intents
from bot.content.messages import Messages
from bot.names import FALLBACK

# A conversation of only these was not one where the customer was helped.
SMALL_TALK = frozenset(
    {"greet", "goodbye", "thank", "affirm", "deny", "chitchat", FALLBACK, ""}
)


class SatisfactionQuestion(Protocol):
    async def ask(self, conversation: str, trigger: str) -> bool: ...


class ActionGoodbye(Action):
    def __init__(self, satisfaction: SatisfactionQuestion, messages: Messages) -> None:
        self._satisfaction = satisfaction
        self._messages = messages

    def name(self) -> str:
        return "action_goodbye"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        helped = any(intent not in SMALL_TALK for intent in session_user_intents(tracker))
        if helped and await self._satisfaction.ask(tracker.sender_id, trigger="goodbye"):
            say(dispatcher, self._messages, "goodbye_with_rating")
        else:
            say(dispatcher, self._messages, "goodbye")
        return []
