"""How every process reaches Redis: one URL, or the master named by Redis Sentinel.

With ``REDIS_SENTINELS`` set, clients ask the Sentinels for the current master
of ``REDIS_SENTINEL_MASTER`` whenever they open a connection (redis-py's
``Sentinel``). When the master dies, commands on its connections fail, the
request gets the usual 503 ``storage_unavailable``, and the next connection is
opened to whatever the Sentinels name: the old master until they agree it is
down, the promoted replica after. Nobody restarts anything. A master that was
demoted while clients still talked to it answers writes with READONLY; redis-py
drops such a connection and asks the Sentinels again.

Commands are never retried here: a write whose answer was lost with the
connection may or may not have run, and only the caller knows whether running it
twice is harmless (messages carry a ``message_id`` so that clients can retry).

Commands that tasks send in the same turn of the event loop travel together:
the client queues each command and sends the queue as one pipeline once
every task that was ready has had its turn (see :class:`AutoPipelined`).
Twenty conversations answered at once each write their log, indexes and
counters; sent one by one, the round trips cost more CPU than the answers.

Replication is asynchronous, so a write acknowledged by the master can die with
it. :class:`ReplicaBarrier` closes that gap for what matters: before a message
is answered, every write made so far is on at least one replica.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import Any

import hiredis
import redis as redis_sync
import redis.sentinel as sync_sentinel
from async_timeout import timeout as async_timeout
from redis.asyncio import Redis
from redis.asyncio.client import EMPTY_RESPONSE, NEVER_DECODE, Pipeline
from redis.asyncio.connection import Connection
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.errors import ServiceUnavailable
from bot.settings import Settings

logger = logging.getLogger(__name__)

# A client idle this long pings before its next command, so a connection the
# network dropped silently is found before a request is sent on it.
HEALTH_CHECK_SECONDS = 30
# After a barrier found too few replicas, answer without waiting for this long
# (and log it once), instead of making every message wait the full timeout
# while a replica is down.
DEGRADED_SECONDS = 5.0


# Sent on their own: they hold their connection, or act on the connection they
# are sent on (transactions, blocking reads, WAIT, pub/sub).
DIRECT = frozenset(
    {
        "WATCH",
        "UNWATCH",
        "MULTI",
        "EXEC",
        "DISCARD",
        "WAIT",
        "BLPOP",
        "BRPOP",
        "BLMOVE",
        "BRPOPLPUSH",
        "BZPOPMIN",
        "BZPOPMAX",
        "BLMPOP",
        "BZMPOP",
        "XREAD",
        "XREADGROUP",
        "SUBSCRIBE",
        "PSUBSCRIBE",
        "SSUBSCRIBE",
        "MONITOR",
        "CLIENT",
        "SELECT",
        "AUTH",
        "HELLO",
        "QUIT",
        "RESET",
    }
)
_Command = tuple[tuple[Any, ...], dict[str, Any]]
# Commands that go together, and the future of their answers (in order).
_Queued = tuple[list[_Command], "asyncio.Future[list[Any]]"]


def _direct(commands: list[_Command]) -> bool:
    return any(str(args[0]).upper() in DIRECT for args, _ in commands)


class AutoPipelined(Redis):
    """A client that sends the commands of one turn of the event loop together.

    A command (or a caller's own non-transactional pipeline) is queued, and
    the queue is sent as one pipeline (one write, one read of every answer)
    once the tasks that were ready when it was queued have run. Each caller
    gets its own answers or errors, as if sent alone, and its commands stay
    together and in order; nothing waits longer than one turn of the loop.
    Transactions and `DIRECT` commands go on their own, as they always did.
    """

    _queued: list[_Queued] | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        commands = [(args, options)]
        if self.connection is not None or _direct(commands):
            return await super().execute_command(*args, **options)
        (answer,) = await self.together(commands)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        if transaction or shard_hint is not None:
            return super().pipeline(transaction, shard_hint)
        return QueuedPipeline(self, self.connection_pool, self.response_callbacks)

    def together(self, commands: list[_Command]) -> asyncio.Future[list[Any]]:
        """The answers of `commands` (an error is its command's answer), sent with
        whatever else is queued in this turn of the loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        if self._queued is None:
            self._queued = []
            loop.call_soon(self._send_queued)
        self._queued.append((commands, future))
        return future

    def _send_queued(self) -> None:
        queued, self._queued = self._queued or [], None
        # A task of its own: a caller that gives up must not cut the others off.
        asyncio.get_running_loop().create_task(self._send(queued))

    async def _send(self, queued: list[_Queued]) -> None:
        packed: list[bytes | None] = []
        if sum(len(group) for group, _ in queued) > 1:
            queued, packed = self._packed(queued)
        commands = [command for group, _ in queued for command in group]
        if not commands:
            return
        try:
            if len(commands) == 1:
                (args, options), answers = commands[0], []
                try:
                    answers.append(await super().execute_command(*args, **options))
                except ResponseError as error:
                    answers.append(error)
            else:
                async with _Batch(
                    self.connection_pool, self.response_callbacks, False, None
                ) as pipe:
                    pipe.packed = packed
                    for args, options in commands:
                        pipe.execute_command(*args, **options)
                    answers = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:  # the process is stopping
            for _, future in queued:
                future.cancel()
            raise
        except Exception as error:  # every caller gets it, as if sent alone
            for _, future in queued:
                if not future.done():
                    future.set_exception(error)
            return
        start = 0
        for group, future in queued:
            if not future.done():
                future.set_result(answers[start : start + len(group)])
            start += len(group)

    def _packed(self, queued: list[_Queued]) -> tuple[list[_Queued], list[bytes | None]]:
        """The groups Redis can be sent and their commands in Redis's protocol
        (None: redis-py packs it on the connection); the other groups' callers
        get the error (a bool, None, a lone surrogate...) alone, as if sent alone."""
        encoder = self.connection_pool.get_encoder()
        plain_encoding = encoder.encoding == "utf-8" and encoder.encoding_errors == "strict"
        kept: list[_Queued] = []
        packed: list[bytes | None] = []
        for group, future in queued:
            try:
                mine = [_pack(encoder, args, plain_encoding) for args, _ in group]
            except Exception as error:
                if not future.done():
                    future.set_exception(error)
            else:
                kept.append((group, future))
                packed.extend(mine)
        return kept, packed


# Argument types hiredis packs byte for byte as redis-py does (not bool, not
# subclasses): measured 0.8 against 4.7 microseconds a command.
_PLAIN = frozenset({str, bytes, int, float})


def _pack(encoder: Any, args: tuple[Any, ...], plain_encoding: bool) -> bytes | None:
    """A command in Redis's protocol, packed by hiredis where it packs it as
    redis-py would (UTF-8, one word for the command's name, plain arguments);
    None for redis-py to pack, once its arguments are known to encode."""
    name = args[0]
    if (
        plain_encoding
        and not (isinstance(name, str) and " " in name)
        and not (isinstance(name, bytes) and b" " in name)
        and all(type(a) in _PLAIN for a in args)
    ):
        return hiredis.pack_command(tuple(args))  # raises on what cannot be encoded
    for arg in args:
        encoder.encode(arg)  # the caller's own error, if any
    return None


class _Batch(Pipeline):
    """The queue as one pipeline, packed beforehand (`packed`, see
    `AutoPipelined._packed`), its answers read under one timeout.

    redis-py reads each answer of a pipeline under a timeout of its own (a
    timer set and cancelled per answer): with forty commands a message, that
    was a fifth of the event loop's time. Same answers, same errors, the
    connection dropped on any failure to read, as redis-py does."""

    packed: list[bytes | None]

    async def _execute_pipeline(
        self, connection: Connection, commands: Any, raise_on_error: bool
    ) -> list[Any]:
        await connection.send_packed_command(
            [
                ready if ready is not None else b"".join(connection.pack_command(*args))
                for ready, (args, _) in zip(self.packed, commands, strict=True)
            ]
        )
        parser = connection._parser
        answers: list[Any] = []
        try:
            async with async_timeout(connection.socket_timeout):
                for args, options in commands:
                    raw = NEVER_DECODE in options
                    answer = self._answer(
                        args[0], await parser.read_response(disable_decoding=raw), options
                    )
                    answers.append(await answer if inspect.isawaitable(answer) else answer)
        except asyncio.TimeoutError:
            await connection.disconnect(nowait=True)
            raise RedisTimeoutError(f"Timeout reading from {connection._host_error()}") from None
        except OSError as error:
            await connection.disconnect(nowait=True)
            raise RedisConnectionError(
                f"Error while reading from {connection._host_error()} : {error.args}"
            ) from error
        except BaseException:
            await connection.disconnect(nowait=True)
            raise
        if getattr(getattr(connection, "connection_pool", None), "is_master", False) and any(
            isinstance(answer, ReadOnlyError) for answer in answers
        ):
            # A master the Sentinels demoted while this connection was open: as
            # redis-py's Sentinel connection does, drop it (the next connection
            # asks the Sentinels for the new master) and fail the batch.
            await connection.disconnect()
            raise RedisConnectionError("The previous master is now a replica")
        if connection.health_check_interval:
            connection.next_health_check = (
                asyncio.get_running_loop().time() + connection.health_check_interval
            )
        if raise_on_error:
            self.raise_first_error(commands, answers)
        return answers

    def _answer(self, command: Any, answer: Any, options: dict[str, Any]) -> Any:
        """What ``Redis.parse_response`` makes of an answer read."""
        if isinstance(answer, ResponseError):
            return options[EMPTY_RESPONSE] if EMPTY_RESPONSE in options else answer
        options = {k: v for k, v in options.items() if k not in (NEVER_DECODE, EMPTY_RESPONSE)}
        callback = self.response_callbacks.get(command)
        if callback is None:
            return answer
        return callback(answer, **options)


class QueuedPipeline(Pipeline):
    """A caller's non-transactional pipeline, sent with the client's queue."""

    def __init__(self, client: AutoPipelined, *args: Any) -> None:
        super().__init__(*args, False, None)
        self._client = client

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack = list(self.command_stack)
        if not stack:
            return []
        # Scripts to load first, a WATCH holding its connection, WAIT holding the line.
        if self.scripts or self.watching or self.connection is not None or _direct(stack):
            return await super().execute(raise_on_error)
        try:
            answers = await self._client.together(stack)
        finally:
            await self.reset()
        if raise_on_error:
            self.raise_first_error(stack, answers)
        return answers


class SentinelMaster(AutoPipelined):
    """The master client; closing it also closes its connections to the Sentinels."""

    sentinel: Sentinel | None = None

    async def close(self, close_connection_pool: bool | None = None) -> None:
        await super().close(close_connection_pool)
        if self.sentinel is not None:
            for node in self.sentinel.sentinels:
                await node.close(close_connection_pool=True)


def _client_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": settings.redis_timeout,
        "socket_connect_timeout": settings.redis_timeout,
        "health_check_interval": HEALTH_CHECK_SECONDS,
    }
    if settings.redis_password is not None:
        options["password"] = settings.redis_password
    return options


def _sentinel_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_timeout,
        "socket_connect_timeout": settings.redis_timeout,
    }
    if settings.redis_sentinel_password is not None:
        options["password"] = settings.redis_sentinel_password
    return options


