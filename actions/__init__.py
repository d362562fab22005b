"""Custom actions, served in-process through rasa_sdk's ActionExecutor.

Actions get their collaborators (stores, clients, the trainers' content) through
their constructors, so `build_actions` is the one place that wires them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from rasa_sdk import Action

from actions.clarification import ActionHandleFallback, Clarifications
from actions.common import Feedback
from actions.escalation import (
    ActionHandleAbuse,
    ActionHandleComplaint,
    ActionHandleSensitive,
    ActionNeedsAccountAccess,
    ActionRequestHuman,
    Escalator,
    HandoffQueue,
)
from actions.feedback import ActionRecordFeedback
from actions.goodbye import ActionGoodbye, SatisfactionQuestion
from actions.knowledge import ActionAnswerFromKnowledge, ActionBusinessHours
from actions.orders import (
    ActionAskOrderId,
    ActionCheckOrder,
    ActionHandOverOrderChange,
    ValidateOrderChangeForm,
    ValidateOrderStatusForm,
)
from bot.clock import utc_now
from bot.content.knowledge import KnowledgeBase
from bot.content.messages import Messages
from bot.orders.backend import OrderBackend


@dataclass(frozen=True)
class ActionDeps:
    handoff: HandoffQueue
    feedback: Feedback
    knowledge: KnowledgeBase
    messages: Messages
    orders: OrderBackend
    satisfaction: SatisfactionQuestion
    clock: Callable[[], dt.datetime] = utc_now
    # The open clarification question per conversation, and how each intent is
    # named when the bot asks which one was meant (nlu_data/clarification.yml).
    clarifications: Clarifications | None = None
    readings: dict[str, str] = field(default_factory=dict)


def build_actions(deps: ActionDeps) -> list[Action]:
    """Every custom action the domain lists, ready to register."""
    escalator = Escalator(deps.handoff, deps.knowledge.hours, deps.messages, deps.clock)
    return [
        ActionRequestHuman(escalator),
        ActionHandleFallback(escalator, deps.clarifications, deps.readings),
        ActionHandleComplaint(escalator, deps.feedback),
        ActionHandleAbuse(escalator),
        ActionHandleSensitive(escalator),
        ActionNeedsAccountAccess(escalator),
        ActionRecordFeedback(deps.feedback, deps.messages),
        ActionAnswerFromKnowledge(deps.knowledge, deps.messages, deps.clock),
        ActionBusinessHours(deps.knowledge, deps.messages, deps.clock),
        ActionAskOrderId(deps.messages),
        ValidateOrderStatusForm(deps.messages),
        ValidateOrderChangeForm(deps.messages),
        ActionCheckOrder(deps.orders, escalator),
        ActionHandOverOrderChange(escalator),
        ActionGoodbye(deps.satisfaction, deps.messages, deps.handoff),
    ]
