"""Custom actions, served in-process through rasa_sdk's ActionExecutor.

Actions get their collaborators (stores, clients) through their constructor, so
`build_actions` is the one place that wires them.
"""

from __future__ import annotations

from rasa_sdk import Action

from actions.handoff import ActionRequestHuman, HandoffQueue


def build_actions(handoff: HandoffQueue) -> list[Action]:
    """Every custom action the domain lists, ready to register."""
    return [ActionRequestHuman(handoff)]
