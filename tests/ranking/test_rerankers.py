"""Re-rankers, a stage of every pipeline: ``rerank`` applies its stages in order, a
pipeline with ``rerankers`` keeps the recommender contract, and online kinds are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tailored.dataset import Dataset, UserQuery
from tailored.errors import NotFittedError
from tailored.models import ItemKNN, Popular
from tailored.models.item2vec import Item2Vec
from tailored.pipeline import Overrides, Pipeline, PipelineConfig, Recipe
from tailored.ranking import ONLINE_RERANKERS, ItemTable, RerankerStage, item_popularity, rerank
from tailored.ranking.rerankers import catalog_prices, item_prices
from tailored.testing import checkerboard
from tailored.testing.data import group_of


@pytest.fixture(scope="module")
def data() -> Dataset:
    return checkerboard()


@pytest.fixture(scope="module")
def knn(data: Dataset) -> ItemKNN:
    return ItemKNN().fit(data)


@pytest.fixture(scope="module")
def items(data: Dataset, knn: ItemKNN) -> ItemTable:
    """The checkerboard's catalog: every item in one category, group-a or group-b."""
    return ItemTable.from_items(data.items, knn.item_ids)


def _groups(recs: pd.DataFrame) -> pd.Series:
    return recs.groupby("user_id", sort=False)["item_id"].agg(
        lambda ids: [group_of(item) for item in ids])


# ---- a pipeline with a re-ranker keeps the contract --------------------------------------


class TestNoveltyPipeline:
    """Item KNN's best 20 re-ranked for novelty: still every recommender's promises."""

    @staticmethod
    def make() -> Pipeline:
        return Pipeline(ItemKNN(), name="novel", rerankers=[{"novelty": 0.1}], pool=20)

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, data: Dataset) -> Pipeline:
        return cls.make().fit(data)

    def test_fit_returns_self(self, data: Dataset) -> None:
        pipeline = self.make()
        assert pipeline.fit(data) is pipeline

    def test_unfitted_pipeline_raises(self) -> None:
        with pytest.raises(NotFittedError, match="fit"):
            self.make().run("a000")

    def test_config_round_trips_through_json(self) -> None:
        config = self.make().config
        assert PipelineConfig.model_validate_json(config.model_dump_json()) == config
        assert config.rerankers == [RerankerStage(novelty=0.1)] and config.pool == 20

    def test_unknown_stage_parameters_are_refused(self) -> None:
        with pytest.raises(ValueError, match="no_such_parameter"):
            Pipeline(ItemKNN(), rerankers=[{"novelty": 0.1, "no_such_parameter": 1}])
        with pytest.raises(ValueError, match="novelty"):
            Pipeline(ItemKNN(), rerankers=[{"novelty": 2}])
        with pytest.raises(ValueError, match="pool"):
            Pipeline(ItemKNN(), pool=0)

    def test_lists_are_ranked_and_keep_the_scorers_scores(self, fitted: Pipeline) -> None:
        users = ["a000", "b001"]
        recs = fitted.run(users, k=5)
        assert list(recs.columns) == ["user_id", "item_id", "score", "rank"]
        scored = fitted.scorer.recommend(users, k=fitted.item_ids.size)
        relevance = dict(zip(zip(scored["user_id"], scored["item_id"], strict=True),
                             scored["score"], strict=True))
        for user, user_recs in recs.groupby("user_id"):
            assert user_recs["rank"].tolist() == list(range(1, 6))
            assert user_recs["item_id"].is_unique
            # A re-ranker changes the order, never the relevance.
            np.testing.assert_allclose(
                user_recs["score"], [relevance[user, item] for item in user_recs["item_id"]])

    def test_novelty_changes_some_lists(self, fitted: Pipeline, data: Dataset) -> None:
        users = data.user_vocab.ids.tolist()
        recs = fitted.run(users, k=5)
        plain = fitted.scorer.recommend(users, k=5)
        changed = [user for user in users if recs.loc[recs["user_id"] == user, "item_id"]
                   .tolist() != plain.loc[plain["user_id"] == user, "item_id"].tolist()]
        assert changed

    def test_seen_items_are_never_returned(self, fitted: Pipeline, data: Dataset) -> None:
        recs = fitted.run(data.user_vocab.ids.tolist(), k=data.n_items)
        seen = set(zip(data.events["user_id"], data.events["item_id"], strict=True))
        assert not seen.intersection(zip(recs["user_id"], recs["item_id"], strict=True))

    def test_unknown_user_gets_a_full_list(self, fitted: Pipeline) -> None:
        recs = fitted.run(["nobody"], k=3)
        assert len(recs) == 3 and np.isfinite(recs["score"]).all()

    def test_excluded_items_never_return(self, fitted: Pipeline, data: Dataset) -> None:
        excluded = tuple(data.item_vocab.ids[::2].tolist())
        recs = fitted.run(["a000", "b001", "nobody"], k=data.n_items,
                          overrides=Overrides(exclude=excluded))
        assert not set(recs["item_id"]) & set(excluded)
        assert len(recs) > 0

    def test_batch_equals_one_by_one(self, fitted: Pipeline) -> None:
        users = ["a000", "b003", "nobody", "a007"]
        batch = fitted.run(users, k=4)
        single = pd.concat([fitted.run(user, k=4) for user in users], ignore_index=True)
        pd.testing.assert_frame_equal(batch, single)

    def test_save_and_load_give_identical_lists(self, fitted: Pipeline,
                                                tmp_path: Path) -> None:
        loaded = Pipeline.load(fitted.save(tmp_path / "pipeline"))
        assert loaded.config == fitted.config
        users = ["a000", "b000", "nobody"]
        pd.testing.assert_frame_equal(loaded.run(users, k=5), fitted.run(users, k=5))
        query = UserQuery.from_histories({"fresh": ["A001", "A002"]})
        pd.testing.assert_frame_equal(loaded.run(query, k=5), fitted.run(query, k=5))

    def test_same_data_same_lists(self, data: Dataset) -> None:
        users = ["a000", "b000", "nobody"]
        pd.testing.assert_frame_equal(self.make().fit(data).run(users, k=5),
                                      self.make().fit(data).run(users, k=5))

    def test_groups_get_their_own_items(self, fitted: Pipeline, data: Dataset) -> None:
        recs = fitted.run(data.user_vocab.ids.tolist(), k=3)
        same_group = recs["user_id"].map(group_of) == recs["item_id"].map(group_of)
        assert same_group.mean() >= 0.95

    def test_a_fresh_history_counts_without_retraining(self, fitted: Pipeline) -> None:
        query = UserQuery.from_histories({"new-a": ["A000", "A001", "A002"],
                                          "new-b": ["B000", "B001", "B002"]})
        recs = fitted.run(query, k=3)
        assert (recs["user_id"].str[-1] == recs["item_id"].map(group_of)).all()
        assert not set(recs["item_id"]) & {"A000", "A001", "A002", "B000", "B001", "B002"}


