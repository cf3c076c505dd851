"""A re-ranked model keeps the model contract, and its stages apply in order."""

from __future__ import annotations

import pytest

from tailored.models import ItemKNN, Recommender
from tailored.ranking import Reranked
from tailored.testing import RecommenderContract, checkerboard


class TestRerankedNovelty(RecommenderContract):
    def make_model(self) -> Recommender:
        return Reranked(base="item_knn", rerankers=[{"novelty": 0.1}], pool=20)


class TestParts:
    def test_parts_nest_in_one_sequence_model(self) -> None:
        model = Reranked(base="item2vec", base_params={"epochs": 3}, rerankers=[]).fit(
            checkerboard())
        assert len(model.recommend("a000", k=3)) == 3


def test_without_rerankers_the_lists_are_the_base_models() -> None:
    data = checkerboard()
    plain = Reranked(base="item_knn").fit(data).recommend(["a000", "b001"], k=4)
    base = ItemKNN().fit(data).recommend(["a000", "b001"], k=4)
    assert plain["item_id"].tolist() == base["item_id"].tolist()


def test_online_rerankers_are_refused_with_a_pointer() -> None:
    with pytest.raises(ValueError, match="learns online"):
        Reranked(base="popular", rerankers=[{"kind": "explore"}])
