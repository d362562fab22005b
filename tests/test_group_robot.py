"""Group-robot alerts: long waits and a long queue, once each, in each platform's format."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from redis.asyncio import Redis

from bot.app import create_app
from bot.handoff.alerts import AlertSettings, GroupRobot, robot_accepted, robot_body, signed
from bot.redis_keys import Keys
from bot.settings import Settings, SettingsError
from tests.fake_group_robot import FakeGroupRobot
from tests.helpers import handoff_service


@pytest.fixture
async def redis(redis_url):  # type: ignore[no-untyped-def]
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.close()


@pytest.mark.parametrize("fmt", ["wecom", "dingtalk", "feishu"])
async def test_a_long_wait_and_a_long_queue_are_told_once_each(
    fmt, aiohttp_server, redis, key_prefix
):
    fake = FakeGroupRobot(fmt)
    server = await aiohttp_server(fake.app())
    keys = Keys(key_prefix)
    service = handoff_service(redis, keys)
    for n in range(3):
        await service.request(f"rest:wait{n}", "request_human", "人工")
    alert = AlertSettings(str(server.make_url(fake.path())), fmt, 0.3, 3)
    async with aiohttp.ClientSession() as session:
        robots = [GroupRobot(session, redis, keys, service.states, alert) for _ in range(3)]
        first = await asyncio.gather(*(r.check() for r in robots))  # three processes at once
        assert sum(len(s) for s in first) == 1 and "3 人" in fake.texts[0]
        await asyncio.sleep(0.35)
        await asyncio.gather(*(r.check() for r in robots))
        await asyncio.gather(*(r.check() for r in robots))
        waits = [t for t in fake.texts if "已等待" in t]
        assert sorted(t.split()[1] for t in waits) == ["rest:wait0", "rest:wait1", "rest:wait2"]
        # The queue shrinks below the size, then grows again: told again.
        await service.claim("rest:wait0", "xiaoli")
        await robots[0].check()
        await service.request("rest:wait3", "request_human", "人工")
        await robots[1].check()
        assert sum("排队人数" in t for t in fake.texts) == 2
        # A conversation back in the queue keeps its first stay's alert (same wait).
        assert await service.requeue("rest:wait0", idle_before=time.time() + 1)
        await robots[2].check()
        assert sum("rest:wait0" in t for t in fake.texts) == 1


async def test_a_refusing_robot_is_logged_and_not_retried(
    aiohttp_server, redis, key_prefix, caplog
):
    fake = FakeGroupRobot("wecom", token="the-right-key")
    server = await aiohttp_server(fake.app())
    keys = Keys(key_prefix)
    service = handoff_service(redis, keys)
    await service.request("rest:late", "request_human", "人工")
    wrong = str(server.make_url("/cgi-bin/webhook/send?key=wrong"))
    async with aiohttp.ClientSession() as session:
        robot = GroupRobot(
            session, redis, keys, service.states, AlertSettings(wrong, "wecom", 0, 99)
        )
        assert await robot.check() == []
        assert await robot.check() == []
    assert fake.texts == []
    assert "93000" in caplog.text


@pytest.mark.parametrize("fmt", ["dingtalk", "feishu"])
async def test_a_signing_robot_takes_signed_alerts_and_refuses_wrong_or_stale_ones(
    fmt, aiohttp_server, redis, key_prefix, caplog
):
    fake = FakeGroupRobot(fmt, secret="SEC-the-robots-secret")
    server = await aiohttp_server(fake.app())
    keys = Keys(key_prefix)
    service = handoff_service(redis, keys)
    url = str(server.make_url(fake.path()))
    async with aiohttp.ClientSession() as session:

        def robot(secret: str | None) -> GroupRobot:
            alert = AlertSettings(url, fmt, 0, 99, secret)
            return GroupRobot(session, redis, keys, service.states, alert)

        await service.request("rest:signed0", "request_human", "人工")
        assert await robot("wrong-secret").check() == []
        await service.request("rest:signed1", "request_human", "人工")
        assert await robot(None).check() == []  # unsigned
        # Rightly signed, two hours ago: a replayed message.
        stale_url, stale = signed(
            fmt, url, robot_body(fmt, "旧消息"), "SEC-the-robots-secret", time.time() - 7200
        )
        async with session.post(stale_url, json=stale) as resp:
            assert not robot_accepted(fmt, await resp.json())
        assert fake.texts == []
        code = {"dingtalk": ("errcode", 310000), "feishu": ("code", 19021)}[fmt]
        assert [a[code[0]] for a in fake.refused] == [code[1]] * 3
        assert str(code[1]) in caplog.text
        await service.request("rest:signed3", "request_human", "人工")
        sent = await robot("SEC-the-robots-secret").check()
        assert len(sent) == 1 and "rest:signed3" in sent[0] and fake.texts == sent


def test_a_signing_secret_for_a_robot_that_cannot_sign_is_refused():
    with pytest.raises(SettingsError, match="BOT_ALERT_WEBHOOK_SECRET"):
        Settings.from_env({"BOT_ALERT_WEBHOOK_SECRET": "SEC1"}, dotenv=None)  # wecom
    env = {"BOT_ALERT_WEBHOOK_FORMAT": "feishu", "BOT_ALERT_WEBHOOK_SECRET": " SEC1 "}
    assert Settings.from_env(env, dotenv=None).alert_webhook_secret == "SEC1"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BOT_ALERT_WEBHOOK", "ftp://x"),
        ("BOT_ALERT_WEBHOOK_FORMAT", "slack"),
        ("BOT_ALERT_QUEUE", "0"),
    ],
)
def test_unusable_alert_settings_are_refused(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value}, dotenv=None)


@pytest.mark.parametrize(("fmt", "secret"), [("dingtalk", None), ("feishu", "SEC-feishu")])
async def test_the_app_sends_alerts_when_a_webhook_is_set(
    fmt, secret, aiohttp_client, aiohttp_server, settings, engine
):
    fake = FakeGroupRobot(fmt, secret=secret)
    server = await aiohttp_server(fake.app())
    own = settings.with_(
        alert_webhook=str(server.make_url(fake.path())),
        alert_webhook_format=fmt,
        alert_webhook_secret=secret,
        alert_wait_seconds=0.2,
        handoff_sweep_seconds=0.1,
    )
    client = await aiohttp_client(create_app(own, engine), server_kwargs={"port": own.port})
    resp = await client.post(
        "/webhooks/rest/webhook", json={"sender": "robot1", "message": "我要转人工"}
    )
    assert resp.status == 200
    for _ in range(50):  # the sweep runs every 0.1 s; the wait counts from 0.2 s
        if fake.texts:
            break
        await asyncio.sleep(0.1)
    assert fake.texts and "rest:robot1" in fake.texts[0]
