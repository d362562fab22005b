"""The tracker store keeps Rasa's format and never drops a session when saving."""

from __future__ import annotations

import json

from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, UserUttered
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


def _turn(tracker: DialogueStateTracker, text: str, ts: float) -> None:
    tracker.update(
        UserUttered(
            text, {"name": "greet", "confidence": 0.9}, timestamp=ts, metadata={"via": "web"}
        )
    )
    tracker.update(ActionExecuted("utter_greet", timestamp=ts))
    tracker.update(BotUttered("您好", timestamp=ts))
    tracker.update(ActionExecuted("action_listen", timestamp=ts))


async def test_a_tracker_this_process_wrote_is_saved_by_what_changed(private_redis, engine):
    """A long conversation's turn sends Redis the new events, not the whole
    conversation, and what is stored stays Rasa's document."""
    redis = Redis.from_url(private_redis.url, decode_responses=True)
    store = AsyncRedisTrackerStore(engine.agent.domain, redis, Keys("kept"))
    key = Keys("kept").tracker("t4")
    await store.save(DialogueStateTracker.from_events("t4", session_start(1.0)))
    sent, read, sizes = [], [], []
    for i in range(80):
        out_before = (await redis.info("stats"))["total_net_output_bytes"]
        tracker = await store.retrieve("t4")
        assert tracker is not None
        out_after = (await redis.info("stats"))["total_net_output_bytes"]
        _turn(tracker, f"第{i}条消息", 2.0 + i)
        in_before = (await redis.info("stats"))["total_net_input_bytes"]
        await store.save(tracker)
        in_after = (await redis.info("stats"))["total_net_input_bytes"]
        read.append(out_after - out_before)
        sent.append(in_after - in_before)
        sizes.append(await redis.strlen(key))
    assert sizes[-1] > 6 * sizes[9]
    assert sent[-1] < 1.5 * sent[9], (sent[9], sent[-1])
    assert read[-1] < 1.5 * read[9], (read[9], read[-1])

    stored = json.loads(await redis.get(key))
    assert stored["events"] == json.loads(store.serialise_tracker(tracker))["events"]
    users = [e for e in stored["events"] if e["event"] == "user"]
    assert [u["text"] for u in users] == [f"第{i}条消息" for i in range(80)]
    # Only the latest message keeps its metadata.
    assert [bool(u.get("metadata")) for u in users] == [False] * 79 + [True]
    # Another process reads the same conversation back.
    other = AsyncRedisTrackerStore(engine.agent.domain, redis, Keys("kept"))
    back = await other.retrieve("t4")
    assert back is not None
    assert json.loads(other.serialise_tracker(back))["events"] == stored["events"]
    await redis.close()


async def test_an_erased_or_rewritten_conversation_is_not_taken_from_memory(
    redis_url, key_prefix, engine
):
    redis = Redis.from_url(redis_url, decode_responses=True)
    mine = AsyncRedisTrackerStore(engine.agent.domain, redis, Keys(key_prefix))
    other = AsyncRedisTrackerStore(engine.agent.domain, redis, Keys(key_prefix))
    key = Keys(key_prefix).tracker("t5")
    await mine.save(DialogueStateTracker.from_events("t5", [*session_start(1.0), user("一", 2.0)]))
    await redis.delete(key)  # the customer's data erased
    assert await mine.retrieve("t5") is None

    await mine.save(DialogueStateTracker.from_events("t5", [*session_start(1.0), user("一", 2.0)]))
    theirs = await other.retrieve("t5")
    assert theirs is not None
    theirs.update(user("二", 3.0))
    await other.save(theirs)  # another process's turn
    tracker = await mine.retrieve("t5")
    assert tracker is not None
    assert [e.text for e in tracker.events if isinstance(e, UserUttered)] == ["一", "二"]

    # Rewritten by something that writes Rasa's plain document (Rasa itself).
    await mine.save(tracker)
    document = json.loads(await redis.get(key))
    del document["written"]
    await redis.set(key, json.dumps(document).replace("\\u4e00", "\\u4e09"))  # 一 -> 三
    again = await mine.retrieve("t5")
    assert again is not None
    assert [e.text for e in again.events if isinstance(e, UserUttered)] == ["三", "二"]
    await redis.close()
