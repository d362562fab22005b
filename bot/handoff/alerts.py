"""Group-robot alerts: a customer waits too long, or the queue grows too long.

Optional (``BOT_ALERT_WEBHOOK``): a message to the team's group chat through
its robot webhook, in WeCom's, DingTalk's or Feishu's format
(``BOT_ALERT_WEBHOOK_FORMAT``). Checked by every process's queue sweep; each
alert is claimed first with SET NX (per conversation and wait threshold, and
per queue crossing), so however many processes sweep, a conversation is
announced at most once per threshold and a full queue once until it shrinks
below the size again. A robot that refuses or cannot be reached is logged;
the alert is not retried (the claim is kept): a group chat is told once, at
worst not at all, never twice.

With ``BOT_ALERT_WEBHOOK_SECRET`` every message is signed the way the robot's
"加签" setting asks: DingTalk takes ``timestamp`` (milliseconds) and ``sign``
(base64 of HMAC-SHA256 of ``"{timestamp}\n{secret}"`` keyed by the secret)
in the query string; Feishu takes ``timestamp`` (seconds) and ``sign``
(base64 of HMAC-SHA256 keyed by ``"{timestamp}\n{secret}"`` over nothing) in
the JSON body. Both refuse a timestamp more than an hour off.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
from redis.asyncio import Redis

from bot.handoff.states import ConversationStates
from bot.redis_keys import Keys

logger = logging.getLogger(__name__)

# How long a claim is kept: past any queue wait worth alerting about.
CLAIM_SECONDS = 7 * 86400
TIMEOUT = aiohttp.ClientTimeout(total=5)


def robot_body(fmt: str, text: str) -> dict[str, Any]:
    """The text message as each platform's group robot takes it."""
    if fmt == "feishu":
        return {"msg_type": "text", "content": {"text": text}}
    return {"msgtype": "text", "text": {"content": text}}  # WeCom and DingTalk alike


def robot_accepted(fmt: str, body: dict[str, Any]) -> bool:
    """WeCom and DingTalk answer errcode 0; Feishu code 0 (older hooks: StatusCode 0)."""
    if fmt == "feishu":
        return body.get("code", body.get("StatusCode")) == 0
    return body.get("errcode") == 0


def _hmac_b64(key: str, message: str) -> str:
    digest = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's 加签: the key is the secret, the message the timestamp and the secret."""
    return _hmac_b64(secret, f"{timestamp_ms}\n{secret}")


def feishu_sign(secret: str, timestamp: int) -> str:
    """Feishu's 签名校验: the key is the timestamp and the secret, the message empty."""
    return _hmac_b64(f"{timestamp}\n{secret}", "")


def signed(
    fmt: str, url: str, body: dict[str, Any], secret: str | None, now: float
) -> tuple[str, dict[str, Any]]:
    """The URL and body to post, signed for `fmt` when there is a `secret`."""
    if not secret:
        return url, body
    if fmt == "dingtalk":
        ms = int(now * 1000)
        parts = urlsplit(url)
        # urlencode percent-encodes the base64 (+, /, =), as DingTalk asks.
        query = [*parse_qsl(parts.query), ("timestamp", str(ms))]
        query.append(("sign", dingtalk_sign(secret, ms)))
        return urlunsplit(parts._replace(query=urlencode(query))), body
    if fmt == "feishu":
        seconds = int(now)
        return url, {"timestamp": str(seconds), "sign": feishu_sign(secret, seconds), **body}
    return url, body  # WeCom's robots sign nothing (settings refuse a secret for them)


@dataclass(frozen=True)
class AlertSettings:
    url: str
    fmt: str
    wait_seconds: float
    queue_size: int
    secret: str | None = None


class GroupRobot:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        redis: Redis,
        keys: Keys,
        states: ConversationStates,
        settings: AlertSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._redis = redis
        self._keys = keys
        self._states = states  # read only
        self._settings = settings
        self._clock = clock

    async def check(self) -> list[str]:
        """Send what is due; the texts sent (a job of the queue sweep)."""
        sent: list[str] = []
        waiting = await self._states.waiting()
        size = self._settings.queue_size
        if len(waiting) >= size:
            if await self._redis.set(self._keys.alert_queue, 1, nx=True, ex=CLAIM_SECONDS):
                sent.append(
                    await self._send(f"【客服提醒】排队人数已达 {len(waiting)} 人，请尽快接待。")
                )
        else:
            await self._redis.delete(
                self._keys.alert_queue
            )  # below again: the next crossing counts
        now, limit = self._clock(), self._settings.wait_seconds
        for conversation in waiting:
            handoff = await self._states.get(conversation)
            waited = now - handoff.queued_at
            if waited < limit:
                continue
            claim = f"wait:{int(limit)}:{handoff.queued_at}"  # one per threshold per stay in queue
            key = self._keys.alerts(conversation)
            if not await self._redis.hsetnx(key, claim, int(now)):
                continue
            await self._redis.expire(key, CLAIM_SECONDS)
            minutes = max(1, int(waited // 60))
            sent.append(
                await self._send(
                    f"【客服提醒】客户 {conversation} 已等待 {minutes} 分钟，尚无人接待。"
                )
            )
        return [s for s in sent if s]

    async def _send(self, text: str) -> str:
        fmt = self._settings.fmt
        url, body = signed(
            fmt, self._settings.url, robot_body(fmt, text), self._settings.secret, self._clock()
        )
        try:
            async with self._session.post(url, json=body, timeout=TIMEOUT) as resp:
                answer = json.loads(await resp.text() or "{}")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            logger.warning("group robot alert not sent (%s): %s", exc.__class__.__name__, exc)
            return ""
        if not (resp.status == 200 and isinstance(answer, dict) and robot_accepted(fmt, answer)):
            logger.warning("group robot refused the alert: HTTP %s %s", resp.status, answer)
            return ""
        return text
