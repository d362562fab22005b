"""Rasa's FallbackClassifier, with a threshold per intent.

Some answers assert something: "收到你的夸奖" files a praise record, "很抱歉给你
添麻烦了" files a complaint and calls a person, "我是机器人" answers who the bot
is, a refusal tells the customer their question is off limits. Saying one of
those to a message that meant something else is worse than asking, so those
intents need more confidence than the rest before the bot acts on them. Their
thresholds are chosen from the per-intent calibration table that `make
evaluate` writes (``reports/calibration.md``).

A message under its intent's threshold, or whose two best intents are closer
than ``ambiguity_threshold``, becomes ``nlu_fallback`` as with Rasa's class;
the ranking below it is kept, so the fallback action can ask the customer
which of the two readings they meant.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.fallback_classifier import FallbackClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY
from rasa.shared.nlu.training_data.message import Message


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class ThresholdFallbackClassifier(FallbackClassifier):
    """Falls back under a per-intent threshold (``thresholds``), else under ``threshold``."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {**FallbackClassifier.get_default_config(), "thresholds": {}}

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ThresholdFallbackClassifier:
        return cls({**cls.get_default_config(), **config})

    def threshold_for(self, intent: str | None) -> float:
        thresholds = self.component_config.get("thresholds") or {}
        return float(thresholds.get(intent, self.component_config["threshold"]))

    def _nlu_confidence_below_threshold(self, message: Message) -> tuple[bool, float]:
        intent = message.data[INTENT]
        confidence = float(intent.get(PREDICTED_CONFIDENCE_KEY) or 0.0)
        return confidence < self.threshold_for(intent.get(INTENT_NAME_KEY)), confidence
