"""The approximate item index of factor and embedding models (tailored.models.ann):
recall against exact scoring, the saved index, seen items, and nothing changed below
the threshold."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tailored.dataset import Dataset, UserQuery
from tailored.models import ALS, BPR, Item2Vec, Recommender
from tailored.models.ann import INDEX_FILE, ItemIndex
from tailored.models.artifact import read_artifact
from tailored.sample import shop

pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def catalog() -> Dataset:
    """The sample shop with about 20,000 items that have events."""
    sample = shop(n_users=17_500, n_items=35_000, n_events=350_000, seed=0)
    return Dataset.from_frame(sample.events, items=sample.items)


@pytest.fixture(scope="module")
def als(catalog: Dataset) -> ALS:
    return ALS(ann_min_items=10_000).fit(catalog)


def _recall(approximate: pd.DataFrame, exact: pd.DataFrame) -> float:
    """Mean over users of the share of the exact list that the approximate one has."""
    found = approximate.groupby("user_id")["item_id"].apply(set)
    wanted = exact.groupby("user_id")["item_id"].apply(set)
    return float(np.mean([len(found.get(user, set()) & items) / len(items)
                          for user, items in wanted.items()]))


def _users(model: Recommender, n: int, seed: int = 0) -> list[str]:
    return np.random.default_rng(seed).choice(model.user_vocab_.ids, n, replace=False).tolist()


def test_the_index_finds_at_least_95_percent_of_the_exact_top_100(
        als: ALS, catalog: Dataset) -> None:
    assert len(als.item_ids) > 19_000
    assert als.item_index_ is not None and len(als.item_index_) == len(als.item_ids)
    users = _users(als, 300)
    # Trained users, and the same users from their histories (the service's fold-in).
    events = catalog.events[catalog.events["user_id"].isin(users[:100])]
    for asked in (users, UserQuery(tuple(users[:100]), events)):
        approximate = als.top_items(asked, 100)
        exact = als.recommend(asked, 100)

        assert _recall(approximate, exact) >= 0.95
        assert approximate.groupby("user_id").size().eq(100).all()


def test_index_lists_are_best_first_with_the_model_s_own_scores(als: ALS) -> None:
    users = _users(als, 20, seed=1)
    listed = als.top_items(users, 50)
    scores = als.score(users)
    for row, user in enumerate(users):
        mine = listed[listed["user_id"] == user]
        assert mine["rank"].tolist() == list(range(1, 51))
        assert (np.diff(mine["score"].to_numpy()) <= 0).all()
        columns = als.item_vocab_.indices(mine["item_id"].tolist())
        assert mine["score"].to_numpy() == pytest.approx(scores[row, columns], rel=1e-4,
                                                         abs=1e-6)


def test_items_the_user_has_never_come_from_the_index(als: ALS, catalog: Dataset) -> None:
    users = _users(als, 200, seed=2)
    listed = als.top_items(users, 100)
    had = catalog.events[catalog.events["user_id"].isin(users)]
    pairs = set(zip(had["user_id"], had["item_id"], strict=True))

    assert not any((user, item) in pairs
                   for user, item in zip(listed["user_id"], listed["item_id"], strict=True))
    # A history given now counts at once: its items leave the list.
    user = users[0]
    shown = listed[listed["user_id"] == user]["item_id"].head(3).tolist()
    now = pd.concat([had[had["user_id"] == user][["user_id", "item_id"]],
                     pd.DataFrame({"user_id": user, "item_id": shown})])
    after = als.top_items(UserQuery((user,), now), 100)["item_id"].tolist()
    assert not set(shown) & set(after) and len(after) == 100


def test_the_saved_index_round_trips_in_faiss_s_format_without_pickle(
        als: ALS, tmp_path: Path) -> None:
    path = als.save(tmp_path / "als")

    assert sorted(p.name for p in path.iterdir()) == ["arrays.npz", "config.json", INDEX_FILE]
    meta = json.loads((path / "config.json").read_text())
    assert meta["item_index"]["file"] == INDEX_FILE
    assert meta["item_index"]["items"] == len(als.item_ids)
    read_artifact(path)  # arrays.npz loads with allow_pickle=False
    head = (path / INDEX_FILE).read_bytes()[:4]
    assert head == b"IwFl"  # faiss's IVF-Flat header, not a pickle (b"\x80...")

    loaded = Recommender.load(path)
    users = _users(als, 50, seed=3)
    assert loaded.item_index_ is not None
    pd.testing.assert_frame_equal(loaded.top_items(users, 100), als.top_items(users, 100))


def test_saving_a_model_without_an_index_removes_a_stale_one(
        als: ALS, catalog: Dataset, tmp_path: Path) -> None:
    path = als.save(tmp_path / "model")
    small = ALS(factors=4, iterations=2).fit(catalog)  # default threshold: 50,000 items
    small.save(path)

    assert not (path / INDEX_FILE).exists()
    assert Recommender.load(path).item_index_ is None


def test_below_the_threshold_nothing_changes(catalog: Dataset) -> None:
    model = ALS(factors=8, iterations=3).fit(catalog)  # 20,000 items < 50,000
    users = _users(model, 30, seed=4)

    assert model.item_index_ is None
    pd.testing.assert_frame_equal(model.top_items(users, 20), model.recommend(users, 20))


def test_without_faiss_fit_warns_and_top_lists_score_every_item(
        catalog: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tailored.models.base.faiss_available", lambda: False)
    with pytest.warns(UserWarning, match=r"tailored\[ann\]"):
        model = ALS(factors=4, iterations=2, ann_min_items=1000).fit(catalog)

    assert model.item_index_ is None


@pytest.mark.parametrize("family", [BPR, Item2Vec])
def test_other_factor_and_embedding_families_use_the_index(family: type[Recommender]) -> None:
    sample = shop(n_users=3_000, n_items=6_000, n_events=60_000, seed=1)
    data = Dataset.from_frame(sample.events)
    params = {"factors": 16, "iterations": 20} if family is BPR else {"factors": 16,
                                                                        "epochs": 3}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # 32 of the index's 260 cells: an eighth of the items scanned per user.
        model = family(ann_min_items=1_000, ann_probes=32, **params).fit(data)
    users = _users(model, 100, seed=5)

    assert model.item_index_ is not None and model.item_index_.index.nlist == 260
    assert _recall(model.top_items(users, 50), model.recommend(users, 50)) >= 0.95


def test_the_index_search_is_exact_when_it_scans_every_cell() -> None:
    rng = np.random.default_rng(0)
    vectors = (rng.normal(size=(2_000, 8)) * rng.lognormal(size=(2_000, 1))).astype(np.float32)
    columns = np.arange(2_000) * 2  # columns need not be positions
    queries = rng.normal(size=(5, 8)).astype(np.float32)
    index = ItemIndex.build(vectors, columns, cells=16, probes=16)

    found, scores = index.search(queries, 10)

    exact = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :10]
    assert found.tolist() == (exact * 2).tolist()
    assert scores == pytest.approx(np.take_along_axis(queries @ vectors.T, exact, axis=1),
                                   rel=1e-5)
