"""What the actions share: saying a line, reading the tracker, the feedback port.

Pure helpers over rasa_sdk's `Tracker` and `CollectingDispatcher`; nothing
here knows about a particular feature.
"""

from __future__ import annotations

from typing import Any, Protocol

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.content.messages import Messages

# Set on every line an action says, so the conversation log names its source.
MESSAGE_KEY = "message_key"


class Feedback(Protocol):
    async def record(self, kind: str, conversation: str, text: str, channel: str = "") -> str: ...


def say(dispatcher: CollectingDispatcher, messages: Messages, key: str, **values: str) -> None:
    """Say one variation of message `key` (nlu_data/messages.yml)."""
    dispatcher.utter_message(text=messages.pick(key, **values), **{MESSAGE_KEY: key})


def latest_intent(tracker: Tracker) -> str:
    """The intent the bot acted on for the customer's latest message ("" if none).

    Not rasa_sdk's `get_intent_of_latest_message`: that reads the ranking and by
    default skips ``nlu_fallback`` for the runner-up, an intent the bot did not act on.
    """
    return str((tracker.latest_message.get("intent") or {}).get("name") or "")


def event_intent(event: dict[str, Any]) -> str:
    """The intent of a `user` event of the tracker ("" when it has none)."""
    return str(((event.get("parse_data") or {}).get("intent") or {}).get("name") or "")


def session_started_at(tracker: Tracker) -> float:
    """When the customer's current session began (0: no session start in the tracker)."""
    started = 0.0
    for event in tracker.events:
        if event.get("event") == "session_started":
            started = float(event.get("timestamp") or 0.0)
    return started


def session_user_intents(tracker: Tracker) -> list[str]:
    """The intents of the customer's messages in the current session, oldest first."""
    intents: list[str] = []
    for event in tracker.events:
        if event.get("event") == "session_started":
            intents = []
        elif event.get("event") == "user":
            intents.append(event_intent(event))
    return intents
