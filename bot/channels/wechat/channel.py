"""One pushed WeChat message, from claim to reply, inside WeChat's 5-second limit.

WeChat waits 5 seconds for an answer and then retries, up to three times. Each
message is claimed in Redis first (its MsgId; for events, sender and time), so
a retry of a message in flight or done gets a bare ``success`` and never a
second reply or log entry. The bot's turn then has `WECHAT_REPLY_BUDGET`
seconds: ready in time, the reply goes back in the response (passive reply);
late, the response is ``success`` and the reply follows through the
customer-service API when it is ready.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis

from bot.channels import identity
from bot.channels.delivery import DeliveryFailed
from bot.channels.wechat.api import WINDOW_CLOSED, WeChatApiError, WeChatClient
from bot.chat.service import ChatService, TurnReply
from bot.errors import ApiError
from bot.redis_keys import Keys

logger = logging.getLogger(__name__)

CHANNEL = "wechat"
CLAIM_SECONDS = 3600  # far longer than WeChat's three retries over about 15 seconds
WINDOW_SECONDS = 48 * 3600  # WeChat lets a brand write to a customer this long after their message
MEDIA = {
    "image": "图片",
    "voice": "语音",
    "video": "视频",
    "shortvideo": "小视频",
    "location": "位置",
    "link": "链接",
    "file": "文件",
}
WINDOW_CLOSED_NOTE = "客户超过 48 小时没有发消息，微信不允许主动回复；客户再发消息后才能回复。"


def conversation_id(openid: str) -> str:
    return identity.conversation_id(CHANNEL, openid)


def describe(fields: dict[str, str]) -> str:
    """How a message the bot cannot read appears in the log and to agents."""
    kind = fields.get("MsgType", "")
    label = MEDIA.get(kind, kind or "未知消息")
    if kind == "image":
        return f"[{label}] {fields.get('PicUrl', '')}".strip()
    if kind == "location":
        where = f"{fields.get('Location_X', '')}, {fields.get('Location_Y', '')}"
        return f"[{label}] {fields.get('Label', '')} ({where})"
    if kind == "link":
        return f"[{label}] {fields.get('Title', '')} {fields.get('Url', '')}".strip()
    return f"[{label}] media_id={fields.get('MediaId', '')}"


class WeChatChannel:
    def __init__(
        self,
        chat: ChatService,
        client: WeChatClient,
        redis: Redis,
        keys: Keys,
        reply_budget: float,
        max_chars: int,
    ) -> None:
        self._chat = chat
        self.client = client
        self._redis = redis
        self._keys = keys
        self._budget = reply_budget
        self._max_chars = max_chars
        self._later: set[asyncio.Task[None]] = set()

    async def receive(self, fields: dict[str, str]) -> str | None:
        """The passive reply to one pushed message, or None for a bare ``success``."""
        openid, kind = fields.get("FromUserName", ""), fields.get("MsgType", "")
        if not openid or not kind:
            raise ApiError(400, "invalid_message", "FromUserName and MsgType are required.")
        claim = self._keys.wechat_message(
            conversation_id(openid),
            fields.get("MsgId") or f"{fields.get('CreateTime', '')}:{fields.get('Event', '')}",
        )
        if not await self._redis.set(claim, "1", nx=True, ex=CLAIM_SECONDS):
            logger.info("WeChat redelivered %s; already handled or in hand", claim)
            return None
        task = asyncio.create_task(self._turn(openid, kind, fields))
        try:
            done, _ = await asyncio.wait({task}, timeout=self._budget)
        except asyncio.CancelledError:  # WeChat hung up: the reply still goes out
            self._deliver_later(openid, task)
            raise
        if not done:
            logger.info(
                "reply to %s not ready in %.1f s: answering through the API", claim, self._budget
            )
            self._deliver_later(openid, task)
            return None
        try:
            texts = task.result()
        except Exception:
            # Nothing could be done (Redis down, model loading): let WeChat's retry try again.
            await self._redis.delete(claim)
            raise
        return "\n\n".join(texts) or None

    async def _turn(self, openid: str, kind: str, fields: dict[str, str]) -> list[str]:
        conversation = conversation_id(openid)
        if kind == "event":
            turn = await self._event(conversation, fields.get("Event", "").lower())
        else:
            await self._window_opens(conversation)
            text = fields.get("Content", "") if kind == "text" else fields.get("Recognition", "")
            text = text.strip()[: self._max_chars]
            if kind in ("text", "voice") and text:
                turn = await self._chat.handle(CHANNEL, conversation, text)
            elif kind == "text":
                return []  # an empty text: nothing to answer or record
            else:
                turn = await self._chat.handle_unreadable(
                    CHANNEL, conversation, describe(fields), "media_unsupported"
                )
        return [] if turn is None else [r.text for r in turn.replies if r.text]

    async def _event(self, conversation: str, event: str) -> TurnReply | None:
        if event == "subscribe":
            await self._window_opens(conversation)
            return await self._chat.handle_unreadable(
                CHANNEL, conversation, "[关注了公众号]", "wechat_welcome"
            )
        if event == "unsubscribe":
            await self._chat.handle_unreadable(CHANNEL, conversation, "[取消关注]", None)
            return None
        logger.debug("WeChat event %r from %s ignored", event, conversation)
        return None

    async def _window_opens(self, conversation: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.wechat_last_inbound(conversation), time.time(), ex=WINDOW_SECONDS)
            pipe.delete(self._keys.wechat_window_closed(conversation))
            await pipe.execute()

    def _deliver_later(self, openid: str, task: asyncio.Task[list[str]]) -> None:
        async def deliver() -> None:
            try:
                texts = await task
            except Exception:
                logger.exception("a late WeChat turn for %s failed", openid)
                return
            for text in texts:
                try:
                    await self.send(conversation_id(openid), text)
                except DeliveryFailed as exc:
                    logger.warning("late reply to %s not delivered: %s", openid, exc.message)
                    return

        later = asyncio.create_task(deliver())
        self._later.add(later)
        later.add_done_callback(self._later.discard)

    # The channel's sender for agents' replies and notices (bot.channels.delivery).
    async def send(self, conversation: str, text: str) -> None:
        openid = identity.user_of(conversation)
        try:
            await self.client.send_text(openid, text)
        except WeChatApiError as exc:
            if exc.code == WINDOW_CLOSED:
                await self._redis.set(
                    self._keys.wechat_window_closed(conversation), "1", ex=WINDOW_SECONDS
                )
                raise DeliveryFailed("window_closed", WINDOW_CLOSED_NOTE) from exc
            raise DeliveryFailed("wechat_error", f"微信没有接受这条消息（{exc.code}）。") from exc

    async def unreachable(self, conversation: str) -> str | None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(self._keys.wechat_window_closed(conversation))
            pipe.exists(self._keys.wechat_last_inbound(conversation))
            closed, recent = await pipe.execute()
        return WINDOW_CLOSED_NOTE if closed or not recent else None

    async def drain(self, timeout: float) -> None:
        """Wait (a bounded time) for replies still on their way out, then give up on them."""
        if self._later:
            _, late = await asyncio.wait(set(self._later), timeout=timeout)
            for task in late:
                logger.warning("a late WeChat reply was not sent before shutdown")
                task.cancel()
