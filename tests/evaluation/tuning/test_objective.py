"""Validation metrics, objectives (weighted sums of metrics) and the validation folds."""

from __future__ import annotations

import pandas as pd
import pytest

from tailored.dataset import SPLITS, Dataset, Split
from tailored.errors import InvalidDataError
from tailored.evaluation import NDCG, Revenue, evaluate_model
from tailored.evaluation.beyond import IntraListDiversity
from tailored.evaluation.tuning import (
    Objective,
    ValidationMetric,
    measure,
    tune,
    validation_folds,
)
from tailored.models import ItemKNN
from tailored.testing import checkerboard

from .fakes import KEYS


@pytest.mark.parametrize("name", ["auc", "ndcg", "ndcg@0", "ndcg@x", "auc@10", "ndcg@-1", ""])
def test_a_bad_metric_name_is_refused_with_the_choices(name: str) -> None:
    with pytest.raises(ValueError, match=r"unknown metric .*ndcg@K"):
        ValidationMetric.parse(name)


def test_metric_names_parse_case_insensitively() -> None:
    assert ValidationMetric.parse("NDCG@5").name == "ndcg@5"
    assert ValidationMetric.parse("hit_rate@3").k == 3
    assert ValidationMetric.parse("mrr@20").metric.label == "mrr"
    assert ValidationMetric.parse("Revenue@10") == ValidationMetric(Revenue, 10)
    assert ValidationMetric.parse("diversity@5") == ValidationMetric(IntraListDiversity, 5)


def test_an_objective_is_a_weighted_sum_in_one_spelling() -> None:
    objective = Objective.parse("ndcg@10 + 0.5*revenue@10")
    assert objective.terms == ((1.0, ValidationMetric(NDCG, 10)),
                               (0.5, ValidationMetric(Revenue, 10)))
    assert objective.name == "ndcg@10 + 0.5*revenue@10" and objective.knobs == ("revenue",)
    assert Objective.parse(" NDCG@10+.5 * Revenue@10 ") == objective
    assert Objective.parse("ndcg@10").name == "ndcg@10" and Objective.parse("ndcg@10").knobs == ()
    both = Objective.parse("2*recall@20 + 0.1*diversity@20 + 1.0*revenue@20")
    assert both.name == "2*recall@20 + 0.1*diversity@20 + revenue@20"
    assert both.knobs == ("revenue", "diversity")


CHOICES = r"diversity@K, f1@K, hit_rate@K, map@K, mrr@K, ndcg@K, precision@K, recall@K, revenue@K"


