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
import secrets
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
# Bounded by their events: each event is three to four objects that every full
# collection of the garbage collector walks while the event loop waits (256
# short conversations made it 15-20 ms; this many events, about 4 ms).
MAX_KEPT_EVENTS = 4000
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
    events = list(tracker.events)
    tail = events[-keep:]
    first_turn = next((i for i, e in enumerate(tail) if isinstance(e, UserUttered)), len(tail))
    dropped = len(events) - len(tail) + first_turn
    tail = tail[first_turn:]
    ts = tail[0].timestamp if tail else tracker.events[-1].timestamp
    # The session keeps the time it began: what the actions ask of "this session"
    # (whether a person handled it, for one) still looks back that far.
    began = next((e.timestamp for e in reversed(events[:dropped]) if type(e) is SessionStarted), ts)
    carried: list[Event] = [
        SlotSet(name, slot.value, timestamp=ts)
        for name, slot in tracker.slots.items()
        if slot.value != slot.initial_value
    ]
    if tracker.active_loop_name:
        carried.append(ActiveLoop(tracker.active_loop_name, timestamp=ts))
    events = [
        ActionExecuted("action_session_start", timestamp=began),
        SessionStarted(timestamp=began),
        *carried,
        ActionExecuted("action_listen", timestamp=ts),
        *tail,
    ]
    return DialogueStateTracker.from_events(
        tracker.sender_id, events, slots=list(tracker.slots.values())
    )


def _later_session(tracker: DialogueStateTracker, since: int = 1) -> bool:
    """Whether a session starts after the tracker's first event (looking from
    event `since` on)."""
    events = tracker.events
    return any(
        type(e) is ActionExecuted and e.action_name == ACTION_SESSION_START_NAME
        for e in itertools.islice(reversed(events), max(0, len(events) - max(since, 1)))
    )


@dataclass(frozen=True)
class _Written:
    """A tracker as this process stored it: `length` events, laid out in Redis
    as `layout` says."""

    tracker: DialogueStateTracker
    length: int
    layout: _Layout


def _dumps(item: Any) -> str:
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

# Whether the stored text is still one this process wrote: its length in bytes
# and its last bytes (the closing, with the write's own random token) are
# compared. KEYS: the tracker. ARGV: the length, the closing.
_IS_OURS = """
local size = tonumber(ARGV[1])
return redis.call('STRLEN', KEYS[1]) == size
  and redis.call('GETRANGE', KEYS[1], size - #ARGV[2], size - 1) == ARGV[2]
"""
# Answers 1 if the stored text is the one described (see _IS_OURS), else the
# stored text (nil if there is none). ARGV: the length, the closing.
SAME_OR_TEXT = (
    "local function ours()"
    + _IS_OURS
    + """end
if ours() then return 1 end
return redis.call('GET', KEYS[1])
"""
)
# Replaces the stored text from byte `offset` on with `payload` if it is still
# the one described, and answers 1; else 0. ARGV: the length, the closing, the
# offset, the payload, seconds to live ("" for none).
REPLACE_TAIL = (
    "local function ours()"
    + _IS_OURS
    + """end
if not ours() then return 0 end
local offset = tonumber(ARGV[3])
local text = ARGV[4]
if offset > 0 then text = redis.call('GETRANGE', KEYS[1], 0, offset - 1) .. text end
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[1], text, 'EX', ARGV[5])
else
  redis.call('SET', KEYS[1], text)
end
return 1
"""
)
SAME = 1

_OPEN = '{"events":['


@dataclass(frozen=True)
class _Layout:
    """Where a stored tracker text stands, without the text: `head_bytes` bytes of
    it (the opening and the events before the latest message, `count` of them)
    stay the same in later saves of the same tracker, which send only the rest;
    `size` bytes in all, ending with `closing` (unique to the write)."""

    count: int
    head_bytes: int
    size: int
    closing: str


def _closing(sender_id: str) -> str:
    token = secrets.token_hex(8)
    return '],"name":' + _dumps(sender_id) + ',"written":"' + token + '"}'


