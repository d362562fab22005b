"""Settings for reaching Redis: one URL, or Sentinels with passwords."""

from __future__ import annotations

import pytest

from bot.redis_connection import SentinelMaster, connect, describe
from bot.settings import Settings, SettingsError


def test_sentinel_settings_are_parsed_and_answers_then_wait_for_a_replica():
    s = Settings.from_env(
        {
            "REDIS_SENTINELS": "10.0.0.1:26379, sentinel-2:26380,[::1]:26381",
            "REDIS_SENTINEL_MASTER": "shop",
            "REDIS_PASSWORD": "p1",
            "REDIS_SENTINEL_PASSWORD": "p2",
        },
        dotenv=None,
    )
    assert s.redis_sentinels == (("10.0.0.1", 26379), ("sentinel-2", 26380), ("::1", 26381))
    assert (s.redis_sentinel_master, s.redis_password, s.redis_sentinel_password) == (
        "shop",
        "p1",
        "p2",
    )
    assert s.redis_wait_replicas == 1
    assert "p1" not in describe(s) and "master 'shop' of Sentinels" in describe(s)


def test_a_single_redis_does_not_wait_for_replicas_and_its_url_is_used():
    s = Settings.from_env({"REDIS_URL": "redis://:secret@db:6390/2"}, dotenv=None)
    assert s.redis_sentinels == () and s.redis_wait_replicas == 0
    assert describe(s) == "db:6390/2"


@pytest.mark.parametrize("value", ["host", "host:", ":26379", "host:0", "host:port", "h:70000"])
def test_malformed_sentinel_addresses_are_refused_by_name(value):
    with pytest.raises(SettingsError, match="REDIS_SENTINELS"):
        Settings.from_env({"REDIS_SENTINELS": value}, dotenv=None)


def test_wait_replicas_must_be_a_count():
    with pytest.raises(SettingsError, match="BOT_REDIS_WAIT_REPLICAS"):
        Settings.from_env({"BOT_REDIS_WAIT_REPLICAS": "-1"}, dotenv=None)


async def test_sentinel_client_uses_the_passwords_and_closes_its_sentinel_connections():
    s = Settings.from_env(
        {"REDIS_SENTINELS": "127.0.0.1:1", "REDIS_PASSWORD": "p1", "REDIS_SENTINEL_PASSWORD": "p2"},
        dotenv=None,
    )
    client = connect(s)
    assert isinstance(client, SentinelMaster) and client.sentinel is not None
    assert client.connection_pool.connection_kwargs["password"] == "p1"
    sentinel = client.sentinel.sentinels[0]
    assert sentinel.connection_pool.connection_kwargs["password"] == "p2"
    await client.close(close_connection_pool=True)
