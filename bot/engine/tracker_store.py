"""Rasa's Redis tracker store, made safe and fast enough for a service.

As shipped, ``RedisTrackerStore`` talks to Redis through a synchronous client with
no socket timeout: a stalled Redis would freeze the whole event loop for good.
This subclass keeps Rasa's storage format (one JSON tracker per conversation
under ``bot.redis_keys.Keys.tracker``) but reads and writes through the service's asyncio
client, which has timeouts, so a Redis outage fails the request (503) and the
process recovers by itself when Redis is back.

It also removes two costs that grow with the length of a conversation:

- Rasa finds each stored event's class by walking every ``Event`` subclass, once
  per event; here the lookup table is built once.
- The tracker JSON is read and written with orjson instead of the json module
  (same documents, several times faster).
- The tracker this process wrote last is kept (a bounded number of
  conversations): when the stored text is still exactly that, the next turn
  gets it back instead of rebuilding every event from JSON, which cost a long
  conversation more than the rest of its turn. Rebuilding and writing run in a
  worker thread, off the event loop.
- Saving re-reads the stored tracker and replays both to merge them, because a
  retrieved tracker may hold only the latest session. When the stored text is
  still exactly what this process read, and what it read was the whole
  conversation (one session, the usual case), the tracker being saved is a
  superset of it and the merge is skipped.

And it bounds what one conversation can make every later turn read and write:

- A message's `metadata` (bounded on the way in) is kept with the latest
  message only; Rasa would keep it, twice, with every message for good.
- A tracker over `max_events` events is compacted to its latest turns, as
  if a new Rasa session had started before them with the slots and the
  active form carried over (what Rasa itself does when a session expires).
  The conversation log keeps every message for people to read.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
import rasa.shared.core.trackers
import rasa.shared.utils.common
from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.constants import ACTION_SESSION_START_NAME
from rasa.shared.core.conversation import Dialogue
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from redis.asyncio import Redis

from bot.redis_keys import Keys

# Trackers read but not (yet) saved that are remembered for the merge check.
MAX_REMEMBERED_READS = 1024
# Trackers kept as written, so the next turn need not rebuild them from JSON
# (rebuilding a long conversation's events cost more than the rest of a turn).
# Bounded: each is thousands of objects the garbage collector walks.
MAX_KEPT_TRACKERS = 256


@cache
def _event_classes() -> dict[str, type[Event]]:
    classes: dict[str, type[Event]] = {}
    for cls in rasa.shared.utils.common.all_subclasses(Event):
        classes.setdefault(cls.type_name, cls)  # first match wins, as in Rasa
    return classes


def _events(serialised: list[dict[str, Any]]) -> list[Event]:
    classes = _event_classes()
    events = []
    for params in serialised:
        cls = classes.get(params.get("event", ""))
        event = cls._from_parameters(params) if cls else Event.from_parameters(params)
        if event is not None:
            events.append(event)
    return events


def compacted(tracker: DialogueStateTracker, keep: int) -> DialogueStateTracker:
    """The tracker's last `keep` events or fewer (whole turns), its state carried over."""
    tail = list(tracker.events)[-keep:]
    first_turn = next((i for i, e in enumerate(tail) if isinstance(e, UserUttered)), len(tail))
    tail = tail[first_turn:]
    ts = tail[0].timestamp if tail else tracker.events[-1].timestamp
    carried: list[Event] = [
        SlotSet(name, slot.value, timestamp=ts)
        for name, slot in tracker.slots.items()
        if slot.value != slot.initial_value
    ]
    if tracker.active_loop_name:
        carried.append(ActiveLoop(tracker.active_loop_name, timestamp=ts))
    events = [
        ActionExecuted("action_session_start", timestamp=ts),
        SessionStarted(timestamp=ts),
        *carried,
        ActionExecuted("action_listen", timestamp=ts),
        *tail,
    ]
    return DialogueStateTracker.from_events(
        tracker.sender_id, events, slots=list(tracker.slots.values())
    )


def _later_session(tracker: DialogueStateTracker) -> bool:
    """Whether a session starts after the tracker's first event."""
    return any(
        type(e) is ActionExecuted and e.action_name == ACTION_SESSION_START_NAME
        for e in itertools.islice(tracker.events, 1, None)
    )


@dataclass(frozen=True)
class _Written:
    """A tracker as this process stored it: `text` in Redis, `length` events."""

    text: str
    tracker: DialogueStateTracker
    length: int
    head: _Head


