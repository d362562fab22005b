"""A linear intent classifier that trains in seconds and says how sure it is.

On short Chinese messages, a linear model over word and character n-gram
counts is as accurate as Rasa's DIET here while training in seconds instead
of minutes (README, "NLU"). This one:

- weights the featurizers' sparse counts like TF-IDF: ``log(1 + count)`` times
  a smoothed inverse document frequency learned in training, rows L2-normalised;
- appends the RegexFeaturizer's pattern and word-list indicators apart, at a
  fixed weight (``lexicon_weight``), so that a word from a curated list (an
  insult, a political term) is not diluted by the hundreds of n-grams around it;
- fits a linear SVM (one-vs-rest, squared hinge loss);
- turns its margins into probabilities with a softmax whose temperature is
  fitted on out-of-fold margins (temperature scaling), so ``confidence`` means
  what the fallback thresholds assume it means.

With a dense featurizer before it (pretrained sentence embeddings,
``bot/nlu/embeddings.py``) it trains a second SVM on the n-grams plus the
embedding, weighted ``dense_weight`` times, and runs a cascade: the n-gram
model answers alone when its confidence reaches ``cascade_threshold``; only the
other messages are embedded (10–30 ms each) and decided by the second model.
The threshold is calibrated in training on out-of-fold predictions: the lowest
one that sends ``cascade_recall`` of the messages the embedding rescues (the
second model right, the first wrong) to the second model. Each message says which path decided it
(``nlu_path``: ``sparse`` or ``dense``).

The model is stored as plain arrays (``.npz``) and JSON: loading runs no pickle.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers import LABEL_RANKING_LENGTH
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.featurizers.featurizer import Featurizer
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from scipy.optimize import minimize_scalar
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC

from bot.nlu.embeddings import LAZY_EMBEDDING

logger = logging.getLogger(__name__)

# Which model decided a message: the n-gram one alone, or the one with embeddings.
NLU_PATH = "nlu_path"


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class LinearModel:
    """The fitted arrays, and prediction from them.

    Columns of ``coef``: the n-gram counts, then the pattern and word-list
    indicators, then (in the cascade's second model) the dense embedding.
    """

    def __init__(
        self,
        classes: list[str],
        idf: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
        temperature: float,
        lexicon_weight: float = 1.0,
        dense_weight: float = 0.0,
        dense_dim: int = 0,
    ) -> None:
        self.classes = classes
        self.idf = idf
        self.lexicon_weight = lexicon_weight
        self.coef = coef
        self.intercept = intercept
        self.temperature = temperature
        self.dense_weight = dense_weight
        self.dense_dim = dense_dim

    @staticmethod
    def weigh_counts(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
        """log(1 + count) * idf, each row scaled to unit length."""
        x = sp.csr_matrix(counts, dtype=np.float64, copy=True)
        np.log1p(x.data, out=x.data)
        x.data *= idf[x.indices]
        return normalize(x, copy=False)

    @staticmethod
    def flags(indicators: sp.csr_matrix, lexicon_weight: float) -> sp.csr_matrix:
        return (indicators > 0).astype(np.float64) * lexicon_weight

    @staticmethod
    def scale_dense(dense: np.ndarray, dense_weight: float) -> np.ndarray:
        """Unit rows times the weight: the embedding counts ``dense_weight`` times the n-grams."""
        d = np.asarray(dense, dtype=np.float64)
        norms = np.linalg.norm(d, axis=1, keepdims=True)
        return d / np.maximum(norms, 1e-12) * dense_weight

    @classmethod
    def weigh(
        cls,
        counts: sp.csr_matrix,
        idf: np.ndarray,
        indicators: sp.csr_matrix,
        lexicon_weight: float,
        dense: np.ndarray | None = None,
        dense_weight: float = 0.0,
    ) -> sp.csr_matrix:
        blocks = [cls.weigh_counts(counts, idf), cls.flags(indicators, lexicon_weight)]
        if dense is not None:
            blocks.append(sp.csr_matrix(cls.scale_dense(dense, dense_weight)))
        return sp.hstack(blocks).tocsr()

    def _blocks(self, n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The coefficients per block, transposed and contiguous, made once.

        Slicing them per message would copy the whole matrix each time (tens of
        megabytes for sixty intents): most of a parse's time.
        """
        cached: tuple[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] | None
        cached = getattr(self, "_cached_blocks", None)
        if cached is None or cached[0] != (n, m):
            blocks = (
                np.ascontiguousarray(self.coef[:, :n].T),
                np.ascontiguousarray(self.coef[:, n:m].T),
                np.ascontiguousarray(self.coef[:, m:].T),
            )
            cached = ((n, m), blocks)
            self._cached_blocks = cached
        return cached[1]

    def margins(
        self, counts: sp.csr_matrix, indicators: sp.csr_matrix, dense: np.ndarray | None = None
    ) -> np.ndarray:
        # Products per block instead of stacking them: the hot path of every message.
        n = counts.shape[1]
        m = n + indicators.shape[1]
        count_block, flag_block, dense_block = self._blocks(n, m)
        x = self.weigh_counts(counts, self.idf)
        margins = np.asarray(x @ count_block) + self.intercept
        if indicators.shape[1]:
            margins += np.asarray(self.flags(indicators, self.lexicon_weight) @ flag_block)
        if self.dense_dim:
            if dense is None:
                raise ValueError("this model needs the dense features")
            margins += self.scale_dense(dense, self.dense_weight) @ dense_block
        return margins

    def probabilities(
        self, counts: sp.csr_matrix, indicators: sp.csr_matrix, dense: np.ndarray | None = None
    ) -> np.ndarray:
        return _softmax(self.margins(counts, indicators, dense) * self.temperature)


def fit(
    counts: sp.csr_matrix,
    indicators: sp.csr_matrix,
    labels: list[str],
    c: float = 1.0,
    lexicon_weight: float = 1.0,
    folds: int = 3,
    seed: int = 42,
    dense: np.ndarray | None = None,
    dense_weight: float = 3.0,
) -> tuple[LinearModel, np.ndarray | None]:
    """Fit the SVM on everything, and its softmax temperature on out-of-fold margins.

    Returns the model and the out-of-fold probabilities (None when there are
    too few examples per intent for folds).
    """
    counts = sp.csr_matrix(counts)
    classes = sorted(set(labels))
    y = np.array([classes.index(label) for label in labels])
    df = np.asarray((counts > 0).sum(axis=0)).ravel()
    idf = np.log((1 + counts.shape[0]) / (1 + df)) + 1.0
    x = LinearModel.weigh(
        counts, idf, sp.csr_matrix(indicators), lexicon_weight, dense, dense_weight
    )

    svm = LinearSVC(C=c, random_state=seed).fit(x, y)
    coef, intercept = _full_rank(svm, len(classes))

    temperature = 1.0
    oof_probabilities = None
    smallest = int(np.bincount(y).min())
    k = min(folds, smallest)
    if k >= 2 and len(classes) > 1:
        oof = np.zeros((len(y), len(classes)))
        for train, test in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(x, y):
            fold = LinearSVC(C=c, random_state=seed).fit(x[train], y[train])
            fc, fi = _full_rank(fold, len(classes))
            oof[test] = np.asarray(x[test] @ fc.T) + fi

        def nll(t: float) -> float:
            p = _softmax(oof * t)
            return float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())

        temperature = float(minimize_scalar(nll, bounds=(0.1, 50.0), method="bounded").x)
        oof_probabilities = _softmax(oof * temperature)
    model = LinearModel(
        classes,
        idf,
        coef,
        intercept,
        temperature,
        lexicon_weight,
        dense_weight if dense is not None else 0.0,
        dense.shape[1] if dense is not None else 0,
    )
    return model, oof_probabilities


