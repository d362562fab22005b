"""The trained Rasa model, loaded once per process and shared by every request."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import threading
import time
import types
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from rasa.core.agent import Agent
from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.lock_store import LockStore
from rasa.core.processor import MessageProcessor
from rasa.core.tracker_store import TrackerStore
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.engine.runner.interface import GraphRunner
from rasa.engine.storage.storage import ModelMetadata
from rasa.exceptions import ActionLimitReached
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import (
    ENTITIES,
    INTENT,
    INTENT_NAME_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.utils.endpoints import EndpointConfig

from bot.engine import patches
from bot.engine.output import RecordingOutputChannel, Reply
from bot.engine.prediction import WINDOW_MARGIN, SequentialGraphRunner, longest_rule
from bot.engine.tracker_store import AsyncRedisTrackerStore
from bot.training import MODEL_SUFFIX

logger = logging.getLogger(__name__)


_paused_lock = threading.Lock()
_paused_loads = 0
_enable_after = False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic garbage collection while a model loads: it makes hundreds of
    thousands of objects, and each full collection among them (up to 200 ms, in
    whatever thread) holds up the event loop that serves requests meanwhile.
    Whoever serves the model collects once and freezes what is left
    (bot/app.py). Loads at once: the collector is back after the last."""
    global _paused_loads, _enable_after
    with _paused_lock:
        if _paused_loads == 0:
            _enable_after = gc.isenabled()
            gc.disable()
        _paused_loads += 1
    try:
        yield
    finally:
        with _paused_lock:
            _paused_loads -= 1
            if _paused_loads == 0 and _enable_after:
                gc.enable()


class ModelNotFound(RuntimeError):
    """There is no trained model to serve."""


def latest_model(model_dir: Path) -> Path:
    """The newest trained model in `model_dir`."""
    models = sorted(model_dir.glob(f"*{MODEL_SUFFIX}"), key=lambda p: p.stat().st_mtime)
    if not models:
        raise ModelNotFound(f"no trained model in {model_dir}/: run `make model` (or `make run`)")
    return models[-1]


def _policies(runner: DaskGraphRunner, metadata: ModelMetadata) -> list[Any]:
    """The loaded policy components the core target combines."""
    schema = metadata.predict_schema
    core = metadata.core_target
    if core is None:
        return []
    # The ensemble's inputs are policy0, policy1..., domain and tracker.
    needs = schema.nodes[core].needs
    nodes = [runner._instantiated_nodes.get(n) for k, n in needs.items() if k.startswith("policy")]
    return [node._component if node is not None else None for node in nodes]


# Parses kept per model, by exact text: customers repeat themselves ("在吗",
# "你好", "人工", "谢谢"), and the NLU of a text never depends on who wrote it.
PARSE_CACHE_SIZE = 4096
# Longer texts are hardly ever sent twice; they are not kept.
PARSE_CACHE_TEXT = 64


class ParseCache:
    """The latest parses by text, least recently used first out.

    Kept as JSON bytes, so every caller gets its own copy to change. Used
    from the event loop only."""

    def __init__(self, size: int = PARSE_CACHE_SIZE) -> None:
        self._size = size
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, text: str) -> dict[str, Any] | None:
        found = self._items.get(text)
        if found is None:
            self.misses += 1
            return None
        self._items.move_to_end(text)
        self.hits += 1
        return orjson.loads(found)

    def put(self, text: str, parse: dict[str, Any]) -> None:
        if self._size <= 0 or len(text) > PARSE_CACHE_TEXT:
            return
        try:
            self._items[text] = orjson.dumps(parse, option=orjson.OPT_SERIALIZE_NUMPY)
        except TypeError:  # a value orjson does not know: not kept
            return
        self._items.move_to_end(text)
        if len(self._items) > self._size:
            self._items.popitem(last=False)


# Who the NLU is told wrote a message: nothing in it depends on the sender.
NLU_SENDER = "nlu"
# Texts parsed in one run of the NLU graph at most.
NLU_BATCH = 32


