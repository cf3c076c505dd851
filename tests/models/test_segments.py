"""Demographic segments: contract, cold start from a profile, explanations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.mixture import GaussianMixture

from tailored.dataset import Dataset, UserQuery
from tailored.errors import InvalidDataError
from tailored.models import Popular, Recommender
from tailored.models.segments import Segments
from tailored.testing import RecommenderContract, checkerboard
from tailored.testing.data import group_of


class TestSegments(RecommenderContract):
    def make_model(self) -> Recommender:
        return Segments(n_segments=4, prior=5.0)


class TestSegmentsMixture(RecommenderContract):
    def make_model(self) -> Recommender:
        return Segments(n_segments=4, prior=5.0, method="gaussian_mixture")


@pytest.fixture(scope="module")
def data() -> Dataset:
    return checkerboard()


@pytest.fixture(scope="module")
def fitted(data: Dataset) -> Segments:
    return Segments(n_segments=4, prior=5.0).fit(data)


def _profiles(**columns: list[object]) -> pd.DataFrame:
    return pd.DataFrame(columns)


@pytest.mark.parametrize("method", ["kmeans", "gaussian_mixture"])
def test_a_new_user_with_only_a_profile_gets_their_groups_items(data: Dataset,
                                                                method: str) -> None:
    model = Segments(n_segments=4, prior=5.0, method=method).fit(data)
    query = UserQuery(("new-a", "new-b"), profiles=_profiles(
        user_id=["new-a", "new-b"], taste=["likes-a", "likes-b"]))
    recs = model.recommend(query, k=5)
    assert len(recs) == 10
    assert (recs["user_id"].str[-1] == recs["item_id"].map(group_of)).all()


def test_a_new_user_without_a_profile_gets_global_popularity(fitted: Segments,
                                                             data: Dataset) -> None:
    popular = Popular().fit(data)
    query = UserQuery(("stranger",), profiles=_profiles(user_id=["stranger"],
                                                        shoe_size=[42]))
    for users in ("nobody", query):
        assert (fitted.recommend(users, k=10)["item_id"].tolist()
                == popular.recommend(users, k=10)["item_id"].tolist())


def test_users_in_the_table_without_events_are_placed_by_demographics() -> None:
    base = checkerboard()
    assert base.users is not None
    users = pd.concat([base.users, pd.DataFrame({
        "user_id": ["quiet-a", "quiet-b"], "taste": ["likes-a", "likes-b"],
        "location": ["Berlin", "Paris"]})], ignore_index=True)
    data = Dataset.from_frame(base.events, items=base.items, users=users)
    model = Segments(n_segments=4, prior=5.0).fit(data)
    recs = model.recommend(["quiet-a", "quiet-b"], k=5)
    assert (recs["user_id"].str[-1] == recs["item_id"].map(group_of)).all()
    # A profile in the query overrides what the table says.
    flipped = UserQuery(("quiet-a",), profiles=_profiles(user_id=["quiet-a"],
                                                         taste=["likes-b"]))
    assert set(model.recommend(flipped, k=5)["item_id"].map(group_of)) == {"b"}


def test_a_mixed_batch_scores_like_one_by_one(fitted: Segments) -> None:
    # Known, current history with and without a profile, profile only, nothing at all.
    events = pd.DataFrame({"user_id": ["a000", "h", "hp"], "item_id": ["A001", "B001", "A002"]})
    profiles = _profiles(user_id=["hp", "p"], taste=["likes-b", "likes-a"])
    users = ("a000", "h", "hp", "p", "nobody")
    scores = fitted.score(UserQuery(users, events, profiles=profiles))
    for row, user in enumerate(users):
        one = UserQuery((user,), events[events["user_id"] == user],
                        profiles=profiles[profiles["user_id"] == user])
        np.testing.assert_array_equal(fitted.score(one)[0], scores[row])
    np.testing.assert_array_equal(scores[4], fitted.global_rate_)
    segments = fitted.segment_of(UserQuery(users, events, profiles=profiles))
    assert (segments[:4] >= 0).all() and segments[4] == -1


def test_segments_do_not_mix_the_groups(fitted: Segments, data: Dataset) -> None:
    users = data.user_vocab.ids.tolist()
    segments = fitted.segment_of(users)
    assert (segments >= 0).all()
    by_group = pd.Series(segments).groupby([group_of(u) for u in users]).agg(set)
    assert not by_group["a"] & by_group["b"]
    profiles = _profiles(taste=["likes-a", "likes-b", None])
    new = fitted.segment_of(profiles)
    assert new[0] in by_group["a"] and new[1] in by_group["b"] and new[2] == -1
    history = UserQuery.from_histories({"h": ["B001", "B002"]})
    assert fitted.segment_of(history)[0] in by_group["b"]


def test_segment_profiles_describe_each_segment(fitted: Segments, data: Dataset) -> None:
    profiles = fitted.segment_profiles_
    assert list(profiles.columns) == ["segment", "users", "share", "top_attributes",
                                      "top_categories", "top_items"]
    assert profiles["users"].sum() == pytest.approx(data.n_users)
    assert profiles["share"].sum() == pytest.approx(1.0)
    for row in profiles.to_dict("records"):
        group = group_of(row["top_items"][0])
        assert {group_of(item) for item in row["top_items"]} == {group}
        assert any(text.startswith(f"taste=likes-{group} (100% vs 50%)")
                   for text in row["top_attributes"])
        assert row["top_categories"][:1] == [f"group-{group}"]


def test_attributes_are_chosen_sensibly(data: Dataset) -> None:
    assert data.users is not None
    users = data.users.assign(zip=[f"{i:05d}" for i in range(len(data.users))],
                              age=np.arange(len(data.users)) % 50 + 18, constant="x")
    with_extra = Dataset.from_frame(data.events, items=data.items, users=users)
    model = Segments(n_segments=2).fit(with_extra)
    assert model.attribute_names_.tolist() == ["taste", "location", "age"]  # no id-like zip
    assert model.attribute_kinds_.tolist() == ["category", "category", "number"]
    chosen = Segments(n_segments=2, attributes=("zip",)).fit(with_extra)
    assert chosen.attribute_names_.tolist() == ["zip"] and len(chosen.levels_) == 40
    with pytest.raises(InvalidDataError, match=r"attributes: \['shoe_size'\] are not columns"):
        Segments(attributes=("shoe_size",)).fit(with_extra)


def test_it_works_without_users_or_items() -> None:
    base = checkerboard()
    model = Segments(n_segments=3).fit(Dataset.from_frame(base.events))
    assert model.attribute_names_.size == 0 and model.category_names_.size == 0
    assert np.isfinite(model.score(["a000", "nobody"])).all()
    query = UserQuery(("x",), profiles=_profiles(user_id=["x"], taste=["likes-a"]))
    np.testing.assert_allclose(model.score(query)[0], model.global_rate_)


def test_the_prior_shrinks_towards_global_popularity(data: Dataset) -> None:
    shrunk = Segments(n_segments=4, prior=1e9).fit(data)
    rate = shrunk.global_rate_
    np.testing.assert_allclose(shrunk.segment_scores_, np.tile(rate, (4, 1)), atol=1e-6)
    raw = Segments(n_segments=4, prior=0.0).fit(data)
    segment = raw.segment_of(["a000"])[0]
    members = np.flatnonzero(raw.segment_of(data.user_vocab.ids.tolist()) == segment)
    touched = np.asarray((data.matrix()[members] > 0).mean(axis=0)).ravel()
    np.testing.assert_allclose(raw.segment_scores_[segment], touched, atol=1e-6)


def test_profile_scores_survive_save_and_load(fitted: Segments, tmp_path: Path) -> None:
    query = UserQuery(("p", "q"), profiles=_profiles(user_id=["p", "q"],
                                                     taste=["likes-b", None],
                                                     location=["Paris", "Berlin"]))
    loaded = Recommender.load(fitted.save(tmp_path / "segments"))
    assert isinstance(loaded, Segments)
    np.testing.assert_allclose(loaded.score(query), fitted.score(query), rtol=1e-6)
    pd.testing.assert_frame_equal(loaded.segment_profiles_, fitted.segment_profiles_)


def test_the_mixture_posterior_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    features = np.vstack([rng.normal(0, 1, (50, 3)), rng.normal(4, 0.5, (50, 3))])
    mixture = GaussianMixture(2, covariance_type="diag", random_state=0).fit(features)
    model = Segments(method="gaussian_mixture", n_segments=2)
    model.centers_, model.variances_ = mixture.means_, mixture.covariances_
    model.mixing_ = mixture.weights_
    np.testing.assert_allclose(model._assign(features), mixture.predict_proba(features),
                               atol=1e-6)


@pytest.mark.parametrize(("params", "name"), [
    ({"n_segments": 0}, "n_segments"), ({"method": "dbscan"}, "method"),
    ({"prior": -1}, "prior"), ({"behaviour_weight": -0.5}, "behaviour_weight"),
])
def test_bad_parameters_are_named(params: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Segments(**params)
