"""The sentence encoder shipped in a package, its caches, and the cascade."""

from __future__ import annotations

import numpy as np
import pytest

from bot.nlu import embeddings
from bot.nlu.classifier import cascade_threshold
from bot.nlu.embeddings import SentenceEmbeddingFeaturizer


@pytest.fixture
def calls(monkeypatch):  # type: ignore[no-untyped-def]
    """Every batch of texts that reaches the encoder."""
    seen: list[list[str]] = []
    real = embeddings._SharedEncoder.encode

    def counting(texts: list[str], threads: int, is_query: bool, index: int = 0) -> np.ndarray:
        seen.append(list(texts))
        return real(texts, threads, is_query, index)

    monkeypatch.setattr(embeddings._SharedEncoder, "encode", staticmethod(counting))
    return seen


def test_the_packaged_model_embeds_chinese_offline_and_similar_texts_are_close():
    featurizer = SentenceEmbeddingFeaturizer({"cache_dir": ""}, "e5")
    vectors = featurizer.embed(["我要退货", "我想退款", "今天天气怎么样"])
    assert vectors.shape == (3, 384)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert unit[0] @ unit[1] > unit[0] @ unit[2]


def test_a_retrain_embeds_only_texts_it_has_not_seen(tmp_path, calls):
    first = SentenceEmbeddingFeaturizer({"cache_dir": str(tmp_path)}, "e5")
    before = first.embed(["在吗", "人工"], persist=True)
    assert calls == [["在吗", "人工"]]
    # A new training (a new component, as in another process) after a relabel.
    again = SentenceEmbeddingFeaturizer({"cache_dir": str(tmp_path)}, "e5")
    after = again.embed(["在吗", "人工", "我要退货"], persist=True)
    assert calls[1:] == [["我要退货"]]
    np.testing.assert_allclose(after[:2], before, rtol=1e-6)


def test_inference_keeps_recent_texts_in_memory_and_writes_nothing_to_disk(tmp_path, calls):
    featurizer = SentenceEmbeddingFeaturizer({"cache_dir": str(tmp_path)}, "e5")
    featurizer.embed(["在吗"])
    featurizer.embed(["在吗"])
    assert calls == [["在吗"]]
    assert not list(tmp_path.iterdir())


def test_the_cascade_threshold_sends_the_messages_the_embedding_rescues():
    # Three messages: the n-gram model is sure and right, unsure and wrong
    # (the dense model right), sure and wrong (the dense model right too).
    y = np.array([0, 1, 1])
    sparse = np.array([[0.95, 0.05], [0.6, 0.4], [0.8, 0.2]])
    dense = np.array([[0.9, 0.1], [0.3, 0.7], [0.4, 0.6]])
    assert cascade_threshold(sparse, dense, y, recall=0.5) == pytest.approx(0.605)
    assert cascade_threshold(sparse, dense, y, recall=1.0) == pytest.approx(0.805)


def test_training_embeds_in_parallel_with_the_same_result_as_one_by_one(tmp_path):
    texts = [f"第{i}个订单到哪了" for i in range(12)]
    parallel = SentenceEmbeddingFeaturizer({"cache_dir": str(tmp_path)}, "e5")
    together = parallel.embed(texts, persist=True)
    alone = SentenceEmbeddingFeaturizer({"cache_dir": "", "memory_cache": 0}, "e5")
    np.testing.assert_allclose(together, alone.embed(texts), atol=1e-5)