class NluBatches:
    """Parses in a worker thread, the texts that arrived meanwhile together.

    Under load, one run of the NLU graph for every text waiting costs less than
    one run each (the classifier scores them all at once) and hands the GIL
    between the event loop and the worker once instead of once per message.
    A text arriving while the NLU is idle is parsed at once, alone. If a run
    fails, its texts are parsed again in halves, so a text that breaks the
    pipeline fails only its own turn."""

    def __init__(self, parse_many: Callable[[list[str]], list[dict[str, Any]]]) -> None:
        self._parse_many = parse_many
        self._waiting: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def parse(self, text: str) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        drainer = self._drainer
        if drainer is not None and drainer.get_loop() is not loop:
            # Left by an event loop that has closed: its texts went with it.
            self._waiting = [(t, f) for t, f in self._waiting if f.get_loop() is loop]
            drainer = None
        self._waiting.append((text, future))
        if drainer is None or drainer.done():
            self._drainer = loop.create_task(self._drain(), name="nlu-batches")
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[:NLU_BATCH]
                del self._waiting[:NLU_BATCH]
                batch = [(text, future) for text, future in batch if not future.done()]
                if not batch:
                    continue
                try:
                    await self._run(batch)
                except BaseException as exc:  # nobody is left waiting for ever
                    for _, future in batch:
                        _settle(future, exception=exc)
                    raise
        finally:
            self._drainer = None

    async def _run(self, batch: list[tuple[str, asyncio.Future[dict[str, Any]]]]) -> None:
        texts = [text for text, _ in batch]
        try:
            results = await asyncio.to_thread(self._parse_many, texts)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exception=exc)
                return
            # In halves: a text that breaks the pipeline fails only its own turn.
            half = len(batch) // 2
            await self._run(batch[:half])
            await self._run(batch[half:])
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)


def _settle(
    future: asyncio.Future[dict[str, Any]],
    result: dict[str, Any] | None = None,
    exception: BaseException | None = None,
) -> None:
    if future.done() or future.get_loop().is_closed():  # its caller gave up
        return
    if isinstance(exception, asyncio.CancelledError):
        future.cancel()
    elif exception is not None:
        future.set_exception(exception)
    else:
        assert result is not None
        future.set_result(result)


# One thread for the dialogue's CPU work (predictions, trackers to and from
# JSON) of every conversation: this work holds the GIL, and each more thread
# holding it is one more the event loop queues behind for its turn.
DIALOGUE_THREAD = "dialogue"


async def _predict_off_the_loop(
    self: MessageProcessor, output_channel: OutputChannel, tracker: DialogueStateTracker
) -> None:
    """``MessageProcessor._run_prediction_loop`` of Rasa 3.6, the prediction awaited
    in a worker thread: a policy turning a tracker into states is milliseconds
    of CPU that every other conversation on this process would otherwise wait
    for. The conversation lock keeps the tracker to this turn meanwhile, and
    the policies keep no state between predictions."""
    should_predict_another_action = True
    while should_predict_another_action and self._should_handle_message(tracker):
        try:
            action, prediction = await asyncio.get_running_loop().run_in_executor(
                self.kefu_cpu,
                self.predict_next_with_tracker_if_should,
                tracker,
            )
        except ActionLimitReached:
            logger.warning(
                "Circuit breaker tripped. Stopped predicting "
                f"more actions for sender '{tracker.sender_id}'."
            )
            if self.on_circuit_break:
                self.on_circuit_break(tracker, output_channel, self.nlg)
            break
        if prediction.is_end_to_end_prediction:
            tracker = await self.run_action_extract_slots(output_channel, tracker)
        should_predict_another_action = await self._run_action(
            action, tracker, output_channel, self.nlg, prediction
        )


