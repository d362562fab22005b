"""Custom menu buttons (`nlu_data/menu.yml`): what pressing each one means.

A WeChat Official Account's CLICK event and a Weibo account's ``click`` event
carry only the button's key. Trainers map each key to an intent (answered as
if the customer had asked that; ``request_human`` hands over to a person) or
to a knowledge entry (answered from it). The bot never guesses what a button
meant: an unknown key is logged and answered with an honest line.

The file is checked when it is read at start-up (every problem at once: a
button without a label, an unknown field, a knowledge entry that does not
exist stop the start) and again whenever a model is served: a button whose
intent the model does not know is switched off with an error in the log, so
pressing it gets the honest line rather than a dialogue the model cannot run.
`kefu check-data` runs the same checks against the domain file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bot.content.knowledge import KnowledgeBase

if TYPE_CHECKING:
    from bot.chat.service import ChatService, TurnReply

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


FIELDS = frozenset({"label", "intent", "knowledge"})
MAX_KEY = 128  # WeChat's and Weibo's limit on a button's key


class Menu:
    def __init__(self, buttons: dict[str, Button]) -> None:
        self.buttons = buttons
        self._off: set[str] = set()  # keys whose intent the model served does not know

    def get(self, key: str) -> Button | None:
        return None if key in self._off else self.buttons.get(key)

    def unknown_intents(self, intents: set[str]) -> list[str]:
        """What is wrong with the buttons for a model (or domain) knowing `intents`."""
        return [
            f"button {key!r}: intent {button.intent!r} is not in the domain"
            for key, button in sorted(self.buttons.items())
            if button.intent not in intents
        ]

    def serve(self, intents: set[str], model: str) -> list[str]:
        """Switch off the buttons whose intent `model` does not know; logs and returns why."""
        problems = self.unknown_intents(intents)
        self._off = {k for k, b in self.buttons.items() if b.intent not in intents}
        for problem in problems:
            logger.error("menu file: %s of model %s: the button is off", problem, model)
        return problems

    @classmethod
    def load(cls, path: Path, knowledge: KnowledgeBase, intents: set[str] | None = None) -> Menu:
        """Read the file; a missing file is an empty menu, a wrong one stops the start."""
        if not path.is_file():
            return cls({})
        buttons, problems = cls.read(path, knowledge, intents)
        if problems:
            raise MenuError(f"{path}: " + "; ".join(problems))
        return cls(buttons)

    @staticmethod
    def read(
        path: Path, knowledge: KnowledgeBase, intents: set[str] | None = None
    ) -> tuple[dict[str, Button], list[str]]:
        """The buttons that are right, and every problem with the others."""
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            return {}, [f"not valid YAML: {exc}"]
        raw = data.get("buttons") if isinstance(data, dict) else None
        if not isinstance(raw, dict):
            return {}, ["expected `buttons:` mapping keys to intents or entries"]
        entries = {e.id: e for e in knowledge.entries}
        buttons: dict[str, Button] = {}
        problems: list[str] = []
        for key, spec in raw.items():
            key = str(key)
            if not key.strip() or len(key.encode()) > MAX_KEY:
                problems.append(f"button key {key!r} must be 1 to {MAX_KEY} bytes")
                continue
            if not isinstance(spec, dict) or not isinstance(spec.get("label"), str):
                problems.append(f"button {key!r} needs a `label`")
                continue
            unknown = sorted(str(f) for f in spec if f not in FIELDS)
            if unknown:
                problems.append(f"button {key!r}: unknown field(s) {', '.join(unknown)}")
                continue
            if ("knowledge" in spec) == ("intent" in spec):
                problems.append(f"button {key!r} needs an `intent` or a `knowledge` entry")
                continue
            label = spec["label"]
            if "knowledge" in spec:
                entry = entries.get(str(spec["knowledge"]))
                if entry is None:
                    problems.append(f"button {key!r}: no knowledge entry {spec['knowledge']!r}")
                    continue
                # One phrase of every group: the words the entry is certain to answer.
                text = "".join(group[0] for group in entry.match)
                button = Button(key, label, entry.intent, text, entry.id)
            elif isinstance(spec["intent"], str):
                button = Button(key, label, spec["intent"], label)
            else:
                problems.append(f"button {key!r}: `intent` must be an intent's name")
                continue
            if intents is not None and button.intent not in intents:
                problems.append(f"button {key!r}: intent {button.intent!r} is not in the domain")
                continue
            buttons[key] = button
        return buttons, problems


async def pressed(
    chat: ChatService, menu: Menu, channel: str, conversation: str, key: str
) -> TurnReply:
    """A button pressed: the turn its key stands for, or an honest line for an unknown key."""
    button = menu.get(key)
    if button is None:
        logger.warning("%s menu key %r is not in the menu file", channel, key)
        return await chat.handle_unreadable(channel, conversation, f"[菜单] {key}", "menu_unknown")
    return await chat.handle(channel, conversation, button.description, parse=button.parse())
