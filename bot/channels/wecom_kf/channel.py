"""WeChat Customer Service: pull what the callback announced, answer through kf/send_msg.

WeCom's callback only says "something new on kf account X" (with a Token good
for ten minutes). The channel then pulls with kf/sync_msg from the account's
saved cursor, page by page while ``has_more``, handles every message once (its
msgid is claimed in Redis, so a redelivered callback, a re-read page or a
second process pulling changes nothing) and saves the next cursor after each
page. One process pulls an account at a time (bot/channels/wecom_kf/store.py).

Claims and the pull are leases this process renews while it works. Killed
between claiming a message and answering it, it stops renewing: the claim
runs out within seconds, the cursor still points before the message, and the
next pull (any process) handles it. The turn itself runs under the message's
id (`ChatService.handle(message_id=...)`), so the taken-over turn resumes from
what the log holds: the message is logged once and a dialogue that already
answered is not run again. Only replies cut off mid-send can go out twice.

Customers' messages get the per-conversation rate limit WeChat's get (the
first excess message is answered with the honest line, the rest not at all).
What WeCom's own servicers type in their client (origin 5) is logged to the
conversation as theirs, never answered.

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
import secrets
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
from bot.channels.wecom_kf.store import BUSY, MINE, PULL_LOCK_MS, WINDOW_MESSAGES, KfStore
from bot.chat.service import ChatService, TurnReply
from bot.content.messages import Messages
from bot.events import Events
from bot.handoff.service import HandoffService
from bot.handoff.states import WAITING
from bot.security.ratelimit import RateLimits

logger = logging.getLogger(__name__)

CHANNEL = "wecomkf"
CUSTOMER, SYSTEM, SERVICER_WROTE = 3, 4, 5  # sync_msg's `origin` (5: WeCom's own client)
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
# How long a pull waits for a message another live process holds before giving
# up (the pull is retried): longer than a crashed holder's lease.
CLAIM_WAIT = 30.0
MAX_MSGID = 128


class MessageInHand(Exception):
    """Another process has held a pulled message for too long: pull again later."""


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
        limits: RateLimits,
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
        self._limits = limits
        self._max_chars = max_chars
        self._retry = retry_seconds
        self._handoff = handoff
        self._servicer = servicer
        self._tasks: set[asyncio.Task[None]] = set()
        # Leases in hand, renewed by `renew`: (conversation, msgid) -> owner of a
        # claim, open_kfid -> owner of a pull.
        self._claims: dict[tuple[str, str], str] = {}
        self._pulls: dict[str, str] = {}
        self._rechecks: dict[str, asyncio.Task[None]] = {}

    # -- pulling ----------------------------------------------------------------------

    def announced(self, open_kfid: str, token: str) -> None:
        """The callback said there is something new: pull it in the background."""
        self._spawn(self.pull(open_kfid, token))

    async def pull(self, open_kfid: str, token: str) -> None:
        """Pull until nothing is wanted; when another process pulls, leave it a mark."""
        await self._store.want_pull(open_kfid, token)
        await self._pull_wanted(open_kfid)

    async def _pull_wanted(self, open_kfid: str) -> None:
        while await self._store.pull_wanted(open_kfid):
            owner = await self._store.lock_pull(open_kfid)
            if owner is None:
                # The holder reads the mark before and after it lets go; should it
                # die instead, its lease runs out: look at the mark again then.
                self._recheck(open_kfid)
                return
            self._pulls[open_kfid] = owner
            failed: str | None = None
            try:
                while (wanted := await self._store.take_pull(open_kfid)) is not None:
                    try:
                        await self._pages(open_kfid, wanted, owner)
                    except Exception as exc:
                        failed = wanted
                        if isinstance(exc, (PlatformApiError, MessageInHand)):
                            logger.warning("pulling kf account %s: %s", open_kfid, exc)
                        else:
                            logger.exception("pulling kf account %s failed", open_kfid)
                        break
            finally:
                self._pulls.pop(open_kfid, None)
                await self._store.unlock_pull(open_kfid, owner)
            if failed is not None:
                # Rate limited, WeCom or Redis away, the model loading: the cursor
                # stayed where it was, so the next try re-reads what was not handled.
                self._spawn(self._pull_later(open_kfid, failed))
                return

    async def _pull_later(self, open_kfid: str, token: str) -> None:
        await asyncio.sleep(self._retry)
        await self.pull(open_kfid, token)

    def _recheck(self, open_kfid: str) -> None:
        """Once the pull lock's lease could have run out, pull if a pull is still wanted."""
        if open_kfid in self._rechecks:
            return

        async def later() -> None:
            try:
                await asyncio.sleep(PULL_LOCK_MS / 1000 + 0.5)
            finally:
                self._rechecks.pop(open_kfid, None)
            await self._pull_wanted(open_kfid)

        task = asyncio.create_task(later())
        self._rechecks[open_kfid] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def renew(self) -> None:
        """Renew the leases of the messages and pulls in hand (a background loop)."""
        await self._store.keep_claims([(c, m, o) for (c, m), o in self._claims.items()])
        for open_kfid, owner in list(self._pulls.items()):
            await self._store.keep_pull(open_kfid, owner)

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
        if origin not in (CUSTOMER, SYSTEM, SERVICER_WROTE) or len(msgid) > MAX_MSGID:
            logger.warning("kf message %.40s (origin %d) not ours: skipped", msgid, origin)
            return
        conversation = conversation_id(open_kfid, user)
        owner = await self._claim(conversation, msgid)
        if owner is None:
            logger.info("kf message %s handled already", msgid)
            return
        try:
            if origin == SERVICER_WROTE:
                await self._servicer_wrote(conversation, kind, item)
            elif isinstance(event, dict):
                await self._event(conversation, event)
            else:
                await self._customer_wrote(conversation, msgid, kind, item)
        except BaseException:
            # Not answered: the cursor stays, the next pull tries again.
            self._claims.pop((conversation, msgid), None)
            try:
                await self._store.unclaim(conversation, msgid, owner)
            except Exception:  # Redis away: the lease runs out by itself
                logger.warning("kf message %s left to its lease", msgid)
            raise
        self._claims.pop((conversation, msgid), None)
        await self._store.answered(conversation, msgid, owner)

    async def _claim(self, conversation: str, msgid: str) -> str | None:
        """This process's lease on the message, or None when it was answered already.

        While another live process holds it, wait: if that process dies, its
        lease runs out and the message is ours; if it answers, there is nothing
        to do. Giving up early would let the cursor pass a message in hand.
        """
        owner = secrets.token_hex(8)
        deadline = time.monotonic() + CLAIM_WAIT
        while (state := await self._store.claim(conversation, msgid, owner)) == BUSY:
            if time.monotonic() > deadline:
                raise MessageInHand(f"message {msgid} of {conversation} is still in hand")
            await asyncio.sleep(0.25)
        if state != MINE:
            return None
        self._claims[(conversation, msgid)] = owner
        return owner

    async def _customer_wrote(
        self, conversation: str, msgid: str, kind: str, item: dict[str, Any]
    ) -> None:
        sent_at = float(item.get("send_time") or time.time())
        await self._store.customer_wrote(conversation, sent_at)
        excess = await self._limits.excess(conversation)
        if excess is not None:
            # Over the rate: not processed; the first such message hears why.
            if excess:
                try:
                    await self._push(conversation, text_message(excess))
                except DeliveryFailed as exc:
                    logger.warning("rate-limit line to %s not sent: %s", conversation, exc.message)
            return
        turn = await self._turn(conversation, msgid, kind, item)
        if turn is not None:
            await self._answer(conversation, turn)

    async def _servicer_wrote(self, conversation: str, kind: str, item: dict[str, Any]) -> None:
        """A WeCom servicer wrote to the customer in WeCom's client: logged as theirs."""
        servicer = str(item.get("servicer_userid") or "")
        text = ""
        if kind == "text" and isinstance(item.get("text"), dict):
            text = str(item["text"].get("content") or "").strip()[: self._max_chars]
        agent = f"{SERVICER_AGENT}:{servicer}" if servicer else SERVICER_AGENT
        await self._handoff_service.written_elsewhere(conversation, agent, text or describe(item))

    async def _turn(
        self, conversation: str, msgid: str, kind: str, item: dict[str, Any]
    ) -> TurnReply | None:
        text = ""
        if kind == "text" and isinstance(item.get("text"), dict):
            # A menu click comes back as a text: its content is the chosen label.
            text = str(item["text"].get("content") or "").strip()[: self._max_chars]
        if await self._store.with_servicer(conversation):
            # A WeCom servicer has it: logged and shown, never answered by the bot.
            await self._chat.handle_unreadable(CHANNEL, conversation, text or describe(item), None)
            return None
        if kind == "text":
            if not text:
                return None
            # Under the msgid: a turn taken over from a crashed process resumes.
            return await self._chat.handle(CHANNEL, conversation, text, message_id=msgid)
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
        for recheck in list(self._rechecks.values()):
            recheck.cancel()  # only waiting for another process's lease: nothing in hand
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in late:
                task.cancel()
