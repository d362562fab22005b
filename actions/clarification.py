"""Not sure what the customer meant: ask which of two readings, or say so honestly.

The NLU marks a message ``nlu_fallback`` when its best intent is under that
intent's threshold or two intents are almost tied (``bot/nlu/fallback.py``).
When both of the two best intents have a name a customer understands, the bot
asks which one they meant, with the two readings as buttons in the web chat,
numbered in WeChat and in plain words elsewhere, and remembers the question
for the conversation (``bot/nlu/clarification.py``: the answer is resolved on
the server, never by an intent carried in a button). Otherwise it says it did
not understand; the second time in a row, it calls a person.
"""

from __future__ import annotations

from typing import Any, Protocol

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import MESSAGE_KEY, say, session_user_intents
from actions.escalation import Escalator
from bot.names import FALLBACK
from bot.nlu.clarification import Option, readings_to_offer

# Channels whose page shows buttons, and those where the customer types a number.
BUTTON_CHANNELS = ("webchat", "wecomkf")  # WeChat Customer Service: a msgmenu
NUMBERED_CHANNELS = ("wechat",)


class Clarifications(Protocol):
    async def ask(
        self,
        conversation: str,
        options: list[Option],
        text: str,
        entities: list[dict[str, Any]],
        entry: str,
    ) -> None: ...


class ActionHandleFallback(Action):
    """Ask between two readings; else "not sure"; twice in a row, a person."""

    def __init__(
        self,
        escalator: Escalator,
        clarifications: Clarifications | None = None,
        readings: dict[str, str] | None = None,
    ) -> None:
        self._escalator = escalator
        self._clarifications = clarifications
        self._readings = readings or {}

    def name(self) -> str:
        return "action_handle_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        if await self._ask(dispatcher, tracker):
            return []
        intents = session_user_intents(tracker)
        if len(intents) >= 2 and intents[-2] == FALLBACK:
            say(dispatcher, self._escalator.messages, "fallback_again")
            await self._escalator.escalate(dispatcher, tracker, "low_confidence")
        else:
            say(dispatcher, self._escalator.messages, "fallback_first")
        return []

    async def _ask(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> bool:
        """Ask which reading was meant, if two can be offered; True when asked."""
        if self._clarifications is None:
            return False
        latest = tracker.latest_message or {}
        options = readings_to_offer(latest.get("intent_ranking") or [], self._readings)
        if not options:
            return False
        await self._clarifications.ask(
            tracker.sender_id,
            options,
            str(latest.get("text") or ""),
            list(latest.get("entities") or []),
            str(latest.get("message_id") or ""),
        )
        first, second = options[0].label, options[1].label
        messages = self._escalator.messages
        channel = tracker.get_latest_input_channel() or ""
        if channel in NUMBERED_CHANNELS:
            say(dispatcher, messages, "clarify_numbered", first=first, second=second)
        elif channel in BUTTON_CHANNELS:
            dispatcher.utter_message(
                text=messages.pick("clarify_buttons", first=first, second=second),
                # A button sends its label as the customer's text; the server maps
                # it to an intent through the pending question, nothing else.
                buttons=[{"title": o.label, "payload": o.label} for o in options],
                **{MESSAGE_KEY: "clarify_buttons"},
            )
        else:
            say(dispatcher, messages, "clarify_plain", first=first, second=second)
        return True
