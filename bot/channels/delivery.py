"""Messages the customer did not just ask for: an agent's reply, a notice from the bot.

A reply to a customer's message travels back in the response to that message.
Anything else has to be pushed through the customer's channel. Every such
message is published on the events channel (consoles see it; a web chat
receives it over its websocket, on whichever process it is connected to);
channels that push through an API of their own (WeChat) register a sender.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, runtime_checkable

from bot.conversation_log.store import ConversationLog, Outbound
from bot.events import EventKind, Events

logger = logging.getLogger(__name__)

# Channels whose customers receive pushed messages over the events websocket.
SOCKET_CHANNELS = frozenset({"webchat"})
CANNOT_PUSH = "这个渠道不能主动推送消息：客户要再发消息或刷新才会看到你的回复。"


class DeliveryFailed(Exception):
    """The channel refused the message (it is logged all the same)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ChannelSender(Protocol):
    async def send(self, conversation: str, text: str) -> None:
        """Push `text`; DeliveryFailed if the channel refuses it."""

    async def unreachable(self, conversation: str) -> str | None:
        """Why the customer cannot be written to now (for agents), or None."""


@runtime_checkable
class WindowedSender(Protocol):
    async def window_note(self, conversation: str) -> str | None:
        """While the customer can be written to: how long and how many more (for agents)."""


class Delivery:
    def __init__(self, events: Events, log: ConversationLog) -> None:
        self._events = events
        self._log = log
        self._senders: dict[str, ChannelSender] = {}

    def register(self, channel: str, sender: ChannelSender) -> None:
        self._senders[channel] = sender

    async def unreachable(self, channel: str, conversation: str) -> str | None:
        """Why an agent's reply would not reach this customer now, or None if it would."""
        if channel in SOCKET_CHANNELS:
            return None
        sender = self._senders.get(channel)
        if sender is None:
            return CANNOT_PUSH
        return await sender.unreachable(conversation)

    async def window_note(self, channel: str, conversation: str) -> str | None:
        """The channel's sending window as agents should see it, for channels that have one."""
        sender = self._senders.get(channel)
        if isinstance(sender, WindowedSender):
            return await sender.window_note(conversation)
        return None

    async def push(
        self,
        kind: EventKind,
        channel: str,
        conversation: str,
        entry_id: str,
        text: str,
        local: dict[str, Any] | None = None,
        **data: Any,
    ) -> bool:
        """Publish, and push through the channel's own sender; False if it cannot push at all.

        The message is in the conversation log already, so a customer whose
        channel cannot push (the plain REST webhook) still finds it there.
        Raises DeliveryFailed when the channel's API refuses it. `local`: for
        this process's subscribers only (bot/events.py).
        """
        await self._events.publish(
            kind, conversation, local, id=entry_id, text=text, channel=channel, **data
        )
        if channel in SOCKET_CHANNELS:
            return True
        sender = self._senders.get(channel)
        if sender is None:
            return False
        await sender.send(conversation, text)
        return True

    async def push_quietly(
        self,
        kind: EventKind,
        channel: str,
        conversation: str,
        entry_id: str,
        text: str,
        **data: Any,
    ) -> bool:
        """`push` for notices: a refusal is logged, not raised (the notice is in the log)."""
        try:
            return await self.push(kind, channel, conversation, entry_id, text, **data)
        except DeliveryFailed as exc:
            logger.warning("could not push a %s to %r: %s", kind.value, conversation, exc.message)
            return False

    async def notify(self, conversation: str, key: str, text: str, **data: Any) -> None:
        """Log and push a notice from the bot (message `key`): a person joined, left..."""
        channel = self._log.channel_of(conversation)
        (entry_id,) = await self._log.append_outbound(
            conversation, channel, [Outbound(text=text, action=key, response=key)]
        )
        await self.push_quietly(EventKind.NOTICE, channel, conversation, entry_id, text, **data)
