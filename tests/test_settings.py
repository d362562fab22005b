from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError


def test_defaults_match_the_readme():
    s = Settings.from_env({}, dotenv=None)
    assert s.redis_url == "redis://localhost:6379/0"
    assert (s.host, s.port) == ("127.0.0.1", 8080)
    assert s.admin_token is None
    assert s.model_dir == Path("models")
    assert s.action_endpoint_url == "http://127.0.0.1:8080/webhooks/actions"


def test_environment_wins_over_dotenv(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# comment\nBOT_PORT=9000\nexport BOT_ADMIN_TOKEN='from-file'\nREDIS_URL=redis://x:1/2\n"
    )
    s = Settings.from_env({"BOT_PORT": "9100"}, dotenv=dotenv)
    assert s.port == 9100
    assert s.admin_token == "from-file"
    assert s.redis_url == "redis://x:1/2"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BOT_PORT", "http"),
        ("BOT_PORT", "-1"),
        ("BOT_LOCK_LIFETIME", "0"),
        ("BOT_KEY_PREFIX", "a:b"),
    ],
)
def test_unusable_values_are_refused_by_name(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value}, dotenv=None)


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:8080"),
        ("::", "http://[::1]:8080"),
        ("10.1.2.3", "http://10.1.2.3:8080"),
    ],
)
def test_action_endpoint_reaches_this_process(host, url):
    s = Settings.from_env({"BOT_HOST": host}, dotenv=None)
    assert s.action_endpoint_url == f"{url}/webhooks/actions"
