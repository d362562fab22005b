"""The output channel Rasa writes a turn's replies to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel

# Set by the in-app action route on every response a custom action produced,
# so the conversation log can say which action a reply came from.
PRODUCED_BY = "produced_by"
# Set by the action route on the apology sent when a custom action raised.
ACTION_FAILED = "action_failed"


@dataclass(frozen=True)
class Reply:
    """One message to the customer, with where it came from."""

    payload: dict[str, Any]  # Rasa's REST shape: recipient_id, text, buttons, image...
    action: str | None = None  # the action that produced it
    response: str | None = None  # the domain response (utter_*) it was rendered from
    failed: bool = False  # an apology for a failed action

    @property
    def text(self) -> str:
        return str(self.payload.get("text") or "")


class RecordingOutputChannel(CollectingOutputChannel):
    """Collects replies like Rasa's REST channel, keeping their provenance."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: list[Reply] = []
        self._source: dict[str, Any] = {}

    @classmethod
    def name(cls) -> str:
        return "kefu"

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        self._source = message
        try:
            await super().send_response(recipient_id, message)
        finally:
            self._source = {}

    async def _persist_message(self, message: dict[str, Any]) -> None:
        await super()._persist_message(message)
        source = self._source
        # A domain response (utter_*), or a line from messages.yml / knowledge.yml.
        response = source.get("utter_action") or source.get("message_key")
        self.replies.append(
            Reply(
                payload=message,
                action=source.get(PRODUCED_BY) or source.get("utter_action"),
                response=response,
                failed=bool(source.get(ACTION_FAILED)),
            )
        )
