"""The contract suite on every registered family, generated from the registry (as
scikit-learn's estimator checks are): a new family is tested by being registered."""

from __future__ import annotations

from typing import Any

import pandas as pd

import tailored  # noqa: F401 (registers the ranking layer's families too)
from tailored.models import MODELS, Recommender
from tailored.testing import RecommenderContract


def _contract(family: type[Recommender]) -> type[RecommenderContract]:
    def make_model(self: Any) -> Recommender:
        return family(**family.example_params)

    return type(f"TestRegistered{family.__name__}", (RecommenderContract,),
                {"make_model": make_model, "personalised": family.personalised,
                 "__module__": __name__})


for _name, _family in sorted(MODELS.items()):
    globals()[f"TestRegistered{_family.__name__}"] = _contract(_family)


def test_the_registry_is_every_family_the_package_ships() -> None:
    assert {"popular", "trending", "item_knn", "user_knn", "als", "bpr", "ease", "content",
            "item2vec", "sasrec", "segments", "weighted", "switching", "cascade", "ranked",
            "stacked"} <= set(MODELS)
    assert "rules" not in MODELS and "reranked" not in MODELS  # now pipeline stages
    assert all(MODELS[name].name == name for name in MODELS)


def test_similar_users_are_those_with_like_histories_from_the_current_one() -> None:
    from tailored.dataset import Dataset, UserQuery
    from tailored.models import Popular

    events = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c", "c"],
                           "item_id": ["x", "y", "x", "y", "z", "w"]})
    model = Popular().fit(Dataset.from_frame(events))

    assert model.similar_users("a", k=3)["similar_user_id"].tolist() == ["b"]
    now = UserQuery.from_histories({"a": ["z"]})  # a's history changed since training
    assert model.similar_users(now, k=3)["similar_user_id"].tolist() == ["c"]
    assert model.similar_users("nobody", k=3).empty
