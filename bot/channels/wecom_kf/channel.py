"""WeChat Customer Service: pull what the callback announced, answer through kf/send_msg.

WeCom's callback only says "something new on kf account X" (with a Token good
for ten minutes). The channel then pulls with kf/sync_msg from the account's
saved cursor, page by page while ``has_more``, handles every message once (its
msgid is claimed in Redis, so a redelivered callback, a re-read page or a
second process pulling changes nothing) and saves the next cursor after each
page. One process pulls an account at a time (bot/channels/wecom_kf/store.py).

Answers go out through kf/send_msg, within WeCom's window: five messages in
the 48 hours after the customer's last message. ``enter_session`` gets the
welcome through kf/send_msg_on_event with its one-use ``welcome_code`` (20
seconds). A clarification question goes out as a ``msgmenu`` of click items; a
click comes back as a text with the chosen label. Handoff goes to our console,
or (WECOM_KF_HANDOFF=servicer) to WeCom's own servicers with
kf/service_state/trans, after which the conversation is closed here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from bot.channels import identity
from bot.channels.delivery import DeliveryFailed
from bot.channels.wechat.token import RATE_LIMITED, PlatformApiError
from bot.channels.wecom_kf.api import (
    POOL,
    SERVICER,
    WINDOW_CLOSED,
    WeComKfClient,
    menu_message,
    text_message,
)
from bot.channels.wecom_kf.store import WINDOW_MESSAGES, KfStore
from bot.chat.service import ChatService, TurnReply
from bot.content.messages import Messages
from bot.events import Events
from bot.handoff.service import HandoffService
from bot.handoff.states import WAITING

logger = logging.getLogger(__name__)

CHANNEL = "wecomkf"
CUSTOMER, SYSTEM = 3, 4  # sync_msg's `origin`; 5 is a servicer writing in WeCom's client
SERVICER_AGENT = "wecom"  # the agent name a conversation handed to WeCom is closed under
HANDED_TO_WECOM = "wecom_servicer"  # its resolution tag
SESSION_ENDED = 3  # session_status_change's change_type: the servicer ended the session
MEDIA = {
    "image": "图片",
    "voice": "语音",
    "video": "视频",
    "file": "文件",
    "location": "位置",
    "link": "链接",
    "business_card": "名片",
    "miniprogram": "小程序",
    "channels_shop_product": "视频号商品",
    "channels_shop_order": "视频号订单",
}
WINDOW_CLOSED_NOTE = (
    "微信客服只允许在客户最后一条消息后 48 小时内回复 5 条：现在不能再发，客户再发消息后才能回复。"
)
RATE_LIMITED_NOTE = "企业微信限制了发送频率，这条没有发出，请稍后再发。"


def conversation_id(open_kfid: str, external_userid: str) -> str:
    return identity.conversation_id(CHANNEL, identity.joined(open_kfid, external_userid))


def address(conversation: str) -> tuple[str, str]:
    """(open_kfid, external_userid) of a conversation of this channel."""
    open_kfid, external_userid = identity.split(identity.user_of(conversation))
    return open_kfid, external_userid


def describe(item: dict[str, Any]) -> str:
    """How a message the bot cannot read appears in the log and to agents."""
    kind = str(item.get("msgtype") or "")
    found = item.get(kind)
    body: dict[str, Any] = found if isinstance(found, dict) else {}
    label = MEDIA.get(kind, kind or "未知消息")
    if kind == "location":
        return f"[{label}] {body.get('name', '')} {body.get('address', '')}".strip()
    if kind == "link":
        return f"[{label}] {body.get('title', '')} {body.get('url', '')}".strip()
    return f"[{label}] media_id={body.get('media_id', '')}"


class WeComKfChannel:
    def __init__(
        self,
        chat: ChatService,
        client: WeComKfClient,
        store: KfStore,
        handoff_service: HandoffService,
        events: Events,
        messages: Messages,
        max_chars: int,
        retry_seconds: float,
        handoff: str = "console",
        servicer: str | None = None,
    ) -> None:
        self._chat = chat
        self.client = client
        self._store = store
        self._handoff_service = handoff_service
        self._events = events
        self._messages = messages
        self._max_chars = max_chars
        self._retry = retry_seconds
        self._handoff = handoff
        self._servicer = servicer
        self._tasks: set[asyncio.Task[None]] = set()

    # -- pulling ----------------------------------------------------------------------

    def announced(self, open_kfid: str, token: str) -> None:
        """The callback said there is something new: pull it in the background."""
        self._spawn(self.pull(open_kfid, token))

    async def pull(self, open_kfid: str, token: str) -> None:
        """Pull until nothing is wanted; when another process pulls, leave it a mark."""
        await self._store.want_pull(open_kfid, token)
        while await self._store.pull_wanted(open_kfid):
            owner = await self._store.lock_pull(open_kfid)
            if owner is None:
                return  # the holder reads the mark before and after it lets go
            failed: str | None = None
            try:
                while (wanted := await self._store.take_pull(open_kfid)) is not None:
                    try:
                        await self._pages(open_kfid, wanted, owner)
                    except Exception as exc:
                        failed = wanted
                        if isinstance(exc, PlatformApiError):
                            logger.warning("pulling kf account %s: %s", open_kfid, exc)
                        else:
                            logger.exception("pulling kf account %s failed", open_kfid)
                        break
            finally:
                await self._store.unlock_pull(open_kfid, owner)
            if failed is not None:
                # Rate limited, WeCom or Redis away, the model loading: the cursor
                # stayed where it was, so the next try re-reads what was not handled.
                self._spawn(self._pull_later(open_kfid, failed))
                return

    async def _pull_later(self, open_kfid: str, token: str) -> None:
        await asyncio.sleep(self._retry)
        await self.pull(open_kfid, token)

    async def _pages(self, open_kfid: str, token: str, owner: str) -> None:
        cursor = await self._store.cursor(open_kfid)
        while True:
            page = await self.client.sync_msg(open_kfid, cursor, token)
            for item in page.get("msg_list") or []:
                if isinstance(item, dict):
                    await self._handle(item)
            cursor = str(page.get("next_cursor") or cursor)
            await self._store.save_cursor(open_kfid, cursor)
            if not await self._store.keep_pull(open_kfid, owner):
                logger.warning("lost the pull of kf account %s to another process", open_kfid)
                return
            # has_more can be 1 with an empty msg_list: only has_more ends the loop.
            if not int(page.get("has_more") or 0):
                return

    async def _handle(self, item: dict[str, Any]) -> None:
        kind, msgid = str(item.get("msgtype") or ""), str(item.get("msgid") or "")
        event = item.get("event") if kind == "event" else None
        source = event if isinstance(event, dict) else item
        open_kfid = str(source.get("open_kfid") or "")
        user = str(source.get("external_userid") or "")
        if not (msgid and open_kfid and user):
            logger.warning("a kf message without msgid, open_kfid or external_userid: skipped")
            return
        origin = int(item.get("origin") or 0)
        if origin not in (CUSTOMER, SYSTEM):
            logger.debug(
                "kf message %s from origin %d (a servicer) not ours to answer", msgid, origin
            )
            return
        conversation = conversation_id(open_kfid, user)
        if not await self._store.claim(conversation, msgid):
            logger.info("kf message %s handled already", msgid)
            return
        try:
            if isinstance(event, dict):
                await self._event(conversation, event)
                return
            sent_at = float(item.get("send_time") or time.time())
            await self._store.customer_wrote(conversation, sent_at)
            turn = await self._turn(conversation, kind, item)
        except BaseException:
            # Nothing was answered: the cursor stays, the next pull tries again.
            await self._store.unclaim(conversation, msgid)
            raise
        if turn is not None:
            await self._answer(conversation, turn)

    async def _turn(self, conversation: str, kind: str, item: dict[str, Any]) -> TurnReply | None:
        text = ""
        if kind == "text" and isinstance(item.get("text"), dict):
            # A menu click comes back as a text: its content is the chosen label.
            text = str(item["text"].get("content") or "").strip()[: self._max_chars]
        if await self._store.with_servicer(conversation):
            # A WeCom servicer has it: logged and shown, never answered by the bot.
            await self._chat.handle_unreadable(CHANNEL, conversation, text or describe(item), None)
            return None
        if kind == "text":
            return await self._chat.handle(CHANNEL, conversation, text) if text else None
        return await self._chat.handle_unreadable(
            CHANNEL, conversation, describe(item), "media_unsupported"
        )

    async def _event(self, conversation: str, event: dict[str, Any]) -> None:
        kind = str(event.get("event_type") or "")
        if kind == "enter_session":
            code = str(event.get("welcome_code") or "")
            # Without a welcome_code (the customer wrote in the last 48 hours) there
            # is no welcome to send; the entry is still logged for agents.
            turn = await self._chat.handle_unreadable(
                CHANNEL, conversation, "[进入会话]", "wecomkf_welcome" if code else None
            )
            for reply in turn.replies:
                try:
                    await self.client.send_on_event(code, text_message(reply.text))
                except PlatformApiError as exc:
                    logger.warning("welcome to %s not sent: %s", conversation, exc)
        elif (
            kind == "session_status_change" and int(event.get("change_type") or 0) == SESSION_ENDED
        ):
            await self._store.back_from_servicer(conversation)
        elif kind == "msg_send_fail":
            logger.warning(
                "WeCom could not deliver %s to %s (fail_type %s)",
                event.get("fail_msgid"),
                conversation,
                event.get("fail_type"),
            )
        else:
            logger.debug("kf event %r for %s ignored", kind, conversation)

    async def _answer(self, conversation: str, turn: TurnReply) -> None:
        for reply in turn.replies:
            buttons = reply.payload.get("buttons") or []
            message = (
                menu_message(
                    reply.text,
                    [(f"option-{i}", str(b.get("title") or "")) for i, b in enumerate(buttons, 1)],
                )
                if buttons
                else text_message(reply.text)
            )
            try:
                await self._push(conversation, message)
            except DeliveryFailed as exc:
                logger.warning("reply to %s not delivered: %s", conversation, exc.message)
                break
        if self._handoff == "servicer":
            if (await self._handoff_service.states.get(conversation)).state == WAITING:
                await self._hand_to_servicer(conversation)

    async def _hand_to_servicer(self, conversation: str) -> None:
        """Give the conversation to WeCom's servicers and record that it left our queue."""
        open_kfid, user = address(conversation)
        state = SERVICER if self._servicer else POOL
        try:
            await self.client.trans(open_kfid, user, state, self._servicer)
        except PlatformApiError as exc:
            logger.warning(
                "could not hand %s to WeCom (%s): it stays in our queue", conversation, exc
            )
            return
        await self._store.left_for_servicer(conversation, self._servicer or "")
        await self._handoff_service.hand_elsewhere(
            conversation,
            SERVICER_AGENT,
            HANDED_TO_WECOM,
            channel=CHANNEL,
            to="wecom",
            servicer=self._servicer or "",
            service_state=state,
        )

    # -- sending (bot.channels.delivery) --------------------------------------------

    async def send(self, conversation: str, text: str) -> None:
        await self._push(conversation, text_message(text))

    async def _push(self, conversation: str, message: dict[str, Any]) -> None:
        if await self._store.reserve_send(conversation) < 0:
            raise DeliveryFailed("window_closed", WINDOW_CLOSED_NOTE)
        open_kfid, user = address(conversation)
        try:
            await self.client.send(open_kfid, user, message)
        except PlatformApiError as exc:
            if exc.code in WINDOW_CLOSED:
                await self._store.close_window(conversation)
                raise DeliveryFailed("window_closed", WINDOW_CLOSED_NOTE) from exc
            if exc.code == RATE_LIMITED:
                raise DeliveryFailed("rate_limited", RATE_LIMITED_NOTE) from exc
            raise DeliveryFailed(
                "wecom_error", f"企业微信没有接受这条消息（{exc.code}）。"
            ) from exc

    async def unreachable(self, conversation: str) -> str | None:
        return None if await self._store.window(conversation) else WINDOW_CLOSED_NOTE

    async def window_note(self, conversation: str) -> str | None:
        """The open window, for agents: how long it lasts and how many messages are left."""
        window = await self._store.window(conversation)
        if window is None:
            return None
        closes, left = window
        minutes = max(int((closes - time.time()) // 60), 0)
        return (
            f"微信客服回复窗口：还剩 {minutes // 60} 小时 {minutes % 60} 分，"
            f"还能发 {left}/{WINDOW_MESSAGES} 条"
        )

    # -- background work --------------------------------------------------------------

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float) -> None:
        """Let pulls in progress finish (bounded), then cancel what is left."""
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in late:
                task.cancel()
