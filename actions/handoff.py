"""Getting the customer a person."""

from __future__ import annotations

from typing import Any, Protocol

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher


class HandoffQueue(Protocol):
    async def request(self, conversation: str, reason: str, text: str) -> None: ...


class ActionRequestHuman(Action):
    """Explicit request for a person: record it in the handoff queue.

    Sets ``handoff_requested`` only after the record is written; the rule that
    tells the customer a person is coming waits for that slot.
    """

    def __init__(self, queue: HandoffQueue) -> None:
        self._queue = queue

    def name(self) -> str:
        return "action_request_human"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        text = tracker.latest_message.get("text") or ""
        await self._queue.request(tracker.sender_id, reason="request_human", text=text)
        return [SlotSet("handoff_requested", True)]
