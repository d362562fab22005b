"""The path every customer message takes, channel-independent."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from bot.channels.identity import channel_of
from bot.chat.once import Answered, Claim, MessageClaims
from bot.content.messages import TURN_FAILED, Messages
from bot.conversation_log.store import ConversationLog, Outbound
from bot.engine.output import Reply
from bot.engine.runtime import RasaEngine
from bot.errors import ServiceUnavailable
from bot.events import EventKind, Events
from bot.handoff.hours import ServiceHours
from bot.handoff.standing import standing
from bot.handoff.states import ASSIGNED, BOT, WAITING, ConversationStates
from bot.logs import bind_turn
from bot.nlu.clarification import ClarificationStore, match_choice, resolved_parse
from bot.nlu.normalizer import normalize
from bot.review.index import ReviewIndex, entry_time
from bot.satisfaction.store import PENDING, SatisfactionStore, parse_rating

logger = logging.getLogger(__name__)

# How a satisfaction rating is labelled in the conversation log (not an NLU intent).
RATING_INTENT = "csat_rating"
# A waiting customer asking for a person again is told their place in the queue.
ASKS_FOR_PERSON = "request_human"


@dataclass
class ModelSlot:
    """The model this process serves; empty while it loads."""

    engine: RasaEngine | None = None
    error: str | None = None

    def require(self) -> RasaEngine:
        if self.engine is None:
            detail = self.error or "The model is still loading; retry in a few seconds."
            raise ServiceUnavailable("model_not_ready", detail)
        return self.engine


@dataclass(frozen=True)
class _Turn:
    """One customer message on its way through the service, once logged."""

    engine: RasaEngine
    channel: str
    conversation: str
    inbound_id: str
    resumed: bool = False  # logged by an earlier attempt that was cut short


@dataclass(frozen=True)
class TurnReply:
    """What a channel sends back for one customer message."""

    replies: list[Reply]
    inbound_id: str
    intent: str | None = None
    confidence: float = 0.0
    # Who has the conversation: waiting / assigned (people: the bot is silent), or
    # None after a bot turn, which may itself have handed the conversation over
    # (a channel that shows the state looks it up).
    state: str | None = None

    def record(self) -> dict[str, Any]:
        """As JSON, for a repeat of the same client message id."""
        return {
            "inbound_id": self.inbound_id,
            "intent": self.intent,
            "confidence": self.confidence,
            "state": self.state,
            "replies": [
                {
                    "payload": r.payload,
                    "action": r.action,
                    "response": r.response,
                    "failed": r.failed,
                }
                for r in self.replies
            ],
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> TurnReply:
        return cls(
            replies=[
                Reply(
                    payload=r["payload"],
                    action=r.get("action"),
                    response=r.get("response"),
                    failed=bool(r.get("failed")),
                )
                for r in record["replies"]
            ],
            inbound_id=record["inbound_id"],
            intent=record.get("intent"),
            confidence=float(record.get("confidence") or 0.0),
            state=record.get("state"),
        )


class ChatService:
    def __init__(
        self,
        log: ConversationLog,
        model: ModelSlot,
        satisfaction: SatisfactionStore,
        messages: Messages,
        events: Events,
        states: ConversationStates,
        hours: ServiceHours,
        clock: Callable[[], dt.datetime],
        index: ReviewIndex,
        mask: Callable[[str], str],
        claims: MessageClaims,
        clarifications: ClarificationStore | None = None,
    ) -> None:
        self._log = log
        self._model = model
        self._satisfaction = satisfaction
        self._messages = messages
        self._events = events
        self._states = states
        self._hours = hours
        self._clock = clock
        self._index = index
        # What is written to the log (masked when BOT_MASK_PII); the NLU reads `text`.
        self._mask = mask
        self._claims = claims
        self._clarifications = clarifications

    async def handle(
        self,
        channel: str,
        sender_id: str,
        text: str,
        metadata: dict[str, Any] | None = None,
        message_id: str | None = None,
        parse: dict[str, Any] | None = None,
    ) -> TurnReply:
        """Log the message, run it through Rasa, log and return the replies.

        The inbound message is written before anything else can fail. A failure
        in the NLU or the dialogue still gets the customer an honest apology;
        only an unreachable Redis fails the request (503), since then nothing
        can be recorded.

        With a client `message_id`, a repeat of an id already seen in this
        conversation is not logged or processed again: it gets the first
        delivery's replies (waiting for them if that turn is still running,
        on any process); see bot/chat/once.py.

        `parse`: what the message means, known without the NLU (a menu button
        the customer pressed); its ``text`` is what the dialogue reads, `text`
        what the log shows.
        """
        _same_channel(channel, sender_id)
        bind_turn(sender_id, channel)
        engine = self._model.require()
        if message_id is None:
            return await self._turn(engine, channel, sender_id, text, metadata, parse=parse)
        claim = await self._claims.acquire(sender_id, message_id)
        if isinstance(claim, Answered):
            return TurnReply.from_record(claim.result)
        try:
            turn = await self._claimed_turn(engine, claim, channel, text, metadata)
            await self._claims.finish(claim, turn.record())
        except BaseException:
            # The next retry of the id takes the turn up where the log says it stopped.
            with contextlib.suppress(Exception):
                await self._claims.release(claim)
            raise
        return turn

    async def _claimed_turn(
        self,
        engine: RasaEngine,
        claim: Claim,
        channel: str,
        text: str,
        metadata: dict[str, Any] | None,
    ) -> TurnReply:
        """The turn of a claimed message id, resuming an attempt that was cut short."""
        conversation, inbound_id = claim.conversation, None
        if claim.resumed:
            # A second before the claim: stream ids and the claim use Redis's clock.
            inbound_id, logged = await self._log.attempt(
                conversation, claim.message_id, claim.since_ms - 1000
            )
            if inbound_id is not None and logged:
                replies = [
                    Reply(
                        payload={
                            "recipient_id": conversation,
                            "text": entry.get("text", ""),
                            **(json.loads(entry["data"]) if "data" in entry else {}),
                        },
                        action=entry.get("action"),
                        response=entry.get("response"),
                        failed=entry.get("error") == "1",
                    )
                    for entry in logged
                ]
                return TurnReply(replies, inbound_id)
        return await self._turn(
            engine, channel, conversation, text, metadata, claim.message_id, inbound_id
        )

    async def _turn(
        self,
        engine: RasaEngine,
        channel: str,
        sender_id: str,
        text: str,
        metadata: dict[str, Any] | None,
        message_id: str | None = None,
        inbound_id: str | None = None,
        parse: dict[str, Any] | None = None,
    ) -> TurnReply:
        """One customer message: who has it → understand → answer.

        `inbound_id`: the message was logged already, by an attempt cut short.
        """
        started = time.monotonic()
        resumed = inbound_id is not None
        if inbound_id is None:
            inbound_id = await self._log.append_inbound(
                sender_id, channel, self._mask(text), message_id=message_id
            )
        turn = _Turn(engine, channel, sender_id, inbound_id, resumed)
        state = (await self._states.get(sender_id)).state
        if state in (WAITING, ASSIGNED):
            return await self._with_people(turn, state, text)
        rated = await self._answer_to_rating(turn, text)
        if rated is not None:
            return rated
        chosen = parse or await self._chosen_reading(sender_id, channel, text)
        parse_data = await self._understand(turn, text, BOT, chosen)
        if chosen is not None:
            text = chosen["text"]  # the dialogue answers the question the customer asked
        return await self._answer(turn, text, parse_data, metadata, started)

    async def _answer(
        self,
        turn: _Turn,
        text: str,
        parse_data: dict[str, Any] | None,
        metadata: dict[str, Any] | None,
        started: float,
    ) -> TurnReply:
        """The dialogue's replies, logged and shown; silence if people took the conversation.

        A failure in the dialogue, or a dialogue that says nothing (Rasa swallows
        a failing action), gets the customer an honest apology instead.
        """
        sender_id, inbound_id = turn.conversation, turn.inbound_id
        intent, confidence = _verdict(parse_data)
        replies = await self._dialogue(turn, text, parse_data, metadata)
        if replies is None:  # people have it now: silent, like any message to them
            state = (await self._states.get(sender_id)).state
            return TurnReply([], inbound_id, intent=intent, confidence=confidence, state=state)
        replies = replies or [
            Reply(
                payload={"recipient_id": sender_id, "text": self._messages.pick(TURN_FAILED)},
                action="kefu_turn_failed",
                failed=True,
            )
        ]
        await self._log.append_outbound(
            sender_id,
            turn.channel,
            [
                Outbound(
                    text=r.text,
                    action=r.action,
                    response=r.response,
                    model=turn.engine.version,
                    error=r.failed,
                    data={k: v for k, v in r.payload.items() if k not in ("recipient_id", "text")},
                )
                for r in replies
            ],
            reply_to=inbound_id,
        )
        await self._events.publish(
            EventKind.BOT_MESSAGE,
            sender_id,
            texts=[r.text for r in replies],
            channel=turn.channel,
            response_seconds=time.monotonic() - started,
        )
        return TurnReply(replies, inbound_id, intent=intent, confidence=confidence)

    async def _dialogue(
        self,
        turn: _Turn,
        text: str,
        parse_data: dict[str, Any] | None,
        metadata: dict[str, Any] | None,
    ) -> list[Reply] | None:
        """Rasa's replies (empty when it failed, logged); None if people have it by now."""
        if parse_data is None:
            return []
        sender_id = turn.conversation

        async def still_ours() -> bool:
            # Checked again once the previous turn is over: it may have handed
            # the conversation to a person while this message waited.
            return (await self._states.get(sender_id)).state not in (WAITING, ASSIGNED)

        try:
            return await turn.engine.handle(
                text, sender_id, turn.channel, parse_data, turn.inbound_id, metadata, still_ours
            )
        except RedisError:
            raise
        except Exception:
            logger.exception("turn failed for %r (entry %s)", sender_id, turn.inbound_id)
            return []

    async def _understand(
        self,
        turn: _Turn,
        text: str,
        state: str,
        chosen: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Classify the message, record the result, index it, show it to the consoles.

        `chosen`: the message picked a reading the bot offered; that is its parse.
        None when the NLU failed (logged): the message is still indexed and shown.
        """
        sender_id, inbound_id, engine = turn.conversation, turn.inbound_id, turn.engine
        parse_data: dict[str, Any] | None = chosen
        nlu_seconds = None
        try:
            if parse_data is None:
                started = time.monotonic()
                parse_data = await engine.understand(text)
                nlu_seconds = time.monotonic() - started
        except RedisError:
            raise
        except Exception:
            logger.exception("could not classify %r (entry %s)", sender_id, inbound_id)
        intent, confidence = _verdict(parse_data)
        logged = self._mask(text)
        # Independent writes: together, in one round trip.
        await asyncio.gather(
            self._annotate(turn, parse_data),
            self._index.add(sender_id, inbound_id, turn.channel, logged, intent, confidence),
        )
        extra: dict[str, Any] = {} if nlu_seconds is None else {"nlu_seconds": nlu_seconds}
        if turn.resumed:
            extra["resumed"] = True  # counted by the attempt that logged it
        await self._customer_message(
            sender_id, inbound_id, turn.channel, logged, state, intent, confidence, **extra
        )
        return parse_data

    async def _annotate(self, turn: _Turn, parse_data: dict[str, Any] | None) -> None:
        """Attach the NLU's verdict to the logged message (if there is one)."""
        if parse_data is None:
            return
        try:
            await self._log.annotate(
                turn.conversation, turn.inbound_id, parse_data, turn.engine.version
            )
        except RedisError:
            raise
        except Exception:
            logger.exception(
                "could not record the verdict for %r (entry %s)", turn.conversation, turn.inbound_id
            )

    async def _customer_message(
        self,
        conversation: str,
        inbound_id: str,
        channel: str,
        logged: str,
        state: str,
        intent: str | None = None,
        confidence: float = 0.0,
        source: str | None = None,
        **extra: Any,
    ) -> None:
        """Show the message (as logged) to the consoles; the KPIs count it from there.

        `source`: the campaign that brought the customer (a QR code's scene), if any.
        """
        if source:
            extra["source"] = source
        await self._events.publish(
            EventKind.CUSTOMER_MESSAGE,
            conversation,
            id=inbound_id,
            text=logged,
            channel=channel,
            intent=intent,
            confidence=confidence,
            state=state,
            **extra,
        )

    async def handle_unreadable(
        self,
        channel: str,
        sender_id: str,
        description: str,
        reply_key: str | None,
        source: str | None = None,
    ) -> TurnReply:
        """A message the NLU cannot read (a picture, a location, an event).

        Logged as `description` and shown to agents like any message; answered
        with the fixed line `reply_key` (nlu_data/messages.yml) unless people
        have the conversation or there is nothing to say. `source`: the
        campaign that brought the customer (a QR code's scene), recorded on
        the conversation and published with the message.
        """
        _same_channel(channel, sender_id)
        bind_turn(sender_id, channel)
        inbound_id = await self._log.append_inbound(sender_id, channel, description)
        if source:
            await self._log.set_source(sender_id, source)
        await self._index.add(sender_id, inbound_id, channel, description, None, 0.0)
        state = (await self._states.get(sender_id)).state
        await self._customer_message(
            sender_id,
            inbound_id,
            channel,
            description,
            state,
            source=source,
        )
        if reply_key is None or state in (WAITING, ASSIGNED):
            return TurnReply([], inbound_id, state=state)
        reply = await self._say(sender_id, channel, reply_key, reply_key, inbound_id)
        return TurnReply([reply], inbound_id, state=state)

    async def _with_people(self, turn: _Turn, state: str, text: str) -> TurnReply:
        """A message while people have the conversation: logged, classified, shown, not answered.

        Rasa never sees it, so the dialogue resumes after a release where it
        left off, and Rasa's session expiry cannot hand the conversation back
        to the bot. The one exception: a waiting customer who asks for a person
        again hears their place in the queue and the expected wait.
        """
        sender_id = turn.conversation
        intent, confidence = _verdict(await self._understand(turn, text, state))
        replies: list[Reply] = []
        if state == WAITING and intent == ASKS_FOR_PERSON:
            place = await standing(self._states, self._hours, sender_id, self._clock())
            if place is not None:
                replies.append(
                    await self._say(
                        sender_id,
                        turn.channel,
                        place.key,
                        "queue_status",
                        turn.inbound_id,
                        **place.values,
                    )
                )
        return TurnReply(
            replies, turn.inbound_id, intent=intent, confidence=confidence, state=state
        )

    async def _say(
        self,
        sender_id: str,
        channel: str,
        key: str,
        action: str,
        reply_to: str,
        **values: str,
    ) -> Reply:
        """Log, show to consoles and return one line of message `key` (messages.yml)."""
        line = self._messages.pick(key, **values)
        outbound = Outbound(text=line, action=action, response=key)
        await self._log.append_outbound(sender_id, channel, [outbound], reply_to=reply_to)
        await self._events.publish(EventKind.BOT_MESSAGE, sender_id, texts=[line], channel=channel)
        return Reply(payload={"recipient_id": sender_id, "text": line}, action=action, response=key)

    async def _chosen_reading(
        self, sender_id: str, channel: str, text: str
    ) -> dict[str, Any] | None:
        """The parse of the message the bot asked about, if this one picks a reading.

        The bot's open question is dropped either way: anything but an option's
        number or label is a new message, understood as usual.
        """
        if self._clarifications is None:
            return None
        pending = await self._clarifications.take(sender_id)
        option = match_choice(text, pending.options) if pending is not None else None
        if pending is None or option is None:
            return None
        await self._clarifications.confirm(
            sender_id, pending, option, channel, self._mask(pending.text)
        )
        return resolved_parse(pending, option)

    async def _answer_to_rating(self, turn: _Turn, text: str) -> TurnReply | None:
        """The reply to a satisfaction rating, if the bot asked for one and this is it.

        Anything other than a rating answers the question too ("no rating"):
        the message then goes through the NLU as usual and the bot never asks
        again in this conversation.
        """
        sender_id, inbound_id = turn.conversation, turn.inbound_id
        question = await self._satisfaction.get(sender_id)
        if question.get("status") != PENDING:
            return None
        rating = parse_rating(normalize(text))
        if rating is None:
            await self._satisfaction.decline(sender_id)
            return None
        await self._satisfaction.record(sender_id, rating)
        await self._index.rated(sender_id, rating, entry_time(inbound_id))
        parse = {
            "intent": {"name": RATING_INTENT, "confidence": 1.0},
            "entities": [{"entity": "rating", "value": rating}],
        }
        await self._log.annotate(sender_id, inbound_id, parse, model=None)
        # Not an NLU verdict: shown without an intent, so not counted as classified.
        extra: dict[str, Any] = {"resumed": True} if turn.resumed else {}
        await self._customer_message(
            sender_id, inbound_id, turn.channel, self._mask(text), BOT, **extra
        )
        # Credited to the agent named when the question was asked (a person had
        # just handled it), for the KPI recorder only: not on every console.
        credit = {"agent": question.get("agent", ""), "team": question.get("team", "")}
        await self._events.publish(
            EventKind.RATED,
            sender_id,
            credit if credit["agent"] else None,
            rating=rating,
            at=entry_time(inbound_id),
        )
        reply = await self._say(sender_id, turn.channel, "csat_thanks", "satisfaction", inbound_id)
        return TurnReply([reply], inbound_id, intent=RATING_INTENT, confidence=1.0)


def _same_channel(channel: str, conversation: str) -> None:
    """A message is only ever logged in a conversation of the channel it came on."""
    if channel_of(conversation) != channel:
        raise ValueError(f"conversation {conversation!r} is not of channel {channel!r}")


def _verdict(parse_data: dict[str, Any] | None) -> tuple[str | None, float]:
    """(intent, confidence) of a parse result; (None, 0.0) when there is none."""
    if parse_data is None:
        return None, 0.0
    intent = parse_data.get("intent") or {}
    return intent.get("name"), float(intent.get("confidence") or 0.0)