# ---- rerank ------------------------------------------------------------------------------


def test_a_cap_per_category_keeps_one_item_of_each_group(knn: ItemKNN, items: ItemTable,
                                                         data: Dataset) -> None:
    users = data.user_vocab.ids.tolist()
    recs = knn.recommend(users, k=20)
    capped = rerank(recs, 2, [RerankerStage(max_per_category=1)], items, knn)
    assert list(capped.columns) == list(recs.columns)
    assert all(sorted(groups) == ["a", "b"] for groups in _groups(capped))
    # The cap is strict: with two categories there are never three items.
    assert rerank(recs, 3, [RerankerStage(max_per_category=1)], items, knn).groupby(
        "user_id").size().max() == 2
    # Each user's best item stays first; the other group's best follows.
    assert (capped.groupby("user_id", sort=False)["item_id"].first()
            == recs.groupby("user_id", sort=False)["item_id"].first()).all()


def test_without_stages_rerank_keeps_the_order(knn: ItemKNN, items: ItemTable) -> None:
    recs = knn.recommend(["a000", "b001"], k=10)
    expected = recs.groupby("user_id", sort=False).head(4).reset_index(drop=True)
    for stages in ([], [RerankerStage()], [RerankerStage(diversity=0.0, novelty=0.0)]):
        pd.testing.assert_frame_equal(rerank(recs, 4, stages, items, knn), expected)


def test_re_rankers_keep_the_scores_and_renumber_the_ranks(knn: ItemKNN,
                                                           items: ItemTable) -> None:
    recs = knn.recommend(["a000", "b001"], k=20)
    reranked = rerank(recs, 5, [RerankerStage(diversity=0.5)], items, knn)
    merged = reranked.merge(recs, on=["user_id", "item_id"], suffixes=("", "_before"))
    assert len(merged) == len(reranked) == 10
    np.testing.assert_array_equal(merged["score"], merged["score_before"])
    assert (reranked.groupby("user_id")["rank"].agg(list) == [[1, 2, 3, 4, 5]] * 2).all()
    # Diversity brings the other group into a list the scorer fills with its own.
    assert all(set(groups) == {"a", "b"} for groups in _groups(reranked))
    assert all(set(groups) == {"a"} or set(groups) == {"b"}
               for groups in _groups(recs.groupby("user_id").head(5)))


