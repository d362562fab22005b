"""Redis Cluster readiness: no script, transaction or multi-key command spans hash slots.

The bot's features run end to end (REST and web chat messages with ids,
escalations, the console's claim, reply, note, transfer, release and close,
a failed and a good sign-in, a rating, review search and labels, KPIs, a
customer's data exported and erased, the queue sweep, retention) through
a client that records every command with the code that sent it. Afterwards
every Lua script call, MULTI/EXEC transaction and multi-key command has the
CRC16 slot of each of its keys computed (Redis names the keys: `COMMAND
GETKEYS`); one that mixes slots fails the test, unless its feature is listed
in SHARED_SLOT below, which README ("Deploying", Redis Cluster readiness)
explains.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_sync

from bot import redis_connection
from bot.app import create_app
from bot.app_keys import REDIS, REVIEW_INDEX, SETTINGS, STATES
from bot.channels.identity import conversation_id
from bot.redis_keys import Keys
from bot.retention import Retention
from tests.helpers import Visitor
from tests.slot_recorder import Recorder, RecordingRedis

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BASE = "/console/api/conversations"

# What still spans slots today (code location -> what it joins). Each needs a
# change before the bot can run on Redis Cluster; README ("Redis Cluster
# readiness") says which. Anything not listed here fails the test.
SHARED_SLOT: dict[str, str] = {
    "bot/conversation_log/store.py:_append": "a conversation's log and meta with the "
    "activity index and the day's KPI counters, in one MULTI",
    "bot/handoff/states.py:_apply": "a conversation's handoff state with the shared queues, "
    "in one Lua transition",
    "bot/handoff/presence.py:keep": "an agent's consoles with the shared presence and roster, "
    "in one Lua step (one slot once the handoff keys share their tag)",
    "bot/handoff/presence.py:expire": "the shared presence keys, in one Lua step",
    "bot/satisfaction/store.py:record": "a conversation's rating with the ratings stream",
    "bot/retention.py:_forget": "many conversations and the shared indexes, in one MULTI",
    "bot/stats/kpis.py:_conversation_counts": "the per-day conversation sets, united",
    "bot/review/index.py:label": "the review labels and the review queue",
}


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    found = Recorder()

    def connect(settings):  # type: ignore[no-untyped-def]
        client = RecordingRedis.from_url(settings.redis_url, decode_responses=True)
        client.recorder = found
        return client

    monkeypatch.setattr(redis_connection, "connect", connect)
    yield found


async def test_every_script_and_transaction_stays_in_one_hash_slot(
    aiohttp_client, settings, engine, recorder, logins, redis_url, admin_headers
):
    own = settings.with_(handoff_reannounce_seconds=0.1, handoff_sweep_seconds=0.2)
    client = await aiohttp_client(create_app(own, engine), server_kwargs={"port": own.port})
    app = client.app

    async def say(sender: str, text: str, mid: str) -> None:
        body = {"sender": sender, "message": text, "message_id": mid}
        resp = await client.post("/webhooks/rest/webhook", json=body)
        assert resp.status == 200, await resp.text()

    await say("slots1", "你好", "m1")
    await say("slots1", "你好", "m1")  # a repeat: answered from the claim
    await say("slots1", "运费怎么算", "m2")
    await say("slots1", "再见", "m3")
    await say("slots1", "5", "m4")  # a rating, if the bot asked for one
    await say("slots2", "质量太差了，我要投诉", "m5")  # feedback stream, escalation
    await say("slots3", "我要转人工", "m6")
    async with Visitor(client) as visitor:
        await visitor.open()
        assert (await visitor.send("你好", message_id="w1")).status == 200

    # The console: a failed sign-in, then agents work the queue.
    bad = await client.post("/console/api/login", json={"username": "x", "password": "wrong!!"})
    assert bad.status == 401
    a = await logins.sign_in(client, "slotagent1")
    b = await logins.sign_in(client, "slotagent2")
    angry, waiting = conversation_id("rest", "slots2"), conversation_id("rest", "slots3")
    for path, who, body in [
        (f"{BASE}/{waiting}/claim", a, {}),
        (f"{BASE}/{waiting}/reply", a, {"text": "您好，我来帮您"}),
        (f"{BASE}/{waiting}/notes", a, {"text": "老客户"}),
        (f"{BASE}/{waiting}/transfer", a, {"to": "slotagent2"}),
        (f"{BASE}/{waiting}/release", b, {}),
        (f"{BASE}/{angry}/claim", b, {}),
        (f"{BASE}/{angry}/close", b, {"tag": "已解决"}),
    ]:
        resp = await who.post(path, body)
        assert resp.status == 200, (path, await resp.text())
    assert (await app[STATES].get(waiting)).state == "bot"

    # Trainers: search, KPIs; the review index's labels.
    trainer = await logins.sign_in(client, "slottrainer", "trainer")
    for path in ("/review/api/messages?q=运费", "/review/api/messages?queue=1", "/api/stats"):
        resp = await trainer.get(path)
        assert resp.status == 200, (path, await resp.text())
    await app[REVIEW_INDEX].label("slots-item", {"intent": "greet"})

    # A customer's data exported, then erased everywhere (PIPL).
    slots1 = conversation_id("rest", "slots1")
    for method in ("GET", "DELETE"):
        path = f"/api/conversations/{slots1}" + ("/export" if method == "GET" else "")
        resp = await client.request(method, path, headers=admin_headers)
        assert resp.status == 200, (path, await resp.text())

    # The sweeper re-announced the queue meanwhile; retention forgets everything.
    await asyncio.sleep(0.3)
    keys = Keys(app[SETTINGS].key_prefix)
    await Retention(app[REDIS], keys, app[REVIEW_INDEX], 1).expire(now=time.time() + 3 * 86400)

    assert recorder.scripts_and_transactions > 20
    sync = redis_sync.Redis.from_url(redis_url)
    try:
        offences = recorder.offences(sync)
    finally:
        sync.close()
    unexplained = {where: what for where, what in offences.items() if where not in SHARED_SLOT}
    assert not unexplained, "\n".join(f"{w}: {sorted(v)}" for w, v in unexplained.items())


def test_every_shared_slot_feature_is_explained_in_the_readme():
    text = README.read_text()
    for where in SHARED_SLOT:
        assert where.split(":")[0] in text, where
