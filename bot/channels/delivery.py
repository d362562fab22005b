"""Messages the customer did not just ask for: an agent's reply, a notice from the bot.

A reply to a customer's message travels back in the response to that message.
Anything else has to be pushed through the customer's channel. Every such
message is published on the events channel (consoles see it; a web chat
receives it over its websocket, on whichever process it is connected to);
channels that push through an API of their own register a sender here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bot.events import Events

# Channels whose customers receive pushed messages over the events websocket.
SOCKET_CHANNELS = frozenset({"webchat"})

Sender = Callable[[str, str], Awaitable[None]]


class Delivery:
    def __init__(self, events: Events) -> None:
        self._events = events
        self._senders: dict[str, Sender] = {}

    def register(self, channel: str, sender: Sender) -> None:
        """`sender(conversation, text)` pushes a message to a customer of `channel`."""
        self._senders[channel] = sender

    def can_push(self, channel: str) -> bool:
        return channel in SOCKET_CHANNELS or channel in self._senders

    async def push(
        self, kind: str, channel: str, conversation: str, entry_id: str, text: str, **data: Any
    ) -> bool:
        """Publish, and push through the channel's own sender; False if it cannot push at all.

        The message is in the conversation log already, so a customer whose
        channel cannot push (the plain REST webhook) still finds it there.
        """
        await self._events.publish(
            kind, conversation, id=entry_id, text=text, channel=channel, **data
        )
        sender = self._senders.get(channel)
        if sender is not None:
            await sender(conversation, text)
        return self.can_push(channel)
