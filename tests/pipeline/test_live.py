"""LiveRecommender: histories without impressions, the live catalog view, and the
pipeline's exact selection from a cut-off top list."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from tailored.dataset import Dataset, UserQuery
from tailored.expressions import ExpressionError, parse
from tailored.models import create
from tailored.pipeline import LiveRecommender, Overrides, Pipeline, TopList
from tailored.ranking import RuleSet, UserFacts
from tailored.schema import Event, Item
from tailored.store import Store, open_store

N_ITEMS = 60


@pytest.fixture
def store() -> Iterator[Store]:
    opened = open_store("sqlite://")
    yield opened
    opened.close()


@pytest.fixture
def live(store: Store) -> LiveRecommender:
    rng = np.random.default_rng(0)
    items = [f"i{n:02d}" for n in range(N_ITEMS)]
    events = pd.DataFrame({"user_id": [f"u{n % 40}" for n in range(600)],
                           "item_id": rng.choice(items, 600)})
    store.events.add([Event(user_id=u, item_id=i, event_id=f"e{n}")
                      for n, (u, i) in enumerate(zip(events.user_id, events.item_id,
                                                     strict=True))])
    store.items.upsert([Item(item_id=item, categories=["even" if n % 2 == 0 else "odd"],
                             attributes={"price": float(n), "tier": n % 3})
                        for n, item in enumerate(items)])
    # A recipe rule that boosts and one that pins: both must stay exact on a cut list.
    pipeline = Pipeline(create("item_knn"), name="knn", rules=[
        {"name": "tier two", "boost": {"where": "tier == 2", "factor": 1.2}},
        {"name": "promo", "when": 'context.page == "home"', "pin": ["i07"]}])
    return LiveRecommender(store, pipeline.fit(Dataset.from_store(store)))


def test_history_leaves_impressions_out(live: LiveRecommender, store: Store) -> None:
    store.events.add([Event(user_id="new", item_id="i01", event_type="impression"),
                      Event(user_id="new", item_id="i02", event_type="view")])

    history = live.history(["new"])

    assert history["item_id"].tolist() == ["i02"]
    scores = live.pipeline.scores(live.query(["new"]))[0]
    assert np.isneginf(scores[live.model.item_vocab_.indices(["i02"])]).all()
    assert np.isfinite(scores[live.model.item_vocab_.indices(["i01"])]).all()


def test_the_catalog_view_follows_changes_incrementally(live: LiveRecommender,
                                                        store: Store) -> None:
    first = live.catalog()
    assert not first.unavailable.any()
    assert first.mask(parse("price < 3")).sum() == 3

    store.items.upsert([Item(item_id="i01", available=False,
                             attributes={"price": 99.0, "tier": 0, "new": "yes"})])
    second = live.catalog()

    assert second.version > first.version
    column = live.model.item_vocab_.indices(["i01"])[0]
    assert second.unavailable[column] and second.unavailable.sum() == 1
    assert second.mask(parse("price < 3")).sum() == 2
    assert second.mask(parse('new == "yes"'))[column]


def test_an_unknown_attribute_is_refused_with_its_column(live: LiveRecommender) -> None:
    with pytest.raises(ExpressionError, match="no item has an attribute 'prize'") as error:
        live.rank(live.query(["u1"]), 5, Overrides.parse(filter="tier == 1 or prize < 3"))
    assert error.value.column == 14


@pytest.mark.parametrize("text", ["x:1.5", '"a:b" == title:2', "price > 5 :0.5"])
def test_boost_factor_follows_the_last_colon_outside_quotes(text: str) -> None:
    (rule,) = RuleSet.from_request(boosts=[text])
    assert rule.boost is not None and rule.boost.factor == float(text.rsplit(":", 1)[1])


def test_selection_from_a_cut_list_is_exact_or_declined(live: LiveRecommender) -> None:
    """Whatever the rules, filter and boosts, an answer from a cut-off top list equals the
    one from the full score row; when it cannot be proven so, the list declines (None)."""
    rng = np.random.default_rng(1)
    catalog = live.catalog()
    filters = [None, "price < 30", "tier == 1", '"even" in categories', "price > 55"]
    boosts = [[], ["tier == 2:3"], ["price < 10:0.2"], ['"odd" in categories:1.5',
                                                        "tier == 0:2"]]
    answered = declined = 0
    for trial in range(200):
        scores = rng.normal(size=N_ITEMS).astype(np.float32)
        scores[rng.random(N_ITEMS) < 0.1] = -np.inf  # seen items
        overrides = Overrides.parse(filter=filters[trial % len(filters)],
                                    boosts=boosts[trial % len(boosts)],
                                    exclude=[f"i{rng.integers(N_ITEMS):02d}"])
        query = UserQuery(("u1",), context={"page": "home" if trial % 3 == 0 else "cart"})
        k = int(rng.integers(1, 8))
        exact = live.pipeline.select(TopList.of(scores), k, query, overrides, catalog)
        from_list = live.pipeline.select(TopList.of(scores, 15), k, query, overrides, catalog)
        assert exact is not None
        if from_list is None:
            declined += 1
            continue
        answered += 1
        assert from_list.item_ids == exact.item_ids
        assert from_list.scores == pytest.approx(exact.scores)
    assert answered > 50 and declined > 10  # both paths are exercised


def test_top_list_is_best_first_and_complete_when_nothing_was_cut() -> None:
    scores = np.array([0.5, -np.inf, 2.0, 1.0], dtype=np.float32)

    whole = TopList.of(scores, 10)
    cut = TopList.of(scores, 2)

    assert whole.columns.tolist() == [2, 3, 0] and whole.complete
    assert cut.columns.tolist() == [2, 3] and not cut.complete


def test_one_user_and_many_users_get_the_same_list(live: LiveRecommender) -> None:
    overrides = Overrides.parse(filter="price < 50", boosts=["tier == 0:1.5"], diversity=0.4)
    batch = live.recommend(["u3", "u4"], k=5, overrides=overrides)

    for user in ("u3", "u4"):
        ranked = live.rank(live.query([user]), 5, overrides)
        expected = batch[batch["user_id"] == user]
        assert ranked.item_ids == expected["item_id"].tolist()
        assert ranked.scores == pytest.approx(expected["score"].tolist())


def test_new_items_are_the_available_ones_the_model_lacks_kept_up_to_date(
        live: LiveRecommender, store: Store) -> None:
    from datetime import UTC, datetime

    assert live.catalog().new_items().empty
    store.items.upsert([Item(item_id="new-a", attributes={"price": 5.0},
                             created_at=datetime(2026, 1, 1, tzinfo=UTC)),
                        Item(item_id="new-b", attributes={"price": 500.0},
                             created_at=datetime(2026, 2, 1, tzinfo=UTC))])
    catalog = live.catalog()
    assert catalog.new_items()["item_id"].tolist() == ["new-b", "new-a"]  # newest first
    anyone = UserFacts("u1")
    cheap = RuleSet.from_request(filter="price < 100")
    assert catalog.new_candidates(cheap, anyone) == ["new-a"]
    assert catalog.new_candidates(RuleSet(), anyone, seen={"new-b"}) == ["new-a"]
    assert catalog.new_candidates(RuleSet(), anyone, exclude=["new-a"]) == ["new-b"]
    store.items.update("new-b", {"available": False})  # patched, not reloaded
    store.items.upsert([Item(item_id="new-c", created_at=datetime(2026, 3, 1, tzinfo=UTC)),
                        Item(item_id="i00", attributes={"price": 1.0})])
    assert live.catalog().new_items()["item_id"].tolist() == ["new-c", "new-a"]


def test_similar_items_run_the_rules_and_the_request_s_selection(
        live: LiveRecommender, store: Store) -> None:
    model = live.model.similar_items("i03", k=N_ITEMS)
    by_model = model["similar_item_id"].tolist()

    plain = live.similar_items("i03", k=5)
    odd = live.similar_items("i03", k=5, overrides=Overrides.parse(
        '"odd" in categories', exclude=[by_model[0]]))
    store.items.update(by_model[1], {"available": False})
    cart = live.similar_items(["i03", "i04", "unknown"], k=5)

    assert "i03" not in plain.item_ids and len(plain.item_ids) == 5
    similarity = dict(zip(model["similar_item_id"], model["score"], strict=True))
    for item, score in zip(plain.item_ids, plain.scores, strict=True):  # the recipe's boost
        boost = 1.2 if int(item[1:]) % 3 == 2 else 1.0
        assert score == pytest.approx(similarity[item] * boost, rel=1e-5)
    assert all(int(item[1:]) % 2 == 1 for item in odd.item_ids)
    assert by_model[0] not in odd.item_ids and len(odd.item_ids) == 5
    assert by_model[1] not in cart.item_ids  # unavailable now
    assert not {"i03", "i04"} & set(cart.item_ids) and len(cart.item_ids) == 5
    assert live.similar_items(["unknown"], k=5).item_ids == []


def test_trending_favours_growth_where_popular_favours_volume(
        live: LiveRecommender, store: Store) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 1, 10, tzinfo=UTC)
    steady = [Event(user_id=f"s{n}", item_id="i01", timestamp=now - timedelta(days=d))
              for n, d in enumerate([1, 2, 3, 4, 5, 8, 9, 10, 11, 12])]  # 5 and 5
    rising = [Event(user_id=f"r{n}", item_id="i02", timestamp=now - timedelta(hours=n + 1))
              for n in range(2)]  # 2 and 0
    store.events.add(steady + rising)

    popular = live.popular_items(5, now=now)
    trending = live.popular_items(5, now=now, trending=True)
    odd = live.popular_items(5, now=now, category="odd")

    assert popular.item_ids == ["i01", "i02"]
    assert popular.scores == pytest.approx([5.0, 2.0 * 1.2])  # the recipe boosts tier 2
    assert trending.item_ids == ["i02", "i01"]  # 3 / 1 beats 6 / 6
    assert odd.item_ids == ["i01"]  # i02 is "even"
    assert live.popular_items(5, now=now - timedelta(days=100)).item_ids == []
