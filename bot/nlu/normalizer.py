"""Input normalisation, as the first step of the Rasa pipeline.

Customers write full-width letters and digits (ＳＦ１２３), traditional characters
(訂單在哪), runs of punctuation (！！！？？) and emoji. The classifier should see one
spelling of each, so this component rewrites a message's text before jieba and
the featurizers see it:

- full-width forms (letters, digits, ，！？：； and the ideographic space) become
  ASCII (NFKC on those characters only: 。、「」 and the like are kept);
- traditional Chinese becomes simplified, with OpenCC's dictionaries (``t2s``);
- a run of the same punctuation mark becomes one mark (``！！！`` → ``！``);
- emoji become a short name between colons (``👍`` → ``:thumbs_up:``), so their
  meaning can still be learned; a run of the same emoji becomes one.

Entity annotations in training data are moved to where their text now stands.
The conversation log keeps what the customer actually wrote.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from typing import Any

import emoji
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, ENTITY_ATTRIBUTE_END, ENTITY_ATTRIBUTE_START, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

_REPEATED_PUNCT = re.compile(r"([!?.,~。，！？、…～\-—·])\1+")
_SPACES = re.compile(r"\s+")


@cache
def _t2s() -> Any:
    from opencc import OpenCC

    return OpenCC("t2s")


def _half_width(text: str) -> str:
    out = []
    for ch in text:
        code = ord(ch)
        if 0xFF01 <= code <= 0xFF5E or code == 0x3000:
            ch = unicodedata.normalize("NFKC", ch)
        out.append(ch)
    return "".join(out)


def _emoji_names(text: str) -> str:
    text = emoji.replace_emoji(text, replace=lambda e, data: f" {data['en']} ")
    # ":smile: :smile:" -> ":smile:"
    return re.sub(r"(:[a-z0-9_&\-]+:)(\s*\1)+", r"\1", text)


def normalize(text: str) -> str:
    """The text the NLU sees for a customer's message."""
    text = _half_width(text)
    text = _t2s().convert(text)
    text = _emoji_names(text)
    text = _REPEATED_PUNCT.sub(r"\1", text)
    return _SPACES.sub(" ", text).strip()


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class ChineseNormalizer(GraphComponent):
    """Rewrites message text into one canonical spelling before tokenisation."""

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ChineseNormalizer:
        return cls()

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT)
            if text:
                message.set(TEXT, normalize(text))
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        for message in training_data.training_examples:
            text = message.get(TEXT)
            if not text:
                continue
            normalized = normalize(text)
            if normalized == text:
                continue
            entities = message.get(ENTITIES) or []
            moved = [_move_entity(e, text, normalized) for e in entities]
            message.set(TEXT, normalized)
            if entities:
                message.set(ENTITIES, [e for e in moved if e is not None])
        return training_data


def _move_entity(entity: dict[str, Any], text: str, normalized: str) -> dict[str, Any] | None:
    surface = normalize(text[entity[ENTITY_ATTRIBUTE_START] : entity[ENTITY_ATTRIBUTE_END]])
    start = normalized.find(surface)
    if not surface or start < 0:
        return None
    return {**entity, ENTITY_ATTRIBUTE_START: start, ENTITY_ATTRIBUTE_END: start + len(surface)}
