"""The learned rankers keep the model contract; their explanations are true."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tailored.dataset import Dataset, UserQuery
from tailored.errors import InvalidDataError
from tailored.models import MODELS, Recommender
from tailored.ranking import LearnedRanker, StackedRanker
from tailored.ranking.candidates import CandidateGenerator
from tailored.testing import RecommenderContract, checkerboard

SOURCES = [{"model": "item_knn", "n": 8},
           {"name": "recent", "model": "item_knn", "recent_items": 3, "n": 4},
           {"model": "popular", "n": 4}]


class TestLearnedRanker(RecommenderContract):
    def make_model(self) -> Recommender:
        # One time cut: 40 users with random times, too few for per-user labels to
        # outweigh noise features in 20 trees.
        return LearnedRanker(sources=SOURCES, label_split="global", n_estimators=20,
                             min_child_samples=2)


class TestPerUserLabels(RecommenderContract):
    personalised = False  # 40 users teach the trees noise as well as the groups

    def make_model(self) -> Recommender:
        return LearnedRanker(sources=SOURCES, n_estimators=20, min_child_samples=2)


class TestStackedRanker(RecommenderContract):
    def make_model(self) -> Recommender:
        return StackedRanker(sources=SOURCES, regularization=10.0)  # tiny data: regularise


@pytest.fixture(scope="module")
def ranker() -> LearnedRanker:
    return LearnedRanker(sources=SOURCES, label_split="global", n_estimators=20,
                         min_child_samples=2).fit(checkerboard())


def test_rankers_are_registered() -> None:
    assert MODELS["ranked"] is LearnedRanker and MODELS["stacked"] is StackedRanker


def test_the_artifact_holds_the_lightgbm_model_text(ranker: LearnedRanker,
                                                     tmp_path: Path) -> None:
    directory = ranker.save(tmp_path / "ranked")
    meta = json.loads((directory / "config.json").read_text())
    assert meta["model"] == "ranked"
    with np.load(directory / "arrays.npz", allow_pickle=False) as arrays:
        text = arrays["model.ranker.lightgbm"].tobytes().decode()
    assert text.startswith("tree") and "objective=lambdarank" in text
    assert text == ranker.model_text


def test_feature_contributions_add_up_to_the_score(ranker: LearnedRanker) -> None:
    explained = ranker.explain_features(["a000", "b001"], k=3, top=100)
    recs = ranker.recommend(["a000", "b001"], k=3)
    totals = explained.groupby(["user_id", "item_id"]).agg(
        contribution=("contribution", "sum"), bias=("bias", "first"), score=("score", "first"))
    merged = recs.merge(totals.reset_index(), on=["user_id", "item_id"], suffixes=("", "_x"))
    assert len(merged) == len(recs)
    # All features listed (top=100): contributions plus bias are the served score.
    np.testing.assert_allclose(merged["contribution"] + merged["bias"], merged["score"],
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(merged["score"], merged["score_x"], rtol=1e-4, atol=1e-4)
    assert set(explained["feature"]) <= set(ranker.feature_names)


def test_named_features_are_the_top_contributions(ranker: LearnedRanker) -> None:
    recs = ranker.recommend("a000", k=2)
    reasons = ranker.explanations("a000", recs)
    detail = ranker.explain_features("a000", k=2, top=3)
    for row in reasons.itertuples():
        if row.reason_kind != "features":
            continue
        mine = detail[detail["item_id"] == row.item_id]
        positive = mine[mine["contribution"] > 0]["feature"].tolist()
        assert list(row.reason_features) == positive
        assert "ranked high for" in row.reason


def test_the_feature_value_is_the_input_the_model_saw(ranker: LearnedRanker) -> None:
    detail = ranker.explain_features("a000", k=1, top=50)
    proposed = detail[detail["feature"] == "item_knn_proposed"]["value"]
    assert set(proposed) <= {0.0, 1.0}
    popularity = detail[detail["feature"] == "item_popularity"]["value"].iloc[0]
    item = detail["item_id"].iloc[0]
    users = checkerboard().events.groupby("item_id")["user_id"].nunique()
    assert popularity == pytest.approx(np.log1p(users[item]))


def test_context_reaches_the_features(ranker: LearnedRanker) -> None:
    morning = UserQuery(("a000",), context={"hour": 8, "device": "mobile"})
    evening = UserQuery(("a000",), context={"timestamp": "2026-01-01T21:00:00Z"})
    batch = ranker._resolve(morning)
    candidates, matrices = ranker.generator_.generate(batch)
    names = ranker.feature_names
    hour = names.index("context_hour_sin")
    morning_x = ranker._features(batch, candidates, matrices)
    evening_x = ranker._features(ranker._resolve(evening), candidates, matrices)
    assert morning_x[0, hour] == pytest.approx(np.sin(2 * np.pi * 8 / 24))
    assert evening_x[0, hour] == pytest.approx(np.sin(2 * np.pi * 21 / 24))


@pytest.mark.parametrize(("context", "message"), [
    ({"hour": 25}, "hour must be from 0 to 23"),
    ({"weekday": "monday"}, "weekday must be a number"),
])
def test_bad_context_is_refused(ranker: LearnedRanker, context: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ranker.recommend(UserQuery(("a000",), context=context))


def test_no_training_examples_is_a_clear_error() -> None:
    events = pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"],
                           "timestamp": [1, 2]})
    with pytest.raises(InvalidDataError, match="no training examples"):
        LearnedRanker(sources=[{"model": "popular", "n": 1}]).fit(Dataset.from_frame(events))


def test_duplicate_source_names_are_refused() -> None:
    with pytest.raises(ValueError, match="distinct names"):
        LearnedRanker(sources=[{"model": "popular"}, {"model": "popular", "n": 3}])


@pytest.mark.slow
def test_the_same_users_get_context_dependent_lists_on_the_sample_shop() -> None:
    from tailored.sample import shop

    sample = shop(n_users=800, n_items=200, n_events=40_000, seed=3)
    data = Dataset.from_frame(sample.events, items=sample.items, users=sample.users)
    ranker = LearnedRanker(sources=[{"model": "item_knn", "n": 40}, {"model": "popular",
                                                                      "n": 40}],
                           label_split="global", label_fraction=0.2).fit(data)
    clothing = set(sample.items.loc[sample.items["categories"].map(
        lambda c: "clothing" in c), "item_id"])
    users = tuple(data.user_vocab.ids[:300])
    evening = ranker.recommend(UserQuery(users, context={"device": "mobile", "hour": 21}))
    office = ranker.recommend(UserQuery(users, context={"device": "desktop", "hour": 10}))
    # The shop's evening sessions favour fashion: the ranker learned it from the context.
    assert evening["item_id"].isin(clothing).mean() > office["item_id"].isin(clothing).mean()
    changed = [set(evening.loc[evening["user_id"] == u, "item_id"])
               != set(office.loc[office["user_id"] == u, "item_id"]) for u in users]
    assert np.mean(changed) > 0.5
    without = LearnedRanker(sources=[{"model": "item_knn", "n": 40},
                                     {"model": "popular", "n": 40}],
                            label_split="global", label_fraction=0.2,
                            features={"context": False}).fit(data)
    assert not any(name.startswith("context_") for name in without.feature_names)
    same = without.recommend(UserQuery(users, context={"device": "mobile", "hour": 21}))
    assert same.equals(without.recommend(UserQuery(users, context={"device": "desktop",
                                                                   "hour": 10})))


_HALF = 40  # items per category


def _device_shop(seed: int = 0) -> Dataset:
    """Every user likes clothing and electronics alike, but buys clothing on a phone and
    electronics on a desktop: only the moment says which half to show."""
    rng = np.random.default_rng(seed)
    rows = []
    start = pd.Timestamp("2026-03-02", tz="UTC")
    for user in range(80):
        for session in range(10):
            device = ("mobile", "desktop")[int(rng.integers(2))]
            prefix = "c" if device == "mobile" else "e"
            when = start + pd.Timedelta(hours=int(rng.integers(0, 24 * 60)))
            for step, item in enumerate(rng.choice(_HALF, size=3, replace=False)):
                rows.append({"user_id": f"u{user:02d}", "item_id": f"{prefix}{item}",
                             "timestamp": when + pd.Timedelta(minutes=step),
                             "session_id": f"u{user:02d}-{session}", "device": device})
    items = pd.DataFrame({"item_id": [f"{p}{i}" for p in "ce" for i in range(_HALF)],
                          "categories": [["clothing"]] * _HALF + [["electronics"]] * _HALF})
    return Dataset.from_frame(pd.DataFrame(rows), items=items)


def test_the_training_context_is_the_event_that_asked() -> None:
    data = _device_shop()
    ranker = LearnedRanker(sources=[{"model": "popular", "n": 20}], label_split="global",
                           label_fraction=0.2)
    history, labels = ranker._carve(data)
    generator = CandidateGenerator(ranker.config.sources).fit(history)
    users, contexts, _ = ranker._label_users(generator, labels)
    ordered = labels.sort_values("timestamp", kind="stable").drop_duplicates("user_id")
    first = ordered.set_index("user_id").loc[users]
    assert contexts["device"].tolist() == first["device"].tolist()
    assert contexts["hour"].tolist() == first["timestamp"].dt.hour.astype(float).tolist()


def test_context_features_learn_a_within_user_context_effect() -> None:
    data = _device_shop()
    sources = [{"model": "popular", "n": 30}, {"model": "item_knn", "n": 30}]
    with_context = LearnedRanker(sources=sources, label_split="global", label_fraction=0.2,
                                 n_estimators=50, min_child_samples=5).fit(data)
    without = LearnedRanker(sources=sources, label_split="global", label_fraction=0.2,
                            n_estimators=50, min_child_samples=5,
                            features={"context": False}).fit(data)
    users = tuple(data.user_vocab.ids)
    hits = {}
    for name, model in (("context", with_context), ("none", without)):
        phone = model.recommend(UserQuery(users, context={"device": "mobile"}), k=5)
        desk = model.recommend(UserQuery(users, context={"device": "desktop"}), k=5)
        hits[name] = (phone["item_id"].str.startswith("c").mean()
                      + desk["item_id"].str.startswith("e").mean()) / 2
    assert hits["context"] > 0.9  # the moment decides which half is shown
    assert hits["none"] < 0.65  # without it the two halves are a coin toss
    assert "context_category_match" in with_context.feature_names


def test_the_default_sources_need_no_item_table() -> None:
    events = checkerboard().events
    ranker = LearnedRanker(n_estimators=5, min_child_samples=2).fit(Dataset.from_frame(events))
    assert "content" not in ranker.generator_.labels
    assert len(ranker.recommend(["a000"], k=3)) == 3
