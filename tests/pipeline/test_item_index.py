"""A scorer's approximate item index through the pipeline: top lists come from the
index, then rules, filters, exclusions and the catalog apply exactly to its candidates,
and too few survivors send the user to exact scoring."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from tailored.dataset import Dataset, UserQuery
from tailored.models import ALS
from tailored.pipeline import LiveRecommender, Overrides, Pipeline, Ranked
from tailored.store import Store, open_store

pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def data() -> Dataset:
    from tailored.sample import shop

    sample = shop(n_users=6_000, n_items=12_000, n_events=120_000, seed=2)
    items = sample.items.copy()
    items["available"] = np.random.default_rng(0).random(len(items)) > 0.1
    return Dataset.from_frame(sample.events, items=items)


@pytest.fixture(scope="module")
def pipeline(data: Dataset) -> Pipeline:
    # A recipe rule that boosts a category, as business rules do.
    return Pipeline(ALS(factors=16, ann_min_items=1_000), name="als", rules=[
        {"name": "kitchen", "boost": {"where": '"kitchen" in categories', "factor": 1.3}},
    ]).fit(data)


@pytest.fixture
def store() -> Iterator[Store]:
    opened = open_store("sqlite://")
    yield opened
    opened.close()


@pytest.fixture
def live(store: Store, pipeline: Pipeline) -> LiveRecommender:
    return LiveRecommender(store, pipeline)


def _queries(data: Dataset, n: int) -> list[UserQuery]:
    users = np.random.default_rng(1).choice(data.events["user_id"].unique(), n, replace=False)
    events = data.events[data.events["user_id"].isin(users)]
    return [UserQuery((user,), events[events["user_id"] == user]) for user in users]


def _exact(pipeline: Pipeline, query: UserQuery, k: int, overrides: Overrides) -> Ranked:
    ranked = pipeline.select(pipeline.top_list(query), k, query, overrides)
    assert ranked is not None
    return ranked


def test_the_top_list_comes_from_the_index_without_the_user_s_items(
        pipeline: Pipeline, data: Dataset) -> None:
    assert pipeline.scorer.item_index_ is not None
    found = []
    for query in _queries(data, 20):
        top = pipeline.top_list(query, 200)
        every = pipeline.top_list(query)

        assert not top.complete and every.complete
        assert len(top.columns) == 200 and (np.diff(top.scores) <= 0).all()
        seen = pipeline.scorer.item_vocab_.indices(query.events["item_id"].tolist())
        assert not np.isin(top.columns, seen).any()
        assert top.scores == pytest.approx(
            pipeline.scores(query)[0][top.columns], rel=1e-4, abs=1e-6)
        found.append(len(np.intersect1d(top.columns, every.columns[:50])) / 50)
    assert np.mean(found) >= 0.95  # the exact top 50 among the index's 200


def test_filters_exclusions_and_the_catalog_are_exact_on_the_index_candidates(
        live: LiveRecommender, pipeline: Pipeline, data: Dataset) -> None:
    items = data.items.set_index("item_id")
    unavailable = set(items.index[~items["available"].to_numpy(bool)])
    same = total = 0
    for n, query in enumerate(_queries(data, 60)):
        exact_top = pipeline.top_list(query).columns[:5]
        excluded = pipeline.item_ids[exact_top[::2]].tolist()  # some of its best items
        overrides = Overrides.parse(filter="price < 40" if n % 2 else None,
                                    boosts=["price > 80:1.5"] if n % 3 == 0 else [],
                                    exclude=excluded)

        ranked = live.rank(query, 10, overrides, catalog=pipeline.items_)

        shown = ranked.item_ids
        assert len(shown) == 10
        assert not set(shown) & set(query.events["item_id"])  # the user's own items
        assert not set(shown) & set(excluded)
        assert not set(shown) & unavailable
        if n % 2:
            assert (items.loc[shown, "price"] < 40).all()
        assert ranked.scores == sorted(ranked.scores, reverse=True)
        exact = _exact(pipeline, query, 10, overrides).item_ids
        same += sum(a == b for a, b in zip(shown, exact, strict=True))
        total += len(exact)
    assert same / total >= 0.9  # the same lists as exact scoring, almost always


def test_a_strict_filter_falls_back_to_scoring_every_item(
        live: LiveRecommender, pipeline: Pipeline, data: Dataset) -> None:
    prices = data.items.set_index("item_id").loc[pipeline.item_ids, "price"]
    cut = float(np.sort(prices.to_numpy())[-6])  # six items cost this much or more
    overrides = Overrides.parse(filter=f"price >= {cut}")
    for query in _queries(data, 5):
        from_index = pipeline.select(pipeline.top_list(query, 200), 10, query, overrides)
        ranked = live.rank(query, 10, overrides, catalog=pipeline.items_)

        assert from_index is None  # too few of the index's candidates pass
        exact = _exact(pipeline, query, 10, overrides)
        assert ranked.item_ids == exact.item_ids
        assert set(ranked.item_ids) <= set(prices.index[prices >= cut])
        assert not set(ranked.item_ids) & set(query.events["item_id"])


def test_batch_runs_stay_exact(pipeline: Pipeline, data: Dataset) -> None:
    """Offline lists (evaluation, ``tailored recommend``) score every item."""
    queries = _queries(data, 5)
    users = tuple(q.user_ids[0] for q in queries)
    events = pd.concat([q.events for q in queries if q.events is not None])

    listed = pipeline.run(UserQuery(users, events), k=10)

    for query in queries:
        exact = _exact(pipeline, query, 10, Overrides())
        assert listed[listed["user_id"] == query.user_ids[0]]["item_id"].tolist() == \
            exact.item_ids
