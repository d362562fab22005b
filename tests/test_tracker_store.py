"""The tracker store keeps Rasa's format and never drops a session when saving."""

from __future__ import annotations

import json

from rasa.shared.core.events import ActionExecuted, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from redis.asyncio import Redis

from bot.engine.tracker_store import AsyncRedisTrackerStore
from bot.redis_keys import Keys


def user(text: str, ts: float) -> UserUttered:
    return UserUttered(text, {"name": "greet", "confidence": 0.9}, timestamp=ts)


def session_start(ts: float) -> list:
    return [
        ActionExecuted("action_session_start", timestamp=ts),
        SessionStarted(timestamp=ts),
        ActionExecuted("action_listen", timestamp=ts),
    ]


async def test_round_trip_in_rasas_format(redis_url, key_prefix, engine):
    redis = Redis.from_url(redis_url, decode_responses=True)
    store = AsyncRedisTrackerStore(engine.agent.domain, redis, Keys(key_prefix))
    tracker = DialogueStateTracker.from_events("t1", [*session_start(1.0), user("你好", 2.0)])
    await store.save(tracker)
    raw = json.loads(await redis.get(Keys(key_prefix).tracker("t1")))
    assert [e["event"] for e in raw["events"]] == ["action", "session_started", "action", "user"]
    back = await store.retrieve("t1")
    assert back is not None and back.latest_message.text == "你好"
    await redis.close()


async def test_saving_the_latest_session_keeps_earlier_ones(redis_url, key_prefix, engine):
    redis = Redis.from_url(redis_url, decode_responses=True)
    store = AsyncRedisTrackerStore(engine.agent.domain, redis, Keys(key_prefix))
    first = [*session_start(1.0), user("第一次", 2.0)]
    second = [*session_start(100.0), user("第二次", 101.0)]
    await store.save(DialogueStateTracker.from_events("t2", first + second))

    latest = await store.retrieve("t2")
    assert latest is not None
    assert [e.text for e in latest.events if isinstance(e, UserUttered)] == ["第二次"]
    latest.update(user("第三次", 102.0))
    await store.save(latest)

    full = await store.retrieve_full_tracker("t2")
    assert full is not None
    assert [e.text for e in full.events if isinstance(e, UserUttered)] == [
        "第一次",
        "第二次",
        "第三次",
    ]
    await redis.close()


async def test_a_write_by_someone_else_since_the_read_is_merged(redis_url, key_prefix, engine):
    redis = Redis.from_url(redis_url, decode_responses=True)
    mine = AsyncRedisTrackerStore(engine.agent.domain, redis, Keys(key_prefix))
    other = AsyncRedisTrackerStore(engine.agent.domain, redis, Keys(key_prefix))
    await mine.save(DialogueStateTracker.from_events("t3", [*session_start(1.0), user("一", 2.0)]))

    tracker = await mine.retrieve("t3")
    theirs = await other.retrieve("t3")
    assert tracker is not None and theirs is not None
    theirs.update(user("二", 3.0))
    await other.save(theirs)
    tracker.update(user("三", 4.0))
    await mine.save(tracker)

    full = await mine.retrieve_full_tracker("t3")
    assert full is not None
    assert [e.text for e in full.events if isinstance(e, UserUttered)] == ["一", "二", "三"]
    await redis.close()
