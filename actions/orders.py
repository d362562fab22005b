"""Order look-ups and order changes: facts from the order system, changes by a person.

Both ask for the order number with a form (`order_status_form`,
`order_change_form`) whose one slot is validated against the documented order
and tracking number formats. A wrong format is explained; the third wrong one
ends the form and brings in a person.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import event_intent, say
from actions.escalation import Escalator
from bot.content.messages import Messages
from bot.nlu.normalizer import normalize
from bot.orders.backend import (
    OrderBackend,
    OrderBackendError,
    OrderNotFound,
    find_order_id,
    mask_order_id,
)

MAX_ATTEMPTS = 3


class ValidateOrderForm(FormValidationAction):
    """Accepts an order or tracking number; counts and explains anything else."""

    form = ""

    def __init__(self, messages: Messages) -> None:
        self._messages = messages

    def name(self) -> str:
        return f"validate_{self.form}"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[str]:
        # After three wrong numbers the form asks no more: the submit action
        # finds no order number and hands the conversation to a person.
        if (tracker.get_slot("order_id_attempts") or 0) >= MAX_ATTEMPTS:
            return []
        return domain_slots

    async def validate_order_id(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> dict[str, Any]:
        found = find_order_id(normalize(str(slot_value or "")))
        if found:
            return {"order_id": found, "order_id_attempts": 0.0}
        attempts = (tracker.get_slot("order_id_attempts") or 0) + 1
        if attempts < MAX_ATTEMPTS:
            say(dispatcher, self._messages, "order_id_invalid")
        return {"order_id": None, "order_id_attempts": float(attempts)}


class ValidateOrderStatusForm(ValidateOrderForm):
    form = "order_status_form"


class ValidateOrderChangeForm(ValidateOrderForm):
    form = "order_change_form"


def _reset() -> list[dict[str, Any]]:
    return [SlotSet("order_id", None), SlotSet("order_id_attempts", 0.0)]


async def _give_up(
    escalator: Escalator, dispatcher: CollectingDispatcher, tracker: Tracker
) -> list[dict[str, Any]]:
    """No valid order number after three tries: a person takes over."""
    say(dispatcher, escalator.messages, "order_id_gave_up")
    await escalator.escalate(dispatcher, tracker, "order_id_invalid")
    return _reset()


class ActionCheckOrder(Action):
    """Tell the customer their order's status as the order system has it now."""

    def __init__(self, orders: OrderBackend, escalator: Escalator) -> None:
        self._orders = orders
        self._escalator = escalator

    def name(self) -> str:
        return "action_check_order"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        messages = self._escalator.messages
        order_id = tracker.get_slot("order_id")
        if not order_id:
            return await _give_up(self._escalator, dispatcher, tracker)
        masked = mask_order_id(order_id)
        try:
            order = await self._orders.get_order(order_id)
        except OrderNotFound:
            say(dispatcher, messages, "order_not_found", order=masked)
            return _reset()
        except OrderBackendError:
            say(dispatcher, messages, "order_system_down", order=masked)
            return _reset()
        updated = order.updated_at.replace("T", " ")[:16]
        say(
            dispatcher,
            messages,
            "order_status",
            order=masked,
            status=order.status_text,
            updated=updated,
        )
        return _reset()


class ActionHandOverOrderChange(Action):
    """Changing or cancelling is a person's job: record what is needed, then hand over."""

    def __init__(self, escalator: Escalator) -> None:
        self._escalator = escalator

    def name(self) -> str:
        return "action_hand_over_order_change"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        order_id = tracker.get_slot("order_id")
        if not order_id:
            return await _give_up(self._escalator, dispatcher, tracker)
        request = next(
            (
                e.get("text") or ""
                for e in reversed(tracker.events)
                if e.get("event") == "user"
                and event_intent(e) == "modify_order"
            ),
            "",
        )
        say(
            dispatcher,
            self._escalator.messages,
            "order_change_noted",
            order=mask_order_id(order_id),
        )
        await self._escalator.escalate(
            dispatcher, tracker, "order_change", text=f"订单 {order_id}：{request}"
        )
        return _reset()


class ActionAskOrderId(Action):
    """How the order forms ask for the number (a line from messages.yml)."""

    def __init__(self, messages: Messages) -> None:
        self._messages = messages

    def name(self) -> str:
        return "action_ask_order_id"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        say(dispatcher, self._messages, "ask_order_id")
        return []
