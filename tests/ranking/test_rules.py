"""Business rules: loading and checking, applying, the request's filter and boosts, and
the rules stage of a :class:`~tailored.pipeline.Pipeline`."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import tailored.ranking.rules as rules_module
from tailored.dataset import Dataset, UserQuery
from tailored.errors import InvalidDataError, NotFittedError
from tailored.expressions import Expression, ExpressionCostError, ExpressionError
from tailored.models import ALS, ItemKNN, Popular, Recommender, Segments
from tailored.models.item2vec import Item2Vec
from tailored.pipeline import Overrides, Pipeline, PipelineConfig, Recipe
from tailored.ranking import ItemTable, RuleSet, UserFacts
from tailored.ranking.rules import REQUEST_COST_BUDGET
from tailored.testing import checkerboard
from tailored.testing.data import group_of

# Users whose history leans to a group see that group's items first.
TASTE_RULES = """
[[rules]]
name = "leans to a"
when = 'recent(category="group-a") > recent(category="group-b")'
boost = { where = '"group-a" in categories', factor = 10 }

[[rules]]
name = "leans to b"
when = 'recent(category="group-b") > recent(category="group-a")'
boost = { where = '"group-b" in categories', factor = 10.0 }
"""

SHOP_RULES = """
[[rules]]
name = "berlin promo"
when = 'user.location == "Berlin"'
pin = ["B009", "no-such-item", "A009"]   # put these items first (if they exist)

[[rules]]
name = "cheap on mobile"
when = 'context.device == "mobile"'
exclude = { where = "price >= 25" }

[[rules]]
name = "recent buyers"
when = 'recent("purchase", days=7) >= 1'
bury = { where = 'item_id == "A000"' }
"""


@pytest.fixture(scope="module")
def data() -> Dataset:
    return checkerboard()


@pytest.fixture(scope="module")
def shop(data: Dataset) -> Pipeline:
    return Pipeline(Popular(), name="shop", rules=SHOP_RULES).fit(data)


def _lists(recs: pd.DataFrame) -> dict[str, list[str]]:
    lists = recs.groupby("user_id", sort=False)["item_id"].agg(list)
    return {str(user): list(items) for user, items in lists.items()}


def _score(recs: pd.DataFrame, user: str, item: str) -> float:
    """The score a list gives ``item`` for ``user`` (after the rules)."""
    row = recs[(recs["user_id"] == user) & (recs["item_id"] == item)]
    assert len(row) == 1, (user, item, recs)
    return float(row["score"].iloc[0])


def _located(data: Dataset, city: str, unseen: tuple[str, ...] = ("B009", "A009")) -> str:
    """A user of ``city`` who has none of ``unseen`` in their history."""
    users = data.users
    assert users is not None
    seen = data.events.groupby("user_id")["item_id"].agg(set)
    return next(str(user) for user in users.loc[users["location"] == city, "user_id"]
                if not seen[user] & set(unseen))


# ---- the rules stage keeps the pipeline's contract ----------------------------------------


class TestTasteRules:
    """Rules on popular, which alone ranks everyone alike, make the lists personal; the
    pipeline keeps what every recommender promises (the old contract, on ``run``)."""

    @staticmethod
    def make() -> Pipeline:
        return Pipeline(Popular(), name="taste", rules=TASTE_RULES)

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, data: Dataset) -> Pipeline:
        return cls.make().fit(data)

    def test_fit_returns_self(self, data: Dataset) -> None:
        pipeline = self.make()
        assert pipeline.fit(data) is pipeline and pipeline.is_fitted

    def test_unfitted_pipeline_raises(self) -> None:
        with pytest.raises(NotFittedError, match="fit"):
            self.make().run("a000")
        with pytest.raises(NotFittedError, match="fit"):
            Pipeline.of(Popular()).run("a000")

    def test_config_round_trips_through_json(self) -> None:
        config = self.make().config
        assert PipelineConfig.model_validate_json(config.model_dump_json()) == config
        assert RuleSet.from_spec(config.rules) == RuleSet.from_toml(TASTE_RULES)

    def test_unknown_parameter_is_refused(self) -> None:
        with pytest.raises(ValueError, match="no_such_parameter"):
            Pipeline(Popular(), no_such_parameter=1)

    def test_lists_are_sorted_and_ranked(self, fitted: Pipeline) -> None:
        recs = fitted.run(["a000", "b001"], k=5)
        assert list(recs.columns) == ["user_id", "item_id", "score", "rank"]
        for _, user_recs in recs.groupby("user_id"):
            assert len(user_recs) == 5
            assert user_recs["score"].is_monotonic_decreasing
            assert user_recs["rank"].tolist() == list(range(1, 6))
            assert user_recs["item_id"].is_unique

    def test_scores_have_one_column_per_item(self, fitted: Pipeline, data: Dataset) -> None:
        scores = fitted.scores(UserQuery.of(["a000", "nobody"]))
        assert scores.shape == (2, data.n_items)
        assert np.isfinite(scores[1]).all()  # nothing seen
        seen = data.item_vocab.indices(data.events.loc[data.events["user_id"] == "a000",
                                                       "item_id"])
        assert np.isneginf(scores[0, seen]).all()
        assert np.isfinite(np.delete(scores[0], seen)).all()

    def test_seen_items_are_never_returned(self, fitted: Pipeline, data: Dataset) -> None:
        recs = fitted.run(data.user_vocab.ids.tolist(), k=data.n_items)
        seen = set(zip(data.events["user_id"], data.events["item_id"], strict=True))
        assert not seen.intersection(zip(recs["user_id"], recs["item_id"], strict=True))

    def test_unknown_user_gets_the_popular_fallback(self, fitted: Pipeline,
                                                    data: Dataset) -> None:
        recs = fitted.run(["nobody"], k=3)
        assert len(recs) == 3 and np.isfinite(recs["score"]).all()
        # No history leans anywhere, so no rule applies: popular's own list.
        expected = Popular().fit(data).recommend("nobody", k=3)
        pd.testing.assert_frame_equal(recs, expected)

    def test_excluded_items_never_return(self, fitted: Pipeline, data: Dataset) -> None:
        excluded = data.item_vocab.ids[::2].tolist()
        recs = fitted.run(["a000", "b001", "nobody"], k=data.n_items,
                          overrides=Overrides(exclude=tuple(excluded)))
        assert not set(recs["item_id"]) & set(excluded)
        assert len(recs) > 0

    def test_a_filter_restricts_the_choice(self, fitted: Pipeline) -> None:
        only = Overrides.parse(filter='item_id == "B001" or item_id == "B002" or '
                                      'item_id == "nope"')
        recs = fitted.run(["a000", "nobody"], k=10, overrides=only)
        assert set(recs["item_id"]) <= {"B001", "B002"} and len(recs) > 0

    def test_batch_equals_one_by_one(self, fitted: Pipeline) -> None:
        users = ["a000", "b003", "nobody", "a007"]
        batch = fitted.run(users, k=4)
        single = pd.concat([fitted.run(user, k=4) for user in users], ignore_index=True)
        pd.testing.assert_frame_equal(batch, single)

    def test_save_and_load_give_identical_lists(self, fitted: Pipeline,
                                                tmp_path: Path) -> None:
        fitted.save(tmp_path / "pipeline")
        loaded = Pipeline.load(tmp_path / "pipeline")
        assert loaded.config == fitted.config and loaded.rules == fitted.rules
        users = ["a000", "b000", "nobody"]
        pd.testing.assert_frame_equal(loaded.run(users, k=5), fitted.run(users, k=5))
        query = UserQuery.from_histories({"fresh": ["A001", "A002"]})
        pd.testing.assert_frame_equal(loaded.run(query, k=5), fitted.run(query, k=5))

    def test_artifacts_hold_no_pickle(self, fitted: Pipeline, tmp_path: Path) -> None:
        directory = fitted.save(tmp_path / "pipeline")
        assert sorted(p.name for p in directory.iterdir()) == ["arrays.npz", "config.json",
                                                               "scorer"]
        for folder in (directory, directory / "scorer"):
            json.loads((folder / "config.json").read_text())
            with np.load(folder / "arrays.npz", allow_pickle=False) as arrays:
                for key in arrays.files:
                    assert arrays[key].dtype != object, key
            with zipfile.ZipFile(folder / "arrays.npz") as archive:
                assert all(name.endswith(".npy") for name in archive.namelist())

    def test_same_data_same_lists(self, data: Dataset) -> None:
        users = ["a000", "b000", "nobody"]
        pd.testing.assert_frame_equal(self.make().fit(data).run(users, k=5),
                                      self.make().fit(data).run(users, k=5))

    def test_fit_forgets_the_previous_fit(self, data: Dataset) -> None:
        other = checkerboard(n_users=10, n_items=8, seed=3)
        pipeline = self.make().fit(other).fit(data)
        users = data.user_vocab.ids.tolist()
        pd.testing.assert_frame_equal(pipeline.run(users, k=5),
                                      self.make().fit(data).run(users, k=5))

    def test_groups_get_their_own_items(self, fitted: Pipeline, data: Dataset) -> None:
        recs = fitted.run(data.user_vocab.ids.tolist(), k=3)
        same_group = recs["user_id"].map(group_of) == recs["item_id"].map(group_of)
        assert same_group.mean() >= 0.95
        # Popular alone ranks everyone alike, so the rules made the difference.
        alone = Pipeline.of(fitted.scorer).run(data.user_vocab.ids.tolist(), k=3)
        assert (alone["user_id"].map(group_of) == alone["item_id"].map(group_of)).mean() < 0.9

    def test_a_fresh_history_counts_without_retraining(self, fitted: Pipeline) -> None:
        query = UserQuery.from_histories({"new-a": ["A000", "A001", "A002"],
                                          "new-b": ["B000", "B001", "B002"]})
        recs = fitted.run(query, k=3)
        assert (recs["user_id"].str[-1] == recs["item_id"].map(group_of)).all()
        assert not set(recs["item_id"]) & {"A000", "A001", "A002", "B000", "B001", "B002"}


# ---- loading ----------------------------------------------------------------------------


def test_the_documented_toml_loads() -> None:
    rules = RuleSet.from_toml("""
