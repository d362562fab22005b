"""Asking for, and keeping, a conversation's satisfaction rating.

The bot asks once per conversation, when the customer says goodbye after
being helped. The customer's next message is the answer if it is a rating;
anything else is a non-answer, which is fine, and the bot never asks again in
that conversation.

When a person of the team handled the conversation in the customer's current
session, the question is asked with their name and team (``agent``, ``team``
in the conversation's hash): the rating is theirs. Named when asked, not when
answered, so a rating only ever credits who had just helped.
"""

from __future__ import annotations

import re
import time

from redis.asyncio import Redis

from bot.redis_keys import Keys

_RATING = re.compile(r"^(?:打|给)?\s*([1-5一二三四五])\s*(?:分|星|颗星)?\s*[!.。！~～]*$")
_CHINESE = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5}

PENDING, RATED, DECLINED = "pending", "rated", "declined"


def parse_rating(text: str) -> int | None:
    """1 to 5 if the message is just a rating ("5", "4分", "五星"), else None."""
    match = _RATING.match(text.strip())
    if not match:
        return None
    value = match.group(1)
    return _CHINESE.get(value) or int(value)


class SatisfactionStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def ask(
        self, conversation: str, trigger: str, handled_by: tuple[str, str] | None = None
    ) -> bool:
        """Mark the question asked; False if it was asked before in this conversation.

        `handled_by`: (agent, team) the rating will be credited to, if a person
        had just handled the conversation.
        """
        key = self._keys.csat(conversation)
        if not await self._redis.hsetnx(key, "status", PENDING):
            return False
        asked = {"asked_at": repr(time.time()), "trigger": trigger}
        if handled_by is not None:
            asked.update(agent=handled_by[0], team=handled_by[1])
        await self._redis.hset(key, mapping=asked)
        return True

    async def status(self, conversation: str) -> str | None:
        return await self._redis.hget(self._keys.csat(conversation), "status")

    async def record(self, conversation: str, rating: int) -> None:
        """Keep the rating: the conversation's hash, then the stream of all ratings.

        Two writes, not a transaction: the hash is the conversation's (its
        Redis Cluster slot), the stream shared. The hash is the truth (it ends
        the question, the export reads it) and goes first; the stream is a
        report, which a crash between the two can miss one line of. The other
        order would report a rating twice: after a crash between the writes
        the question is still open, and the retried message is recorded again.
        """
        now = time.time()
        await self._redis.hset(
            self._keys.csat(conversation),
            mapping={"status": RATED, "rating": str(rating), "rated_at": repr(now)},
        )
        await self._redis.xadd(
            self._keys.csat_ratings,
            {"conversation": conversation, "rating": str(rating), "ts": repr(now)},
        )

    async def decline(self, conversation: str) -> None:
        await self._redis.hset(self._keys.csat(conversation), "status", DECLINED)

    async def get(self, conversation: str) -> dict[str, str]:
        return dict(await self._redis.hgetall(self._keys.csat(conversation)))