def test_earlier_stages_keep_the_pool_and_the_last_keeps_k(knn: ItemKNN,
                                                          items: ItemTable) -> None:
    recs = knn.recommend(["a000", "b001"], k=20)
    assert all(set(groups[:2]) != {"a", "b"} for groups in _groups(recs))
    # Had the first stage kept only k items (both of the user's own group), the cap
    # would leave one; it keeps the pool, so the last stage finds the other group too.
    stages = [RerankerStage(max_per_category=10), RerankerStage(max_per_category=1)]
    recs_2 = rerank(recs, 2, stages, items, knn)
    assert all(sorted(groups) == ["a", "b"] for groups in _groups(recs_2))


def test_a_request_knob_counts_when_the_recipe_has_two_stages(data: Dataset) -> None:
    users = data.user_vocab.ids.tolist()
    pipeline = Pipeline(ItemKNN(), rerankers=[{"max_per_category": 10},
                                              {"max_per_category": 10}]).fit(data)
    novel = pipeline.run(users, k=5, overrides=Overrides(novelty=1.0))
    assert not novel.equals(pipeline.run(users, k=5))


def test_novelty_lifts_the_least_popular_candidates(knn: ItemKNN, items: ItemTable,
                                                   data: Dataset) -> None:
    users = data.user_vocab.ids.tolist()
    recs = knn.recommend(users, k=20)
    popularity = item_popularity(knn)
    novel = rerank(recs, 3, [RerankerStage(novelty=1.0)], items, knn)
    plain = recs.groupby("user_id").head(3)
    assert novel["item_id"].map(popularity).mean() < plain["item_id"].map(popularity).mean()
    least = recs.assign(pop=recs["item_id"].map(popularity)).groupby("user_id")["pop"].min()
    first = novel.groupby("user_id")["item_id"].first().map(popularity)
    pd.testing.assert_series_equal(first, least, check_names=False)


def test_the_catalog_given_is_the_one_re_rankers_read(knn: ItemKNN) -> None:
    ids = knn.item_ids
    one_category = ItemTable(ids, pd.DataFrame({"item_id": ids,
                                                "categories": [["all"]] * len(ids)}))
    recs = knn.recommend(["a000", "b001"], k=20)
    capped = rerank(recs, 5, [RerankerStage(max_per_category=1)], one_category, knn)
    assert capped.groupby("user_id").size().tolist() == [1, 1]


# ---- revenue -------------------------------------------------------------------------------

# One user's pool: relevance min-max scales to 1, .8, .5, 0. With these prices, expected
# revenue (price x relevance, scaled by the largest, 40) is .25, 1, .375 and 0.
POOL = pd.DataFrame({"user_id": "u", "item_id": ["cheap", "pricey", "mid", "last"],
                     "score": np.array([1.0, 0.8, 0.5, 0.0], np.float32),
                     "rank": [1, 2, 3, 4]})
POOL_IDS = np.array(["cheap", "pricey", "mid", "last", "other"])


def _catalog(prices: list[object] | None) -> ItemTable:
    table = pd.DataFrame({"item_id": POOL_IDS, "categories": [[]] * len(POOL_IDS)})
    if prices is not None:
        table["price"] = prices
    return ItemTable(POOL_IDS, table)


def test_the_revenue_knob_at_0_is_the_identity(knn: ItemKNN, items: ItemTable,
                                               data: Dataset) -> None:
    assert RerankerStage(revenue=0.0).is_identity
    assert not RerankerStage(revenue=0.01).is_identity
    recs = knn.recommend(["a000", "b001"], k=10)
    pd.testing.assert_frame_equal(rerank(recs, 4, [RerankerStage(revenue=0.0)], items, knn),
                                  recs.groupby("user_id", sort=False).head(4)
                                  .reset_index(drop=True))
    users = ["a000", "b001", "nobody"]
    identity = Pipeline(ItemKNN(), rerankers=[{"revenue": 0.0}]).fit(data)
    assert identity.pool(4) == 4
    pd.testing.assert_frame_equal(identity.run(users, k=4), knn.recommend(users, k=4))