class RasaEngine:
    """One loaded Rasa agent plus the parse path the service uses.

    Customer text is never an instruction. Rasa's last NLU step,
    ``RegexMessageHandler``, turns a message that starts with ``/`` into an
    intent with confidence 1.0 (``/restart``, ``/request_human{"x": 1}``), which
    would let a customer steer the bot or inject entities. The service therefore
    runs the NLU graph only up to the step before it, and hands Rasa the parse
    result ready-made, so slash text is classified like any other text.
    """

    def __init__(self, agent: Agent, model_path: Path) -> None:
        self.agent = agent
        self.model_path = model_path
        processor = agent.processor
        if processor is None:
            raise ModelNotFound(f"{model_path} holds no usable model")
        metadata = processor.model_metadata
        if isinstance(processor.graph_runner, DaskGraphRunner):
            # Without dask, and with the policy reading only the turns a rule can
            # see (bot/engine/prediction.py); used by the processor and `parse`.
            rule_length = longest_rule(_policies(processor.graph_runner, metadata))
            window = None if rule_length is None else rule_length + WINDOW_MARGIN
            processor.graph_runner = SequentialGraphRunner(processor.graph_runner, window)
        # Predictions in a worker thread (see `_predict_off_the_loop`).
        self.cpu = ThreadPoolExecutor(max_workers=1, thread_name_prefix=DIALOGUE_THREAD)
        processor.kefu_cpu = self.cpu
        processor._run_prediction_loop = types.MethodType(_predict_off_the_loop, processor)
        self._graph: GraphRunner = processor.graph_runner
        handler_node = metadata.predict_schema.nodes[metadata.nlu_target]
        self._nlu_target: str = handler_node.needs["messages"]
        self.model_id: str = metadata.model_id
        self.version: str = model_path.name.removesuffix(MODEL_SUFFIX)
        # The NLU graph runs in a worker thread, one message at a time: its
        # components keep state that is not meant to be shared by threads.
        self._nlu_lock = threading.Lock()
        self.parses = ParseCache()
        self._batches = NluBatches(self.parse_many)

    @classmethod
    def load(cls, model_path: Path) -> RasaEngine:
        """Load a model (slow: seconds; call it off the event loop)."""
        os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
        from rasa.utils.tensorflow.environment import setup_tf_environment

        setup_tf_environment()
        patches.apply()
        started = time.monotonic()
        with collector_paused():
            agent = Agent.load(str(model_path))
        logger.info("loaded model %s in %.1f s", model_path.name, time.monotonic() - started)
        return cls(agent, model_path)

    def bind(
        self,
        tracker_store: TrackerStore,
        lock_store: LockStore,
        action_endpoint: EndpointConfig | None,
    ) -> None:
        """Attach the stores and the action endpoint of the app serving this model.

        The agent wraps any tracker store in a ``FailSafeTrackerStore``, which on
        a Redis error silently falls back to memory and forgets the conversation;
        the service would rather answer 503, so the store is set directly.
        """
        tracker_store.domain = self.agent.domain
        if isinstance(tracker_store, AsyncRedisTrackerStore):
            tracker_store.cpu = self.cpu
        for holder in (self.agent, self.agent.processor):
            holder.tracker_store = tracker_store
            holder.lock_store = lock_store
            holder.action_endpoint = action_endpoint

    async def understand(self, text: str) -> dict[str, Any]:
        """`parse`, off the event loop: a message that needs the sentence encoder
        costs tens of milliseconds of CPU (in C, without the GIL), which must not
        hold up every other conversation. A text parsed recently is not
        parsed again; texts that arrive while the NLU is busy are parsed
        together (see `NluBatches`)."""
        known = self.parses.get(text)
        if known is not None:
            return known
        parsed = await self._batches.parse(text)
        self.parses.put(text, parsed)
        return parsed

    def parse(self, text: str) -> dict[str, Any]:
        """Run the NLU pipeline on `text` as plain text (see the class docstring)."""
        return self.parse_many([text])[0]

    def parse_many(self, texts: list[str]) -> list[dict[str, Any]]:
        """`parse` of several texts in one run of the NLU graph, each parsed as
        if alone (the components work message by message, the classifier on
        all at once)."""
        with self._nlu_lock:
            return self._parse(texts)

    def _parse(self, texts: list[str]) -> list[dict[str, Any]]:
        from rasa.engine.constants import PLACEHOLDER_MESSAGE, PLACEHOLDER_TRACKER

        # No NLU component reads who wrote a message.
        messages = [UserMessage(text=text, sender_id=NLU_SENDER) for text in texts]
        results = self._graph.run(
            inputs={
                PLACEHOLDER_MESSAGE: messages,
                PLACEHOLDER_TRACKER: DialogueStateTracker.from_events(NLU_SENDER, []),
            },
            targets=[self._nlu_target],
        )
        found = []
        for text, parsed in zip(texts, results[self._nlu_target], strict=True):
            data: dict[str, Any] = {
                TEXT: text,
                INTENT: {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0},
                ENTITIES: [],
            }
            data.update(parsed.as_dict(only_output_properties=True))
            data[TEXT] = text
            found.append(data)
        return found

    async def handle(
        self,
        text: str,
        sender_id: str,
        channel: str,
        parse_data: dict[str, Any],
        message_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        proceed: Callable[[], Awaitable[bool]] | None = None,
    ) -> list[Reply] | None:
        """Run one customer turn through dialogue management, under the conversation lock.

        `proceed` is asked once the lock is held (the previous turn of this
        conversation has finished): False skips the turn and returns None, for
        a conversation that turn handed to a person.
        """
        output = RecordingOutputChannel()
        message = UserMessage(
            text=text,
            output_channel=output,
            sender_id=sender_id,
            parse_data=parse_data,
            input_channel=channel,
            message_id=message_id,
            metadata=metadata,
        )
        processor = self.agent.processor
        assert processor is not None and self.agent.lock_store is not None
        # Agent.handle_message, with the check inside the lock.
        async with self.agent.lock_store.lock(sender_id):
            if proceed is not None and not await proceed():
                return None
            await processor.handle_message(message)
        return output.replies