[[rules]]
name = "berlin promo"
when = 'user.location == "Berlin"'
pin = ["promo-berlin"]
[[rules]]
name = "shoe lovers"
when = 'recent("view", "shoes", days=7) > 3'
boost = { where = 'category == "footwear"', factor = 1.5 }
[[rules]]
when = 'context.device == "mobile"'
bury = { where = "price > 500" }
[[rules]]
name = "in stock only"
filter = { where = "stock > 0" }
""")
    assert [rule.name for rule in rules] == ["berlin promo", "shoe lovers", "rule 3",
                                             "in stock only"]
    assert rules.rules[2].bury is not None and rules.rules[2].bury.factor == 0.5
    assert rules.rules[3].filter is not None and rules.rules[3].filter.where.text == "stock > 0"
    assert set(rules.item_attributes) == {"category", "price", "stock"}
    assert rules.user_attributes == {"location"}
    assert rules.history_days == 7.0


def test_json_file_and_spec_agree(tmp_path: Path) -> None:
    toml = RuleSet.from_toml(SHOP_RULES + '\n[[rules]]\nfilter = { where = "price > 0" }\n')
    (tmp_path / "rules.json").write_text(json.dumps({"rules": toml.to_spec()}))
    (tmp_path / "rules.toml").write_text(SHOP_RULES + '\n[[rules]]\nfilter = { where = '
                                                      '"price > 0" }\n')
    assert RuleSet.from_file(tmp_path / "rules.json") == toml
    assert RuleSet.from_file(tmp_path / "rules.toml") == toml
    assert RuleSet.from_json(json.dumps(toml.to_spec())) == toml
    assert RuleSet.from_spec(toml.to_spec()).to_spec() == toml.to_spec()
    assert toml.to_spec()[-1] == {"name": "rule 4", "filter": {"where": "price > 0"}}


@pytest.mark.parametrize(("spec", "message"), [
    ({"when": "user.age > ", "pin": ["x"]}, r"rule #1, when: unexpected end of expression "
                                            r"at column 12"),
    ({"name": "typo", "when": 'user.city = "x"', "pin": ["x"]},
     r"rule #1 \('typo'\), when: unexpected token '=' at column 11"),
    ({"name": "n", "when": 'location == "Berlin"', "pin": ["x"]},
     r"when: unknown name 'location' at column 1; conditions see user"),
    ({"when": "item.price > 3", "pin": ["x"]}, r"unknown name 'item.price'"),
    ({"when": "recent(user.kind) > 1", "pin": ["x"]}, r"recent\(\) takes a constant event "
                                                       r"at column 8"),
    ({"when": "recent(days=0) > 1", "pin": ["x"]}, r"must be a positive number at column 13"),
    ({"when": "recent(event=3) > 1", "pin": ["x"]}, r"recent\(event=...\) must be a string"),
    ({"when": "recent(day=3) > 1", "pin": ["x"]}, r"no parameter 'day'"),
    ({"boost": {"where": "recent() > 1", "factor": 2}}, r"boost.where: unknown function "
                                                        r"'recent'"),
    ({"boost": {"where": "user.kind.x.y == 1 and a.b > 1", "factor": 2}},
     r"unknown name 'a.b' at column 24"),
    ({"boost": {"where": "price > 1"}}, r"boost: needs a factor"),
    ({"boost": {"where": "price > 1", "factor": -1}}, r"boost.factor: must be a positive"),
    ({"boost": {"where": "price > 1", "factor": True}}, r"boost.factor: must be a positive"),
    ({"bury": {"where": "price > 1", "factor": 2}}, r"bury.factor: must be below 1"),
    ({"boost": {"where": "price > 1", "factr": 2}}, r"boost.factr: unknown key"),
    ({"exclude": {"where": "price > 1", "factor": 2}}, r"exclude.factor: unknown key"),
    ({"exclude": "price > 1"}, r"exclude: must be a table with 'where'"),
    ({"filter": {"where": "price > 1", "factor": 2}}, r"filter.factor: unknown key; filter "
                                                      r"has where"),
    ({"filter": "price > 1"}, r"filter: must be a table with 'where'"),
    ({"filter": {"where": "price >"}}, r"filter.where: unexpected end of expression"),
    ({"filter": {"where": "recent() > 1"}}, r"filter.where: unknown function 'recent'"),
    ({"boots": {}}, r"'boots': unknown key"),
    ({"name": "idle", "when": "true"}, r"rule #1 \('idle'\), actions: has none; give pin, "
                                       r"boost, bury, filter or exclude"),
    ({"pin": "A001"}, r"pin: must be a list of item ids"),
    ({"pin": ["x"], "name": ""}, r"name: must be non-empty"),
])
def test_invalid_rules_are_refused_at_load_time(spec: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidDataError, match=message):
        RuleSet.from_spec([spec])


def test_errors_give_the_rule_number_and_a_caret() -> None:
    with pytest.raises(InvalidDataError) as caught:
        RuleSet.from_spec([{"pin": ["x"]}, {"name": "second", "when": "user.a >> 1",
                                             "pin": ["y"]}])
    lines = str(caught.value).splitlines()
    assert lines[0] == "rule #2 ('second'), when: unexpected token '>' at column 9"
    assert lines[1:] == ["  user.a >> 1", "          ^"]


@pytest.mark.parametrize(("text", "message"), [
    ("[[rules]\nname = 1", "not valid TOML"),
    ("[[rule]]\npin = ['x']", r"unknown top-level key\(s\) \['rule'\]"),
])
def test_broken_documents_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidDataError, match=message):
        RuleSet.from_toml(text)


def test_files_are_named_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text("[{}]")
    with pytest.raises(InvalidDataError, match=r"rules.json: rule #1, actions: has none"):
        RuleSet.from_file(path)
    with pytest.raises(InvalidDataError, match=r"\.toml or \.json"):
        RuleSet.from_file(tmp_path / "rules.yaml")


def test_the_pipeline_checks_its_rules_and_scorer_when_built() -> None:
    with pytest.raises(ValueError, match=r"rule #1, when: unexpected end"):
        Pipeline(Popular(), rules=[{"when": "user.a ==", "pin": ["x"]}])
    with pytest.raises(ValueError, match=r"the rules are not valid TOML"):
        Pipeline(Popular(), rules="[[rules]")
    with pytest.raises(ValueError, match=r"rule #1, filter.factor: unknown key"):
        Pipeline(Popular(), rules=[{"filter": {"where": "price > 1", "factor": 2}}])
    with pytest.raises(TypeError, match="not both"):
        Pipeline(Popular(), PipelineConfig(), rules=[])
    # The scorer of a recipe is checked as the recipe is read.
    with pytest.raises(ValueError, match=r"unknown model 'nope'"):
        Recipe.of("nope")
    with pytest.raises(ValueError, match=r"(?s)factors.*greater than or equal to 1"):
        Recipe.of("als", factors=0)
    with pytest.raises(ValueError, match=r"rule #1, when: unexpected end"):
        Recipe.model_validate({"model": {"model": "als"},
                               "rules": [{"when": "user.a ==", "pin": ["x"]}]})


def test_toml_and_tables_give_the_same_config() -> None:
    from_toml = Pipeline(Popular(), rules=SHOP_RULES)
    from_tables = Pipeline(Popular(), rules=RuleSet.from_toml(SHOP_RULES).to_spec())
    assert from_toml.config == from_tables.config and from_toml.rules == from_tables.rules
    assert json.loads(from_toml.config.model_dump_json())["rules"][0]["name"] == "berlin promo"


def test_a_recipe_builds_a_pipeline_with_its_rules(data: Dataset) -> None:
    recipe = Recipe.model_validate({"name": "promo", "model": {"model": "popular"},
                                    "rules": RuleSet.from_toml(SHOP_RULES).to_spec()})
    pipeline = recipe.build()
    assert pipeline.name == "promo" and isinstance(pipeline.scorer, Popular)
    assert pipeline.rules == RuleSet.from_toml(SHOP_RULES)
    berliner = _located(data, "Berlin")
    assert pipeline.fit(data).run(berliner, k=2)["item_id"].tolist() == ["B009", "A009"]


# ---- applying ---------------------------------------------------------------------------


def _items(**columns: list[object]) -> ItemTable:
    ids = np.array(["a", "b", "c", "d"][:len(next(iter(columns.values())))])
    return ItemTable(ids, pd.DataFrame({"item_id": ids, **columns}))


def test_apply_scales_negative_scores_the_right_way() -> None:
    rules = RuleSet.from_spec([{"boost": {"where": "true", "factor": 2}}])
    scores = rules.apply(np.array([[-1.0, 0.0, 3.0]]), np.arange(3), [UserFacts("u")],
                         ItemTable(np.array(["a", "b", "c"])))
    np.testing.assert_allclose(scores, [[-0.5, 0.0, 6.0]])
    bury = RuleSet.from_spec([{"bury": {"where": "true", "factor": 0.5}}])
    scores = bury.apply(np.array([[-1.0, 0.0, 3.0]]), np.arange(3), [UserFacts("u")],
                        ItemTable(np.array(["a", "b", "c"])))
    np.testing.assert_allclose(scores, [[-2.0, 0.0, 1.5]])


def test_apply_pins_in_order_and_exclusion_beats_a_pin() -> None:
    rules = RuleSet.from_spec([
        {"pin": ["c", "zzz", "a"]},
        {"when": "user.id == 'ann'", "pin": ["b"], "exclude": {"where": 'item_id == "a"'}},
    ])
    scores = rules.apply(np.array([[5.0, 2.0, 1.0, 9.0]] * 2), np.arange(4),
                         [UserFacts("ann"), UserFacts("bob")],
                         ItemTable(np.array(["a", "b", "c", "d"])))
    assert np.argsort(-scores[0]).tolist()[:3] == [2, 1, 3] and scores[0, 0] == -np.inf
    assert np.argsort(-scores[1]).tolist() == [2, 0, 3, 1]


def test_item_expressions_may_read_the_user() -> None:
    rules = RuleSet.from_spec([{"exclude": {"where": "price > user.budget"}}])
    items = _items(price=[5.0, 50.0])
    scores = rules.apply(np.ones((2, 2)), np.arange(2),
                         [UserFacts("u", {"budget": 10}), UserFacts("v")], items)
    assert np.isinf(scores[0, 1]) and np.isfinite(scores[1]).all()  # no budget: null


def test_apply_reads_the_columns_the_scores_belong_to() -> None:
    """Scores of a cut-off list: column j of the scores is item ``columns[j]``."""
    rules = RuleSet.from_spec([{"boost": {"where": "price > 50", "factor": 3}},
                               {"pin": ["a", "b"]}])
    items = _items(price=[10.0, 90.0, 60.0, 20.0])
    scores = rules.apply(np.array([[4.0, 2.0, 1.0]]), np.array([3, 2, 1]),
                         [UserFacts("u")], items)
    # d (20) keeps 4, c (60) triples to 6; b is pinned on top; a is absent, so not pinned.
    assert scores[0, 0] == 4.0 and scores[0, 1] == 6.0
    assert scores[0, 2] > 6.0
    with pytest.raises(ValueError, match="scores are 1 x 3 but there are 1 users and 2"):
        rules.apply(np.ones((1, 3)), np.array([0, 1]), [UserFacts("u")], items)
    with pytest.raises(ValueError, match="there are 2 users"):
        rules.apply(np.ones((1, 4)), np.arange(4), [UserFacts("u"), UserFacts("v")], items)


def test_apply_leaves_the_given_scores_alone() -> None:
    rules = RuleSet.from_spec([{"exclude": {"where": "true"}}])
    scores = np.ones((1, 2))
    rules.apply(scores, np.arange(2), [UserFacts("u")], _items(price=[1.0, 2.0]))
    assert (scores == 1).all()


# ---- the filter action ----------------------------------------------------------------


def test_a_filter_keeps_only_the_matching_items() -> None:
    rules = RuleSet.from_spec([{"filter": {"where": "price < 50"}}])
    items = _items(price=[10.0, 90.0, None, 49.0])
    scores = rules.apply(np.array([[4.0, 3.0, 2.0, 1.0]]), np.arange(4), [UserFacts("u")],
                         items)
    # An item without a price does not match, so it may not be recommended either.
    assert scores.tolist() == [[4.0, -np.inf, -np.inf, 1.0]]


def test_a_filter_applies_when_its_condition_holds_and_beats_a_pin() -> None:
    rules = RuleSet.from_spec([
        {"pin": ["b"]},
        {"when": "user.vip", "filter": {"where": "price > user.budget"}},
    ])
    items = _items(price=[10.0, 90.0, 60.0])
    scores = rules.apply(np.array([[3.0, 2.0, 1.0]] * 2), np.arange(3),
                         [UserFacts("ann", {"vip": True, "budget": 80}), UserFacts("bob")],
                         items)
    # ann: only b (90 > 80) matches, and it is pinned; bob: no filter, b pinned first.
    assert np.isneginf(scores[0, [0, 2]]).all() and np.isfinite(scores[0, 1])
    assert np.argsort(-scores[1]).tolist() == [1, 0, 2]
    filtered_pin = RuleSet.from_spec([{"pin": ["b"]}, {"filter": {"where": "price < 50"}}])
    scores = filtered_pin.apply(np.array([[3.0, 2.0, 1.0]]), np.arange(3), [UserFacts("u")],
                                items)
    assert scores.tolist() == [[3.0, -np.inf, -np.inf]]


def test_a_pipeline_filter_rule_shows_only_matching_items(data: Dataset) -> None:
    cheap = Pipeline(Popular(), rules=[{"name": "cheap", "filter": {"where": "price < 15"}}]
                     ).fit(data)
    assert data.items is not None
    prices = dict(zip(data.items["item_id"], data.items["price"], strict=True))
    recs = cheap.run([*data.user_vocab.ids.tolist(), "nobody"], k=data.n_items)
    assert recs["item_id"].map(prices).max() < 15
    assert sorted(_lists(recs)["nobody"]) == ["A000", "A001", "A002", "A003", "A004"]
    # Some users have seen every cheap item but one: their lists are short, not padded.
    assert recs.groupby("user_id").size().min() < 5


# ---- a request's filter and boosts ------------------------------------------------------


def test_an_empty_request_makes_no_rules() -> None:
    assert len(RuleSet.from_request()) == 0
    assert len(RuleSet.from_request("", [])) == 0
    assert len(RuleSet.from_request("   ")) == 0


def test_a_request_filter_and_boosts_become_rules() -> None:
    rules = RuleSet.from_request("price < 100", ['"shoes" in categories:2',
                                                 "price > 50 : 0.25", 'item_id == "a:b":3'])
    assert [rule.name for rule in rules] == ["filter", "boost 1", "boost 2", "boost 3"]
    action = rules.rules[0].filter
    assert action is not None and action.where.text == "price < 100"
    boosts = [rule.boost for rule in rules.rules[1:]]
    assert [b.factor for b in boosts if b is not None] == [2.0, 0.25, 3.0]
    assert [b.where.text.strip() for b in boosts if b is not None] == [
        '"shoes" in categories', "price > 50", 'item_id == "a:b"']


def test_a_boost_scales_and_a_factor_below_one_buries() -> None:
    items = ItemTable(np.array(["a", "b", "c"]), pd.DataFrame(
        {"item_id": ["a", "b", "c"], "categories": [["shoes"], [], ["shoes"]],
         "price": [10.0, 90.0, 60.0]}))
    scores = np.array([[4.0, 3.0, -2.0]])
    boosted = RuleSet.from_request(boosts=['"shoes" in categories:3']).apply(
        scores, np.arange(3), [UserFacts("u")], items)
    np.testing.assert_allclose(boosted, [[12.0, 3.0, -2.0 / 3]])
    buried = RuleSet.from_request(boosts=["price > 50:0.5"]).apply(
        scores, np.arange(3), [UserFacts("u")], items)
    np.testing.assert_allclose(buried, [[4.0, 1.5, -4.0]])
    kept = RuleSet.from_request(filter='"shoes" in categories').apply(
        scores, np.arange(3), [UserFacts("u")], items)
    assert kept.tolist() == [[4.0, -np.inf, -2.0]]


@pytest.mark.parametrize(("filter", "boosts", "reason", "text", "column"), [
    (None, ["price > 1:abc"], "a boost factor must be a positive number, got 'abc'",
     "price > 1:abc", 11),
    (None, ["price > 1:0"], "must be a positive number, got '0'", "price > 1:0", 11),
    (None, ["price > 1:-2"], "must be a positive number, got '-2'", "price > 1:-2", 11),
    (None, ["price > 1:nan"], "must be a positive number, got 'nan'", "price > 1:nan", 11),
    (None, ["price > 1:inf"], "must be a positive number, got 'inf'", "price > 1:inf", 11),
    (None, ["price > 1:"], "must be a positive number, got ''", "price > 1:", 11),
    (None, ["price > 1"], "a boost needs a factor after a colon", "price > 1", 10),
    (None, ['"a:b" == item_id'], "a boost needs a factor after a colon", '"a:b" == item_id',
     17),
    (None, ["price >> 1:2"], "unexpected token '>'", "price >> 1:2", 8),
    (None, ["price > 1:2", "  price >> 1:2"], "unexpected token '>'", "  price >> 1:2", 10),
    (None, ["recent() > 1:2"], "unknown function 'recent'", "recent() > 1:2", 1),
    (None, ["colour.x.y == 1:2"], "unknown name 'colour.x.y'", "colour.x.y == 1:2", 1),
    ("price <", [], "unexpected end of expression", "price <", 8),
    ("price > 1 and user == 2", [], "unknown name 'user'", "price > 1 and user == 2", 15),
    ("price < " + "1" * 400, [], "number of 400 characters is too long",
     "price < " + "1" * 400, 9),
    (None, ["price < " + "1" * 5_000 + ":2"], "number of 5,000 characters is too long",
     "price < " + "1" * 5_000 + ":2", 9),
])
def test_a_bad_request_says_where(filter: str | None, boosts: list[str], reason: str,
                                  text: str, column: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        RuleSet.from_request(filter, boosts)
    assert reason in caught.value.reason, caught.value.reason
    assert caught.value.text == text and caught.value.column == column
    with pytest.raises(ExpressionError):  # a request's overrides parse the same way
        Overrides.parse(filter=filter, boosts=boosts)


def test_a_boost_error_keeps_its_hint() -> None:
    with pytest.raises(ExpressionError) as caught:
        RuleSet.from_request(boosts=["price < 1e999:2"])
    assert caught.value.text == "price < 1e999:2" and caught.value.column == 9
    assert caught.value.hint and caught.value.hint in str(caught.value)


def test_a_request_reading_an_unknown_attribute_is_refused(shop: Pipeline) -> None:
    with pytest.raises(ExpressionError, match="no item has an attribute 'colour'") as caught:
        shop.run("a000", k=3, overrides=Overrides.parse(filter='price < 3 or colour == "x"'))
    assert caught.value.column == 14
    with pytest.raises(ExpressionError, match="no item has an attribute 'stock'"):
        shop.run("a000", k=3, overrides=Overrides.parse(boosts=["item.stock > 0:2"]))


def test_request_rules_come_after_the_recipes(shop: Pipeline, data: Dataset) -> None:
    berliner = _located(data, "Berlin")
    assert shop.run(berliner, k=2)["item_id"].tolist() == ["B009", "A009"]
    # The request's filter beats the recipe's pin of B009; A009 stays pinned first.
    only_a = Overrides.parse(filter='"group-a" in categories')
    recs = shop.run(berliner, k=3, overrides=only_a)["item_id"].tolist()
    assert recs[0] == "A009" and {group_of(item) for item in recs} == {"a"}
    # A boost scales the score the scorer gave.
    plain = shop.run("nobody", k=20)
    boosted = shop.run("nobody", k=20, overrides=Overrides.parse(
        boosts=['item_id == "B000":4', 'item_id == "A001":0.5']))
    assert _score(boosted, "nobody", "B000") == pytest.approx(4 * _score(plain, "nobody",
                                                                         "B000"))
    assert _score(boosted, "nobody", "A001") == pytest.approx(0.5 * _score(plain, "nobody",
                                                                           "A001"))


def test_what_a_rule_set_may_lift() -> None:
    rules = RuleSet.from_spec([
        {"pin": ["x", "y"], "boost": {"where": "price > 1", "factor": 2}},
        {"boost": {"where": "price > 2", "factor": 3}, "bury": {"where": "true"}},
        {"pin": ["y", "z"], "filter": {"where": "price > 0"}}])
    assert rules.boost_ceiling == 6.0
    assert rules.pins == ("x", "y", "z")
    assert [e.text for e in rules.expressions()] == ["price > 1", "price > 2", "true",
                                                     "price > 0"]
    combined = rules + RuleSet.from_request(boosts=["price > 5:1.5"])
    assert combined.boost_ceiling == 9.0 and combined.rules[:3] == rules.rules


# ---- what a request may cost ------------------------------------------------------------


def _catalog(n_items: int) -> ItemTable:
    """``n_items`` items with the attributes the documented filters and boosts read."""
    ids = np.array([f"i{i:06d}" for i in range(n_items)])
    positions = np.arange(n_items)
    return ItemTable(ids, pd.DataFrame({
        "item_id": ids,
        "categories": [["shoes", "Sports"] if i % 2 else ["home"] for i in range(n_items)],
        "price": (positions % 300).astype(float), "tier": positions % 3,
        "stock": positions % 5, "category": np.where(positions % 2, "shoes", "hats"),
        "color": np.where(positions % 3, "red", "blue")}))


@pytest.fixture(scope="module")
def large_catalog() -> ItemTable:
    return _catalog(100_000)


def _costly(n_boosts: int) -> tuple[str, list[str]]:
    """A filter of 1,787 characters calling functions on every item, and boosts like it."""
    filter = " and ".join(["len(lower(item_id)) > 0"] * 64)
    boosts = [" and ".join([f"len(lower(item_id)) > {-number}"] * 64) + ":1.5"
              for number in range(1, n_boosts + 1)]
    return filter, boosts


#: The requests of the README and the tests, and the dearest expression of the language's
#: tests; each must fit the budget on a catalog of 100,000 items.
DOCUMENTED_REQUESTS = [
    ("price < 100", ['"Sports" in categories:1.5']),
    ('"Sports" in categories', ["price < 30:1.5"]),
    ('"home" in categories or price < 60', ["price < 30:2"]),
    ('"home" in categories', ['"shoes" in categories:1.5', "tier == 0:2"]),
    ("price < 100", ['"shoes" in categories:2', "price > 50 : 0.25", 'item_id == "a:b":3']),
    ('color == "red" and price < 200', ["item.stock > 0:2", "tier == 2:3", "price < 10:0.2"]),
    ("price < context.budget", ['item_id == "B000":4', 'item_id == "A001":0.5']),
    ('len(categories) == 1 and lower(category) == "shoes"', ['upper(category) == "HATS":2']),
]


@pytest.mark.parametrize(("filter", "boosts"), DOCUMENTED_REQUESTS)
def test_documented_requests_fit_the_budget_on_a_large_catalog(
        filter: str, boosts: list[str], large_catalog: ItemTable) -> None:
    rules = RuleSet.from_request(filter, boosts, large_catalog)
    assert 0 < rules.check_cost(large_catalog) <= REQUEST_COST_BUDGET


def test_a_costly_request_is_refused_before_anything_runs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    items = _catalog(10_000)

    def no_mask(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("an expression was evaluated")

    monkeypatch.setattr(ItemTable, "mask", no_mask)
    filter, boosts = _costly(20)
    rules = RuleSet.from_request(filter, boosts)  # without the catalog: refused by apply
    with pytest.raises(ExpressionCostError) as caught:
        rules.apply(np.ones((1, 10_000), np.float32), np.arange(10_000), [UserFacts("u")],
                    items)
    error = caught.value
    assert isinstance(error, InvalidDataError)  # the REST layer answers 422
    assert error.cost > 20 * REQUEST_COST_BUDGET and error.budget == REQUEST_COST_BUDGET
    message = str(error)
    for said in (f"about {error.cost:,.0f} per-row Python operations over 10,000 items",
                 f"budget of {REQUEST_COST_BUDGET:,.0f}", "the costliest is filter",
                 "call fewer functions", "fewer boosts"):
        assert said in message, said
    assert error.text == filter and error.column == 1


def test_with_the_catalog_a_costly_request_is_refused_as_soon_as_it_is_over(
        monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []
    parse = rules_module.parse

    def counted(text: str, *args: Any, **kwargs: Any) -> Expression:
        parsed.append(text)
        return parse(text, *args, **kwargs)

    monkeypatch.setattr(rules_module, "parse", counted)
    _, boosts = _costly(20)
    with pytest.raises(ExpressionCostError, match="the costliest is boost 1") as caught:
        RuleSet.from_request("price < 100", boosts, _catalog(10_000))
    assert parsed == ["price < 100", boosts[0].rsplit(":", 1)[0]]  # not the other 19 boosts
    assert caught.value.text == boosts[0].rsplit(":", 1)[0]


def test_the_budget_is_for_the_request_over_the_rows_it_runs_on() -> None:
    filter, boosts = _costly(2)
    # On a small catalog the same request is cheap enough, and runs.
    small = _catalog(300)
    rules = RuleSet.from_request(filter, boosts, small)
    assert rules.check_cost(small) < REQUEST_COST_BUDGET
    scores = rules.apply(np.ones((1, 300), np.float32), np.arange(300), [UserFacts("u")], small)
    np.testing.assert_allclose(scores, 1.5**2)
    # The recipe's rules are the operator's: not priced, however costly.
    items = _catalog(10_000)
    recipe = RuleSet.from_spec([{"name": "operator's", "filter": {"where": filter}}])
    request = RuleSet.from_request("price < 100", ['"Sports" in categories:2'])
    assert recipe.check_cost(items) == 0
    assert (recipe + request).check_cost(items) == request.check_cost(items) > 0


# ---- the rules stage of a pipeline ------------------------------------------------------


def test_berliners_see_the_promotion_first(shop: Pipeline, data: Dataset) -> None:
    berliner, parisian = _located(data, "Berlin"), _located(data, "Paris")
    by_user = _lists(shop.run([berliner, parisian], k=2))
    assert by_user[berliner] == ["B009", "A009"]
    assert by_user[parisian][:2] != ["B009", "A009"]


def test_a_new_profiled_user_gets_the_promotion(shop: Pipeline) -> None:
    query = UserQuery(("guest", "other"), profiles=pd.DataFrame(
        {"user_id": ["guest", "other"], "location": ["Berlin", None]}))
    by_user = _lists(shop.run(query, k=2))
    assert by_user["guest"] == ["B009", "A009"]
    assert "B009" not in by_user["other"][:1]


def test_a_profile_overrides_the_stored_attributes(shop: Pipeline, data: Dataset) -> None:
    parisian = _located(data, "Paris")
    query = UserQuery((parisian,), profiles=pd.DataFrame(
        {"user_id": [parisian], "location": ["Berlin"]}))
    assert shop.run(query, k=1)["item_id"].tolist() == ["B009"]
    assert shop.run(parisian, k=1)["item_id"].tolist() != ["B009"]


def test_context_rules_follow_the_query(shop: Pipeline, data: Dataset) -> None:
    assert data.items is not None
    prices = dict(zip(data.items["item_id"], data.items["price"], strict=True))
    users = tuple(data.user_vocab.ids.tolist())
    mobile = shop.run(UserQuery(users, context={"device": "mobile"}), k=20)
    assert mobile["item_id"].map(prices).max() < 25
    desktop = shop.run(UserQuery(users, context={"device": "desktop"}), k=20)
    assert desktop["item_id"].map(prices).max() >= 25


def test_recent_counts_only_the_window() -> None:
    now = pd.Timestamp("2026-01-10", tz="UTC")
    events = pd.DataFrame({
        "user_id": ["old", "new", "x"], "item_id": ["A001", "A001", "A000"],
        "event_type": ["purchase", "purchase", "view"],
        "timestamp": [now - pd.Timedelta(days=30), now - pd.Timedelta(days=1), now]})
    items = pd.DataFrame({"item_id": ["A000", "A001"], "price": [1.0, 2.0]})
    pipeline = Pipeline(Popular(), rules=SHOP_RULES).fit(Dataset.from_frame(events,
                                                                             items=items))
    a000 = pipeline.item_ids.tolist().index("A000")
    base = float(pipeline.scores(UserQuery.of(["nobody"]))[0, a000])  # before the rules
    assert base > 0
    recs = pipeline.run(["old", "new"], k=2)
    assert _score(recs, "old", "A000") == pytest.approx(base)        # a month ago: no bury
    assert _score(recs, "new", "A000") == pytest.approx(base * 0.5)  # yesterday: buried
    # A query's own events count, with "now" the latest of training and query events.
    query = UserQuery(("q", "r"), pd.DataFrame({
        "user_id": ["q", "r"], "item_id": ["A001", "A001"], "event_type": ["purchase"] * 2,
        "timestamp": [now - pd.Timedelta(days=2), now - pd.Timedelta(days=20)]}))
    recs = pipeline.run(query, k=2)
    assert _score(recs, "q", "A000") == pytest.approx(base * 0.5)
    assert _score(recs, "r", "A000") == pytest.approx(base)


def test_now_is_each_users_own_latest_event() -> None:
    day = pd.Timestamp("2026-01-01", tz="UTC")
    events = pd.DataFrame({"user_id": ["u", "v"], "item_id": ["A000", "A001"],
                           "timestamp": [day, day]})
    items = pd.DataFrame({"item_id": ["A000", "A001"], "price": [1.0, 2.0]})
    pipeline = Pipeline(Popular(), rules=SHOP_RULES).fit(Dataset.from_frame(events,
                                                                             items=items))
    base = float(pipeline.scores(UserQuery.of(["nobody"]))[0,
                                                           pipeline.item_ids.tolist().index("A000")])
    later = pd.Timestamp("2026-02-01", tz="UTC")
    purchases = pd.DataFrame({
        "user_id": ["q", "r"], "item_id": ["A001", "A001"], "event_type": ["purchase"] * 2,
        "timestamp": [later, later + pd.Timedelta(days=30)]})
    # Each bought on their own latest day, so both are buried, whoever else is asked.
    both = pipeline.run(UserQuery(("q", "r"), purchases), k=2)
    assert [_score(both, user, "A000") for user in ("q", "r")] == pytest.approx(
        [base * 0.5, base * 0.5])
    alone = pipeline.run(UserQuery(("q",), purchases[purchases["user_id"] == "q"]), k=2)
    assert _score(alone, "q", "A000") == pytest.approx(base * 0.5)


def test_users_without_history_get_rules_on_the_fallback(shop: Pipeline,
                                                         data: Dataset) -> None:
    # "x" bought only an unknown item, so has no history, but its purchase still counts.
    events = pd.DataFrame({"user_id": ["h", "x"], "item_id": ["A003", "no-such-item"],
                           "event_type": ["view", "purchase"]})
    profiles = pd.DataFrame({"user_id": ["h", "x", "guest"],
                             "location": ["Paris", "Paris", "Berlin"]})
    query = UserQuery(("h", "x", "guest", "nobody"), events, profiles=profiles)
    recs = shop.run(query, k=data.n_items)
    popular = Popular().fit(data)
    fallback = popular.recommend("nobody", k=data.n_items)
    assert _score(recs, "x", "A000") == pytest.approx(_score(fallback, "nobody", "A000") * 0.5)
    assert _lists(recs)["guest"][:2] == ["B009", "A009"]  # pinned
    nobody = recs[recs["user_id"] == "nobody"].reset_index(drop=True)
    pd.testing.assert_frame_equal(nobody, fallback)
    for user in query.user_ids:
        one = UserQuery((user,), events[events["user_id"] == user],
                        profiles=profiles[profiles["user_id"] == user])
        pd.testing.assert_frame_equal(
            shop.run(one, k=data.n_items),
            recs[recs["user_id"] == user].reset_index(drop=True))


def test_rules_on_a_scorer_that_reads_sequences(data: Dataset, tmp_path: Path) -> None:
    pipeline = Pipeline(Item2Vec(factors=8, epochs=20, min_count=1, sample=0.0), rules=[
        {"name": "no A001", "exclude": {"where": 'item_id == "A001"'}}]).fit(data)
    assert pipeline.scorer.needs_sequences
    loaded = Pipeline.load(pipeline.save(tmp_path / "item2vec"))
    fresh = UserQuery.from_histories({"new": ["B000", "B001"]})
    for users in (["a000", "nobody"], fresh):
        expected = pipeline.scorer.recommend(users, k=data.n_items, exclude=["A001"])
        got = pipeline.run(users, k=data.n_items)
        assert got["item_id"].tolist() == expected["item_id"].tolist()
        np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-6)
        pd.testing.assert_frame_equal(loaded.run(users, k=data.n_items), got)
    # The fresh history, not the training one, drives the list: B items first.
    assert group_of(pipeline.run(fresh, k=1)["item_id"].item()) == "b"


def test_rules_need_the_item_attributes_they_read() -> None:
    events = pd.DataFrame({"user_id": ["u"], "item_id": ["i"]})
    cheap = Pipeline(Popular(), rules=[{"name": "cheap",
                                        "boost": {"where": "price < 3", "factor": 2}}])
    with pytest.raises(InvalidDataError, match=r"rule 'cheap' reads item attribute 'price', "
                                               r"which no item has"):
        cheap.fit(Dataset.from_frame(events))
    fan = Pipeline(Popular(), rules=[{"name": "fan", "when": "recent(category='x') > 1",
                                      "pin": ["i"]}])
    with pytest.raises(InvalidDataError, match="rule 'fan' counts events by category"):
        fan.fit(Dataset.from_frame(events, items=pd.DataFrame({"item_id": ["i"]})))


def test_saved_rules_round_trip(shop: Pipeline, data: Dataset, tmp_path: Path) -> None:
    shop.save(tmp_path / "pipeline")
    meta = json.loads((tmp_path / "pipeline" / "config.json").read_text())
    assert meta["kind"] == "pipeline"
    assert [rule["name"] for rule in meta["pipeline"]["rules"]] == [
        "berlin promo", "cheap on mobile", "recent buyers"]
    loaded = Pipeline.load(tmp_path / "pipeline")
    assert loaded.rules == shop.rules and loaded.name == "shop"
    assert isinstance(loaded.scorer, Popular)
    query = UserQuery(("guest", "a001"), context={"device": "mobile"}, profiles=pd.DataFrame(
        {"user_id": ["guest"], "location": ["Berlin"]}))
    recs = loaded.run(query, k=5)
    pd.testing.assert_frame_equal(recs, shop.run(query, k=5))
    # B009 costs 29: on mobile it is excluded, which beats its pin; A009 is still pinned.
    assert _lists(recs)["guest"][0] == "A009"
    # The stored user attributes and training behaviour came back too.
    users = data.user_vocab.ids.tolist()
    pd.testing.assert_frame_equal(loaded.run(users, k=5), shop.run(users, k=5))


def test_a_bare_saved_model_loads_as_a_pipeline_without_stages(data: Dataset,
                                                               tmp_path: Path) -> None:
    als = ALS(factors=2, iterations=15, alpha=5.0).fit(data)
    users = ["a000", "b000", "nobody"]
    loaded = Pipeline.load(als.save(tmp_path / "als"))
    assert len(loaded.rules) == 0 and loaded.config.rerankers == []
    pd.testing.assert_frame_equal(loaded.run(users, k=5), als.recommend(users, k=5))
    pipeline = Pipeline(ALS(factors=2, iterations=15, alpha=5.0)).fit(data)
    with pytest.raises(ValueError, match=r"a pipeline artifact, not a model.*Pipeline\.load"):
        Recommender.load(pipeline.save(tmp_path / "pipeline"))


def test_a_pipeline_of_a_fitted_scorer_saves_and_loads(data: Dataset, tmp_path: Path) -> None:
    als = ALS(factors=2, iterations=15, alpha=5.0).fit(data)
    users = ["a000", "b000", "nobody"]
    loaded = Pipeline.load(Pipeline.of(als).save(tmp_path / "pipeline"))
    assert loaded.name == "als" and len(loaded.rules) == 0
    pd.testing.assert_frame_equal(loaded.run(users, k=5), als.recommend(users, k=5))


def test_rules_on_a_fitted_scorer_exclude_and_round_trip(data: Dataset,
                                                         tmp_path: Path) -> None:
    pipeline = Pipeline(ALS(factors=2, iterations=15, alpha=5.0), rules=[
        {"name": "no A001", "exclude": {"where": 'item_id == "A001"'}}]).fit(data)
    users = ["a000", "b000", "nobody"]
    expected = pipeline.scorer.recommend(users, k=data.n_items, exclude=["A001"])
    got = pipeline.run(users, k=data.n_items)
    assert "A001" not in set(got["item_id"])
    assert got["item_id"].tolist() == expected["item_id"].tolist()
    np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-6)
    loaded = Pipeline.load(pipeline.save(tmp_path / "pipeline"))
    pd.testing.assert_frame_equal(loaded.run(users, k=data.n_items), got)
    recs = pipeline.run(data.user_vocab.ids.tolist(), k=3)
    assert (recs["user_id"].map(group_of) == recs["item_id"].map(group_of)).all()


def test_without_rules_a_pipeline_is_its_scorer(data: Dataset) -> None:
    users = ["a000", "b001", "nobody"]
    plain = Pipeline(Popular()).fit(data)
    pd.testing.assert_frame_equal(plain.run(users, k=data.n_items),
                                  Popular().fit(data).recommend(users, k=data.n_items))
    knn = ItemKNN().fit(data)
    of = Pipeline.of(knn)
    assert of.name == knn.name and of.is_fitted
    query = UserQuery.from_histories({"fresh": ["B001", "B003"]})
    for asked in (users, query):
        pd.testing.assert_frame_equal(of.run(asked, k=5), knn.recommend(asked, k=5))
    np.testing.assert_allclose(of.scores(UserQuery.of(users))[2], knn.score(["nobody"])[0],
                               rtol=1e-6)


def test_rules_on_segments_serve_profiled_newcomers(data: Dataset) -> None:
    pipeline = Pipeline(Segments(n_segments=4, prior=5.0), rules=[
        {"name": "berlin", "when": 'user.location == "Berlin"', "pin": ["B009"]}]).fit(data)
    query = UserQuery(("newcomer",), profiles=pd.DataFrame(
        {"user_id": ["newcomer"], "taste": ["likes-a"], "location": ["Berlin"]}))
    recs = pipeline.run(query, k=4)["item_id"].tolist()
    assert recs[0] == "B009" and {group_of(item) for item in recs[1:]} == {"a"}


def test_a_pin_does_not_bring_back_a_seen_item(data: Dataset) -> None:
    seen = data.events.loc[data.events["user_id"] == "a000", "item_id"].tolist()
    pipeline = Pipeline(ItemKNN(), rules=[{"name": "promo", "pin": [seen[0], "B005"]}]
                        ).fit(data)
    recs = pipeline.run("a000", k=3)["item_id"].tolist()
    assert recs[0] == "B005" and seen[0] not in recs
