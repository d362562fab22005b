"""The conversation log: every inbound and outbound message, in Redis.

Separate from Rasa's tracker, and shaped for review rather than for dialogue
management. Each conversation has a Redis stream (append-only, ordered, ids
carry the time) plus a hash of NLU results keyed by the inbound entry's id:
the inbound message is appended *before* it is processed, so a failure in the
NLU or an action never loses it, and its intent is attached once known.
A sorted set indexes conversations by last activity for the list view.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from bot.channels import identity
from bot.redis_keys import Keys

INBOUND = "in"
OUTBOUND = "out"
# Fields tying a turn together: the client's message id on the inbound entry,
# and on each reply the inbound entry it answers.
MESSAGE_ID = "mid"
REPLY_TO = "re"


@dataclass(frozen=True)
class Outbound:
    """A reply to be logged."""

    text: str
    action: str | None = None
    response: str | None = None
    model: str | None = None
    error: bool = False
    data: dict[str, Any] = field(default_factory=dict)  # buttons, image… when present


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    channel: str
    last_activity: float
    first_activity: float
    messages: int
    last_text: str
    last_customer_text: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "first_activity": self.first_activity,
            "last_activity": self.last_activity,
            "messages": self.messages,
            "last_text": self.last_text,
            "last_customer_text": self.last_customer_text,
        }


# KEYS: the log, the meta hash. ARGV: ts, channel, last text, from the customer
# (1/0), the number of entries, then each entry as its field count and pairs.
# Returns the entries' ids.
APPEND = """
local ts, channel, last, customer, n = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local ids, at = {}, 6
for e = 1, n do
  local count = tonumber(ARGV[at])
  ids[e] = redis.call('XADD', KEYS[1], '*', unpack(ARGV, at + 1, at + 2 * count))
  at = at + 1 + 2 * count
end
redis.call('HSETNX', KEYS[2], 'first_activity', ts)
redis.call('HSETNX', KEYS[2], 'channel', channel)
if customer == '1' then
  redis.call('HSET', KEYS[2], 'last_activity', ts, 'last_text', last, 'last_customer_text', last)
else
  redis.call('HSET', KEYS[2], 'last_activity', ts, 'last_text', last)
