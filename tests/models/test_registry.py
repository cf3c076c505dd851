"""The contract suite on every registered family, generated from the registry (as
scikit-learn's estimator checks are): a new family is tested by being registered."""

from __future__ import annotations

from typing import Any

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
