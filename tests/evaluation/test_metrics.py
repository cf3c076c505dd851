from __future__ import annotations

import math

import pytest

from tailored.dataset import temporal_split
from tailored.evaluation import NDCG, Recall, evaluate_model
from tailored.models import ItemKNN, Popular
from tailored.testing import checkerboard


def test_ndcg_by_hand() -> None:
    metric = NDCG(k=3)
    # relevant at ranks 1 and 3 of 2 relevant: (1 + 1/log2(4)) / (1 + 1/log2(3))
    value = metric.update(["a", "x", "b"], {"a", "b"})
    assert value == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3)))
    assert metric.update(["x", "y", "z"], {"a"}) == 0.0
    assert metric.value() == pytest.approx(value / 2)
    assert metric.values == [pytest.approx(value), 0.0]


def test_ndcg_ideal_is_capped_at_k() -> None:
    assert NDCG(k=2).update(["a", "b"], {"a", "b", "c", "d"}) == pytest.approx(1.0)


def test_recall_by_hand() -> None:
    metric = Recall(k=2)
    assert metric.update(["a", "b", "c"], {"c", "a", "d", "e"}) == 0.25
    assert metric.name == "recall@2"


def test_k_must_be_positive() -> None:
    with pytest.raises(ValueError, match="k must be at least 1"):
        NDCG(k=0)


def test_a_personalised_model_beats_popularity_on_the_checkerboard() -> None:
    split = temporal_split(checkerboard(n_users=60, n_items=30, seed=1), test_fraction=0.3)
    knn = evaluate_model(ItemKNN(), split).metrics["ndcg@10"]
    popular = evaluate_model(Popular(), split).metrics["ndcg@10"]
    assert knn > popular + 0.05
