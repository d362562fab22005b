"""Moving the keys of an older layout to the current names (``LAYOUT_VERSION``).

Layout 2 put the handoff, KPI and review keys under hash tags for Redis Cluster
(``bot/redis_keys.py``: `LegacyKeys` names the old keys, `Keys` the new). The
bot reads only the new names, so without this move the customers waiting in the
queue would drop out of it, and KPI history, review search and labels would
start empty.

Every bot process calls `migrate_once` at start-up, before it serves: the first
to take ``P:migration:lock`` moves the keys and sets ``P:layout``; the others
wait for the marker, and every later start sees it and does nothing. The
operator's command (``python -m bot migrate-keys``) moves them whatever the
marker says, under the same lock.

Each old key is moved with one RENAMENX (found by SCAN, a bounded COUNT per
step). Where the new name exists already (a new-version process wrote it
first), the old data is renamed beside it (``P:migrating:…``, the new key's hash
tag, so one slot) and one script merges it in and deletes it:

- KPIs (``{stats}``): counters add up, sets unite, the unrecognised texts'
  counts add up, duration samples keep their order (the older first);
- the review index (``{rv}``): the messages unite, a label given since wins;
- the handoff queues: a conversation already in the new queue keeps its place
  there, the older waiting times go after the newer ones;
- a handoff state: the new one wins whole (two states are never mixed).

Every step can run twice, or in two processes at once, with the same result,
so a crash half-way is finished by the next start (the marker is set last).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from bot.app_keys import BACKGROUND, REDIS, SETTINGS
from bot.redis_keys import LAYOUT_VERSION, Keys, LegacyKeys

logger = logging.getLogger(__name__)

SCAN_COUNT = 1000
LOCK_MS = 30_000
WAIT_STEP = 0.2
RETRY_EVERY = 5.0
MOVED, MERGED, DROPPED = "moved", "merged", "dropped"

# KEYS: the old key's data renamed beside the new key (same slot), the new key.
# ARGV: how entries both have are joined: 'counts' (numbers add up), 'union' (the
# new key's win), 'new' (the new key wins whole); where a list's older entries go
# ('head' or 'tail'). Returns what was done.
_MERGE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('RENAME', KEYS[1], KEYS[2])
  return 'moved'
end
local kind = redis.call('TYPE', KEYS[1])['ok']
if ARGV[1] == 'new' or kind ~= redis.call('TYPE', KEYS[2])['ok'] then
  redis.call('DEL', KEYS[1])
  return 'dropped'
end
local counts = ARGV[1] == 'counts'
local function int(v) return v and string.match(v, '^-?%d+$') and string.len(v) < 16 end
local ttl = redis.call('PTTL', KEYS[2])
if kind == 'hash' then
  local fields = redis.call('HGETALL', KEYS[1])
  for i = 1, #fields, 2 do
    local had = redis.call('HGET', KEYS[2], fields[i])
    if counts and int(fields[i + 1]) and (not had or int(had)) then
      redis.call('HINCRBY', KEYS[2], fields[i], fields[i + 1])
    else
      redis.call('HSETNX', KEYS[2], fields[i], fields[i + 1])
    end
  end
elseif kind == 'set' then
  redis.call('SUNIONSTORE', KEYS[2], KEYS[2], KEYS[1])
elseif kind == 'zset' then
  if counts then
    redis.call('ZUNIONSTORE', KEYS[2], 2, KEYS[2], KEYS[1], 'AGGREGATE', 'SUM')
  else
    local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
    for i = 1, #entries, 2 do
      redis.call('ZADD', KEYS[2], 'NX', entries[i + 1], entries[i])
    end
  end
elseif kind == 'list' then
  local items = redis.call('LRANGE', KEYS[1], 0, -1)
  if ARGV[2] == 'head' then
    for i = #items, 1, -1 do redis.call('LPUSH', KEYS[2], items[i]) end
  else
    for i = 1, #items do redis.call('RPUSH', KEYS[2], items[i]) end
  end
elseif kind == 'string' and counts then
  local old, new = redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])
  if int(old) and int(new) then redis.call('INCRBY', KEYS[2], old) end
end
-- The *STORE commands drop the destination's expiry: keep the new key's.
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
redis.call('DEL', KEYS[1])
return 'merged'
"""