def connect(settings: Settings) -> Redis:
    """An asyncio client with timeouts: a stalled Redis fails requests, never hangs them."""
    options = _client_options(settings)
    if not settings.redis_sentinels:
        return AutoPipelined.from_url(settings.redis_url, **options)
    sentinel = Sentinel(list(settings.redis_sentinels), sentinel_kwargs=_sentinel_options(settings))
    client = sentinel.master_for(
        settings.redis_sentinel_master, redis_class=SentinelMaster, **options
    )
    client.sentinel = sentinel
    return client


def connect_sync(settings: Settings) -> redis_sync.Redis:
    """The blocking client, for command-line tools (never inside the event loop)."""
    options = _client_options(settings)
    if not settings.redis_sentinels:
        return redis_sync.Redis.from_url(settings.redis_url, **options)
    sentinel = sync_sentinel.Sentinel(
        list(settings.redis_sentinels), sentinel_kwargs=_sentinel_options(settings)
    )
    return sentinel.master_for(settings.redis_sentinel_master, **options)


def describe(settings: Settings) -> str:
    """Where Redis is, for logs and errors (never a password)."""
    if settings.redis_sentinels:
        nodes = ",".join(f"{host}:{port}" for host, port in settings.redis_sentinels)
        return f"master {settings.redis_sentinel_master!r} of Sentinels {nodes}"
    url = redis_sync.connection.parse_url(settings.redis_url)
    return f"{url.get('host', 'localhost')}:{url.get('port', 6379)}/{url.get('db', 0)}"


