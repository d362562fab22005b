"""One pushed Weibo message, from claim to reply, inside Weibo's 5-second wait.

Weibo, like WeChat, waits 5 seconds and then delivers the push again, three
times; an empty response is accepted and never retried. So each push is
claimed once in Redis (bot/channels/pushed.py): a redelivery gets an empty
answer; the turn has `WEIBO_REPLY_BUDGET` seconds to put its reply in the
response (passive), and a later reply goes through the customer-service API.

What Weibo pushes (https://open.weibo.com/wiki/Receive_Event_Push): text;
positions, voice and pictures the bot cannot read (logged, answered honestly,
a person offered); ``follow`` / ``subscribe`` (welcomed), ``unfollow`` (the
brand may not write any more), ``scan`` / ``scan_follow`` of a QR code with a
scene (its key recorded as the conversation's campaign source) and ``click``
on a custom menu button (nlu_data/menu.yml). Unknown types are logged and
ignored, as the platform asks.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from bot.channels import identity
from bot.channels.delivery import DeliveryFailed
from bot.channels.menu import Menu, pressed
from bot.channels.pushed import PushChannel, SendWindow
from bot.channels.weibo.api import MAX_TEXT_CHARS, WeiboApiError, WeiboClient
from bot.channels.weibo.message import MEDIA, Push
from bot.chat.service import ChatService, TurnReply
from bot.redis_keys import Keys

logger = logging.getLogger(__name__)

CHANNEL = "weibo"
WINDOW_CLOSED_NOTE = (
    "客户超过 48 小时没有发私信，或已取消关注，微博不允许主动回复；客户再发私信后才能回复。"
)
TOKEN_NOTE = (
    "微博拒绝了账号的 access_token（已过期或无效）："
    "请管理员在粉丝服务平台重新获取后更新 WEIBO_ACCESS_TOKEN。"
)
RATE_NOTE = "微博限制了发送频率，这条没有发出去，请稍后再发。"
WELCOMED = {"follow": "[关注了微博]", "subscribe": "[订阅了私信服务]"}


def conversation_id(uid: str) -> str:
    return identity.conversation_id(CHANNEL, uid)


class WeiboChannel(PushChannel):
    def __init__(
        self,
        chat: ChatService,
        client: WeiboClient,
        redis: Redis,
        keys: Keys,
        reply_budget: float,
        max_chars: int,
        menu: Menu,
    ) -> None:
        window = SendWindow(
            redis, keys.weibo_last_inbound, keys.weibo_window_closed, WINDOW_CLOSED_NOTE
        )
        super().__init__("Weibo", chat, redis, reply_budget, max_chars, menu, window)
        self.client = client
        self._keys = keys

    async def receive(self, push: Push) -> str | None:
        """The text of the passive reply to `push`, or None for an empty response."""
        conversation = conversation_id(push.sender)
        claim = self._keys.weibo_message(conversation, push.claim)
        texts = await self._turns.answer(
            claim, conversation, lambda: self._turn(conversation, push), self.send
        )
        reply = "\n\n".join(texts or [])
        if len(reply) >= MAX_TEXT_CHARS:
            # A passive reply holds one text under 300 characters: the rest goes by API.
            self._turns.send_later(conversation, texts or [], self.send)
            return None
        return reply or None

    async def _turn(self, conversation: str, push: Push) -> list[str]:
        if push.kind == "event":
            turn = await self._event(conversation, push)
        elif push.kind == "text":
            await self._window.opens(conversation)
            text = push.text.strip()[: self._max_chars]
            if not text:
                return []
            turn = await self._chat.handle(CHANNEL, conversation, text)
        elif push.kind in MEDIA:
            await self._window.opens(conversation)
            turn = await self._chat.handle_unreadable(
                CHANNEL, conversation, push.describe(), "media_unsupported"
            )
        else:
            logger.info("Weibo message of type %r from %s ignored", push.kind, conversation)
            return []
        return [] if turn is None else [r.text for r in turn.replies if r.text]

    async def _event(self, conversation: str, push: Push) -> TurnReply | None:
        subtype, key = push.subtype, push.key
        if subtype == "unfollow":
            await self._window.close(conversation)  # Weibo refuses replies after an unfollow
            await self._chat.handle_unreadable(CHANNEL, conversation, "[取消关注]", None)
            return None
        if subtype == "unsubscribe":
            await self._chat.handle_unreadable(CHANNEL, conversation, "[取消订阅]", None)
            return None
        if subtype not in ("follow", "subscribe", "scan", "scan_follow", "click"):
            logger.debug("Weibo event %r from %s ignored", subtype, conversation)
            return None
        # Following, scanning and pressing a button all let the brand write for 48 hours.
        await self._window.opens(conversation)
        if subtype in WELCOMED:
            return await self._chat.handle_unreadable(
                CHANNEL, conversation, WELCOMED[subtype], "weibo_welcome"
            )
        if subtype == "scan_follow":
            return await self._chat.handle_unreadable(
                CHANNEL, conversation, f"[扫码关注] {key}", "weibo_welcome", source=key or None
            )
        if subtype == "scan":
            return await self._chat.handle_unreadable(
                CHANNEL, conversation, f"[扫码] {key}", "scan_hello", source=key or None
            )
        return await pressed(self._chat, self._menu, CHANNEL, conversation, key)

    # The channel's sender for agents' replies and notices (bot.channels.delivery).
    async def send(self, conversation: str, text: str) -> None:
        uid = identity.user_of(conversation)
        try:
            await self.client.send_text(uid, text)
        except WeiboApiError as exc:
            if exc.token_refused:
                logger.error("Weibo refused WEIBO_ACCESS_TOKEN (%d %s)", exc.code, exc.message)
                raise DeliveryFailed("token_refused", TOKEN_NOTE) from exc
            if exc.rate_limited:
                raise DeliveryFailed("rate_limited", RATE_NOTE) from exc
            raise DeliveryFailed("weibo_error", f"微博没有接受这条消息（{exc.code}）。") from exc
