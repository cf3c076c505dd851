"""MMR, the category cap, the novelty and revenue knobs, on lists small enough to check
by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tailored
from tailored.models import ALS, EASE, ItemKNN
from tailored.ranking import (
    CategorySimilarity,
    ModelSimilarity,
    categories_of,
    diversify,
    item_popularity,
)
from tailored.ranking.diversity import expected_revenue, greedy_rerank

GENRES = {"a1": ["Action"], "a2": ["Action"], "a3": ["Action", "War"], "d1": ["Drama"],
          "d2": ["Drama"], "c1": ["Comedy"], "x": []}


def _recs(users: dict[str, list[tuple[str, float]]]) -> pd.DataFrame:
    rows = [(user, item, score, rank) for user, items in users.items()
            for rank, (item, score) in enumerate(items, start=1)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "score", "rank"])


CANDIDATES = _recs({"u": [("a1", 1.0), ("a2", 0.9), ("a3", 0.8), ("d1", 0.7), ("d2", 0.6),
                          ("c1", 0.5)],
                    "v": [("d1", 5.0), ("d2", 4.0), ("a1", 3.0)]})


def test_no_knob_keeps_the_order_and_cuts_to_k() -> None:
    result = diversify(CANDIDATES, k=2)
    assert result.values.tolist() == [["u", "a1", 1.0, 1], ["u", "a2", 0.9, 2],
                                      ["v", "d1", 5.0, 1], ["v", "d2", 4.0, 2]]


def test_mmr_by_hand() -> None:
    # Relevance of u, min-max scaled: a1 1, a2 .8, a3 .6, d1 .4, d2 .2, c1 0.
    # diversity .5: after a1, a2 = .5*.8 - .5*1 = -.1, a3 = .3 - .5*.5 = .05 (Jaccard
    # {Action} vs {Action, War} = .5), d1 = .2: d1. Then a2 -.1, a3 .05, d2 .1 - .5 = -.4,
    # c1 0: a3.
    result = diversify(CANDIDATES[CANDIDATES.user_id == "u"], k=3, diversity=0.5,
                       categories=GENRES)
    assert result["item_id"].tolist() == ["a1", "d1", "a3"]
    assert result["rank"].tolist() == [1, 2, 3]
    assert result["score"].tolist() == [1.0, 0.7, 0.8]  # scores stay the model's


def test_full_diversity_picks_the_least_similar_after_the_first() -> None:
    result = diversify(CANDIDATES[CANDIDATES.user_id == "u"], k=3, diversity=1.0,
                       categories=GENRES)
    # Ties (similarity 0) go to the better-ranked item: d1 before d2 and c1.
    assert result["item_id"].tolist() == ["a1", "d1", "c1"]


def test_category_cap_by_hand() -> None:
    result = diversify(CANDIDATES, k=4, categories=GENRES, max_per_category=1)
    assert result[result.user_id == "u"]["item_id"].tolist() == ["a1", "d1", "c1"]
    # The cap is strict: u has only three items that fit, v two.
    assert result[result.user_id == "v"]["item_id"].tolist() == ["d1", "a1"]


def test_items_without_categories_are_never_capped() -> None:
    recs = _recs({"u": [("x", 3.0), ("a1", 2.0), ("a2", 1.0)]})
    result = diversify(recs, k=3, categories={"a1": ["Action"], "a2": ["Action"]},
                       max_per_category=1)
    assert result["item_id"].tolist() == ["x", "a1"]


def test_novelty_by_hand() -> None:
    recs = _recs({"u": [("hit", 1.0), ("niche", 0.5), ("mid", 0.0)]})
    popularity = {"hit": 99.0, "niche": 1.0, "mid": 9.0}
    # popularity scores log1p(n)/log1p(99): hit 1, niche .15, mid .5;
    # novelty .5: hit .5*1 + .5*0 = .5, niche .5*.5 + .5*.85 = .675, mid 0 + .25 = .25.
    result = diversify(recs, k=3, novelty=0.5, popularity=popularity)
    assert result["item_id"].tolist() == ["niche", "hit", "mid"]
    assert diversify(recs, k=3, novelty=0.0, popularity=popularity)["item_id"].tolist() == [
        "hit", "niche", "mid"]


# Relevance min-max scales to exactly 1, .8, .5, 0; prices make the expected revenue
# (price x relevance) 10, 40, 15, 0, which scaled by its largest (40) is .25, 1, .375, 0.
POOL = _recs({"u": [("cheap", 1.0), ("pricey", 0.8), ("mid", 0.5), ("last", 0.0)]})
PRICES = {"cheap": 10.0, "pricey": 50.0, "mid": 30.0, "last": 100.0}


def test_revenue_by_hand() -> None:
    def order(revenue: float, prices: dict[str, float] = PRICES) -> list[str]:
        return diversify(POOL, k=4, revenue=revenue, prices=prices)["item_id"].tolist()

    # revenue 1: by expected revenue alone, .25 .. 1 .. .375 .. 0.
    assert order(1.0) == ["pricey", "mid", "cheap", "last"]
    # revenue .5: cheap .5*1 + .5*.25 = .625, pricey .4 + .5 = .9, mid .25 + .1875 = .4375.
    assert order(0.5) == ["pricey", "cheap", "mid", "last"]
    # revenue .1: cheap .9 + .025 = .925 still beats pricey .72 + .1 = .82.
    assert order(0.1) == ["cheap", "pricey", "mid", "last"]
    assert order(0.0) == ["cheap", "pricey", "mid", "last"]
    # The weakest candidate is worth nothing however expensive: relevance 0 is no click.
    assert order(1.0, {"last": 1e6, "cheap": 1.0})[-1] == "last"
    result = diversify(POOL, k=2, revenue=1.0, prices=PRICES)
    assert result["score"].tolist() == [0.8, 0.5] and result["rank"].tolist() == [1, 2]


def test_expected_revenue_by_hand() -> None:
    relevance = np.array([[1.0, 0.8, 0.5, 0.0]])
    price = np.array([[10.0, 50.0, 30.0, 100.0]])
    assert expected_revenue(relevance, price, np.ones((1, 4), bool)).tolist() == [
        [0.25, 1.0, 0.375, 0.0]]
    # Slots past a list's end and prices that are not positive numbers bring nothing.
    valid = np.array([[True, True, True, False]])
    bad = np.array([[np.nan, -5.0, 30.0, 1e9]])
    assert expected_revenue(relevance, bad, valid).tolist() == [[0.0, 0.0, 1.0, 0.0]]


@pytest.mark.parametrize("prices", [{}, {"other": 5.0}, {"cheap": 0.0, "mid": -1.0},
                                    dict.fromkeys(PRICES, 25.0)],
                         ids=["none", "unrelated", "not-positive", "equal"])
def test_a_pool_without_prices_or_with_equal_prices_keeps_its_order(
        prices: dict[str, float]) -> None:
    for revenue in (0.3, 1.0):
        result = diversify(POOL, k=4, revenue=revenue, prices=prices)
        assert result["item_id"].tolist() == ["cheap", "pricey", "mid", "last"]
    # ... also mixed with the other knobs: revenue changes nothing they decide.
    popularity = {"cheap": 90.0, "pricey": 1.0, "mid": 40.0}
    genres = {"cheap": ["x"], "pricey": ["x"], "mid": ["y"], "last": ["y"]}
    alone = diversify(POOL, k=4, novelty=0.4, popularity=popularity, diversity=0.3,
                      categories=genres)
    mixed = diversify(POOL, k=4, novelty=0.4, popularity=popularity, diversity=0.3,
                      categories=genres, revenue=0.8, prices=prices)
    assert mixed["item_id"].tolist() == alone["item_id"].tolist()


def test_revenue_mixes_before_novelty_and_mmr() -> None:
    # revenue .5 gives cheap .625, pricey .9, mid .4375, last 0; novelty .5 with
    # popularity scores cheap 0, pricey 1 (the most popular), mid 0, last 0 (unknown):
    # cheap .8125, pricey .45, mid .71875, last .5.
    popularity = {"pricey": 99.0, "cheap": 0.0, "mid": 0.0}
    result = diversify(POOL, k=4, revenue=0.5, prices=PRICES, novelty=0.5,
                       popularity=popularity)
    assert result["item_id"].tolist() == ["cheap", "mid", "last", "pricey"]


def test_pinned_infinite_scores_stay_first() -> None:
    recs = _recs({"u": [("pin", np.inf), ("a", 2.0), ("b", 1.0), ("gone", -np.inf)]})
    assert diversify(recs, k=4)["item_id"].tolist() == ["pin", "a", "b", "gone"]


def test_input_order_does_not_matter_rank_does() -> None:
    shuffled = CANDIDATES.sample(frac=1.0, random_state=3)
    expected = diversify(CANDIDATES, k=3, diversity=0.3, categories=GENRES)
    result = diversify(shuffled, k=3, diversity=0.3, categories=GENRES)
    assert set(result.user_id.unique()) == {"u", "v"}
    for user in ("u", "v"):
        assert (result[result.user_id == user]["item_id"].tolist()
                == expected[expected.user_id == user]["item_id"].tolist())


def test_extra_columns_survive() -> None:
    recs = CANDIDATES.assign(source="als")
    assert (diversify(recs, k=2, diversity=0.2, categories=GENRES)["source"] == "als").all()


def test_empty_input() -> None:
    assert diversify(CANDIDATES.iloc[:0], k=3).empty


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"diversity": 1.5}, "diversity must be between 0 and 1"),
    ({"novelty": -0.1}, "novelty must be between 0 and 1"),
    ({"revenue": 1.5, "prices": {}}, "revenue must be between 0 and 1"),
    ({"revenue": 0.3}, "needs prices="),
    ({"diversity": 0.3}, "needs similarity="),
    ({"novelty": 0.3}, "needs popularity="),
    ({"max_per_category": 2}, "needs categories="),
    ({"max_per_category": 0, "categories": GENRES}, "max_per_category must be at least 1"),
    ({"k": 0}, "k must be at least 1"),
])
def test_bad_arguments_say_what_to_do(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        diversify(CANDIDATES, **kwargs)


def test_missing_columns() -> None:
    with pytest.raises(ValueError, match=r"lack column\(s\) \['rank'\]"):
        diversify(CANDIDATES.drop(columns="rank"), k=2)


def test_category_similarity_and_catalog_helpers() -> None:
    items = pd.DataFrame({"item_id": ["a", "b", "c"],
                          "categories": [["Comedy"], ["Comedy", "Drama"], None]})
    assert categories_of(items) == {"a": ["Comedy"], "b": ["Comedy", "Drama"], "c": []}
    similarity = CategorySimilarity.from_items(items)(["a", "b", "c"])
    assert similarity.tolist() == [[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]]
    with pytest.raises(ValueError, match="lacks column"):
        categories_of(items.drop(columns="categories"))


EVENTS = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c", "c", "d", "d"],
                       "item_id": ["x", "y", "x", "y", "z", "w", "z", "w"]})


def test_model_similarity_from_item_knn_groups_co_occurring_items() -> None:
    model = ItemKNN().fit(tailored.Dataset.from_frame(EVENTS))
    similarity = ModelSimilarity(model)(["x", "y", "z", "w"])
    assert similarity.round(3).tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1],
                                            [0, 0, 1, 1]]
    recs = _recs({"u": [("x", 4.0), ("y", 3.0), ("z", 2.0), ("w", 1.0)]})
    assert diversify(recs, k=2, diversity=0.7, similarity=ModelSimilarity(model))[
        "item_id"].tolist() == ["x", "z"]


def test_model_similarity_is_symmetric_in_unit_range_for_every_measure() -> None:
    data = tailored.Dataset.from_frame(EVENTS)
    for model in (ALS(factors=2, iterations=5).fit(data), EASE(regularization=1.0).fit(data)):
        for measure in ("model", "cooccurrence"):
            similarity = ModelSimilarity(model, measure=measure)(["x", "y", "z", "w", "new"])
            assert np.allclose(similarity, similarity.T)
            assert similarity.min() >= 0 and similarity.max() <= 1
            assert similarity[4].tolist() == [0, 0, 0, 0, 1]  # unknown item: alike nothing
    with pytest.raises(ValueError, match="measure must be"):
        ModelSimilarity(ItemKNN().fit(data), measure="cosine")  # type: ignore[arg-type]


def test_item_popularity_counts_users() -> None:
    model = ItemKNN().fit(tailored.Dataset.from_frame(EVENTS.iloc[:5]))
    assert item_popularity(model) == {"x": 2.0, "y": 2.0, "z": 1.0}


def test_greedy_handles_lists_of_different_lengths() -> None:
    relevance = np.array([[1.0, 0.5, 0.0], [1.0, 0.0, 0.0]])
    valid = np.array([[True, True, True], [True, False, False]])
    assert greedy_rerank(relevance, valid, 2).tolist() == [[0, 1], [0, -1]]


# ---- properties ---------------------------------------------------------------------------

CATEGORY_NAMES = ["A", "B", "C", "D"]


@st.composite
def candidate_lists(draw: st.DrawFn) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    n_users = draw(st.integers(1, 3))
    rows, categories = [], {}
    for user in range(n_users):
        n = draw(st.integers(1, 12))
        scores = draw(st.lists(st.floats(-5, 5, allow_nan=False), min_size=n, max_size=n))
        for rank, score in enumerate(sorted(scores, reverse=True), start=1):
            item = f"i{draw(st.integers(0, 30))}"
            if any(r[0] == f"u{user}" and r[1] == item for r in rows):
                continue
            rows.append((f"u{user}", item, score, rank))
    for _, item, _, _ in rows:
        categories.setdefault(item, draw(st.lists(st.sampled_from(CATEGORY_NAMES),
                                                  max_size=2, unique=True)))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "score", "rank"])
    frame["rank"] = frame.groupby("user_id").cumcount() + 1
    return frame, categories


@settings(max_examples=30, deadline=None)
@given(candidate_lists(), st.integers(1, 8))
def test_zero_diversity_is_the_original_order(case: tuple, k: int) -> None:
    recs, categories = case
    result = diversify(recs, k=k, diversity=0.0, categories=categories)
    expected = recs.groupby("user_id", sort=False).head(k)
    assert result[["user_id", "item_id"]].values.tolist() == \
        expected[["user_id", "item_id"]].values.tolist()


@settings(max_examples=30, deadline=None)
@given(candidate_lists(), st.integers(1, 8), st.floats(0, 1), st.floats(0, 1))
def test_zero_revenue_is_the_order_the_other_knobs_give(case: tuple, k: int,
                                                        diversity: float,
                                                        novelty: float) -> None:
    recs, categories = case
    popularity = {item: float(len(item)) for item in recs["item_id"]}
    prices = {item: float(sum(map(ord, item)) % 97) for item in recs["item_id"]}
    knobs = {"diversity": diversity, "categories": categories, "novelty": novelty,
             "popularity": popularity}
    pd.testing.assert_frame_equal(diversify(recs, k=k, revenue=0.0, prices=prices, **knobs),
                                  diversify(recs, k=k, **knobs))


@settings(max_examples=30, deadline=None)
@given(candidate_lists(), st.integers(1, 8))
def test_full_revenue_orders_by_price_times_relevance(case: tuple, k: int) -> None:
    recs, _ = case
    prices = {item: float(int(item[1:]) % 7) for item in recs["item_id"]}
    result = diversify(recs, k=k, revenue=1.0, prices=prices)
    for user, group in result.groupby("user_id", sort=False):
        pool = recs[recs["user_id"] == user]
        low, high = pool["score"].min(), pool["score"].max()
        relevance = ((pool["score"] - low) / (high - low) if high > low
                     else pool["score"] * 0 + 1.0)
        money = dict(zip(pool["item_id"], pool["item_id"].map(prices) * relevance,
                         strict=True))
        values = [money[item] for item in group["item_id"]]
        if max(money.values()) > 0:  # best first (else the pool keeps its order)
            assert values == sorted(values, reverse=True)
            assert values[0] == max(money.values())


@settings(max_examples=30, deadline=None)
@given(candidate_lists(), st.integers(1, 8), st.integers(1, 3),
       st.floats(0, 1), st.floats(0, 1))
def test_cap_is_never_exceeded_and_lists_are_valid(case: tuple, k: int, cap: int,
                                                   diversity: float, novelty: float) -> None:
    recs, categories = case
    popularity = {item: float(len(item)) for item in recs["item_id"]}
    result = diversify(recs, k=k, diversity=diversity, categories=categories,
                       max_per_category=cap, novelty=novelty, popularity=popularity)
    for user, group in result.groupby("user_id"):
        items = group["item_id"].tolist()
        assert len(items) == len(set(items)) <= k
        assert set(items) <= set(recs[recs.user_id == user]["item_id"])
        assert group["rank"].tolist() == list(range(1, len(items) + 1))
        counts: dict[str, int] = {}
        for item in items:
            for category in categories[item]:
                counts[category] = counts.get(category, 0) + 1
        assert max(counts.values(), default=0) <= cap
