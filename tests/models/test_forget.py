"""Forgetting users, beyond the contract every family keeps (tailored.testing.contract):
which families are exact, neighbour lists updated in place equal a refit, and user-level
state goes while everyone else's scores stay."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import tailored  # noqa: F401 (registers the ranking layer's families too)
from tailored.dataset import Dataset
from tailored.models import ALS, MODELS, Forgetting, ItemKNN, Segments, UserKNN, create
from tailored.sample import shop
from tailored.testing import checkerboard
from tailored.testing.contract import FORGOTTEN, with_user


@pytest.fixture(scope="module")
def shop_data() -> Dataset:
    sample = shop(n_users=300, n_items=120, n_events=6_000, seed=4)
    return Dataset.from_frame(sample.events, items=sample.items, users=sample.users)


def _without(data: Dataset, user_ids: list[str]) -> Dataset:
    return data.filter(~data.events["user_id"].isin(user_ids).to_numpy())


def test_exactly_the_families_that_recount_item_state_say_exact() -> None:
    data = with_user(checkerboard())
    exact = {name for name, family in MODELS.items()
             if family(**family.example_params).fit(data).forget_users(FORGOTTEN).exact}
    assert exact == {"popular", "item_knn", "user_knn", "content", "cascade", "transitions"}


def test_combining_adds_known_and_needs_every_part_exact() -> None:
    assert Forgetting.combine() == Forgetting(0, True)
    assert Forgetting.combine(Forgetting(2, True), Forgetting(1, True)) == Forgetting(3, True)
    assert not Forgetting.combine(Forgetting(2, True), Forgetting(0, False)).exact


@pytest.mark.parametrize("params", [
    {"neighbors": 8},
    {"neighbors": 5, "similarity": "jaccard"},
    {"neighbors": 8, "weighting": "tfidf", "shrinkage": 3.0},
    {"neighbors": 6, "min_support": 2, "binary": True},
])
def test_item_neighbours_updated_in_place_equal_a_refit(shop_data: Dataset,
                                                        params: dict[str, Any]) -> None:
    gone = shop_data.user_vocab.ids[[3, 50, 51, 200]].tolist()
    model = ItemKNN(**params).fit(shop_data)
    assert model.forget_users(gone) == Forgetting(4, True)
    refit = ItemKNN(**params).fit(_without(shop_data, gone))
    np.testing.assert_array_equal(model.similarity_.toarray(), refit.similarity_.toarray())


def test_item_neighbours_with_bm25_are_not_exact(shop_data: Dataset) -> None:
    model = ItemKNN(neighbors=8, weighting="bm25").fit(shop_data)
    similarity = model.similarity_
    assert model.forget_users(shop_data.user_vocab.ids[:2].tolist()) == Forgetting(2, False)
    assert model.similarity_ is similarity  # item-level: kept until a retraining


@pytest.mark.parametrize("params", [{"neighbors": 5},
                                    {"neighbors": 4, "similarity": "jaccard", "min_support": 2}])
def test_user_neighbours_picked_again_equal_a_refit(shop_data: Dataset,
                                                    params: dict[str, Any]) -> None:
    model = UserKNN(**params).fit(shop_data)
    # The users most often someone's neighbour: many others must pick again.
    popular = np.argsort(-np.bincount(model.similarity_.indices), kind="stable")[:3]
    gone = shop_data.user_vocab.ids[popular].tolist()
    assert model.forget_users(gone) == Forgetting(3, True)
    refit = UserKNN(**params).fit(_without(shop_data, gone))
    np.testing.assert_array_equal(model.similarity_.toarray(), refit.similarity_.toarray())
    users = refit.user_vocab_.ids[:40].tolist()
    np.testing.assert_allclose(model.score(users), refit.score(users), rtol=1e-6)


def test_user_neighbours_with_a_weighting_lose_the_user_but_are_not_exact(
        shop_data: Dataset) -> None:
    model = UserKNN(neighbors=5, weighting="tfidf").fit(shop_data)
    gone = shop_data.user_vocab.ids[0]
    assert model.forget_users(gone) == Forgetting(1, False)
    n = len(model.user_vocab_)
    assert model.similarity_.shape == (n, n) and model.user_vectors_.shape[0] == n
    assert (np.diff(model.similarity_.indptr) > 0).all()  # everyone has neighbours again


@pytest.mark.parametrize("name", ["als", "bpr", "ease", "item2vec", "sasrec", "segments",
                                  "content"])
def test_other_users_keep_their_scores_where_state_is_user_level(name: str) -> None:
    data = with_user(checkerboard())
    model = create(name, **MODELS[name].example_params).fit(data)
    others = [user for user in data.user_vocab.ids.tolist() if user != FORGOTTEN]
    before = model.score(others)
    model.forget_users([FORGOTTEN])
    np.testing.assert_allclose(model.score(others), before, rtol=1e-6)


def test_factor_models_drop_the_users_factor_rows() -> None:
    data = with_user(checkerboard())
    model = ALS(**MODELS["als"].example_params).fit(data)
    row = model.user_vocab_.index(FORGOTTEN)
    kept = np.delete(model.user_factors_, row, axis=0)
    model.forget_users([FORGOTTEN])
    np.testing.assert_array_equal(model.user_factors_, kept)


def test_segments_forget_users_known_only_by_their_profile() -> None:
    data = checkerboard()
    newcomer = pd.DataFrame({"user_id": ["profile-only"], "taste": ["likes-b"],
                             "location": ["Paris"]})
    data = Dataset.from_frame(data.events, items=data.items,
                              users=pd.concat([data.users, newcomer], ignore_index=True))
    model = Segments(n_segments=2, prior=5.0).fit(data)
    assert model.segment_of(["profile-only"])[0] >= 0  # placed by its profile
    assert model.forget_users(["profile-only"]) == Forgetting(1, False)
    assert "profile-only" not in model.table_user_ids_
    assert len(model.table_values_) == len(model.table_user_ids_)
    assert model.segment_of(["profile-only"]).tolist() == [-1]
    assert len(model.user_vocab_) == data.n_users  # nobody with events left


def test_one_id_alone_is_one_user() -> None:
    model = ItemKNN().fit(checkerboard())
    assert model.forget_users("a000").known == 1
    assert "a000" not in model.user_vocab_


def test_neighbours_are_the_best_values_ties_to_the_lower_column() -> None:
    from tailored.models.knn import _best

    rng = np.random.default_rng(0)
    values = rng.integers(-1, 4, size=(200, 12)).astype(np.float32)  # ties everywhere
    columns = np.argsort(rng.random((200, 12)), axis=1)  # slots in any column order
    for slots in (None, columns):
        chosen = _best(values, 4, slots)
        of = np.arange(12)[None, :].repeat(200, axis=0) if slots is None else slots
        for row in range(200):
            ranked = sorted((-values[row, s], of[row, s], s) for s in range(12)
                            if values[row, s] > 0)
            assert set(np.flatnonzero(chosen[row])) == {s for *_, s in ranked[:4]}