def _dumps(item: dict[str, Any]) -> str:
    try:
        return orjson.dumps(item, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError:  # something orjson does not know; the json module may
        return json.dumps(item)


def _without_metadata(item: dict[str, Any]) -> dict[str, Any]:
    item.pop("metadata", None)
    parse_data = item.get("parse_data")
    if isinstance(parse_data, dict) and "metadata" in parse_data:
        # A copy: `as_dict` hands out the event's own parse data.
        item["parse_data"] = {k: v for k, v in parse_data.items() if k != "metadata"}
    return item


# KEYS: the tracker. ARGV: the SHA-1 of the text read, the new text, seconds to
# live ("" for none). Writes the new text if the stored one is still the one
# read, and answers 1; otherwise the stored text ("" if there is none).
REPLACE = """
local stored = redis.call('GET', KEYS[1])
if stored and redis.sha1hex(stored) == ARGV[1] then
  if ARGV[3] ~= '' then
    redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  else
    redis.call('SET', KEYS[1], ARGV[2])
  end
  return 1
end
return stored or ''
"""
REPLACED = 1


@dataclass(frozen=True)
class _Head:
    """The JSON of a tracker's events before its latest message (`count` of them),
    which later saves of the same tracker only extend."""

    text: str
    count: int


def _serialised(tracker: DialogueStateTracker, head: _Head | None) -> tuple[str, _Head]:
    """`serialise_tracker`'s document, writing only the events `head` does not hold."""
    events = tracker.events
    latest_user = next(
        (i for i in range(len(events) - 1, -1, -1) if type(events[i]) is UserUttered), 0
    )
    if head is None or head.count > latest_user:
        head = _Head("", 0)
    older = [
        _dumps(_without_metadata(e.as_dict()) if type(e) is UserUttered else e.as_dict())
        for e in itertools.islice(events, head.count, latest_user)
    ]
    head_text = ",".join(([head.text] if head.text else []) + older)
    tail = [_dumps(e.as_dict()) for e in itertools.islice(events, latest_user, None)]
    body = ",".join(([head_text] if head_text else []) + tail)
    text = '{"events":[' + body + '],"name":' + _dumps(tracker.sender_id) + "}"
    return text, _Head(head_text, latest_user)


class AsyncRedisTrackerStore(RedisTrackerStore):
    """Rasa's Redis tracker store over an asyncio client with timeouts."""

    def __init__(
        self,
        domain: Domain,
        redis: Redis,
        keys: Keys,
        record_exp: float | None = None,
        max_events: int | None = None,
    ) -> None:
        super().__init__(domain=domain, key_prefix=keys.prefix, record_exp=record_exp)
        self._keys = keys
        self._max_events = max_events
        self._replace = redis.register_script(REPLACE)
        # The base class built a synchronous client without timeouts; nothing may use it.
        self.red = None
        self._redis = redis
        # conversation -> stored text this process last read, when it was read whole
        self._whole_reads: OrderedDict[str, str] = OrderedDict()
        # conversation -> what this process last wrote, while nobody has it
        self._written: OrderedDict[str, _Written] = OrderedDict()
        # Where rebuilding and writing trackers runs: the engine's dialogue thread
        # once bound (bot/engine/runtime.py), else asyncio's default pool.
        self.cpu: Executor | None = None
        # conversation -> what was handed out from `_written`, until it is saved
        self._lent: dict[str, _Written] = {}

    def deserialise_tracker(
        self, sender_id: str, serialised_tracker: str | bytes
    ) -> DialogueStateTracker | None:
        data = orjson.loads(serialised_tracker)
        tracker = self.init_tracker(sender_id)
        tracker.recreate_from_dialogue(
            Dialogue(data.get("name", sender_id), _events(data["events"]))
        )
        return tracker

    @staticmethod
    def serialise_tracker(tracker: DialogueStateTracker) -> str:
        return _serialised(tracker, None)[0]

    async def save(self, tracker: DialogueStateTracker, timeout: float | None = None) -> None:
        """Save the tracker, merging it with stored sessions it does not hold.

        When this turn read the stored tracker whole, the new text is written in
        one step, on the condition (checked by Redis) that the stored text is
        still what was read; only if it is not is it read and merged."""
        await self.stream_events(tracker)
        if not timeout and self.record_exp:
            timeout = self.record_exp
        key = self._keys.tracker(tracker.sender_id)
        read_whole = self._whole_reads.pop(tracker.sender_id, None)
        # Replaying and writing JSON is CPU work that grows with the tracker:
        # off the event loop (the conversation lock keeps the tracker to us).
        lent = self._lent.pop(tracker.sender_id, None)
        head = None
        if lent is not None and lent.tracker is tracker and len(tracker.events) >= lent.length:
            head = lent.head  # the same tracker, events only appended since
        loop = asyncio.get_running_loop()
        expire = "" if not timeout else str(int(timeout))
        if read_whole is not None:
            written = await loop.run_in_executor(
                self.cpu, self._to_store, tracker, read_whole, read_whole, head
            )
            stored = await self._replace(
                keys=[key],
                args=[hashlib.sha1(read_whole.encode()).hexdigest(), written.text, expire],
            )
            if stored == REPLACED:
                self._kept(tracker, written)
                return
            stored = stored or None  # "" : nothing stored any more
        else:
            stored = await self._redis.get(key)
        written = await loop.run_in_executor(
            self.cpu, self._to_store, tracker, stored, read_whole, head
        )
        await self._redis.set(key, written.text, ex=timeout)
        self._kept(tracker, written)

    def _kept(self, tracker: DialogueStateTracker, written: _Written) -> None:
        if not _later_session(written.tracker):
            self._keep(tracker.sender_id, written)

    def _to_store(
        self,
        tracker: DialogueStateTracker,
        stored: bytes | str | None,
        read_whole: str | None,
        head: _Head | None,
    ) -> _Written:
        """What to store: the tracker merged with stored sessions it does not hold,
        compacted; as JSON, of which `head` (if any) holds the beginning."""
        if stored is not None and stored != read_whole:
            prior = self.deserialise_tracker(tracker.sender_id, stored)
            if prior is not None:
                tracker, head = self._merge_trackers(prior, tracker), None
        if self._max_events and len(tracker.events) > self._max_events:
            # Half: a conversation over the limit is compacted once per half of it.
            tracker, head = compacted(tracker, self._max_events // 2), None
        text, head = _serialised(tracker, head)
        return _Written(text, tracker, len(tracker.events), head)

    def _keep(self, sender_id: str, written: _Written) -> None:
        self._written[sender_id] = written
        self._written.move_to_end(sender_id)
        while len(self._written) > MAX_KEPT_TRACKERS:
            self._written.popitem(last=False)

    def _remember_whole_read(self, sender_id: str, stored: str) -> None:
        self._whole_reads[sender_id] = stored
        self._whole_reads.move_to_end(sender_id)
        while len(self._whole_reads) > MAX_REMEMBERED_READS:
            self._whole_reads.popitem(last=False)

    async def _retrieve(
        self, sender_id: str, fetch_all_sessions: bool
    ) -> DialogueStateTracker | None:
        stored = await self._redis.get(self._keys.tracker(sender_id))
        if stored is None:
            return None
        # Lent to one caller at a time: whoever takes it may change it.
        kept = self._written.pop(sender_id, None)
        if kept is not None and kept.text == stored and len(kept.tracker.events) == kept.length:
            self._remember_whole_read(sender_id, stored)
            self._lent[sender_id] = kept
            while len(self._lent) > MAX_KEPT_TRACKERS:
                self._lent.pop(next(iter(self._lent)))
            return kept.tracker
        tracker, whole = await asyncio.get_running_loop().run_in_executor(
            self.cpu, self._from_store, sender_id, stored, fetch_all_sessions
        )
        if whole:
            self._remember_whole_read(sender_id, stored)
        return tracker

    def _from_store(
        self, sender_id: str, stored: str, fetch_all_sessions: bool
    ) -> tuple[DialogueStateTracker | None, bool]:
        """The tracker (its latest session unless `fetch_all_sessions`), and whether
        that is the whole stored conversation; CPU work, run in a worker thread."""
        tracker = self.deserialise_tracker(sender_id, stored)
        if tracker is None:
            return None, False
        # Splitting replays every event again: only worth it with two sessions.
        sessions = (
            [tracker]
            if fetch_all_sessions or not _later_session(tracker)
            else rasa.shared.core.trackers.get_trackers_for_conversation_sessions(tracker)
        )
        if len(sessions) > 1:
            return sessions[-1], False
        return tracker, True

    async def keys(self) -> Iterable[str]:
        found = []
        async for key in self._redis.scan_iter(match=self._keys.tracker_pattern, count=1000):
            conversation = self._keys.conversation_of(key)
            if conversation is not None:
                found.append(conversation)
        return found
