"""The bot's own lines (`nlu_data/messages.yml`): variations, placeholders, checks."""

from __future__ import annotations

import random
import string
from pathlib import Path

import yaml

# A reply longer than this reads like a notice, not a person: tests hold every
# response and message to it (placeholders filled with typical values).
MAX_REPLY_CHARS = 90
# Said when the bot itself failed to handle a message (an action raised, the
# dialogue failed or said nothing).
TURN_FAILED = "turn_failed"


class MessagesError(ValueError):
    """The messages file is unusable."""


class Messages:
    def __init__(self, variants: dict[str, list[str]]) -> None:
        for key, texts in variants.items():
            if (
                not isinstance(texts, list)
                or len(texts) < 2
                or not all(isinstance(t, str) for t in texts)
            ):
                raise MessagesError(f"message {key!r} needs at least two text variations")
        self.variants = variants

    @classmethod
    def load(cls, path: Path) -> Messages:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise MessagesError(f"{path}: expected a mapping of message names to variations")
        return cls(data)

    def placeholders(self, key: str) -> set[str]:
        return {
            name
            for text in self.variants[key]
            for _, name, _, _ in string.Formatter().parse(text)
            if name
        }

    def pick(self, key: str, **values: str) -> str:
        """One variation of `key`, with its placeholders filled."""
        return random.choice(self.variants[key]).format(**values)