class ReplicaBarrier:
    """Wait until `replicas` replicas hold every write made so far, by any client.

    Redis's WAIT only counts the writes of the connection it is sent on, so the
    barrier first makes a write of its own on that connection (a PUBLISH on a
    channel nobody listens to: propagated to replicas, no key): the replication
    stream is one ordered log, so once a replica has acknowledged that write it
    holds every write before it, whichever connection made them.
    """

    def __init__(self, redis: Redis, channel: str, replicas: int, timeout: float) -> None:
        self._redis = redis
        self._channel = channel
        self.replicas = replicas
        self._timeout_ms = max(1, int(timeout * 1000))
        self._degraded_until = 0.0

    async def wait(self) -> bool:
        """True when enough replicas acknowledged; False when fewer are connected
        (answered without them for a while); `ServiceUnavailable` when they are
        connected but did not acknowledge in time."""
        if self.replicas <= 0 or time.monotonic() < self._degraded_until:
            return self.replicas <= 0
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.publish(self._channel, "")
            pipe.execute_command("WAIT", self.replicas, self._timeout_ms)
            _, acknowledged = await pipe.execute()
        if int(acknowledged) >= self.replicas:
            return True
        if await self._online_replicas() >= self.replicas:
            # Connected but behind (a busy machine): answering now would acknowledge
            # what a failover could still lose. The client's retry of the same
            # message id gets the same replies once they have it.
            raise ServiceUnavailable(
                "replicas_behind",
                "Redis replicas have not yet confirmed this write; retry in a moment.",
            )
        self._degraded_until = time.monotonic() + DEGRADED_SECONDS
        logger.warning(
            "only %s of %s Redis replicas acknowledged within %d ms and fewer are "
            "connected; answering without waiting for replicas for %.0f s",
            acknowledged,
            self.replicas,
            self._timeout_ms,
            DEGRADED_SECONDS,
        )
        return False

    async def _online_replicas(self) -> int:
        """Replicas the master has, in sync (state ``online``)."""
        info = await self._redis.info("replication")
        return sum(
            1
            for name, value in info.items()
            if name.startswith("slave")
            and isinstance(value, dict)
            and value.get("state") == "online"
        )
