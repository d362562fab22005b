"""Customers' rights: a copy of everything kept, erasure that leaves nothing, an audit log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

from redis.asyncio import Redis

from bot.app_keys import CONVERSATION_LOG, REDIS, REVIEW_INDEX, SETTINGS, STATS
from bot.names import FALLBACK
from bot.redis_keys import Keys, encode_conversation
from tests.conftest import ROOT
from tests.helpers import say

PHONE = "13912345678"
BASE = "/console/api/conversations"


async def everything_under(redis: Redis, prefix: str) -> dict[str, Any]:
    """Every key under the prefix with its whole content, as text."""
    found: dict[str, Any] = {}
    async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
        kind = await redis.type(key)
        if kind == "string":
            found[key] = await redis.get(key)
        elif kind == "hash":
            found[key] = await redis.hgetall(key)
        elif kind == "list":
            found[key] = await redis.lrange(key, 0, -1)
        elif kind == "set":
            found[key] = sorted(await redis.smembers(key))
        elif kind == "zset":
            found[key] = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            found[key] = await redis.xrange(key)
    return found


def word(sender: str) -> str:
    """A made-up word of this customer's only (letters: the normaliser keeps them)."""
    return "qz" + "".join(chr(ord("a") + ord(c) % 26) for c in sender)


async def a_full_conversation(client, sign_in, sender: str, agent: str = "") -> str:  # type: ignore[no-untyped-def]
    """A customer who rated, complained, was served by an agent and wrote nonsense."""
    conversation = f"rest:{sender}"
    await say(client, sender, "满多少包邮")
    await say(client, sender, "好的拜拜")
    await say(client, sender, "5")  # the satisfaction rating
    # A message the NLU did not understand, recorded as the chat turn records one
    # (whichever reading today's model gives the made-up word): the log, its NLU
    # result, and the KPIs' table of unrecognised messages.
    log, nonsense = client.app[CONVERSATION_LOG], word(sender)
    entry = await log.append_inbound(conversation, "rest", nonsense)
    await log.annotate(conversation, entry, {"intent": {"name": FALLBACK, "confidence": 0.3}}, None)
    await client.app[STATS].classified(FALLBACK, nonsense)
    await say(client, sender, f"质量太差了，我要投诉，我的电话{PHONE}")
    agent = await sign_in(agent or "agent-" + uuid.uuid4().hex[:8])
    assert (await agent.post(f"{BASE}/{conversation}/claim")).status == 200
    assert (await agent.post(f"{BASE}/{conversation}/notes", {"text": "老客户"})).status == 200
    assert (await agent.post(f"{BASE}/{conversation}/reply", {"text": "您好"})).status == 200
    assert (await agent.get(f"{BASE}/{conversation}")).status == 200  # read: audited
    assert (await agent.post(f"{BASE}/{conversation}/release")).status == 200
    resp = await client.post(
        "/webhooks/rest/webhook",
        json={"sender": sender, "message": "我的快递到哪了", "message_id": "pipl-1"},
    )
    assert resp.status == 200
    timeline = await client.app[REDIS].xrange(
        Keys(client.app[SETTINGS].key_prefix).conv_log(conversation)
    )
    first = timeline[0][0]
    await client.app[REVIEW_INDEX].label(f"{conversation}|{first}", {"intent": "ask_free_shipping"})
    return conversation


async def test_export_holds_everything_kept(client, sign_in, admin_headers):
    conversation = await a_full_conversation(client, sign_in, "pipl-export")
    resp = await client.get(f"/api/conversations/{conversation}/export", headers=admin_headers)
    assert resp.status == 200
    data = await resp.json()
    assert data["conversation"] == conversation and data["channel"] == "rest"
    texts = [m["text"] for m in data["messages"]]
    assert "满多少包邮" in texts and "您好" in texts
    assert any(m.get("intent") for m in data["messages"] if m["direction"] == "in")
    assert [n["text"] for n in data["notes"]] == ["老客户"]
    assert "complaint" in data["handoff"]["reasons"] and data["handoff"]["state"]["state"]
    assert data["satisfaction"]["rating"] == "5" and data["ratings"][0]["rating"] == "5"
    assert data["feedback"][0]["kind"] == "complaint" and PHONE in data["feedback"][0]["text"]
    assert list(data["review_labels"].values()) == [{"intent": "ask_free_shipping"}]
    assert any(e["event"] == "user" for e in data["rasa_tracker"]["events"])
    assert any(k.startswith("msg:") for k in data["other"])  # the message-id claim
    missing = await client.get("/api/conversations/rest:nobody/export", headers=admin_headers)
    assert missing.status == 404
    assert (await client.get(f"/api/conversations/{conversation}/export")).status == 401