# KEYS: the lock. ARGV: our token, then 'renew' with milliseconds, or 'release'.
_LOCK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == 'release' then return redis.call('DEL', KEYS[1]) end
return redis.call('PEXPIRE', KEYS[1], ARGV[3])
"""


@dataclass
class Report:
    """What a run did (or, dry, would do): old key -> new key, by outcome."""

    dry_run: bool = False
    done: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def note(self, outcome: str, old: str, new: str) -> None:
        self.done[outcome] += 1
        shown = self.examples.setdefault(outcome, [])
        if len(shown) < 20:
            shown.append((old, new))

    def summary(self) -> str:
        verb = "would be" if self.dry_run else "were"
        if not self.done:
            return f"no keys of an older layout: nothing {verb} moved"
        return (
            f"keys of an older layout: {self.done[MOVED]} {verb} renamed, "
            f"{self.done[MERGED]} {verb} merged into keys the new names already had, "
            f"{self.done[DROPPED]} {verb} dropped for the newer handoff state"
        )


def _policy(keys: Keys, new: str) -> tuple[str, str]:
    """How an old key joins its new name when both exist (see the module's docstring)."""
    if new.startswith(keys.stats("")):
        return "counts", "head"  # duration samples: pushed on the right, newest last
    if new.startswith(keys.review("")):
        return "union", "tail"
    if new in (keys.handoff_waiting, keys.handoff_assigned, keys.handoff_waits):
        return "union", "tail"  # waiting times: pushed on the left, newest first
    return "new", "tail"  # a conversation's handoff state


class KeyMigration:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._legacy = LegacyKeys(keys.prefix)
        self._merge = redis.register_script(_MERGE)
        self._lock = redis.register_script(_LOCK)
        self._token = uuid.uuid4().hex

    async def run(self, dry_run: bool = False) -> Report:
        """Move every old-layout key now (no lock, no marker: see `once`)."""
        report = Report(dry_run=dry_run)
        # First what a crashed run left half-merged: its old keys are gone already.
        async for staging in self._redis.scan_iter(
            match=self._keys.migrating_pattern, count=SCAN_COUNT
        ):
            new = self._keys.migrated(staging)
            if new is not None and not dry_run:
                await self._finish(staging, new, report, staging)
        for old, new in self._legacy.fixed().items():
            # Looked at first: a fresh install sends no command naming two slots.
            if await self._redis.exists(old):
                await self._move(old, new, report)
        for pattern in self._legacy.patterns():
            seen = 0
            async for old in self._redis.scan_iter(match=pattern, count=SCAN_COUNT):
                new = self._legacy.renamed(old)
                if new is not None:
                    await self._move(old, new, report)
                seen += 1
                if seen % SCAN_COUNT == 0 and not dry_run:
                    await self._renew()
        return report

    async def once(self) -> Report | None:
        """Move the keys in one process of all; the others wait until it is done.

        None when the marker says the keys are moved already (every start after
        the first).
        """
        waited = False
        while not await self._is_done():
            if await self._acquire():
                try:
                    if await self._is_done():  # finished while we looked
                        return None
                    report = await self.run()
                    await self._redis.set(self._keys.layout, LAYOUT_VERSION)
                    logger.info("key layout %s: %s", LAYOUT_VERSION, report.summary())
                    return report
                finally:
                    await self._release()
            if not waited:
                logger.info("another bot process is moving keys to layout %s", LAYOUT_VERSION)
                waited = True
            await asyncio.sleep(WAIT_STEP)
        return None

    async def locked(self, dry_run: bool = False) -> Report:
        """The operator's run: whatever the marker says, under the lock (waiting for it)."""
        if dry_run:
            return await self.run(dry_run=True)
        while True:
            if await self._acquire():
                break
            await asyncio.sleep(WAIT_STEP)
        try:
            report = await self.run()
            await self._redis.set(self._keys.layout, LAYOUT_VERSION)
            return report
        finally:
            await self._release()

    async def _acquire(self) -> bool:
        return bool(
            await self._redis.set(self._keys.migration_lock, self._token, nx=True, px=LOCK_MS)
        )

    async def _release(self) -> None:
        await self._lock(keys=[self._keys.migration_lock], args=[self._token, "release"])

    async def _is_done(self) -> bool:
        return await self._redis.get(self._keys.layout) == LAYOUT_VERSION

    async def _renew(self) -> None:
        renewed = await self._lock(
            keys=[self._keys.migration_lock], args=[self._token, "renew", LOCK_MS]
        )
        if not renewed:
            # Another process took over: harmless, every step is safe to repeat.
            logger.warning("the key migration lock expired; another process may be moving too")

    async def _move(self, old: str, new: str, report: Report) -> None:
        if report.dry_run:
            if await self._redis.exists(old):
                report.note(MERGED if await self._redis.exists(new) else MOVED, old, new)
            return
        try:
            if await self._redis.renamenx(old, new):
                report.note(MOVED, old, new)
                return
        except ResponseError:
            return  # no such key: another run moved it since the SCAN saw it
        staging = self._keys.migrating(new)
        while True:
            try:
                if await self._redis.renamenx(old, staging):
                    break
            except ResponseError:
                return  # another run took it
            # A merge of an earlier run is pending there: finish it, then ours.
            await self._finish(staging, new, report, old)
        await self._finish(staging, new, report, old)

    async def _finish(self, staging: str, new: str, report: Report, old: str) -> None:
        how, older = _policy(self._keys, new)
        outcome = str(await self._merge(keys=[staging, new], args=[how, older]))
        if outcome == "moved":
            report.note(MOVED, old, new)
        elif outcome in (MERGED, DROPPED):
            report.note(outcome, old, new)


async def migration_ctx(app: web.Application) -> AsyncIterator[None]:
    """Old-layout keys moved before this process serves (in one process of all).

    With Redis unreachable at start-up the bot serves nothing anyway; the move
    is retried in the background until it has been done once.
    """
    migration = KeyMigration(app[REDIS], Keys(app[SETTINGS].key_prefix))
    try:
        await migration.once()
    except (RedisError, OSError) as exc:
        logger.warning("could not move old-layout keys at start-up (%s); retrying", exc)
        app[BACKGROUND].until_done(RETRY_EVERY, migration.once, "key layout migration")
    yield
