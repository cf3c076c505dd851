from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tailored.dataset import temporal_split
from tailored.evaluation import NDCG, Recall, Revenue, evaluate_model, mean_price
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


def test_revenue_by_hand() -> None:
    metric = Revenue({"a": 20.0, "b": 5.5, "c": 100.0}, k=3)
    assert metric.name == "revenue@3"
    # Hits a (20) and b (5.5); c is relevant but beyond k, x has no price and no hit.
    assert metric.update(["a", "x", "b", "c"], {"a", "b", "c"}) == 25.5
    assert metric.update(["x", "c"], {"y"}) == 0.0  # no hit, no money
    assert metric.update(["z", "c"], {"z", "c"}) == 100.0  # z hit, but has no price
    assert metric.update(["a", "a"], {"a"}) == 20.0  # an item twice sells once
    assert metric.value() == pytest.approx((25.5 + 0 + 100 + 20) / 4)
    assert metric.values == [25.5, 0.0, 100.0, 20.0]


def test_mean_price_counts_priced_items_only() -> None:
    assert mean_price({"a": 10.0, "b": 30.0, "c": 0.0}) == 20.0
    assert math.isnan(mean_price({})) and math.isnan(mean_price({"a": 0.0}))


def test_revenue_reads_the_training_catalogs_prices_in_an_evaluation() -> None:
    data = checkerboard(n_users=60, n_items=30, seed=1)
    split = temporal_split(data, test_fraction=0.3)
    assert Revenue.for_data(10, split.train).prices["A000"] == 10.0
    result = evaluate_model(ItemKNN(), split, metrics=(NDCG, Revenue), beyond_accuracy=False)
    prices = dict(zip(data.items["item_id"], data.items["price"], strict=True))
    relevant = split.truth.groupby("user_id")["item_id"].agg(set)
    by_hand = [sum(prices[item] for item in result.recommended.get(user, [])
                   if item in relevant[user]) for user in split.test_users]
    assert sum(by_hand) > 0
    assert result.metrics["revenue@10"] == pytest.approx(sum(by_hand) / len(by_hand))
    assert result.per_user["revenue@10"] == pytest.approx(by_hand)