@pytest.mark.parametrize(("text", "message"), [
    ("ndcg@10 - 0.5*revenue@10", rf"cannot read 'ndcg@10 - 0.5\*revenue@10'.*{CHOICES}"),
    ("ndcg@10 +", rf"cannot read '' in the objective 'ndcg@10 \+'.*{CHOICES}"),
    ("ndcg@10 * 0.5", rf"cannot read 'ndcg@10 \* 0.5'.*{CHOICES}"),
    ("-1*ndcg@10", rf"cannot read '-1\*ndcg@10'.*{CHOICES}"),
    ("1e3*ndcg@10", rf"cannot read '1e3\*ndcg@10'.*{CHOICES}"),
    ("__import__('os').getcwd()", rf"unknown metric .*{CHOICES}"),
    ("ndcg@10 + 0.5*auc@10", rf"unknown metric 'auc@10'; use one of {CHOICES}.*in the "
                             r"objective 'ndcg@10 \+ 0.5\*auc@10'"),
    ("ndcg@10 + 0.5*revenue", r"unknown metric 'revenue'.*revenue@K"),
    ("ndcg@10 + 0*revenue@10", "weight of 'revenue@10' .* is 0; weights must be above 0"),
    ("ndcg@10 + 0.5*NDCG@10", "names ndcg@10 twice"),
])
def test_a_bad_objective_says_what_and_names_the_metrics(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Objective.parse(text)


def test_the_objective_counts_revenue_in_units_of_the_mean_price(outer: Split) -> None:
    objective = Objective.parse("ndcg@10 + 0.5*revenue@10")
    assert objective.value({"ndcg@10": 0.2, "revenue@10": 30.0}, unit_price=20.0) == \
        pytest.approx(0.2 + 0.5 * 30.0 / 20.0)
    # On the checkerboard, prices are 10, 11, ..., 29: a mean of 19.5.
    figures = measure(objective.metrics, ItemKNN(), outer)
    assert figures["revenue@10"] > 0
    assert objective.score(ItemKNN(), outer) == pytest.approx(
        figures["ndcg@10"] + 0.5 * figures["revenue@10"] / 19.5)
    # A single metric is its own figure, as a ValidationMetric scores it.
    assert Objective.parse("ndcg@10").score(ItemKNN(), outer) == pytest.approx(
        evaluate_model(ItemKNN(), outer).metrics["ndcg@10"])


def test_revenue_needs_prices_and_diversity_categories(outer: Split) -> None:
    bare = Dataset.from_frame(outer.train.events)  # no items table
    with pytest.raises(InvalidDataError, match=r"counts revenue@10, but no item .* has a price"):
        tune(bare, metric="ndcg@10 + 0.5*revenue@10", models=["popular"], n_trials=1)
    with pytest.raises(InvalidDataError, match=r"diversity@K .* item categories"):
        tune(bare, metric="ndcg@10 + 0.5*diversity@10", models=["popular"], n_trials=1)
    tuned = tune(bare, metric="ndcg@10", models=["popular"], n_trials=1)  # relevance: fine
    assert tuned.best_reranker == {}


@pytest.mark.parametrize("protocol", sorted(SPLITS))
def test_both_folds_come_from_the_given_data_alone(protocol: str) -> None:
    data = checkerboard(n_users=40, n_items=40, seed=2)  # 10 events per user
    first, second = validation_folds(data, protocol)
    given = data.events[KEYS]
    for fold in (first, second):
        assert len(fold.train.events[KEYS].merge(given, on=KEYS)) == len(fold.train)
        assert fold.truth.merge(given[["user_id", "item_id"]]).shape[0] >= len(fold.truth)
        assert len(fold.train) < len(data) and not fold.truth.empty
    # The second fold trains on less and validates on other events than the first.
    assert len(second.train) < len(first.train)
    first_pairs = set(map(tuple, first.truth.to_numpy()))
    second_pairs = set(map(tuple, second.truth.to_numpy()))
    assert first_pairs != second_pairs


def test_the_temporal_second_fold_cuts_at_70_percent_and_validates_before_the_first() -> None:
    data = checkerboard(n_users=40, n_items=20, seed=2)
    first, second = validation_folds(data, "temporal")
    assert (len(data), len(first.train), len(second.train)) == (200, 160, 140)
    # Second-fold test events lie in the first fold's training period, before its cut.
    assert second.train.events["timestamp"].max() < first.train.events["timestamp"].max()


def test_the_leave_last_one_out_second_fold_holds_each_users_second_to_last_event() -> None:
    data = checkerboard(n_users=40, n_items=40, seed=2)  # no repeated user-item pairs
    first, second = validation_folds(data, "leave-last-one-out")
    ordered = data.events.sort_values(["user_id", "timestamp"])
    from_end = ordered.groupby("user_id").cumcount(ascending=False)
    for fold, position in ((first, 0), (second, 1)):
        expected = ordered.loc[from_end == position, ["user_id", "item_id"]]
        pd.testing.assert_frame_equal(fold.truth, expected.reset_index(drop=True))


def test_folds_without_test_users_are_refused_clearly() -> None:
    tiny = Dataset.from_frame(pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"],
                                            "timestamp": [1, 2]}))
    with pytest.raises(ValueError, match=r"validation fold .* has no test users"):
        validation_folds(tiny, "temporal")
