"""Hybrids keep the model contract, and each combines its parts as documented."""

from __future__ import annotations

import numpy as np
import pytest

from tailored.models import MODELS, ItemKNN, Popular, Recommender, create
from tailored.ranking import CascadeHybrid, SwitchingHybrid, WeightedHybrid, normalise_rows
from tailored.testing import RecommenderContract, checkerboard


class TestWeighted(RecommenderContract):
    def make_model(self) -> Recommender:
        return WeightedHybrid(parts=[{"model": "item_knn"}, {"model": "als", "params": {
            "factors": 2, "iterations": 15, "alpha": 5.0}}, {"model": "popular", "weight": 0.1}])


class TestSwitching(RecommenderContract):
    def make_model(self) -> Recommender:
        return SwitchingHybrid(many_events=4, hot=[{"model": "item_knn"}])


class TestCascade(RecommenderContract):
    def make_model(self) -> Recommender:
        return CascadeHybrid(stages=[{"model": "item_knn", "keep": 4},
                                     {"model": "popular"}])


class TestCascadeWithSequences(RecommenderContract):
    def make_model(self) -> Recommender:
        return CascadeHybrid(stages=[{"model": "item_knn", "keep": 4},
                                     {"model": "item2vec", "params": {"epochs": 5}}])


def test_hybrids_are_registered() -> None:
    assert {"weighted", "switching", "cascade"} <= set(MODELS)
    assert isinstance(create("weighted"), WeightedHybrid)


def test_weighted_is_the_weighted_sum_of_normalised_parts() -> None:
    data = checkerboard()
    hybrid = WeightedHybrid(parts=[{"model": "item_knn", "weight": 2.0},
                                   {"model": "popular", "weight": 0.5}],
                            normalisation="minmax").fit(data)
    knn, popular = ItemKNN().fit(data), Popular().fit(data)
    users = ["a000", "b003"]
    expected = (2.0 * normalise_rows(knn.score(users), "minmax")
                + 0.5 * normalise_rows(popular.score(users), "minmax"))
    np.testing.assert_allclose(hybrid.score(users), expected, rtol=1e-5, atol=1e-6)


def test_switching_sends_each_user_to_their_group() -> None:
    data = checkerboard()
    model = SwitchingHybrid(cold=[{"model": "popular"}], warm=[{"model": "content"}],
                            hot=[{"model": "item_knn"}], few_events=2, many_events=5).fit(data)
    from tailored.dataset import UserQuery

    query = UserQuery.from_histories({"new": [], "one": ["A000"], "two": ["A000", "A001"],
                                      "many": ["B000", "B001", "B002", "B003", "B004"]})
    assert model.situation(query).tolist() == ["cold", "cold", "warm", "hot"]
    scores = model.score(query)
    popular, knn = Popular().fit(data), ItemKNN().fit(data)
    np.testing.assert_allclose(scores[0], normalise_rows(popular.score(["nobody"]))[0],
                               rtol=1e-5, atol=1e-6)
    many = UserQuery.from_histories({"many": ["B000", "B001", "B002", "B003", "B004"]})
    np.testing.assert_allclose(scores[3], normalise_rows(knn.score(many))[0], rtol=1e-5,
                               atol=1e-6)


def test_cascade_keeps_only_the_first_stage_survivors_on_top() -> None:
    data = checkerboard()
    model = CascadeHybrid(stages=[{"model": "popular", "keep": 3},
                                  {"model": "item_knn"}]).fit(data)
    popular = Popular().fit(data).recommend("a000", k=3)["item_id"]
    recs = model.recommend("a000", k=5)
    assert set(recs["item_id"].head(3)) == set(popular)
    assert (recs["score"].head(3) >= 1).all() and (recs["score"].iloc[3:] < 1).all()


@pytest.mark.parametrize(("params", "message"), [
    ({"parts": []}, "at least one part"),
    ({"parts": [{"model": "popular", "weight": 0}]}, "weight above 0"),
    ({"parts": [{"model": "nope"}]}, "unknown model 'nope'"),
    ({"parts": [{"model": "als", "params": {"factors": -1}}]}, "factors"),
])
def test_bad_weighted_configs_are_refused(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WeightedHybrid(**params)


def test_switching_thresholds_are_checked() -> None:
    with pytest.raises(ValueError, match="many_events"):
        SwitchingHybrid(few_events=5, many_events=2)


def test_hybrid_explanations_come_from_the_part_that_placed_the_item() -> None:
    data = checkerboard()
    history = data.events.groupby("user_id")["item_id"].agg(set)
    for model in (WeightedHybrid(parts=[{"model": "item_knn"}, {"model": "popular",
                                                                "weight": 0.01}]),
                  SwitchingHybrid(many_events=2, hot=[{"model": "item_knn"}]),
                  CascadeHybrid(stages=[{"model": "popular", "keep": 8},
                                        {"model": "item_knn"}])):
        model.fit(data)
        recs = model.recommend(["a000", "b002", "nobody"], k=3)
        explained = model.explanations(["a000", "b002", "nobody"], recs)
        for row in explained.itertuples():
            if row.user_id == "nobody":
                assert row.reason_kind == "popular"
                continue
            assert row.reason_kind in ("history", "similar", "model", "popular"), row
            # A named item is really in the user's history.
            assert set(row.reason_items) <= history[row.user_id]
            if row.item_id[0] == row.user_id[0].upper():  # a same-group item: from kNN
                assert row.reason_kind in ("history", "similar") and row.reason_items
