"""One pushed WeChat message, from claim to reply, inside WeChat's 5-second limit.

WeChat waits 5 seconds for an answer and then retries, up to three times. Each
message is claimed in Redis first (its MsgId; for events, sender and time), so
a retry of a message in flight or done gets a bare ``success`` and never a
second reply or log entry. The bot's turn then has `WECHAT_REPLY_BUDGET`
seconds: ready in time, the reply goes back in the response (passive reply);
late, the response is ``success`` and the reply follows through the
customer-service API when it is ready (bot/channels/pushed.py).

Events: ``subscribe`` welcomes (with a ``qrscene_`` key, the QR code's scene is
recorded as the conversation's campaign source), ``SCAN`` (a follower scanned
a QR code) records the source and greets, a menu ``CLICK`` means what
nlu_data/menu.yml says its key means. Pictures, voice without WeChat's
``Recognition`` text, locations are logged and answered honestly.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from bot.channels import identity
from bot.channels.delivery import DeliveryFailed
from bot.channels.menu import Menu, pressed
from bot.channels.pushed import PushChannel, SendWindow
from bot.channels.wechat.api import WINDOW_CLOSED, WeChatApiError, WeChatClient
from bot.chat.service import ChatService, TurnReply
from bot.errors import ApiError
from bot.redis_keys import Keys

logger = logging.getLogger(__name__)

CHANNEL = "wechat"
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
SCENE_PREFIX = "qrscene_"  # a subscribe through a QR code with a scene: qrscene_<scene>


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


class WeChatChannel(PushChannel):
    def __init__(
        self,
        chat: ChatService,
        client: WeChatClient,
        redis: Redis,
        keys: Keys,
        reply_budget: float,
        max_chars: int,
        menu: Menu,
    ) -> None:
        window = SendWindow(
            redis, keys.wechat_last_inbound, keys.wechat_window_closed, WINDOW_CLOSED_NOTE
        )
        super().__init__("WeChat", chat, redis, reply_budget, max_chars, menu, window)
        self.client = client
        self._keys = keys

    async def receive(self, fields: dict[str, str]) -> str | None:
        """The passive reply to one pushed message, or None for a bare ``success``."""
        openid, kind = fields.get("FromUserName", ""), fields.get("MsgType", "")
        if not openid or not kind:
            raise ApiError(400, "invalid_message", "FromUserName and MsgType are required.")
        conversation = conversation_id(openid)
        # Events have no MsgId: WeChat's advice is sender and CreateTime; the event
        # and its key keep two buttons pressed within one second apart.
        event = ":".join(fields.get(name, "") for name in ("CreateTime", "Event", "EventKey"))
        claim = self._keys.wechat_message(conversation, fields.get("MsgId") or event)
        texts = await self._turns.answer(
            claim, conversation, lambda: self._turn(conversation, kind, fields), self.send
        )
        return "\n\n".join(texts or []) or None

    async def _turn(self, conversation: str, kind: str, fields: dict[str, str]) -> list[str]:
        if kind == "event":
            turn = await self._event(conversation, fields)
        else:
            await self._window.opens(conversation)
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

    async def _event(self, conversation: str, fields: dict[str, str]) -> TurnReply | None:
        event, key = fields.get("Event", "").lower(), fields.get("EventKey", "").strip()
        if event == "unsubscribe":
            await self._chat.handle_unreadable(CHANNEL, conversation, "[取消关注]", None)
            return None
        if event not in ("subscribe", "scan", "click"):
            logger.debug("WeChat event %r from %s ignored", event, conversation)
            return None
        # Following, scanning and pressing a button all let the brand write for 48 hours.
        await self._window.opens(conversation)
        if event == "subscribe":
            source = key.removeprefix(SCENE_PREFIX) if key.startswith(SCENE_PREFIX) else None
            seen = "[关注了公众号]" + (f" 扫码来源：{source}" if source else "")
            return await self._chat.handle_unreadable(
                CHANNEL, conversation, seen, "wechat_welcome", source=source
            )
        if event == "scan":
            return await self._chat.handle_unreadable(
                CHANNEL, conversation, f"[扫码] {key}", "scan_hello", source=key or None
            )
        return await pressed(self._chat, self._menu, CHANNEL, conversation, key)

    # The channel's sender for agents' replies and notices (bot.channels.delivery).
    async def send(self, conversation: str, text: str) -> None:
        openid = identity.user_of(conversation)
        try:
            await self.client.send_text(openid, text)
        except WeChatApiError as exc:
            if exc.code == WINDOW_CLOSED:
                await self._window.close(conversation)
                raise DeliveryFailed("window_closed", WINDOW_CLOSED_NOTE) from exc
            raise DeliveryFailed("wechat_error", f"微信没有接受这条消息（{exc.code}）。") from exc
