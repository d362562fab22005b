"""Goodbye, and once per conversation, a request for a satisfaction rating.

If a person of the team handled the conversation in this session (the handoff
ended since it began), the question is asked on their behalf: the rating is
credited to them. Otherwise it rates the bot alone, whoever held it before.
"""

from __future__ import annotations

from typing import Any, Protocol

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import say, session_started_at, session_user_intents
from actions.escalation import HandoffQueue
from bot.content.messages import Messages
from bot.names import FALLBACK

# A conversation of only these was not one where the customer was helped.
SMALL_TALK = frozenset(
    {"greet", "goodbye", "thank", "affirm", "deny", "chitchat", FALLBACK, ""}
)


class SatisfactionQuestion(Protocol):
    async def ask(
        self, conversation: str, trigger: str, handled_by: tuple[str, str] | None = None
    ) -> bool: ...


class ActionGoodbye(Action):
    def __init__(
        self, satisfaction: SatisfactionQuestion, messages: Messages, handoff: HandoffQueue
    ) -> None:
        self._satisfaction = satisfaction
        self._messages = messages
        self._handoff = handoff

    def name(self) -> str:
        return "action_goodbye"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        helped = any(intent not in SMALL_TALK for intent in session_user_intents(tracker))
        if helped:
            conversation = tracker.sender_id
            handled_by = await self._handoff.handled_recently(
                conversation, session_started_at(tracker)
            )
            helped = await self._satisfaction.ask(conversation, "goodbye", handled_by)
        if helped:
            say(dispatcher, self._messages, "goodbye_with_rating")
        else:
            say(dispatcher, self._messages, "goodbye")
        return []
