"""The knowledge file: the only facts the bot may state.

An entry answers a message when the message's intent is the entry's, the
(normalised) text contains a phrase of every one of the entry's groups, and
none of its excluded words. An
entry whose ``reviewed`` date is older than the allowed age is ignored: an
unchecked policy is worse than an honest "I don't know".
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.handoff.hours import ServiceHours


class KnowledgeError(ValueError):
    """The knowledge file is unusable."""


@dataclass(frozen=True)
class Entry:
    id: str
    intent: str
    match: tuple[tuple[str, ...], ...]
    answers: tuple[str, ...]
    reviewed: dt.date
    exclude: tuple[str, ...] = ()

    def matches(self, text: str) -> bool:
        if any(word in text for word in self.exclude):
            return False
        return all(any(word in text for word in group) for group in self.match)


@dataclass(frozen=True)
class Answer:
    entry: str
    text: str


class KnowledgeBase:
    def __init__(self, entries: list[Entry], hours: ServiceHours, max_age_days: int) -> None:
        self.entries = entries
        self.hours = hours
        self.max_age = dt.timedelta(days=max_age_days)

    @classmethod
    def load(cls, path: Path, max_age_days: int = 365) -> KnowledgeBase:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        try:
            hours = ServiceHours.from_dict(data["service_hours"])
            entries = [_entry(raw) for raw in data.get("entries") or []]
        except (KeyError, TypeError, ValueError) as exc:
            raise KnowledgeError(f"{path}: {exc}") from exc
        ids = [e.id for e in entries]
        if len(ids) != len(set(ids)):
            raise KnowledgeError(f"{path}: entry ids must be unique")
        return cls(entries, hours, max_age_days)

    def is_current(self, entry: Entry, today: dt.date) -> bool:
        return today - entry.reviewed <= self.max_age

    def answer(self, intent: str, text: str, today: dt.date | None = None) -> Answer | None:
        """The answer to a message, or None when the file does not hold one for certain."""
        today = today or dt.date.today()
        for entry in self.entries:
            if entry.intent == intent and entry.matches(text) and self.is_current(entry, today):
                return Answer(entry.id, random.choice(entry.answers))
        return None


def _entry(raw: dict[str, Any]) -> Entry:
    answers = tuple(str(a) for a in raw["answers"])
    if len(answers) < 2:
        raise ValueError(f"entry {raw.get('id')!r} needs at least two answers")
    match = tuple(tuple(str(w) for w in group) for group in raw["match"])
    if not match or not all(match):
        raise ValueError(f"entry {raw.get('id')!r} needs words to match")
    reviewed = raw["reviewed"]
    if not isinstance(reviewed, dt.date):
        reviewed = dt.date.fromisoformat(str(reviewed))
    exclude = tuple(str(w) for w in raw.get("exclude") or [])
    return Entry(str(raw["id"]), str(raw["intent"]), match, answers, reviewed, exclude)