def test_full_revenue_moves_the_expensive_less_relevant_items_up_by_hand(
        knn: ItemKNN) -> None:
    catalog = _catalog([10.0, 50.0, 30.0, 100.0, 1.0])
    stage = [RerankerStage(revenue=1.0)]
    full = rerank(POOL, 4, stage, catalog, knn)
    assert full["item_id"].tolist() == ["pricey", "mid", "cheap", "last"]
    assert full["rank"].tolist() == [1, 2, 3, 4]
    # The scores stay the scorer's: the re-ranker moves items, it does not rescore them.
    assert full["score"].tolist() == pytest.approx([0.8, 0.5, 1.0, 0.0])
    # Half and half: cheap .625, pricey .9, mid .4375, last 0.
    half = rerank(POOL, 3, [RerankerStage(revenue=0.5)], catalog, knn)
    assert half["item_id"].tolist() == ["pricey", "cheap", "mid"]


@pytest.mark.parametrize("prices", [None, [None] * 5, ["n/a", "", None, True, -3.0]],
                         ids=["no-price-attribute", "all-missing", "not-positive-numbers"])
def test_a_pool_without_prices_keeps_its_order(knn: ItemKNN, prices: list[object] | None
                                               ) -> None:
    catalog = _catalog(prices)
    assert catalog_prices(catalog) == {}
    for revenue in (0.5, 1.0):
        kept = rerank(POOL, 4, [RerankerStage(revenue=revenue)], catalog, knn)
        pd.testing.assert_frame_equal(kept, POOL)


def test_an_item_without_a_price_brings_no_revenue(knn: ItemKNN) -> None:
    # mid has no price: cheap .25 (10 / 40), pricey 1, mid 0, last 0.
    catalog = _catalog([10.0, 50.0, None, 100.0, None])
    full = rerank(POOL, 4, [RerankerStage(revenue=1.0)], catalog, knn)
    assert full["item_id"].tolist() == ["pricey", "cheap", "mid", "last"]


def test_prices_come_from_a_price_column_or_the_stores_attributes() -> None:
    frame = pd.DataFrame({"item_id": ["a", "b", "c", "d", "e"],
                          "price": [19.99, None, "7.5", False, 0.0]})
    assert item_prices(frame) == {"a": 19.99, "c": 7.5}
    stored = pd.DataFrame({"item_id": ["a", "b", "c"],
                           "attributes": [{"price": 5}, {"colour": "red"}, {"price": 2.5}]})
    assert item_prices(stored) == {"a": 5.0, "c": 2.5}
    assert item_prices(None) == item_prices(pd.DataFrame({"item_id": ["a"]})) == {}
    table = ItemTable.from_items(stored, np.array(["c", "a", "new"]))
    assert catalog_prices(table) == {"c": 2.5, "a": 5.0}


def test_a_request_sets_the_revenue_knob(data: Dataset) -> None:
    assert Overrides(revenue=0.4).stages([]) == [RerankerStage(revenue=0.4)]
    assert Overrides.parse(revenue=0.4) == Overrides(revenue=0.4)
    recipe = [RerankerStage(revenue=0.2, novelty=0.1), RerankerStage(diversity=0.3)]
    assert Overrides(revenue=0.0).stages(recipe) == [RerankerStage(novelty=0.1),
                                                     RerankerStage(diversity=0.3)]
    assert Overrides(diversity=0.5).stages(recipe)[0] == RerankerStage(
        revenue=0.2, novelty=0.1, diversity=0.5)
    with pytest.raises(ValueError, match="revenue"):
        Overrides(revenue=1.5).stages([])
    # Checkerboard prices rise with the item id (A000 10, ..., B009 29), so revenue lifts
    # the later items of each group while the scores stay the scorer's.
    pipeline = Pipeline(ItemKNN()).fit(data)
    assert pipeline.pool(3, Overrides(revenue=0.5)) == 100
    users = data.user_vocab.ids.tolist()
    plain = pipeline.run(users, k=3)
    rich = pipeline.run(users, k=3, overrides=Overrides(revenue=1.0))
    prices = item_prices(data.items)
    assert rich["item_id"].map(prices).mean() > plain["item_id"].map(prices).mean() + 1
    scored = pipeline.scorer.recommend(users, k=pipeline.item_ids.size)
    merged = rich.merge(scored, on=["user_id", "item_id"], suffixes=("", "_scorer"))
    np.testing.assert_allclose(merged["score"], merged["score_scorer"])


# ---- re-rankers in a pipeline ------------------------------------------------------------


