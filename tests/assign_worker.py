"""One bot process of the assignment burst test: escalates its share of conversations.

It prints `ready`, then waits for a line on stdin before its burst.

Run as `python -m tests.assign_worker REDIS_URL PREFIX WORKER COUNT`; every
escalation runs the automatic assignment, all at once (asyncio.gather), so
with several of these processes many assignment steps race on one queue.
"""

from __future__ import annotations

import asyncio
import sys

from redis.asyncio import Redis

from bot.handoff.teams import TeamMap
from bot.redis_keys import Keys
from tests.helpers import handoff_service

TEAMS = TeamMap(("售前", "投诉"), "售前", {"complaint": "投诉"}, {})


async def main(url: str, prefix: str, worker: str, count: int) -> None:
    redis = Redis.from_url(url, decode_responses=True)
    service = handoff_service(redis, Keys(prefix), TEAMS, auto_assign=True)
    reasons = ("complaint", "request_human")
    # Importing takes long and differently per process: say so, and start all
    # at once on the test's word (a line on stdin), so the escalations race.
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await asyncio.gather(
        *(
            service.request(f"rest:burst-{worker}-{i}", reasons[i % 2], "转人工")
            for i in range(count)
        )
    )
    await redis.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
