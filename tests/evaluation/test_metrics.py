from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tailored.dataset import temporal_split
from tailored.evaluation import NDCG, Recall, evaluate_model
from tailored.evaluation.metrics import F1, MRR, Precision
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


def test_precision_by_hand() -> None:
    metric = Precision(k=4)
    assert metric.update(["a", "x", "b", "y", "c"], {"a", "b", "c"}) == 0.5  # c beyond k
    assert metric.update(["a"], {"a"}) == 0.25  # a short list still has k places
    assert metric.value() == pytest.approx(0.375)
    assert metric.name == "precision@4"


def test_f1_by_hand() -> None:
    metric = F1(k=4)
    # precision 2/4, recall 2/3
    assert metric.update(["a", "x", "b", "y"], {"a", "b", "c"}) == pytest.approx(4 / 7)
    assert metric.update(["x", "y"], {"a"}) == 0.0
    assert metric.update(["x"], set()) == 0.0
    assert metric.values == [pytest.approx(4 / 7), 0.0, 0.0]


@given(st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=8),
       st.sets(st.sampled_from("abcdefgh"), min_size=1), st.integers(1, 8))
def test_f1_is_the_harmonic_mean_of_precision_and_recall(
        recommended: list[str], relevant: set[str], k: int) -> None:
    precision = Precision(k).update(recommended, relevant)
    recall = Recall(k).update(recommended, relevant)
    expected = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    assert F1(k).update(recommended, relevant) == pytest.approx(expected)


def test_mrr_by_hand() -> None:
    metric = MRR(k=3)
    assert metric.update(["x", "y", "a", "b"], {"a", "b"}) == pytest.approx(1 / 3)
    assert metric.update(["a", "b"], {"a", "b"}) == 1.0
    assert metric.update(["x", "y", "z", "a"], {"a"}) == 0.0  # first hit beyond k
    assert metric.value() == pytest.approx((1 / 3 + 1) / 3)
    assert metric.name == "mrr@3"


def test_per_user_mean_leaves_out_users_without_a_value() -> None:
    metric = Recall(k=2)
    assert math.isnan(metric.value())
    metric.values.extend([0.5, float("nan"), 0.25])
    assert metric.value() == pytest.approx(0.375)