async def test_erasure_leaves_no_key_or_entry_that_mentions_the_conversation(
    client, sign_in, admin_headers
):
    prefix = client.app[SETTINGS].key_prefix
    redis = client.app[REDIS]
    conversation = await a_full_conversation(client, sign_in, "pipl-" + uuid.uuid4().hex[:8])
    keep = await a_full_conversation(client, sign_in, "pipl-keep")
    user = conversation.removeprefix("rest:")
    everything = await everything_under(redis, prefix)
    before = json.dumps(everything, ensure_ascii=False)
    assert conversation in before and word(user) in before  # the check below can fail
    unrecognized = [k for k in everything if k.endswith(":unrecognized")]
    assert any(word(user) in json.dumps(everything[k]) for k in unrecognized)

    resp = await client.delete(f"/api/conversations/{conversation}", headers=admin_headers)
    assert resp.status == 200
    record = (await resp.json())["record"]
    assert int(record["keys"]) >= 8 and int(record["messages"]) >= 10
    assert conversation not in json.dumps(record)

    after = await everything_under(redis, prefix)
    for key, content in after.items():
        text = key + json.dumps(content, ensure_ascii=False)
        for trace in (user, encode_conversation(conversation), word(user)):
            assert trace not in text, (key, trace)
    # The other customer's data is untouched (its phone is the same test number).
    after_text = json.dumps(after, ensure_ascii=False)
    assert keep in after_text and PHONE in after_text
    assert (await client.get(f"/api/conversations/{keep}", headers=admin_headers)).status == 200
    assert (
        await client.get(f"/api/conversations/{conversation}", headers=admin_headers)
    ).status == 404
    # The erasure itself is on record, without the id.
    erasures = (await (await client.get("/api/erasures", headers=admin_headers)).json())["erasures"]
    assert (
        erasures[0]["conversation"] == record["conversation"] and erasures[0]["by"] == "admin-token"
    )
    # Erasing again: nothing there.
    again = await client.delete(f"/api/conversations/{conversation}", headers=admin_headers)
    assert again.status == 404


async def test_the_audit_log_says_who_read_exported_and_erased(client, sign_in, admin_headers):
    conversation = await a_full_conversation(client, sign_in, "pipl-audit", agent="xiaowang")
    await client.get(f"/api/conversations/{conversation}/export", headers=admin_headers)
    boss = await sign_in("boss", "admin")
    entries = (await (await boss.get("/console/api/audit")).json())["entries"]
    seen = {(e["who"], e["action"], e["via"], e["conversation"]) for e in entries}
    assert ("xiaowang", "read", "console", conversation) in seen
    assert ("admin-token", "export", "admin_api", conversation) in seen
    # Reading again at once is not a new entry (the console re-reads on every event).
    agent = await sign_in("agent2")
    for _ in range(3):
        await agent.get(f"{BASE}/{conversation}")
    entries = (await (await boss.get("/console/api/audit")).json())["entries"]
    assert sum(1 for e in entries if e["who"] == "agent2") == 1
    # Only admins read it.
    assert (await agent.get("/console/api/audit")).status == 403
    assert (await client.get("/api/audit")).status == 401
    await client.delete(f"/api/conversations/{conversation}", headers=admin_headers)
    entries = (await (await client.get("/api/audit", headers=admin_headers)).json())["entries"]
    assert entries[0]["action"] == "erase" and entries[0]["conversation"] is None
    assert all(e["conversation"] != conversation for e in entries)


def kefu(settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "BOT_KEY_PREFIX": settings.key_prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_export_and_forget_from_the_command_line(client, sign_in, settings):
    conversation = await a_full_conversation(client, sign_in, "pipl-cli")
    exported = kefu(settings, "export", conversation)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["conversation"] == conversation
    refused = kefu(settings, "forget", conversation, stdin="")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    erased = kefu(settings, "forget", conversation, "--yes")
    assert erased.returncode == 0, erased.stderr
    assert "erased" in erased.stdout
    keys = Keys(settings.key_prefix)
    assert await client.app[REDIS].exists(keys.conv_log(conversation)) == 0
    assert kefu(settings, "export", conversation).returncode == 1
