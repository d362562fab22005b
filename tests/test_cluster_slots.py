"""Redis Cluster readiness: no script, transaction or multi-key command spans hash slots.

The bot's features run end to end (REST and web chat messages with ids,
escalations, the console's claim, reply, note, transfer, release and close,
a failed and a good sign-in, a rating, review search and labels, KPIs, a
customer's data exported and erased, the queue sweep, retention) through
a client that records every command with the code that sent it. Afterwards
every Lua script call, MULTI/EXEC transaction and multi-key command has the
CRC16 slot of each of its keys computed (Redis names the keys: `COMMAND
GETKEYS`); one that mixes slots fails the test, unless its feature is listed
in SHARED_SLOT below (empty today), which README ("Deploying", Redis Cluster
readiness) would have to explain.
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
from bot.redis_keys import HANDOFF_TAG, REVIEW_TAG, STATS_TAG, Keys
from bot.retention import Retention
from tests.helpers import Visitor
from tests.slot_recorder import Recorder, RecordingRedis

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BASE = "/console/api/conversations"

# Code allowed to span slots (code location -> what it joins), each explained
# in README ("Redis Cluster readiness"). None today: a feature whose commands
# join keys gives them one hash tag. Anything not listed here fails the test.
SHARED_SLOT: dict[str, str] = {}


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


async def test_the_recorder_flags_every_call_that_mixes_slots(redis_url, key_prefix):
    found = Recorder()
    client = RecordingRedis.from_url(redis_url, decode_responses=True)
    client.recorder = found
    keys = Keys(key_prefix)
    mine, other = keys.conv("rest:a", "x"), keys.conv("rest:b", "x")
    try:
        async with client.pipeline(transaction=True) as pipe:
            pipe.set(mine, 1)
            pipe.set(keys.conversations, 1)
            await pipe.execute()
        await client.delete(mine, other)
        await client.eval("return 1", 2, keys.handoff_state("rest:a"), keys.conv_meta("rest:a"))
        # One slot each: one conversation's keys; the handoff feature's.
        await client.delete(mine, keys.conv_meta("rest:a"))
        await client.eval("return 1", 2, keys.handoff_state("rest:a"), keys.handoff_waiting)
        async with client.pipeline(transaction=True) as pipe:
            pipe.sadd(keys.stats("2026-01-01", "conv"), "rest:a")
            pipe.sunionstore(keys.stats("tmp", "x"), [keys.stats("2026-01-01", "conv")])
            await pipe.execute()
    finally:
        await client.close()
    sync = redis_sync.Redis.from_url(redis_url)
    try:
        offences = found.offences(sync)
    finally:
        sync.close()
    assert list(offences) == ["elsewhere"]  # the caller is this test, not the bot
    assert sorted(o.split(":")[0] for o in offences["elsewhere"]) == [
        "command DEL",
        "command EVAL",
        "transaction SET",
    ]


def test_the_readme_explains_the_cluster_layout():
    """Each feature's hash tag, and anything still allowed to span slots."""
    text = README.read_text()
    section = text[text.index("**Redis Cluster readiness.**") :]
    section = section[: section.index("**Sizing**")]
    for tag in (HANDOFF_TAG, STATS_TAG, REVIEW_TAG):
        assert f"P:{tag}:" in section, tag
    for where in SHARED_SLOT:
        assert where.split(":")[0] in section, where
