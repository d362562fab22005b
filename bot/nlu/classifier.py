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
  what the FallbackClassifier threshold assumes it means.

The model is stored as plain arrays (``.npz``) and JSON: loading runs no pickle.
"""

from __future__ import annotations

import json
import logging
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

logger = logging.getLogger(__name__)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class LinearModel:
    """The fitted arrays, and prediction from them."""

    def __init__(
        self,
        classes: list[str],
        idf: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
        temperature: float,
        lexicon_weight: float = 1.0,
    ) -> None:
        self.classes = classes
        self.idf = idf
        self.lexicon_weight = lexicon_weight
        self.coef = coef
        self.intercept = intercept
        self.temperature = temperature

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

    @classmethod
    def weigh(
        cls,
        counts: sp.csr_matrix,
        idf: np.ndarray,
        indicators: sp.csr_matrix,
        lexicon_weight: float,
    ) -> sp.csr_matrix:
        return sp.hstack(
            [cls.weigh_counts(counts, idf), cls.flags(indicators, lexicon_weight)]
        ).tocsr()

    def margins(self, counts: sp.csr_matrix, indicators: sp.csr_matrix) -> np.ndarray:
        # Two products instead of stacking the halves: the hot path of every message.
        n = counts.shape[1]
        x = self.weigh_counts(counts, self.idf)
        margins = np.asarray(x @ self.coef[:, :n].T) + self.intercept
        if indicators.shape[1]:
            margins += np.asarray(self.flags(indicators, self.lexicon_weight) @ self.coef[:, n:].T)
        return margins

    def probabilities(self, counts: sp.csr_matrix, indicators: sp.csr_matrix) -> np.ndarray:
        return _softmax(self.margins(counts, indicators) * self.temperature)


def fit(
    counts: sp.csr_matrix,
    indicators: sp.csr_matrix,
    labels: list[str],
    c: float = 1.0,
    lexicon_weight: float = 1.0,
    folds: int = 3,
    seed: int = 42,
) -> LinearModel:
    """Fit the SVM on everything, and its softmax temperature on out-of-fold margins."""
    counts = sp.csr_matrix(counts)
    classes = sorted(set(labels))
    y = np.array([classes.index(label) for label in labels])
    df = np.asarray((counts > 0).sum(axis=0)).ravel()
    idf = np.log((1 + counts.shape[0]) / (1 + df)) + 1.0
    x = LinearModel.weigh(counts, idf, sp.csr_matrix(indicators), lexicon_weight)

    svm = LinearSVC(C=c, random_state=seed).fit(x, y)
    coef, intercept = _full_rank(svm, len(classes))

    temperature = 1.0
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
    return LinearModel(classes, idf, coef, intercept, temperature, lexicon_weight)


def _full_rank(svm: LinearSVC, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One row per class, also for two classes (where sklearn keeps a single row)."""
    coef, intercept = svm.coef_, svm.intercept_
    if n_classes == 2 and coef.shape[0] == 1:
        coef = np.vstack([-coef[0], coef[0]])
        intercept = np.array([-intercept[0], intercept[0]])
    return coef, intercept


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class LinearIntentClassifier(IntentClassifier, GraphComponent):
    """Linear SVM over TF-IDF-weighted n-gram counts, with calibrated confidences."""

    @classmethod
    def required_components(cls) -> list[type]:
        return [Featurizer]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            "C": 1.0,
            "lexicon_weight": 1.0,
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
    ) -> None:
        self.config = {**self.get_default_config(), **config}
        self._storage = model_storage
        self._resource = resource
        self.model = model

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
    def _features(messages: list[Message]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
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

    def train(self, training_data: TrainingData) -> Resource:
        examples = [e for e in training_data.intent_examples if e.get(INTENT) and e.get(TEXT)]
        if not examples:
            logger.debug("no intent examples: %s not trained", self.__class__.__name__)
            return self._resource
        counts, indicators = self._features(examples)
        self.model = fit(
            counts,
            indicators,
            [e.get(INTENT) for e in examples],
            c=float(self.config["C"]),
            lexicon_weight=float(self.config["lexicon_weight"]),
            folds=int(self.config["calibration_folds"]),
            seed=int(self.config["random_seed"]),
        )
        self.persist()
        return self._resource

    def process(self, messages: list[Message]) -> list[Message]:
        if self.model is None or not messages:
            return messages
        probabilities = self.model.probabilities(*self._features(messages))
        length = int(self.config["ranking_length"])
        for message, row in zip(messages, probabilities, strict=True):
            order = np.argsort(-row)
            ranking = [{"name": self.model.classes[i], "confidence": float(row[i])} for i in order]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set(
                "intent_ranking", ranking[:length] if length > 0 else ranking, add_to_output=True
            )
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self.process(training_data.training_examples)
        return training_data

    def persist(self) -> None:
        assert self.model is not None
        with self._storage.write_to(self._resource) as directory:
            np.savez(
                directory / "linear.npz",
                idf=self.model.idf,
                coef=self.model.coef,
                intercept=self.model.intercept,
            )
            (directory / "linear.json").write_text(
                json.dumps(
                    {
                        "classes": self.model.classes,
                        "temperature": self.model.temperature,
                        "lexicon_weight": self.model.lexicon_weight,
                    }
                )
            )

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
                arrays = np.load(directory / "linear.npz", allow_pickle=False)
                meta = json.loads((directory / "linear.json").read_text())
                model = LinearModel(
                    meta["classes"],
                    arrays["idf"],
                    arrays["coef"],
                    arrays["intercept"],
                    float(meta["temperature"]),
                    float(meta.get("lexicon_weight", 1.0)),
                )
        except (ValueError, FileNotFoundError):
            logger.debug("no trained %s in %s", cls.__name__, resource.name)
            return cls(config, model_storage, resource)
        return cls(config, model_storage, resource, model)
