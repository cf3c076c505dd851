"""Explanations are true: the named items are in the user's history, the named genres
on both items, and the named item is the one the model's arrays say contributed most."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import tailored
from tailored.models import (
    ALS,
    BPR,
    EASE,
    ContentBased,
    ItemKNN,
    Popular,
    Recommender,
    Segments,
    Trending,
    UserKNN,
    create,
)
from tailored.models.base import Reason
from tailored.pipeline import Overrides, Pipeline
from tailored.ranking import LinUCB, explain_recommendations, explore, titles_of
from tailored.sample import shop


@cache
def _shop() -> tuple[tailored.Dataset, dict[str, set[str]], dict[str, set[str]]]:
    sample = shop(n_users=150, n_items=80, n_events=6_000, seed=3)
    data = tailored.Dataset.from_frame(sample.events, items=sample.items, users=sample.users)
    history = data.events.groupby("user_id")["item_id"].agg(set).to_dict()
    categories = {str(item): set(cats) for item, cats in
                  zip(data.items["item_id"], data.items["categories"], strict=True)}
    return data, history, categories


MODELS: dict[str, dict[str, Any]] = {
    "popular": {}, "trending": {}, "item_knn": {}, "user_knn": {},
    "als": {"factors": 8, "iterations": 5}, "bpr": {"factors": 8, "iterations": 20},
    "ease": {"regularization": 50.0}, "content": {}, "segments": {"n_segments": 3},
    "item2vec": {"factors": 8, "epochs": 2},
}
#: Pipelines with stages around a scorer: their reasons come from the scorer.
PIPELINES = {
    "rules": lambda: Pipeline(ItemKNN(), rules=[
        {"boost": {"where": "price > 50", "factor": 1.1}}]),
    "rules and re-rankers": lambda: Pipeline(ALS(factors=8, iterations=5), rules=[
        {"pin": ["no-such-item"]}, {"bury": {"where": "price < 20", "factor": 0.5}}],
        rerankers=[{"diversity": 0.3}]),
}


def _explained(name: str, users: list[str]) -> pd.DataFrame:
    """A model's (or a pipeline's) top 5 per user with their reasons."""
    data, _, _ = _shop()
    if name in PIPELINES:
        pipeline = PIPELINES[name]().fit(data)
        explained = pipeline.run(users, k=5, explain=True)
        recs = pipeline.run(users, k=5)
        pd.testing.assert_frame_equal(explained[list(recs.columns)], recs)
        return explained
    model = create(name, **MODELS[name]).fit(data)
    recs = model.recommend(users, k=5)
    explained = model.explanations(users, recs)
    assert len(explained) == len(recs)
    return explained


@pytest.mark.parametrize("name", [*sorted(MODELS), *PIPELINES])
def test_every_reason_is_true(name: str) -> None:
    _, history, categories = _shop()
    users = [*sorted(history)[:12], "nobody"]
    explained = _explained(name, users)
    assert len(explained) == 5 * len(users)
    assert explained["reason"].map(len).gt(0).all()
    for row in explained.itertuples():
        seen = history.get(row.user_id, set())
        assert set(row.reason_items) <= seen, (row.reason, row.reason_items)
        for feature in row.reason_features if row.reason_kind == "categories" else ():
            assert feature in categories[row.item_id]
            assert all(feature in categories[item] for item in row.reason_items)
        if row.user_id == "nobody":  # no history: whatever the fallback is
            assert row.reason_kind in ("popular", "segment", "trending")


def test_reason_kinds_per_model() -> None:
    data, history, _ = _shop()
    user = sorted(history)[0]
    expected = {"item_knn": "history", "ease": "history", "als": "history", "bpr": "history",
                "user_knn": "similar_users", "content": "categories", "segments": "segment",
                "trending": "trending", "popular": "popular", "item2vec": "similar"}
    for name, kind in expected.items():
        model = create(name, **MODELS[name]).fit(data)
        kinds = model.explanations(user, model.recommend(user, k=3))["reason_kind"]
        assert (kinds == kind).any(), (name, kinds.tolist())


EVENTS = pd.DataFrame({
    "user_id": ["a", "a", "b", "b", "c", "c", "d", "d", "e", "e", "f"],
    "item_id": ["x", "y", "x", "y", "z", "w", "z", "w", "x", "y", "w"],
})


def test_item_knn_by_hand() -> None:
    """x and y always go together, so do z and w: y is there because of x."""
    model = ItemKNN().fit(tailored.Dataset.from_frame(EVENTS))
    query = tailored.UserQuery.from_histories({"u": ["x", "z"]})
    recs = model.recommend(query, k=2)
    explained = model.explanations(query, recs, titles={"x": "The X", "z": "Zed"})
    assert dict(zip(explained.item_id, explained.reason, strict=True)) == {
        "y": "because you viewed The X", "w": "because you viewed Zed"}
    assert explained["reason_items"].tolist() == [["x"], ["z"]] or \
        explained["reason_items"].tolist() == [["z"], ["x"]]


def test_the_current_history_is_what_gets_named() -> None:
    model = ItemKNN().fit(tailored.Dataset.from_frame(EVENTS))
    # f trained on w; now f has viewed x too: z is explained by w, y by x.
    query = tailored.UserQuery("f", pd.DataFrame({"user_id": ["f", "f"], "item_id": ["w", "x"]}))
    explained = model.explanations(query, model.recommend(query, k=2))
    assert dict(zip(explained.item_id, explained.reason_items, strict=True)) == {
        "y": ["x"], "z": ["w"]}


def _terms(model: Recommender, user_history: sp.csr_matrix, item: int) -> np.ndarray:
    """Each history item's exact share of the score, recomputed from the model's arrays."""
    seen = user_history.indices
    if isinstance(model, EASE):
        return user_history.data * model.weights_matrix_[seen, item]
    assert isinstance(model, ALS)
    items = model.item_factors_.astype(np.float64)
    c = model.config.alpha * model._confidence(user_history).data
    system = model._gram + (items[seen].T * (c - 1)) @ items[seen]
    return c * (items[item] @ np.linalg.solve(system, items[seen].T))


@pytest.mark.parametrize("model", [EASE(regularization=20.0), ALS(factors=6, iterations=8)],
                         ids=["ease", "als"])
def test_named_item_has_the_largest_exact_share_of_the_score(model: Recommender) -> None:
    data, history, _ = _shop()
    model.fit(data)
    users = sorted(history)[:15]
    query = tailored.UserQuery(tuple(users), data.events[data.events.user_id.isin(users)])
    recs = model.recommend(query, k=4)
    explained = model.explanations(query, recs)
    scores = model.score(query)
    batch = model._resolve(query)
    for row in explained.itertuples():
        position = users.index(row.user_id)
        item = model.item_vocab_.index(row.item_id)
        terms = _terms(model, sp.csr_matrix(batch.history[position]), item)
        # The terms are the score, split by history item (exact up to float32).
        assert terms.sum() == pytest.approx(scores[position, item], rel=1e-3, abs=1e-4)
        best = model.item_vocab_.ids[batch.history[position].indices[np.argmax(terms)]]
        assert row.reason_items == ([best] if terms.max() > 0 else [])


def test_bpr_shares_rebuild_the_folded_in_vector() -> None:
    """At the fold-in optimum u = (1/λ)(Σ_h g_h y_h - Σ_j G_j y_j): the positive part is
    what the explanation splits by history item."""
    from tailored.models.bpr import _fold_in_user, _positive_weights

    data = tailored.Dataset.from_frame(EVENTS)
    model = BPR(factors=3, iterations=50, regularization=0.1).fit(data)
    items = model.item_factors_.astype(np.float64)
    popularity = model.popularity_.astype(np.float64)
    seen = model.item_vocab_.indices(["x", "z"])
    user = _fold_in_user(seen, items, popularity, 0.1, np.random.default_rng(0))
    g = _positive_weights(seen, user, items, popularity)
    # The negative side, the same way: G_j = Σ_h w_hj σ(-m_hj).
    negatives = np.setdiff1d(np.arange(len(items)), seen)
    weights = popularity[negatives] / popularity[negatives].sum()
    margins = ((items[seen, :-1] @ user + items[seen, -1])[:, None]
               - (items[negatives, :-1] @ user + items[negatives, -1])[None, :])
    big_g = (weights[None, :] / len(seen) / (1 + np.exp(margins))).sum(axis=0)
    rebuilt = (g @ items[seen, :-1] - big_g @ items[negatives, :-1]) / 0.1
    np.testing.assert_allclose(rebuilt, user, atol=1e-4)
    query = tailored.UserQuery.from_histories({"u": ["x", "z"]})
    explained = model.explanations(query, model.recommend(query, k=2))
    assert set(explained["reason_items"].sum()) <= {"x", "z"}


def test_content_names_shared_genres() -> None:
    events = pd.DataFrame({"user_id": ["u", "u", "v", "v", "w"],
                           "item_id": ["titanic", "alien", "notebook", "predator", "heat"]})
    items = pd.DataFrame({
        "item_id": ["titanic", "alien", "notebook", "predator", "heat"],
        "title": ["Titanic", "Alien", "The Notebook", "Predator", "Heat"],
        "categories": [["Drama", "Romance"], ["Horror", "Sci-Fi"], ["Drama", "Romance"],
                       ["Action", "Sci-Fi"], ["Action", "Crime"]]})
    model = ContentBased(text_weight=0.0).fit(tailored.Dataset.from_frame(events, items=items))
    recs = model.recommend("u", k=2)
    explained = model.explanations("u", recs, titles=titles_of(items))
    reasons = dict(zip(explained.item_id, explained.reason, strict=True))
    assert reasons == {"notebook": "matches Drama, Romance", "predator": "matches Sci-Fi"}
    named = dict(zip(explained.item_id, explained.reason_items, strict=True))
    assert named == {"notebook": ["titanic"], "predator": ["alien"]}


def test_segments_popular_and_trending_texts() -> None:
    data, history, _ = _shop()
    user = sorted(history)[0]
    for model, text in ((Segments(n_segments=3).fit(data), "popular in your segment"),
                        (Popular().fit(data), "popular"),
                        (Trending(window_days=7).fit(data), "trending this week"),
                        (Trending(window_days=3).fit(data), "trending in the last 3 days")):
        explained = model.explanations(user, model.recommend(user, k=2))
        assert set(explained["reason"]) == {text}


def test_user_knn_counts_the_neighbours_who_touched_the_item() -> None:
    model = UserKNN().fit(tailored.Dataset.from_frame(EVENTS))
    explained = model.explanations("f", model.recommend("f", k=1))
    # f has w; its neighbours c and d both have z.
    assert explained[["item_id", "reason"]].values.tolist() == [
        ["z", "liked by 2 people with tastes like yours"]]


def test_rules_explain_through_the_pipelines_scorer() -> None:
    data = tailored.Dataset.from_frame(EVENTS)
    query = tailored.UserQuery.from_histories({"u": ["x", "z"]})
    plain = Pipeline(ItemKNN()).fit(data).run(query, k=1, explain=True)
    assert plain[["item_id", "reason"]].values.tolist() == [["y", "because you viewed x"]]
    # The boost puts w first; its reason is still the scorer's evidence for w.
    boosted = Pipeline(ItemKNN(), rules=[
        {"boost": {"where": 'item_id == "w"', "factor": 2.0}}]).fit(data)
    explained = boosted.run(query, k=2, explain=True, titles={"z": "Zed"})
    assert explained[["item_id", "reason"]].values.tolist() == [
        ["w", "because you viewed Zed"], ["y", "because you viewed x"]]
    assert explained["reason_items"].tolist() == [["z"], ["x"]]
    # The same through explain() on the list run() gave, and for a request's boost.
    recs = boosted.run(query, k=2)
    pd.testing.assert_frame_equal(boosted.explain(query, recs, titles={"z": "Zed"}), explained)
    requested = Pipeline(ItemKNN()).fit(data).run(
        query, k=2, overrides=Overrides.parse(boosts=['item_id == "w":2']), explain=True)
    assert requested[["item_id", "reason"]].values.tolist() == [
        ["w", "because you viewed z"], ["y", "because you viewed x"]]
    # A pinned item no history item supports gets no invented reason.
    pinned = Pipeline(ItemKNN(), rules=[{"pin": ["w"]}]).fit(data)
    explained = pinned.run("a", k=1, explain=True)
    assert explained[["item_id", "reason_kind"]].values.tolist() == [["w", "model"]]
    assert explained["reason_items"].tolist() == [[]]


def test_new_and_explored_items() -> None:
    model = ItemKNN().fit(tailored.Dataset.from_frame(EVENTS))
    shown = explore(model.recommend("a", k=3), LinUCB(), k=3, share=0.0,
                    new_items=["brand-new"])
    shown.loc[shown.item_id == "z", "explored"] = True
    explained = explain_recommendations(model, "a", shown)
    reasons = dict(zip(explained.item_id, explained.reason, strict=True))
    assert reasons["brand-new"] == "new in the catalog"
    assert reasons["z"] == "something new for you to try"
    assert explained.loc[explained.item_id == "z", "reason_items"].item() == []


def test_bad_calls_say_what_to_pass() -> None:
    model = ItemKNN().fit(tailored.Dataset.from_frame(EVENTS))
    recs = model.recommend("a", k=1)
    with pytest.raises(ValueError, match=r"lack column\(s\) \['item_id'\]"):
        model.explanations("a", recs.drop(columns="item_id"))
    with pytest.raises(ValueError, match=r"name users \['a'\] that users does not ask about"):
        model.explanations("b", recs)


def test_reason_texts() -> None:
    assert Reason("history", items=("a", "b")).text() == "because you viewed a and b"
    assert Reason("similar", items=("a",)).text({"a": "Alien"}) == \
        "similar to Alien, which you viewed"
    assert Reason("features", features=("recency", "als score")).text() == \
        "ranked high for recency, als score"
    assert Reason("popular").text() == "popular"