def cascade_threshold(sparse: np.ndarray, dense: np.ndarray, y: np.ndarray, recall: float) -> float:
    """The n-gram confidence under which a message is embedded and decided by the dense model.

    `sparse` and `dense` are out-of-fold probabilities of the two models for
    the same examples, `y` their true classes. The messages the embedding
    rescues are those the dense model gets right and the n-gram model wrong;
    the threshold is the lowest that sends at least `recall` of them to the
    dense path, so the fewest messages pay for an embedding.
    """
    sparse_conf = sparse.max(axis=1)
    rescued = (dense.argmax(axis=1) == y) & (sparse.argmax(axis=1) != y)
    if not rescued.any():
        return 0.0
    for t in np.round(np.arange(0.0, 1.0, 0.005), 3):
        if (sparse_conf[rescued] < t).mean() >= recall:
            return float(t)
    return 1.0


def _full_rank(svm: LinearSVC, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One row per class, also for two classes (where sklearn keeps a single row)."""
    coef, intercept = svm.coef_, svm.intercept_
    if n_classes == 2 and coef.shape[0] == 1:
        coef = np.vstack([-coef[0], coef[0]])
        intercept = np.array([-intercept[0], intercept[0]])
    return coef, intercept


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class LinearIntentClassifier(IntentClassifier, GraphComponent):
    """Linear SVMs over TF-IDF-weighted n-grams (and embeddings), with calibrated confidences."""

    @classmethod
    def required_components(cls) -> list[type]:
        return [Featurizer]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            "C": 1.0,
            "lexicon_weight": 1.0,
            # The embedding's weight beside the unit-length n-gram block.
            "dense_weight": 3.0,
            # The share of the n-gram model's out-of-fold mistakes that the
            # embedding corrects which the cascade must send to the dense path;
            # the cascade threshold is calibrated from it in training.
            "cascade_recall": 0.9,
            # A fixed threshold instead (chosen from the cascade table that
            # `make evaluate` writes for the held-out file); null: calibrate.
            "cascade_threshold": None,
            "calibration_folds": 3,
            "random_seed": 42,
            "ranking_length": LABEL_RANKING_LENGTH,
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        model: LinearModel | None = None,
        dense_model: LinearModel | None = None,
        threshold: float = 1.0,
    ) -> None:
        self.config = {**self.get_default_config(), **config}
        self._storage = model_storage
        self._resource = resource
        self.model = model
        self.dense_model = dense_model
        self.cascade_threshold = threshold

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> LinearIntentClassifier:
        return cls(config, model_storage, resource)

    @staticmethod
    def _sparse_features(messages: list[Message]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """Sentence-level n-gram counts, and pattern/word-list indicators, one row each."""
        counts, indicators = [], []
        for message in messages:
            groups: dict[bool, list[sp.spmatrix]] = {True: [], False: []}
            for f in message.features:
                if f.attribute == TEXT and f.type == "sentence" and f.is_sparse():
                    groups["RegexFeaturizer" in f.origin].append(f.features)
            if not groups[False]:
                raise ValueError("LinearIntentClassifier needs sparse featurizers before it")
            counts.append(sp.hstack(groups[False]).tocsr())
            indicators.append(
                sp.hstack(groups[True]).tocsr() if groups[True] else sp.csr_matrix((1, 0))
            )
        return sp.vstack(counts).tocsr(), sp.vstack(indicators).tocsr()

    @staticmethod
    def _dense_features(messages: list[Message]) -> np.ndarray | None:
        """Sentence embeddings, one row each; None when any message has none."""
        rows = []
        for message in messages:
            found = [
                np.asarray(f.features).reshape(-1)
                for f in message.features
                if f.attribute == TEXT and f.type == "sentence" and f.is_dense()
            ]
            if not found:
                return None
            rows.append(np.concatenate(found))
        return np.vstack(rows) if rows else None

    def train(self, training_data: TrainingData) -> Resource:
        examples = [e for e in training_data.intent_examples if e.get(INTENT) and e.get(TEXT)]
        if not examples:
            logger.debug("no intent examples: %s not trained", self.__class__.__name__)
            return self._resource
        counts, indicators = self._sparse_features(examples)
        labels = [e.get(INTENT) for e in examples]
        c, lexicon_weight = float(self.config["C"]), float(self.config["lexicon_weight"])
        folds, seed = int(self.config["calibration_folds"]), int(self.config["random_seed"])
        self.model, sparse_oof = fit(counts, indicators, labels, c, lexicon_weight, folds, seed)
        dense = self._dense_features(examples)
        self.dense_model, self.cascade_threshold = None, 1.0
        if dense is not None:
            self.dense_model, dense_oof = fit(
                counts,
                indicators,
                labels,
                c,
                lexicon_weight,
                folds,
                seed,
                dense=dense,
                dense_weight=float(self.config["dense_weight"]),
            )
            fixed = self.config["cascade_threshold"]
            if fixed is not None:
                self.cascade_threshold = float(fixed)
            elif sparse_oof is not None and dense_oof is not None:
                y = np.array([self.model.classes.index(label) for label in labels])
                self.cascade_threshold = cascade_threshold(
                    sparse_oof, dense_oof, y, float(self.config["cascade_recall"])
                )
            if sparse_oof is not None:
                share = float((sparse_oof.max(axis=1) < self.cascade_threshold).mean())
                logger.info(
                    "cascade threshold %.3f: %.0f%% of out-of-fold messages would be embedded",
                    self.cascade_threshold,
                    share * 100,
                )
        self.persist()
        return self._resource

    def process(self, messages: list[Message]) -> list[Message]:
        if self.model is None or not messages:
            return messages
        counts, indicators = self._sparse_features(messages)
        probabilities = self.model.probabilities(counts, indicators)
        paths = ["sparse"] * len(messages)
        if self.dense_model is not None:
            unsure = np.flatnonzero(probabilities.max(axis=1) < self.cascade_threshold)
            if len(unsure):
                chosen = [messages[i] for i in unsure]
                dense = self._dense_features(chosen)
                if dense is None:
                    _embed(chosen)
                    dense = self._dense_features(chosen)
                if dense is not None:
                    probabilities[unsure] = self.dense_model.probabilities(
                        counts[unsure], indicators[unsure], dense
                    )
                    for i in unsure:
                        paths[i] = "dense"
        length = int(self.config["ranking_length"])
        for message, row, path in zip(messages, probabilities, paths, strict=True):
            order = np.argsort(-row)
            ranking = [{"name": self.model.classes[i], "confidence": float(row[i])} for i in order]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set(
                "intent_ranking", ranking[:length] if length > 0 else ranking, add_to_output=True
            )
            message.set(NLU_PATH, path, add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self.process(training_data.training_examples)
        return training_data

    def persist(self) -> None:
        assert self.model is not None
        with self._storage.write_to(self._resource) as directory:
            models = {"linear": self.model}
            if self.dense_model is not None:
                models["dense"] = self.dense_model
            for name, model in models.items():
                np.savez(
                    directory / f"{name}.npz",
                    idf=model.idf,
                    coef=model.coef,
                    intercept=model.intercept,
                )
                (directory / f"{name}.json").write_text(
                    json.dumps(
                        {
                            "classes": model.classes,
                            "temperature": model.temperature,
                            "lexicon_weight": model.lexicon_weight,
                            "dense_weight": model.dense_weight,
                            "dense_dim": model.dense_dim,
                            "cascade_threshold": self.cascade_threshold,
                        }
                    )
                )

    @staticmethod
    def _read(directory: Path, name: str) -> tuple[LinearModel, float] | None:
        if not (directory / f"{name}.npz").is_file():
            return None
        arrays = np.load(directory / f"{name}.npz", allow_pickle=False)
        meta = json.loads((directory / f"{name}.json").read_text())
        model = LinearModel(
            meta["classes"],
            arrays["idf"],
            arrays["coef"],
            arrays["intercept"],
            float(meta["temperature"]),
            float(meta.get("lexicon_weight", 1.0)),
            float(meta.get("dense_weight", 0.0)),
            int(meta.get("dense_dim", 0)),
        )
        return model, float(meta.get("cascade_threshold", 1.0))

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> LinearIntentClassifier:
        try:
            with model_storage.read_from(resource) as directory:
                sparse = cls._read(directory, "linear")
                dense = cls._read(directory, "dense")
        except (ValueError, FileNotFoundError):
            sparse = None
        if sparse is None:
            logger.debug("no trained %s in %s", cls.__name__, resource.name)
            return cls(config, model_storage, resource)
        model, threshold = sparse
        return cls(
            config,
            model_storage,
            resource,
            model,
            dense[0] if dense else None,
            threshold if dense else 1.0,
        )


def _embed(messages: list[Message]) -> None:
    """Ask the featurizer that left its handle on the messages to embed them now."""
    handle = messages[0].get(LAZY_EMBEDDING)
    if handle is not None:
        handle.add_to(messages)
