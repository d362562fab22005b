"""Asking which of two readings the customer meant, and understanding the answer.

When the model is unsure (under its intent's threshold, or two intents almost
tied), a confident wrong answer is the worst outcome for an honest bot. If the
two best intents both have a name a customer understands
(``nlu_data/clarification.yml``), the bot asks: "你是想问退货退款，还是查订单物流？"
— buttons in the web chat, numbered options in WeChat, plain text elsewhere.

The question is remembered server-side, per conversation (a pending record:
options, the original message and its entities), for a few minutes. The
customer's next message answers it when it is an option's number or its
label; the original message then goes to the dialogue with the chosen intent,
and the choice is kept as a label the customer confirmed. Nothing in a button
is an instruction: a button sends its label as text, like typing it, and only
the pending record maps labels to intents — text cannot name an intent.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from redis.asyncio import Redis

from bot.names import FALLBACK
from bot.nlu.normalizer import normalize
from bot.redis_keys import Keys

# How long the question stays open: the customer's next message, not tomorrow's.
PENDING_SECONDS = 600
# A second reading much weaker than this is not worth offering.
MIN_SECOND_CONFIDENCE = 0.08
# Confirmed choices kept for trainers (a capped stream).
CONFIRMED_MAXLEN = 10000

_NUMBER = re.compile(r"^\s*(?:选|是|选择|第)?\s*([12一二])\s*(?:个|号|项)?\s*[.。!！~～]*\s*$")
_NUMBERS = {"1": 0, "2": 1, "一": 0, "二": 1}


@dataclass(frozen=True)
class Option:
    intent: str
    label: str


def load_readings(path: Path) -> dict[str, str]:
    """intent -> how the bot names that reading to a customer."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    readings = data.get("readings") or {}
    if not isinstance(readings, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in readings.items()
    ):
        raise ValueError(f"{path}: `readings` must map intents to short labels")
    return readings


def readings_to_offer(ranking: list[dict[str, Any]], readings: dict[str, str]) -> list[Option]:
    """The two best intents, if both can be offered to the customer; else none."""
    real = [r for r in ranking if r.get("name") and r["name"] != FALLBACK]
    if len(real) < 2:
        return []
    first, second = real[0], real[1]
    if float(second.get("confidence") or 0.0) < MIN_SECOND_CONFIDENCE:
        return []
    if first["name"] not in readings or second["name"] not in readings:
        return []
    return [Option(r["name"], readings[r["name"]]) for r in (first, second)]


def match_choice(text: str, options: list[Option]) -> Option | None:
    """The option a reply picks: its number (1/2, 一/二, 第一个) or its label; else None."""
    clean = normalize(text).strip()
    number = _NUMBER.match(clean)
    if number:
        index = _NUMBERS[number.group(1)]
        return options[index] if index < len(options) else None
    bare = clean.strip(" .。!！~～")
    for option in options:
        if bare == option.label:
            return option
    return None


@dataclass(frozen=True)
class Pending:
    options: list[Option]
    text: str  # the message the question was about
    entities: list[dict[str, Any]]
    entry: str  # its entry id in the conversation log
    asked_at: float

    def as_json(self) -> str:
        return json.dumps(
            {
                "options": [[o.intent, o.label] for o in self.options],
                "text": self.text,
                "entities": self.entities,
                "entry": self.entry,
                "asked_at": self.asked_at,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, raw: str) -> Pending:
        data = json.loads(raw)
        return cls(
            [Option(i, label) for i, label in data["options"]],
            data["text"],
            data.get("entities") or [],
            data.get("entry") or "",
            float(data.get("asked_at") or 0.0),
        )


class ClarificationStore:
    """The open question per conversation, and the customers' confirmed choices."""

    def __init__(self, redis: Redis, keys: Keys, ttl: int = PENDING_SECONDS) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = ttl

    async def ask(
        self,
        conversation: str,
        options: list[Option],
        text: str,
        entities: list[dict[str, Any]],
        entry: str,
    ) -> None:
        pending = Pending(options, text, entities, entry, time.time())
        await self._redis.set(self._keys.clarify(conversation), pending.as_json(), ex=self._ttl)

    async def take(self, conversation: str) -> Pending | None:
        """The open question, removed: the next message answers it or leaves it."""
        raw = await self._redis.getdel(self._keys.clarify(conversation))
        return Pending.from_json(raw) if raw else None

    async def confirm(
        self, conversation: str, pending: Pending, chosen: Option, channel: str, text: str
    ) -> None:
        """Keep the customer's choice as a confirmed label of the original message."""
        await self._redis.xadd(
            self._keys.clarify_confirmed,
            {
                "conversation": conversation,
                "entry": pending.entry,
                "text": text,
                "intent": chosen.intent,
                "options": ",".join(o.intent for o in pending.options),
                "channel": channel,
                "ts": repr(time.time()),
            },
            maxlen=CONFIRMED_MAXLEN,
            approximate=True,
        )

    async def confirmed(self, count: int = 100) -> list[dict[str, str]]:
        """The latest confirmed choices, newest first."""
        rows = await self._redis.xrevrange(self._keys.clarify_confirmed, count=count)
        return [{"id": entry_id, **fields} for entry_id, fields in rows]


def resolved_parse(pending: Pending, chosen: Option) -> dict[str, Any]:
    """The original message's parse result with the customer's choice as its intent."""
    intent = {"name": chosen.intent, "confidence": 1.0}
    return {
        "text": pending.text,
        "intent": intent,
        "intent_ranking": [intent],
        "entities": pending.entities,
        "clarified": True,
    }
