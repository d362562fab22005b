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
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class AlertSettings:
    url: str
    fmt: str
    wait_seconds: float
    queue_size: int


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
        try:
            async with self._session.post(
                self._settings.url, json=robot_body(fmt, text), timeout=TIMEOUT
            ) as resp:
                body = json.loads(await resp.text() or "{}")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            logger.warning("group robot alert not sent (%s): %s", exc.__class__.__name__, exc)
            return ""
        if not (resp.status == 200 and isinstance(body, dict) and robot_accepted(fmt, body)):
            logger.warning("group robot refused the alert: HTTP %s %s", resp.status, body)
            return ""
        return text