def test_a_pipeline_caps_each_category(data: Dataset) -> None:
    pipeline = Pipeline(ItemKNN(), rerankers=[{"max_per_category": 1}]).fit(data)
    users = data.user_vocab.ids.tolist()
    recs = pipeline.run(users, k=2)
    assert all(sorted(groups) == ["a", "b"] for groups in _groups(recs))
    assert pipeline.pool(2) == 100 and pipeline.pool(200) == 200
    # The pipeline's re-ranker reads the catalog it runs against.
    ids = pipeline.item_ids
    one_category = ItemTable(ids, pd.DataFrame({"item_id": ids,
                                                "categories": [["all"]] * len(ids)}))
    assert pipeline.run(users, k=2, catalog=one_category).groupby("user_id").size().max() == 1


def test_a_request_overrides_the_re_rankers(data: Dataset) -> None:
    users = ["a000", "b001", "nobody"]
    plain = Pipeline(ItemKNN()).fit(data)
    assert plain.pool(4) == 4  # nothing to re-rank: no more candidates than asked for
    capped = plain.run(users, k=4, overrides=Overrides(max_per_category=1))
    assert all(sorted(groups) == ["a", "b"] for groups in _groups(capped))
    assert plain.pool(4, Overrides(max_per_category=1)) == 100
    assert plain.pool(4, Overrides(max_per_category=1, pool=7)) == 7
    # A request's knob replaces the recipe's, and keeps the recipe's other knobs and stages.
    recipe = Pipeline(ItemKNN(), rerankers=[{"max_per_category": 1, "novelty": 0.2},
                                            {"diversity": 0.1}]).fit(data)
    stages = Overrides(max_per_category=10).stages(recipe.config.rerankers)
    assert stages == [RerankerStage(max_per_category=10, novelty=0.2),
                      RerankerStage(diversity=0.1)]
    assert Overrides().stages(recipe.config.rerankers) == recipe.config.rerankers
    assert Overrides(novelty=0.5).stages([]) == [RerankerStage(novelty=0.5)]
    loose = Pipeline(ItemKNN(), rerankers=[{"max_per_category": 1}]).fit(data)
    pd.testing.assert_frame_equal(
        loose.run(users, k=4, overrides=Overrides(max_per_category=10)),
        plain.run(users, k=4))


def test_re_rankers_on_a_scorer_that_reads_sequences(data: Dataset) -> None:
    plain = Pipeline(Item2Vec(epochs=3), rerankers=[]).fit(data)
    assert len(plain.run("a000", k=3)) == 3
    capped = Pipeline(Item2Vec(epochs=3), rerankers=[{"max_per_category": 1}]).fit(data)
    query = UserQuery.from_histories({"new": ["A000", "A001"]})
    for users in ("a000", query):
        recs = capped.run(users, k=3)
        assert sorted(group_of(item) for item in recs["item_id"]) == ["a", "b"]


def test_without_rerankers_the_lists_are_the_scorers(data: Dataset, knn: ItemKNN) -> None:
    users = ["a000", "b001", "nobody"]
    plain = Pipeline(ItemKNN(), rerankers=[]).fit(data)
    pd.testing.assert_frame_equal(plain.run(users, k=4), knn.recommend(users, k=4))
    identity = Pipeline(ItemKNN(), rerankers=[{"novelty": 0.0}]).fit(data)
    assert identity.pool(4) == 4
    pd.testing.assert_frame_equal(identity.run(users, k=4), knn.recommend(users, k=4))


def test_a_recipe_builds_its_re_rankers(data: Dataset) -> None:
    recipe = Recipe.model_validate({"name": "capped", "model": {"model": "item_knn"},
                                    "rerankers": [{"max_per_category": 1}], "pool": 30})
    pipeline = recipe.build()
    assert pipeline.name == "capped" and pipeline.config.pool == 30
    assert pipeline.config.rerankers == [RerankerStage(max_per_category=1)]
    recs = pipeline.fit(data).run(["a000", "b001"], k=2)
    assert all(sorted(groups) == ["a", "b"] for groups in _groups(recs))
    assert Recipe.of("item_knn").build().config.rerankers == []


@pytest.mark.parametrize("kind", [*ONLINE_RERANKERS, "LinUCB", "Explore"])
def test_online_rerankers_are_refused_with_a_pointer(kind: str) -> None:
    pointer = r"re-ranker .* learns online .* applied by the service.*`explore`"
    with pytest.raises(ValueError, match=pointer):
        Pipeline(Popular(), rerankers=[{"kind": kind}])
    with pytest.raises(ValueError, match=pointer):
        RerankerStage.model_validate({"kind": kind})
    with pytest.raises(ValueError, match="learns online"):
        Recipe.model_validate({"model": {"model": "popular"}, "rerankers": [{"kind": kind}]})


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="diversify"):
        Pipeline(Popular(), rerankers=[{"kind": "shuffle"}])
