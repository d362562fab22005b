"""Records every Redis command the bot sends, to check Redis Cluster hash slots.

A `RecordingRedis` client notes each command, each transaction (MULTI/EXEC
pipeline) and each Lua script call with the code that made it; afterwards
`offences()` asks Redis which arguments are keys (`COMMAND GETKEYS`, so every
command's key positions are Redis's own) and computes each key's CRC16 slot.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis as redis_sync
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.crc import key_slot

ROOT = Path(__file__).resolve().parent.parent
OWN = (ROOT / "bot", ROOT / "actions")


@dataclass
class Call:
    where: str  # the bot's code that sent it: path:function
    kind: str  # "command" or "transaction"
    commands: list[tuple[Any, ...]]


@dataclass
class Recorder:
    calls: list[Call] = field(default_factory=list)

    def note(self, kind: str, commands: list[tuple[Any, ...]]) -> None:
        self.calls.append(Call(_caller(), kind, commands))

    def offences(self, redis: redis_sync.Redis) -> dict[str, set[str]]:
        """Calls whose keys span several slots: where -> what (command names, keys, slots)."""
        commands = [args for call in self.calls for args in call.commands]
        pipe = redis.pipeline(transaction=False)
        for args in commands:
            pipe.command_getkeys(*args)
        found = iter(pipe.execute(raise_on_error=False))
        offences: dict[str, set[str]] = defaultdict(set)
        for call in self.calls:
            keys: list[str] = []
            names = []
            for args in call.commands:
                answer = next(found)
                names.append(str(args[0]).upper())
                if isinstance(answer, list):
                    keys += [k.decode() if isinstance(k, bytes) else str(k) for k in answer]
            slots = {key_slot(k.encode()) for k in keys}
            if len(slots) > 1:
                what = "+".join(sorted(set(names)))
                offences[call.where].add(f"{call.kind} {what}: {sorted(set(keys))}")
        return offences

    @property
    def scripts_and_transactions(self) -> int:
        return sum(
            1
            for c in self.calls
            if c.kind == "transaction" or str(c.commands[0][0]).upper() in ("EVAL", "EVALSHA")
        )


def _caller() -> str:
    frame = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if any(root in path.parents for root in OWN):
            return f"{path.relative_to(ROOT)}:{frame.f_code.co_name}"
        frame = frame.f_back  # type: ignore[assignment]
    return "elsewhere"


class RecordingPipeline(Pipeline):
    recorder: Recorder

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack = [command[0] for command in self.command_stack]
        if self.is_transaction:
            self.recorder.note("transaction", stack)
        else:
            for args in stack:
                self.recorder.note("command", [args])
        return await super().execute(raise_on_error)


class RecordingRedis(Redis):
    recorder: Recorder

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.recorder.note("command", [args])
        return await super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = RecordingPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.recorder = self.recorder
        return pipe
