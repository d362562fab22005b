"""What operators read: the log of a real `python -m bot serve`, in JSON and in text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from bot.logs import HIDDEN, bind_request, bind_turn, bound, configure
from bot.settings import Settings
from bot.startup import access_log, channels
from tests.conftest import ROOT, free_port

PHONE = "13912345678"
pytestmark = pytest.mark.slow


# The child's channels are configured by the test alone, never by the environment.
CHANNEL_SETTINGS = ("BOT_", "WECHAT_", "WECOM_", "WEIBO_")


def serve(tmp_path: Path, redis_url: str, key_prefix: str, model_dir: Path, **env: str):  # type: ignore[no-untyped-def]
    """A bot process on a free port, its stderr in a file; returns (process, port, log)."""
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    child_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(CHANNEL_SETTINGS)},
        "REDIS_URL": redis_url,
        "BOT_PORT": str(port),
        "BOT_KEY_PREFIX": key_prefix,
        "BOT_MODEL_DIR": str(model_dir),
        "BOT_BCRYPT_ROUNDS": "4",
        **env,
    }
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"],
            cwd=ROOT,
            env=child_env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc, port, log
        except requests.RequestException:
            pass
        assert proc.poll() is None, log.read_text()
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the bot did not become ready:\n" + log.read_text())


def stop(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_json_logs_are_one_object_per_line_for_bot_and_rasa_events_with_the_turn_bound(
    tmp_path, redis_url, key_prefix, model_path
):
    proc, port, log = serve(
        tmp_path,
        redis_url,
        key_prefix,
        model_path.parent,
        BOT_LOG_FORMAT="json",
        BOT_LOG_LEVEL="DEBUG",
    )
    try:
        url = f"http://127.0.0.1:{port}/webhooks/rest/webhook"
        said = requests.post(
            url,
            json={"sender": "j1", "message": f"我的手机号是{PHONE}，帮我查下订单"},
            headers={"X-Request-Id": "req-json-1"},
            timeout=30,
        )
        assert said.status_code == 200 and said.headers["X-Request-Id"] == "req-json-1"
        bad = requests.post(url, data=b"{", headers={"Content-Type": "application/json"})
        assert bad.status_code == 400
    finally:
        stop(proc)
    lines = [line for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"event", "level", "logger", "timestamp"} <= set(e) for e in events)

    turn = [e for e in events if e.get("request_id") == "req-json-1"]
    # The bot's own events, Rasa's stdlib ones and Rasa's structlog ones, all bound.
    assert any(e["logger"] == "rasa.core.processor" and e["event"].startswith("processor.")
               for e in turn)  # fmt: skip
    assert any(e["logger"].startswith("rasa.engine") for e in turn)
    assert all(e["conversation_id"] == "rest:j1" and e["channel"] == "rest" for e in turn if
               e["logger"] != "aiohttp.access" or "conversation_id" in e)  # fmt: skip
    access = [e for e in events if e["logger"] == "aiohttp.access"]
    assert any(e.get("request_id") == "req-json-1" and e["response_status"] == 200 for e in access)
    assert any(e["response_status"] == 400 and e.get("request_id") for e in access)
    rejected = next(e for e in events if e["logger"] == "bot.errors")
    assert rejected["request_id"] != "req-json-1" and "conversation_id" not in rejected
    # Rasa's fields that carry what the customer wrote are hidden.
    assert any(HIDDEN in e.values() for e in turn)
    assert PHONE not in log.read_text(encoding="utf-8")
    assert any(e["event"].startswith("serving on") for e in events)


def test_text_logs_on_start_say_what_matters_and_no_dependency_noise(
    tmp_path, redis_url, key_prefix, model_path
):
    proc, port, log = serve(tmp_path, redis_url, key_prefix, model_path.parent)
    try:
        requests.post(
            f"http://127.0.0.1:{port}/webhooks/rest/webhook",
            json={"sender": "t1", "message": "你好"},
            timeout=30,
        ).raise_for_status()
    finally:
        stop(proc)
    text = log.read_text(encoding="utf-8")
    assert f"http://127.0.0.1:{port}/console" in text and f"http://127.0.0.1:{port}/stats" in text
    assert "channels: web chat on; REST webhook on" in text and "WeChat off (WECHAT_TOKEN" in text
    assert "WeChat Customer Service off (WECOM_CORP_ID" in text
    assert "Weibo off (WEIBO_APP_SECRET" in text
    assert "loaded model kefu-" in text and " s\n" in text  # the model and its load time
    for noise in ("Warning", "jieba", "Registered function", "POST /webhooks", "pkg_resources"):
        assert noise not in text, noise
    assert not any(line.lstrip().startswith("{") for line in text.splitlines())


def test_access_log_is_a_setting_on_by_default_in_json_mode():
    assert access_log(Settings(log_format="text")) is None
    assert access_log(Settings(log_format="json")) is not None
    assert access_log(Settings(log_format="text", access_log=True)) is not None
    assert access_log(Settings(log_format="json", access_log=False)) is None
    env = {"BOT_LOG_FORMAT": "json", "BOT_ACCESS_LOG": "off", "BOT_LOG_CUSTOMER_TEXT": "1"}
    settings = Settings.from_env(env, dotenv=None)
    assert settings.log_format == "json" and settings.access_log is False
    assert settings.log_customer_text


def test_channels_say_why_they_are_off():
    assert channels(Settings(rest_token="x", wechat_token="t", weibo_app_secret="s"))[1:] == [
        "REST webhook on (bearer token required)",
        "WeChat off (WECHAT_APPID, WECHAT_SECRET not set)",
        "WeChat Customer Service off "
        "(WECOM_CORP_ID, WECOM_KF_SECRET, WECOM_TOKEN, WECOM_AES_KEY not set)",
        "Weibo off (WEIBO_ACCESS_TOKEN not set)",
    ]


def test_channels_that_are_configured_say_where_they_listen():
    on = channels(
        Settings(
            wecom_corp_id="ww1",
            wecom_kf_secret="s",
            wecom_token="t",
            wecom_aes_key="k",
            wecom_kf_handoff="servicer",
            weibo_app_secret="s",
            weibo_access_token="a",
        )
    )
    assert on[3:] == [
        "WeChat Customer Service on (/webhooks/wecom-kf, handoff to WeCom's servicers)",
        "Weibo on (/webhooks/weibo)",
    ]


def test_customer_text_shows_only_when_the_debug_setting_says_so(capsys):
    import logging

    import structlog

    root = logging.getLogger()
    handlers, level, config = root.handlers[:], root.level, structlog.get_config()
    try:
        for show, expected in ((False, HIDDEN), (True, "你好")):
            configure("INFO", "json", show_customer_text=show)
            bind_request("r1")
            bind_turn("rest:x", "rest")
            assert bound() == {"request_id": "r1", "conversation_id": "rest:x", "channel": "rest"}
            structlog.get_logger("rasa.core.actions").info("actions.x", text="你好")
            event = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
            assert event["text"] == expected and event["conversation_id"] == "rest:x"
            bind_request(None)  # the next request starts afresh
            assert set(bound()) == {"request_id"}
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**config)