end
redis.call('HINCRBY', KEYS[2], 'messages', n)
return ids
"""


class ConversationLog:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._append_script = redis.register_script(APPEND)

    async def append_inbound(
        self,
        conversation: str,
        channel: str,
        text: str,
        now: float | None = None,
        message_id: str | None = None,
    ) -> str:
        """Record a customer message before it is processed; return its entry id.

        `message_id`: the client's id for the message (exactly-once delivery).
        """
        ts = time.time() if now is None else now
        entry = {"ts": repr(ts), "channel": channel, "direction": INBOUND, "text": text}
        if message_id is not None:
            entry[MESSAGE_ID] = message_id
        ids = await self._append(conversation, channel, [entry], ts, text, True)
        return ids[0]

    async def annotate(
        self,
        conversation: str,
        entry_id: str,
        parse_data: dict[str, Any],
        model: str | None,
    ) -> None:
        """Attach the NLU result to an inbound entry."""
        intent = parse_data.get("intent") or {}
        record = {
            "intent": intent.get("name"),
            "confidence": float(intent.get("confidence") or 0.0),
            "entities": [
                {k: e.get(k) for k in ("entity", "value", "start", "end", "extractor") if k in e}
                for e in parse_data.get("entities") or []
            ],
            "ranking": [
                {"name": r.get("name"), "confidence": float(r.get("confidence") or 0.0)}
                for r in (parse_data.get("intent_ranking") or [])[:5]
            ],
            "model": model,
        }
        await self._redis.hset(
            self._keys.conv_nlu(conversation), entry_id, json.dumps(record, ensure_ascii=False)
        )

    async def append_outbound(
        self,
        conversation: str,
        channel: str,
        replies: Sequence[Outbound],
        now: float | None = None,
        reply_to: str | None = None,
    ) -> list[str]:
        """Record the replies sent to the customer, in order.

        `reply_to`: the inbound entry these replies answer.
        """
        if not replies:
            return []
        ts = time.time() if now is None else now
        entries = []
        for reply in replies:
            entry = {"ts": repr(ts), "channel": channel, "direction": OUTBOUND, "text": reply.text}
            for name in ("action", "response", "model"):
                value = getattr(reply, name)
                if value:
                    entry[name] = value
            if reply.error:
                entry["error"] = "1"
            if reply.data:
                entry["data"] = json.dumps(reply.data, ensure_ascii=False)
            if reply_to:
                entry[REPLY_TO] = reply_to
            entries.append(entry)
        return await self._append(conversation, channel, entries, ts, replies[-1].text, False)

    async def _append(
        self,
        conversation: str,
        channel: str,
        entries: list[dict[str, str]],
        ts: float,
        last_text: str,
        from_customer: bool = False,
    ) -> list[str]:
        """Append the entries and keep the conversation's list-view facts up to date.

        Two steps, because the activity index is shared and the log is the
        conversation's (one Redis Cluster slot each; a script cannot span them);
        the log's part is one script, atomic like a MULTI, which the client can
        send together with other commands (a MULTI holds a connection of its
        own). The index goes first: a crash between the two leaves an index
        entry whose log lacks this message, which the list view and retention
        take in their stride, never a logged message retention cannot find.
        GT keeps the latest activity when appends of one conversation race
        (an agent's reply and a turn), whichever lands last.
        """
        keys = self._keys
        await self._redis.zadd(keys.conversations, {conversation: ts}, gt=True)
        latest = last_text[:200]
        flat: list[str | int] = [repr(ts), channel, latest, int(from_customer), len(entries)]
        for entry in entries:
            flat.append(len(entry))
            for name, value in entry.items():
                flat.extend((name, value))
        ids = await self._append_script(
            keys=[keys.conv_log(conversation), keys.conv_meta(conversation)], args=flat
        )
        return [str(i) for i in ids]

    async def set_source(self, conversation: str, source: str) -> None:
        """The campaign that brought the customer (a QR code's scene); the latest one wins."""
        await self._redis.hset(self._keys.conv_meta(conversation), "source", source[:128])

    async def source_of(self, conversation: str) -> str | None:
        return await self._redis.hget(self._keys.conv_meta(conversation), "source") or None

    @staticmethod
    def channel_of(conversation: str) -> str:
        """The channel the conversation belongs to, from its id (see channels/identity.py)."""
        return identity.channel_of(conversation)

    async def count(self) -> int:
        return int(await self._redis.zcard(self._keys.conversations))

    async def recent(self, offset: int = 0, limit: int = 20) -> list[ConversationSummary]:
        """Conversations, latest activity first."""
        ids = await self._redis.zrevrange(self._keys.conversations, offset, offset + limit - 1)
        return await self.summaries(list(ids))

    async def summaries(self, ids: list[str]) -> list[ConversationSummary]:
        """The list-view facts of these conversations, in the order given."""
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for cid in ids:
                pipe.hgetall(self._keys.conv_meta(cid))
            metas = await pipe.execute()
        summaries = []
        for cid, meta in zip(ids, metas, strict=True):
            m = dict(meta)
            summaries.append(
                ConversationSummary(
                    id=cid,
                    channel=identity.channel_of(cid),
                    first_activity=float(m.get("first_activity", 0) or 0),
                    last_activity=float(m.get("last_activity", 0) or 0),
                    messages=int(m.get("messages", 0) or 0),
                    last_text=m.get("last_text", ""),
                    last_customer_text=m.get("last_customer_text", ""),
                )
            )
        return summaries

    async def attempt(
        self, conversation: str, message_id: str, since_ms: int
    ) -> tuple[str | None, list[dict[str, str]]]:
        """What an interrupted turn for `message_id` left in the log since `since_ms`.

        (the inbound entry id or None, the replies logged for it in order).
        """
        entries = await self._redis.xrange(self._keys.conv_log(conversation), f"{since_ms}-0")
        inbound = next(
            (
                entry_id
                for entry_id, fields in entries
                if fields.get("direction") == INBOUND and fields.get(MESSAGE_ID) == message_id
            ),
            None,
        )
        if inbound is None:
            return None, []
        replies = [
            fields
            for _, fields in entries
            if fields.get("direction") == OUTBOUND and fields.get(REPLY_TO) == inbound
        ]
        return inbound, replies

    async def messages(
        self, refs: Sequence[tuple[str, str]]
    ) -> list[tuple[dict[str, str], dict[str, Any]] | None]:
        """These (conversation, entry id) log entries with their NLU results, in order.

        None for an entry no longer there (retention removed it since it was indexed).
        """
        async with self._redis.pipeline(transaction=False) as pipe:
            for conversation, entry_id in refs:
                pipe.xrange(self._keys.conv_log(conversation), entry_id, entry_id)
                pipe.hget(self._keys.conv_nlu(conversation), entry_id)
            raw = await pipe.execute()
        found: list[tuple[dict[str, str], dict[str, Any]] | None] = []
        for entries, nlu in zip(raw[::2], raw[1::2], strict=True):
            found.append((entries[0][1], json.loads(nlu) if nlu else {}) if entries else None)
        return found

    async def timeline(self, conversation: str) -> list[dict[str, Any]]:
        """Every message of a conversation in order, inbound ones with their NLU result."""
        keys = self._keys
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xrange(keys.conv_log(conversation))
            pipe.hgetall(keys.conv_nlu(conversation))
            raw_entries, raw_nlu = await pipe.execute()
        nlu = {k: json.loads(v) for k, v in raw_nlu.items()}
        timeline = []
        for entry_id, fields in raw_entries:
            item: dict[str, Any] = {
                "id": entry_id,
                "ts": float(fields.get("ts", 0)),
                "channel": fields.get("channel"),
                "direction": fields.get("direction"),
                "text": fields.get("text", ""),
            }
            if item["direction"] == INBOUND:
                if MESSAGE_ID in fields:
                    item["message_id"] = fields[MESSAGE_ID]
                result = nlu.get(entry_id) or {}
                item["intent"] = result.get("intent")
                item["confidence"] = result.get("confidence")
                item["entities"] = result.get("entities", [])
                item["intent_ranking"] = result.get("ranking", [])
                item["model"] = result.get("model")
            else:
                for name in ("action", "response", "model"):
                    item[name] = fields.get(name)
                item["error"] = fields.get("error") == "1"
                if "data" in fields:
                    item["data"] = json.loads(fields["data"])
            timeline.append(item)
        return timeline