def _render(tracker: DialogueStateTracker, previous: _Layout | None) -> tuple[int, bytes, _Layout]:
    """The tracker as `serialise_tracker`'s document, as (offset, payload, layout):
    the new text is the stored one's first `offset` bytes followed by `payload`.
    The whole document (offset 0) unless `previous` describes what is stored."""
    events = tracker.events
    latest_user = next(
        (i for i in range(len(events) - 1, -1, -1) if type(events[i]) is UserUttered), 0
    )
    if previous is not None and previous.count > latest_user:
        previous = None  # its head no longer ends before the latest message: all of it
    count, head_bytes = (previous.count, previous.head_bytes) if previous else (0, len(_OPEN))
    older = ",".join(
        _dumps(_without_metadata(e.as_dict()) if type(e) is UserUttered else e.as_dict())
        for e in itertools.islice(events, count, latest_user)
    )
    if older and count:
        older = "," + older
    tail = ",".join(_dumps(e.as_dict()) for e in itertools.islice(events, latest_user, None))
    if tail and latest_user:
        tail = "," + tail
    older_bytes = older.encode()
    closing = _closing(tracker.sender_id)
    rest = older_bytes + (tail + closing).encode()
    if previous is None:
        payload, offset = _OPEN.encode() + rest, 0
    else:
        payload, offset = rest, head_bytes
    layout = _Layout(latest_user, head_bytes + len(older_bytes), offset + len(payload), closing)
    return offset, payload, layout


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
        self._replace_tail = redis.register_script(REPLACE_TAIL)
        self._same_or_text = redis.register_script(SAME_OR_TEXT)
        # The base class built a synchronous client without timeouts; nothing may use it.
        self.red = None
        self._redis = redis
        # conversation -> stored text this process last read, when it was read whole
        self._whole_reads: OrderedDict[str, str] = OrderedDict()
        # conversation -> what this process last wrote, while nobody has it
        self._written: OrderedDict[str, _Written] = OrderedDict()
        self._written_events = 0  # in `_written`, at most MAX_KEPT_EVENTS
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
        return _render(tracker, None)[1].decode()

    async def save(self, tracker: DialogueStateTracker, timeout: float | None = None) -> None:
        """Save the tracker, merging it with stored sessions it does not hold.

        A tracker this process stored and lent out again is written in one step,
        sending only what changed since, on the condition (checked by Redis)
        that the stored text is still that write. One this turn read whole is
        written in one step on the condition that the stored text is still what
        was read. Only if neither holds is it read again and merged."""
        await self.stream_events(tracker)
        if not timeout and self.record_exp:
            timeout = self.record_exp
        key = self._keys.tracker(tracker.sender_id)
        read_whole = self._whole_reads.pop(tracker.sender_id, None)
        lent = self._lent.pop(tracker.sender_id, None)
        # Replaying and writing JSON is CPU work that grows with the tracker:
        # off the event loop (the conversation lock keeps the tracker to us).
        loop = asyncio.get_running_loop()
        expire = "" if not timeout else str(int(timeout))
        stored: str | None
        if lent is not None and lent.tracker is tracker and len(tracker.events) >= lent.length:
            # The same tracker, events only appended since this process stored it.
            offset, payload, written = await loop.run_in_executor(
                self.cpu, self._laid_out, tracker, lent.layout
            )
            done = await self._replace_tail(
                keys=[key],
                args=[lent.layout.size, lent.layout.closing, offset, payload, expire],
            )
            if done == REPLACED:
                self._kept(tracker, written, since=lent.length)
                return
            stored = await self._redis.get(key)  # written by someone else since
        elif read_whole is not None:
            offset, payload, written = await loop.run_in_executor(
                self.cpu, self._to_store, tracker, read_whole, read_whole
            )
            found = await self._replace(
                keys=[key],
                args=[hashlib.sha1(read_whole.encode()).hexdigest(), payload, expire],
            )
            if found == REPLACED:
                self._kept(tracker, written)
                return
            stored = found or None  # "" : nothing stored any more
            read_whole = None
        else:
            stored = await self._redis.get(key)
        offset, payload, written = await loop.run_in_executor(
            self.cpu, self._to_store, tracker, stored, read_whole
        )
        await self._redis.set(key, payload, ex=timeout)
        self._kept(tracker, written)

    def _kept(self, tracker: DialogueStateTracker, written: _Written, since: int = 1) -> None:
        """Keep what was written, unless it holds a second session (whose next
        read is of the latest session only). Events of `tracker` before `since`
        are known to start none."""
        if not _later_session(written.tracker, since if written.tracker is tracker else 1):
            self._keep(tracker.sender_id, written)

    def _laid_out(
        self, tracker: DialogueStateTracker, previous: _Layout | None
    ) -> tuple[int, bytes, _Written]:
        """What to send for the tracker, compacted if over the limit: only what
        changed since `previous` (the stored text's layout), if given and still
        the beginning of it."""
        if self._max_events and len(tracker.events) > self._max_events:
            # Half: a conversation over the limit is compacted once per half of it.
            tracker, previous = compacted(tracker, self._max_events // 2), None
        offset, payload, layout = _render(tracker, previous)
        return offset, payload, _Written(tracker, len(tracker.events), layout)

    def _to_store(
        self,
        tracker: DialogueStateTracker,
        stored: bytes | str | None,
        read_whole: str | None,
    ) -> tuple[int, bytes, _Written]:
        """The whole text to store: the tracker merged with stored sessions it
        does not hold, compacted."""
        if stored is not None and stored != read_whole:
            prior = self.deserialise_tracker(tracker.sender_id, stored)
            if prior is not None:
                tracker = self._merge_trackers(prior, tracker)
        return self._laid_out(tracker, None)

    def _keep(self, sender_id: str, written: _Written) -> None:
        self._take_kept(sender_id)
        if written.length > MAX_KEPT_EVENTS:
            return
        self._written[sender_id] = written
        self._written_events += written.length
        while len(self._written) > MAX_KEPT_TRACKERS or self._written_events > MAX_KEPT_EVENTS:
            _, dropped = self._written.popitem(last=False)
            self._written_events -= dropped.length

    def _take_kept(self, sender_id: str) -> _Written | None:
        kept = self._written.pop(sender_id, None)
        if kept is not None:
            self._written_events -= kept.length
        return kept

    def _remember_whole_read(self, sender_id: str, stored: str) -> None:
        self._whole_reads[sender_id] = stored
        self._whole_reads.move_to_end(sender_id)
        while len(self._whole_reads) > MAX_REMEMBERED_READS:
            self._whole_reads.popitem(last=False)

    async def _retrieve(
        self, sender_id: str, fetch_all_sessions: bool
    ) -> DialogueStateTracker | None:
        key = self._keys.tracker(sender_id)
        # Lent to one caller at a time: whoever takes it may change it.
        kept = self._take_kept(sender_id)
        if kept is not None and len(kept.tracker.events) == kept.length:
            found = await self._same_or_text(
                keys=[key], args=[kept.layout.size, kept.layout.closing]
            )
            if found == SAME:
                self._lent[sender_id] = kept
                while len(self._lent) > MAX_KEPT_TRACKERS:
                    self._lent.pop(next(iter(self._lent)))
                return kept.tracker
            stored = found
        else:
            stored = await self._redis.get(key)
        if stored is None:
            return None
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
