"""Custom menu buttons (`nlu_data/menu.yml`): what pressing each one means.

A WeChat Official Account's CLICK event and a Weibo account's ``click`` event
carry only the button's key. Trainers map each key to an intent (answered as
if the customer had asked that; ``request_human`` hands over to a person) or
to a knowledge entry (answered from it). The bot never guesses what a button
meant: an unknown key is logged and answered with an honest line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.chat.service import ChatService, TurnReply
from bot.content.knowledge import KnowledgeBase

logger = logging.getLogger(__name__)


class MenuError(ValueError):
    """The menu file is unusable."""


@dataclass(frozen=True)
class Button:
    key: str
    label: str
    intent: str
    # What the dialogue reads: for a knowledge entry, words the entry answers.
    text: str
    entry: str | None = None

    def parse(self) -> dict[str, Any]:
        """The NLU result pressing the button amounts to (no NLU involved)."""
        intent = {"name": self.intent, "confidence": 1.0}
        return {"text": self.text, "intent": intent, "intent_ranking": [intent], "entities": []}

    @property
    def description(self) -> str:
        """How the press appears in the log and to agents."""
        return f"[菜单] {self.label}"


class Menu:
    def __init__(self, buttons: dict[str, Button]) -> None:
        self.buttons = buttons

    def get(self, key: str) -> Button | None:
        return self.buttons.get(key)

    @classmethod
    def load(cls, path: Path, knowledge: KnowledgeBase, intents: set[str] | None = None) -> Menu:
        """Read the file; a missing file is an empty menu, a wrong one stops the start."""
        if not path.is_file():
            return cls({})
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        raw = data.get("buttons") if isinstance(data, dict) else None
        if not isinstance(raw, dict):
            raise MenuError(f"{path}: expected `buttons:` mapping keys to intents or entries")
        entries = {e.id: e for e in knowledge.entries}
        buttons = {}
        for key, spec in raw.items():
            if not isinstance(spec, dict) or not isinstance(spec.get("label"), str):
                raise MenuError(f"{path}: button {key!r} needs a `label`")
            label = spec["label"]
            if "knowledge" in spec:
                entry = entries.get(str(spec["knowledge"]))
                if entry is None:
                    missing = spec["knowledge"]
                    raise MenuError(f"{path}: button {key!r}: no knowledge entry {missing!r}")
                # One phrase of every group: the words the entry is certain to answer.
                text = "".join(group[0] for group in entry.match)
                buttons[str(key)] = Button(str(key), label, entry.intent, text, entry.id)
            elif isinstance(spec.get("intent"), str):
                intent = spec["intent"]
                if intents is not None and intent not in intents:
                    raise MenuError(f"{path}: button {key!r}: unknown intent {intent!r}")
                buttons[str(key)] = Button(str(key), label, intent, label)
            else:
                raise MenuError(f"{path}: button {key!r} needs an `intent` or a `knowledge` entry")
        return cls(buttons)


async def pressed(
    chat: ChatService, menu: Menu, channel: str, conversation: str, key: str
) -> TurnReply:
    """A button pressed: the turn its key stands for, or an honest line for an unknown key."""
    button = menu.get(key)
    if button is None:
        logger.warning("%s menu key %r is not in the menu file", channel, key)
        return await chat.handle_unreadable(channel, conversation, f"[菜单] {key}", "menu_unknown")
    return await chat.handle(channel, conversation, button.description, parse=button.parse())
