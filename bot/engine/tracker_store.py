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
- Saving re-reads the stored tracker and replays both to merge them, because a
  retrieved tracker may hold only the latest session. When the stored text is
  still exactly what this process read, and what it read was the whole
  conversation (one session, the usual case), the tracker being saved is a
  superset of it and the merge is skipped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from functools import cache
from typing import Any

import orjson
import rasa.shared.core.trackers
import rasa.shared.utils.common
from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.conversation import Dialogue
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker
from redis.asyncio import Redis

from bot.redis_keys import Keys

# Trackers read but not (yet) saved that are remembered for the merge check.
MAX_REMEMBERED_READS = 1024


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


class AsyncRedisTrackerStore(RedisTrackerStore):
    """Rasa's Redis tracker store over an asyncio client with timeouts."""

    def __init__(
        self,
        domain: Domain,
        redis: Redis,
        keys: Keys,
        record_exp: float | None = None,
    ) -> None:
        super().__init__(domain=domain, key_prefix=keys.prefix, record_exp=record_exp)
        self._keys = keys
        # The base class built a synchronous client without timeouts; nothing may use it.
        self.red = None
        self._redis = redis
        # conversation -> stored text this process last read, when it was read whole
        self._whole_reads: OrderedDict[str, str] = OrderedDict()

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
        data = tracker.as_dialogue().as_dict()
        try:
            return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        except TypeError:  # something orjson does not know; the json module may
            import json

            return json.dumps(data)

    async def save(self, tracker: DialogueStateTracker, timeout: float | None = None) -> None:
        """Save the tracker, merging it with stored sessions it does not hold."""
        await self.stream_events(tracker)
        if not timeout and self.record_exp:
            timeout = self.record_exp
        key = self._keys.tracker(tracker.sender_id)
        stored = await self._redis.get(key)
        read_whole = self._whole_reads.pop(tracker.sender_id, None)
        if stored is not None and stored != read_whole:
            prior = self.deserialise_tracker(tracker.sender_id, stored)
            if prior is not None:
                tracker = self._merge_trackers(prior, tracker)
        await self._redis.set(key, self.serialise_tracker(tracker), ex=timeout)

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
        tracker = self.deserialise_tracker(sender_id, stored)
        if tracker is None:
            return None
        sessions = (
            [tracker]
            if fetch_all_sessions
            else rasa.shared.core.trackers.get_trackers_for_conversation_sessions(tracker)
        )
        if len(sessions) > 1:
            return sessions[-1]
        self._remember_whole_read(sender_id, stored)
        return tracker

    async def keys(self) -> Iterable[str]:
        found = []
        async for key in self._redis.scan_iter(match=self._keys.tracker_pattern, count=1000):
            conversation = self._keys.conversation_of(key)
            if conversation is not None:
                found.append(conversation)
        return found
