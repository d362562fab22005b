"""The path every customer message takes, channel-independent."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from bot.chat.apology import apology
from bot.content.messages import Messages
from bot.conversation_log.store import ConversationLog, Outbound
from bot.engine.output import Reply
from bot.engine.runtime import RasaEngine
from bot.errors import ServiceUnavailable
from bot.events import Events
from bot.nlu.normalizer import normalize
from bot.satisfaction.store import PENDING, SatisfactionStore, parse_rating

logger = logging.getLogger(__name__)

# How a satisfaction rating is labelled in the conversation log (not an NLU intent).
RATING_INTENT = "csat_rating"

# Said when the turn failed and the model's own apology is not available.
LAST_RESORT_APOLOGY = (
    "抱歉，我这边出了点问题，没能处理好你的消息。你可以再发一次，或者回复“人工”找客服同事。"
)


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
class TurnReply:
    """What a channel sends back for one customer message."""

    replies: list[Reply]
    inbound_id: str
    intent: str | None = None
    confidence: float = 0.0


class ChatService:
    def __init__(
        self,
        log: ConversationLog,
        model: ModelSlot,
        satisfaction: SatisfactionStore,
        messages: Messages,
        events: Events,
    ) -> None:
        self._log = log
        self._model = model
        self._satisfaction = satisfaction
        self._messages = messages
        self._events = events

    async def handle(
        self,
        channel: str,
        sender_id: str,
        text: str,
        metadata: dict[str, Any] | None = None,
    ) -> TurnReply:
        """Log the message, run it through Rasa, log and return the replies.

        The inbound message is written before anything else can fail. A failure
        in the NLU or the dialogue still gets the customer an honest apology;
        only an unreachable Redis fails the request (503), since then nothing
        can be recorded.
        """
        engine = self._model.require()
        inbound_id = await self._log.append_inbound(sender_id, channel, text)
        rated = await self._answer_to_rating(sender_id, channel, text, inbound_id)
        if rated is not None:
            return rated
        intent: str | None = None
        confidence = 0.0
        try:
            parse_data = engine.parse(text, sender_id)
            intent = parse_data["intent"].get("name")
            confidence = float(parse_data["intent"].get("confidence") or 0.0)
            await self._log.annotate(sender_id, inbound_id, parse_data, engine.version)
            await self._events.publish(
                "customer_message",
                sender_id,
                id=inbound_id,
                text=text,
                channel=channel,
                intent=intent,
                confidence=confidence,
            )
            replies = await engine.handle(
                text, sender_id, channel, parse_data, message_id=inbound_id, metadata=metadata
            )
        except RedisError:
            raise
        except Exception:
            logger.exception("turn failed for conversation %r (entry %s)", sender_id, inbound_id)
            replies = []
        if not replies:
            # Rasa swallows a failing action and may then say nothing: never leave
            # the customer without an answer.
            replies = [
                Reply(
                    payload={"recipient_id": sender_id, "text": apology()},
                    action="kefu_turn_failed",
                    failed=True,
                )
            ]
        await self._log.append_outbound(
            sender_id,
            channel,
            [
                Outbound(
                    text=r.text,
                    action=r.action,
                    response=r.response,
                    model=engine.version,
                    error=r.failed,
                    data={k: v for k, v in r.payload.items() if k not in ("recipient_id", "text")},
                )
                for r in replies
            ],
        )
        await self._events.publish(
            "bot_message", sender_id, texts=[r.text for r in replies], channel=channel
        )
        return TurnReply(
            replies=replies, inbound_id=inbound_id, intent=intent, confidence=confidence
        )

    async def _answer_to_rating(
        self, sender_id: str, channel: str, text: str, inbound_id: str
    ) -> TurnReply | None:
        """The reply to a satisfaction rating, if the bot asked for one and this is it.

        Anything other than a rating answers the question too ("no rating"):
        the message then goes through the NLU as usual and the bot never asks
        again in this conversation.
        """
        if await self._satisfaction.status(sender_id) != PENDING:
            return None
        rating = parse_rating(normalize(text))
        if rating is None:
            await self._satisfaction.decline(sender_id)
            return None
        await self._satisfaction.record(sender_id, rating)
        parse = {
            "intent": {"name": RATING_INTENT, "confidence": 1.0},
            "entities": [{"entity": "rating", "value": rating}],
        }
        await self._log.annotate(sender_id, inbound_id, parse, model=None)
        reply = Reply(
            payload={"recipient_id": sender_id, "text": self._messages.pick("csat_thanks")},
            action="satisfaction",
            response="csat_thanks",
        )
        outbound = Outbound(text=reply.text, action=reply.action, response=reply.response)
        await self._log.append_outbound(sender_id, channel, [outbound])
        return TurnReply([reply], inbound_id, intent=RATING_INTENT, confidence=1.0)
