"""Custom actions, run the way rasa_sdk runs them."""

from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from redis.asyncio import Redis

from actions.handoff import ActionRequestHuman
from bot.handoff.requests import HandoffRequests
from bot.redis_keys import Keys


def tracker(sender: str, text: str) -> Tracker:
    return Tracker(
        sender_id=sender,
        slots={},
        latest_message={"text": text, "intent": {"name": "request_human", "confidence": 0.97}},
        events=[],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


async def test_request_human_queues_once_and_tells_the_customer(redis_url, key_prefix):
    redis = Redis.from_url(redis_url, decode_responses=True)
    queue = HandoffRequests(redis, Keys(key_prefix))
    action = ActionRequestHuman(queue)
    dispatcher = CollectingDispatcher()

    events = await action.run(dispatcher, tracker("c1", "找真人"), {})
    await action.run(CollectingDispatcher(), tracker("c1", "人工！！"), {})

    assert events == [
        {"event": "slot", "timestamp": None, "name": "handoff_requested", "value": True}
    ]
    assert dispatcher.messages == []  # the confirmation is the rule's, once the slot is set
    waiting = await queue.waiting()
    assert [c for c, _ in waiting] == ["c1"]  # asking twice keeps one place in the queue
    assert (await queue.details("c1"))["text"] == "人工！！"
    await redis.close()
