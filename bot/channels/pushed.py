"""What platforms that push messages to our webhook have in common (WeChat, Weibo).

Both sign each request with the SHA-1 of a secret, a timestamp and a nonce,
sorted and concatenated; both wait 5 seconds for an answer and then deliver
the same message again (three times); both take a reply in the response to
the push (passive) or later through their API (active), and the API only
reaches a customer for 48 hours after their last message. Each channel keeps
its own format; the rules live here once:

- `signed_request`: the signature and a window on the timestamp (403 otherwise);
- `PushedTurns`: a push claimed once in Redis (a redelivery, on any process,
  gets an empty answer and never a second reply), the turn given a budget,
  a late reply sent through the API when ready;
- `SendWindow`: the 48 hours, and what agents are told when it is closed;
- `PushChannel`: what a channel built on these holds; `mount`: its routes, or
  a log line saying which settings are missing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from redis.asyncio import Redis

from bot.channels.delivery import DeliveryFailed
from bot.channels.menu import Menu
from bot.channels.wechat.crypto import signature_ok
from bot.chat.service import ChatService
from bot.errors import ApiError

logger = logging.getLogger(__name__)

# Far longer than the platforms' three retries over about 15 seconds.
CLAIM_SECONDS = 3600
# WeChat and Weibo let a brand write to a customer this long after their message.
WINDOW_SECONDS = 48 * 3600
# A timestamp above this is in milliseconds (Weibo's documented example is
# 1397022061823); seconds will not reach it for another three thousand years.
MILLISECONDS_FROM = 10**11

Send = Callable[[str, str], Awaitable[None]]  # (conversation, text)


def signed_request(query: Mapping[str, str], secret: str, window: float) -> tuple[str, str]:
    """(timestamp, nonce) of a request the platform signed, recently; 403 otherwise."""
    timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
    try:
        stamp = int(timestamp)
    except ValueError:
        raise ApiError(403, "bad_timestamp", "`timestamp` must be unix time.") from None
    seconds = stamp / 1000 if stamp >= MILLISECONDS_FROM else stamp
    if abs(time.time() - seconds) > window:
        raise ApiError(403, "stale_timestamp", "`timestamp` is outside the accepted window.")
    if not signature_ok(query.get("signature"), secret, timestamp, nonce):
        raise ApiError(403, "bad_signature", "The signature does not match.")
    return timestamp, nonce


class PushedTurns:
    """One pushed message, from claim to reply, inside the platform's wait."""

    def __init__(self, redis: Redis, platform: str, budget: float) -> None:
        self._redis = redis
        self._platform = platform
        self._budget = budget
        self._later: set[asyncio.Task[None]] = set()

    async def answer(
        self,
        claim: str,
        conversation: str,
        turn: Callable[[], Coroutine[Any, Any, list[str]]],
        send: Send,
    ) -> list[str] | None:
        """The replies to put in the response, or None for an empty answer.

        None when `claim` was taken already (a redelivery of a message in hand
        or answered) or when the turn overran the budget: then its replies go
        out through `send` once ready. A turn that fails gives the claim back,
        so the platform's next delivery tries again.
        """
        if not await self._redis.set(claim, "1", nx=True, ex=CLAIM_SECONDS):
            logger.info("%s redelivered %s; already handled or in hand", self._platform, claim)
            return None
        task = asyncio.create_task(turn())
        try:
            done, _ = await asyncio.wait({task}, timeout=self._budget)
        except asyncio.CancelledError:  # the platform hung up: the reply still goes out
            self._deliver_later(conversation, task, send)
            raise
        if not done:
            logger.info(
                "reply to %s not ready in %.1f s: answering through the %s API",
                claim,
                self._budget,
                self._platform,
            )
            self._deliver_later(conversation, task, send)
            return None
        try:
            return task.result()
        except Exception:
            # Nothing could be done (Redis down, model loading): let the retry try again.
            await self._redis.delete(claim)
            raise

    def send_later(self, conversation: str, texts: list[str], send: Send) -> None:
        """Send replies that are ready but cannot go in the response (too long for it)."""

        async def ready() -> list[str]:
            return texts

        self._deliver_later(conversation, asyncio.ensure_future(ready()), send)

    def _deliver_later(
        self, conversation: str, task: asyncio.Future[list[str]], send: Send
    ) -> None:
        async def deliver() -> None:
            try:
                texts = await task
            except Exception:
                logger.exception("a late %s turn for %s failed", self._platform, conversation)
                return
            for text in texts:
                try:
                    await send(conversation, text)
                except DeliveryFailed as exc:
                    logger.warning("late reply to %s not delivered: %s", conversation, exc.message)
                    return

        later = asyncio.create_task(deliver())
        self._later.add(later)
        later.add_done_callback(self._later.discard)

    async def drain(self, timeout: float) -> None:
        """Wait (a bounded time) for replies still on their way out, then give up on them."""
        if self._later:
            _, late = await asyncio.wait(set(self._later), timeout=timeout)
            for task in late:
                logger.warning("a late %s reply was not sent before shutdown", self._platform)
                task.cancel()


class SendWindow:
    """Whether the platform's API still reaches a customer: 48 hours after they last wrote."""

    def __init__(
        self,
        redis: Redis,
        last_inbound: Callable[[str], str],
        closed: Callable[[str], str],
        note: str,
    ) -> None:
        self._redis = redis
        self._last_inbound = last_inbound
        self._closed = closed
        self.note = note  # what agents are told while it is closed

    async def opens(self, conversation: str) -> None:
        """The customer wrote (or followed, clicked, scanned): 48 hours from now."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._last_inbound(conversation), time.time(), ex=WINDOW_SECONDS)
            pipe.delete(self._closed(conversation))
            await pipe.execute()

    async def close(self, conversation: str) -> None:
        """The platform refused a message, or the customer left: closed until they write."""
        await self._redis.set(self._closed(conversation), "1", ex=WINDOW_SECONDS)

    async def unreachable(self, conversation: str) -> str | None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(self._closed(conversation))
            pipe.exists(self._last_inbound(conversation))
            closed, recent = await pipe.execute()
        return self.note if closed or not recent else None


class PushChannel:
    """A channel whose platform pushes messages: the service, the claims, the window."""

    def __init__(
        self,
        platform: str,
        chat: ChatService,
        redis: Redis,
        reply_budget: float,
        max_chars: int,
        menu: Menu,
        window: SendWindow,
    ) -> None:
        self._chat = chat
        self._max_chars = max_chars
        self._menu = menu
        self._turns = PushedTurns(redis, platform, reply_budget)
        self._window = window

    async def unreachable(self, conversation: str) -> str | None:
        """Why an agent's reply would not reach the customer now (bot.channels.delivery)."""
        return await self._window.unreachable(conversation)

    async def drain(self, timeout: float) -> None:
        """Wait (a bounded time) for replies still on their way out, then give up on them."""
        await self._turns.drain(timeout)


def mount(
    app: web.Application,
    platform: str,
    path: str,
    handlers: tuple[Handler, Handler],
    required: Mapping[str, str | None],
    log: logging.Logger,
) -> bool:
    """The webhook's GET and POST routes, when every setting is there; whether they are.

    A channel whose settings are absent is off: its path is a 404, and one
    line (on the channel's own logger) names what is missing. Its resources
    are the composition root's to build (bot/app.py).
    """
    missing = [name for name, value in required.items() if not value]
    if missing:
        log.info("%s channel off: %s not set", platform, ", ".join(missing))
        return False
    verify, receive = handlers
    app.router.add_get(path, verify)
    app.router.add_post(path, receive)
    return True
