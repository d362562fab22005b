"""`kefu shell` under a real pseudo-terminal, through the real chat service and Redis."""

from __future__ import annotations

import os
import sys

import pexpect
import pytest
import redis as redis_sync

from bot.chat.service import TurnReply
from bot.engine.output import Reply
from bot.redis_keys import Keys
from bot.shell import PROMPT, describe_parse, describe_turn
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def spawn(redis_url: str, key_prefix: str, model_dir, *args: str) -> pexpect.spawn:  # type: ignore[no-untyped-def]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "WECHAT_"))},
        "REDIS_URL": redis_url,
        "BOT_KEY_PREFIX": key_prefix,
        "BOT_MODEL_DIR": str(model_dir),
        "BOT_BCRYPT_ROUNDS": "4",
        "BOT_MASK_PII": "true",
    }
    child = pexpect.spawn(
        sys.executable,
        ["-m", "bot", "shell", *args],
        cwd=str(ROOT),
        env=env,
        encoding="utf-8",
        timeout=90,
        dimensions=(40, 160),
    )
    child.expect_exact(PROMPT)
    return child


def turn(child: pexpect.spawn, text: str) -> str:
    child.sendline(text)
    child.expect_exact(PROMPT)
    # The echo of the line typed, then what the bot printed.
    return str(child.before).replace("\r\n", "\n")


def test_shell_chats_through_the_chat_service_and_says_what_it_understood(
    redis_url, key_prefix, model_path
):
    child = spawn(redis_url, key_prefix, model_path.parent, "--name", "amy")
    try:
        assert "conversation shell:amy" in str(child.before)
        greeting = turn(child, "你好")
        assert "客服: " in greeting
        assert "intent greet" in greeting and "runner-up " in greeting
        assert "action utter_greet" in greeting

        order = turn(child, "帮我查下订单 202611240007654321，手机13812345678")
        assert "intent order_status" in order
        assert "order_id=202611240007654321" in order and "phone_number=13812345678" in order
        assert "action action_check_order" in order

        handoff = turn(child, "转人工")
        assert "intent request_human" in handoff and "action action_request_human" in handoff
        silent = turn(child, "好的，我等一下")
        assert "people have this conversation" in silent and "with people (waiting)" in silent
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0

    # It was the real path: the log, the handoff queue and the masking.
    keys = Keys(key_prefix)
    client = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    try:
        entries = client.xrange(keys.conv_log("shell:amy"))
        texts = [fields["text"] for _, fields in entries if fields["direction"] == "in"]
        assert texts[0] == "你好" and len(texts) == 4
        assert "13812345678" not in texts[1] and "138****5678" in texts[1]
        assert {f["channel"] for _, f in entries} == {"shell"}
        assert client.zscore(keys.handoff_waiting, "shell:amy") is not None
    finally:
        client.close()


def test_shell_nlu_only_parses_and_logs_nothing(redis_url, key_prefix, model_path):
    child = spawn(redis_url, key_prefix, model_path.parent, "--nlu", "--name", "bob")
    try:
        assert "NLU only" in str(child.before)
        parsed = turn(child, "我要退货")
        assert "intent return_refund" in parsed and "客服" not in parsed
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    client = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert client.exists(Keys(key_prefix).conv_log("shell:bob")) == 0
    finally:
        client.close()


def test_describe_names_the_runner_up_and_the_action():
    parse = {
        "intent": {"name": "greet", "confidence": 0.91},
        "intent_ranking": [
            {"name": "greet", "confidence": 0.91},
            {"name": "thank", "confidence": 0.05},
        ],
        "entities": [{"entity": "product", "value": "保温杯"}],
    }
    assert describe_parse(parse) == (
        "intent greet 0.91 · runner-up thank 0.05 · entities product=保温杯"
    )
    reply = Reply(payload={"text": "hi"}, action="utter_greet", response="utter_greet")
    line = describe_turn(TurnReply([reply], "1-0", "greet", 0.91), None)
    assert line.endswith("· action utter_greet")
