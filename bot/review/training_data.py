"""Appending a relabelled message to `nlu_data/nlu/*.yml`, as a person would.

The example goes at the end of its intent's block, in the file that already
holds that intent, with the block's own indentation; nothing else in the file
moves, comments stay, and the change reads as an ordinary one-line diff. A
text already in the training data is not added twice, and a text of the
held-out file is refused: training on it would make the evaluation lie.
"""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.names import FALLBACK
from bot.nlu.normalizer import normalize

NLU_DIR = Path("nlu_data/nlu")
HELD_OUT = Path("nlu_data/test/nlu.yml")
DOMAIN = Path("nlu_data/domain.yml")
LOCK = Path("nlu_data/.relabel.lock")
INTENT_LINE = re.compile(r"^(?P<indent>\s*)- intent:\s*(?P<name>\S+)\s*$")
EXAMPLE_LINE = re.compile(r"^(?P<indent>\s*)- (?P<text>.*)$")
MARKUP = re.compile(r"\[([^\]]+)\]\((\w+)\)|\[([^\]]+)\]\{[^}]*\}")
MAX_TEXT = 300


class LabelError(ValueError):
    """The label cannot be written (the reason is meant for the trainer)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Appended:
    file: str  # relative to the data root
    line: int  # 1-based line number of the new example; 0 when it was already there
    example: str


def intents(root: Path) -> list[str]:
    domain = yaml.safe_load((root / DOMAIN).read_text(encoding="utf-8"))
    return [i if isinstance(i, str) else next(iter(i)) for i in domain.get("intents", [])]


def entity_names(root: Path) -> list[str]:
    domain = yaml.safe_load((root / DOMAIN).read_text(encoding="utf-8"))
    return [e if isinstance(e, str) else next(iter(e)) for e in domain.get("entities", [])]


def plain(example: str) -> str:
    """An example's text without entity markup, normalised for comparison."""
    return normalize(MARKUP.sub(lambda m: m[1] or m[3], example)).strip()


def markup(text: str, entities: list[dict[str, Any]]) -> str:
    """`text` with Rasa's `[value](entity)` annotations at the given offsets."""
    spans = sorted(
        ((int(e["start"]), int(e["end"]), str(e["entity"])) for e in entities),
        key=lambda s: s[0],
    )
    out, at = [], 0
    for start, end, name in spans:
        if start < at or not 0 <= start < end <= len(text):
            raise LabelError(400, "invalid_entities", "Entity spans overlap or leave the text.")
        out += [text[at:start], f"[{text[start:end]}]({name})"]
        at = end
    out.append(text[at:])
    return "".join(out)


def _examples(path: Path) -> Iterator[tuple[str, str]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for item in data.get("nlu") or []:
        if isinstance(item, dict) and "intent" in item:
            for line in str(item.get("examples") or "").splitlines():
                if line.strip().startswith("- "):
                    yield str(item["intent"]), line.strip()[2:]


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One writer at a time, across the bot's processes on this machine."""
    with open(root / LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append_example(
    root: Path, intent: str, text: str, entities: list[dict[str, Any]] | None = None
) -> Appended:
    """Add `text` (with `entities`) as an example of `intent`; see the module docstring."""
    text = " ".join(text.split())
    if not text or len(text) > MAX_TEXT:
        raise LabelError(400, "invalid_text", f"An example is 1 to {MAX_TEXT} characters.")
    if MARKUP.search(text) or "](" in text:
        raise LabelError(400, "invalid_text", "The text looks like entity markup; edit the file.")
    if intent not in intents(root) or intent == FALLBACK:
        raise LabelError(400, "unknown_intent", f"{intent!r} is not an intent of the domain.")
    example = markup(text, entities or [])
    key = plain(example)
    if any(plain(e) == key for _, e in _examples(root / HELD_OUT)):
        raise LabelError(
            409,
            "held_out",
            "This text is in the held-out file; training on it would skew the score.",
        )
    with _locked(root):
        files = sorted((root / NLU_DIR).glob("*.yml"))
        for path in files:
            for other, existing in _examples(path):
                if plain(existing) == key:
                    if other != intent:
                        raise LabelError(
                            409,
                            "labelled_otherwise",
                            f"Already an example of {other!r} in {path.relative_to(root)}.",
                        )
                    return Appended(str(path.relative_to(root)), 0, existing)
        for path in files:
            line = _insert(path, intent, example)
            if line:
                return Appended(str(path.relative_to(root)), line, example)
    raise LabelError(409, "no_block", f"No file in {NLU_DIR} has a block for {intent!r}.")


def _insert(path: Path, intent: str, example: str) -> int:
    """Insert after the last example of `intent`'s block; the new line's number, or 0."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next(
        (
            i
            for i, line in enumerate(lines)
            if (m := INTENT_LINE.match(line)) and m["name"] == intent
        ),
        None,
    )
    if start is None:
        return 0
    item_indent = len(INTENT_LINE.match(lines[start])["indent"])  # type: ignore[index]
    last, example_indent = None, None
    for i in range(start + 1, len(lines)):
        stripped = lines[i].strip()
        indent = len(lines[i]) - len(lines[i].lstrip())
        if stripped and indent <= item_indent:
            break  # the next item, or the end of the list
        m = EXAMPLE_LINE.match(lines[i].rstrip("\n"))
        if m and not stripped.startswith("#") and indent > item_indent + 2:
            last, example_indent = i, m["indent"]
    if last is None or example_indent is None:
        return 0
    if not lines[last].endswith("\n"):
        lines[last] += "\n"
    lines.insert(last + 1, f"{example_indent}- {example}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return last + 2
