"""Rasa's Redis tracker store, made safe for a service.

As shipped, ``RedisTrackerStore`` talks to Redis through a synchronous client with
no socket timeout: a stalled Redis would freeze the whole event loop for good.
This subclass keeps Rasa's storage format (one JSON tracker per conversation
under ``prefix:tracker:``) but reads and writes through the service's asyncio
client, which has timeouts, so a Redis outage fails the request (503) and the
process recovers by itself when Redis is back.
"""

from __future__ import annotations

from collections.abc import Iterable

import rasa.shared.core.trackers
from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker
from redis.asyncio import Redis


class AsyncRedisTrackerStore(RedisTrackerStore):
    """Rasa's Redis tracker store over an asyncio client with timeouts."""

    def __init__(
        self,
        domain: Domain,
        redis: Redis,
        key_prefix: str,
        record_exp: float | None = None,
    ) -> None:
        # The base class builds a synchronous client; it is only ever used by the
        # methods overridden below, so replace it with one that has timeouts too.
        super().__init__(domain=domain, key_prefix=key_prefix, record_exp=record_exp)
        self.red = None  # type: ignore[assignment]
        self._redis = redis

    async def save(self, tracker: DialogueStateTracker, timeout: float | None = None) -> None:
        """Save the tracker, merging it with what another process may have stored."""
        await self.stream_events(tracker)
        if not timeout and self.record_exp:
            timeout = self.record_exp
        key = self.key_prefix + tracker.sender_id
        stored = await self._redis.get(key)
        if stored is not None:
            prior = self.deserialise_tracker(tracker.sender_id, stored)
            if prior is not None:
                tracker = self._merge_trackers(prior, tracker)
        await self._redis.set(key, self.serialise_tracker(tracker), ex=timeout)

    async def _retrieve(
        self, sender_id: str, fetch_all_sessions: bool
    ) -> DialogueStateTracker | None:
        stored = await self._redis.get(self.key_prefix + sender_id)
        if stored is None:
            return None
        tracker = self.deserialise_tracker(sender_id, stored)
        if tracker is None or fetch_all_sessions:
            return tracker
        sessions = rasa.shared.core.trackers.get_trackers_for_conversation_sessions(tracker)
        return sessions[-1] if len(sessions) > 1 else tracker

    async def keys(self) -> Iterable[str]:
        prefix = self.key_prefix
        return [key[len(prefix) :] async for key in self._redis.scan_iter(match=prefix + "*")]
