"""Message rate limits per conversation and per client address, atomic in Redis.

Each limit is a GCRA (generic cell rate algorithm) kept in one small Redis
hash and decided by one Lua script, with Redis's own clock: a burst of
`count` messages, then one every `seconds / count`. Being one atomic step
in Redis, a limit holds however many bot processes share the work and
however many requests arrive at once; the state of an idle sender expires
by itself.

A refused message costs one Redis round trip and nothing else: it is not
classified, not given to Rasa and not written to the conversation log.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from aiohttp import web
from redis.asyncio import Redis

from bot.content.messages import Messages
from bot.errors import ApiError
from bot.redis_keys import Keys
from bot.security.proxy import bucket
from bot.settings import Rate

logger = logging.getLogger(__name__)

# KEYS[1]: the limit's hash. ARGV: emission interval (ms), burst (count).
# Returns {allowed, retry after (ms), refused before since the last allowed}.
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('HGET', KEYS[1], 'tat') or now)
if tat < now then tat = now end
local next_tat = tat + interval
local allowed_at = next_tat - burst * interval
if now < allowed_at then
  local told = redis.call('HGET', KEYS[1], 'told')
  redis.call('HSET', KEYS[1], 'told', '1')
  redis.call('PEXPIRE', KEYS[1], math.max(tat - now, 1))
  return {0, allowed_at - now, told == '1' and 1 or 0}
end
redis.call('HSET', KEYS[1], 'tat', next_tat, 'told', '0')
redis.call('PEXPIRE', KEYS[1], next_tat - now)
return {1, 0, 0}
"""

# Said to a customer whose messages come too fast (nlu_data/messages.yml).
RATE_LIMITED = "rate_limited"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0
    # Refused, and this sender was already told so since their last accepted message.
    told: bool = False

    @property
    def retry_seconds(self) -> int:
        return max(1, math.ceil(self.retry_after))


class RateLimited(ApiError):
    """429 with `Retry-After`: the message was not processed, send it again later."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(429, "rate_limited", message)
        self.headers = {"Retry-After": str(retry_after)}


class RateLimits:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        messages: Messages,
        per_conversation: Rate,
        per_address: Rate,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._messages = messages
        self._per_conversation = per_conversation
        self._per_address = per_address
        self._script = redis.register_script(GCRA)

    async def hit(self, key: str, rate: Rate) -> Decision:
        """Count one event against `rate` under `key`; allowed or when to retry."""
        if not rate.on:
            return Decision(True)
        interval = max(1, round(rate.seconds * 1000 / rate.count))
        allowed, retry_ms, told = await self._script(keys=[key], args=[interval, rate.count])
        return Decision(bool(allowed), int(retry_ms) / 1000, bool(told))

    async def conversation(self, conversation: str) -> Decision:
        return await self.hit(self._keys.rate_conversation(conversation), self._per_conversation)

    async def address(self, address: str | None) -> Decision:
        return await self.hit(self._keys.rate_address(bucket(address or "")), self._per_address)

    async def admit(self, request: web.Request, conversation: str) -> None:
        """Let a customer's message through, or raise 429 with `Retry-After` (web chat, REST).

        The address is counted first: a flood spread over made-up
        conversations from one address is stopped there.
        """
        decision = await self.address(request.remote)
        if decision.allowed:
            decision = await self.conversation(conversation)
        if not decision.allowed:
            logger.warning(
                "%s from %s for %r refused: over the rate limit for %d s",
                request.path,
                request.remote,
                conversation,
                decision.retry_seconds,
            )
            raise RateLimited(self._messages.pick(RATE_LIMITED), decision.retry_seconds)

    async def excess(self, conversation: str) -> str | None:
        """For a channel that cannot take a 429 (WeChat): None to go on; else what to answer.

        An excess message is logged and not processed; the first one since the
        last accepted message is answered with the honest line, the others with
        nothing at all.
        """
        decision = await self.conversation(conversation)
        if decision.allowed:
            return None
        logger.warning(
            "message for %r not processed: over the rate limit for %d s",
            conversation,
            decision.retry_seconds,
        )
        return "" if decision.told else self._messages.pick(RATE_LIMITED)
