"""Business rules: loading and checking, applying, and the ``rules`` model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tailored.dataset import Dataset, UserQuery
from tailored.errors import InvalidDataError
from tailored.models import ALS, Popular, Recommender
from tailored.models.item2vec import Item2Vec
from tailored.models.rules import RuleBased, RuleSet, UserFacts
from tailored.testing import RecommenderContract, checkerboard
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


class TestRuleBased(RecommenderContract):
    def make_model(self) -> Recommender:
        return RuleBased(rules=TASTE_RULES)  # on popular, which alone is not personal


@pytest.fixture(scope="module")
def data() -> Dataset:
    return checkerboard()


@pytest.fixture(scope="module")
def shop(data: Dataset) -> RuleBased:
    return RuleBased(rules=SHOP_RULES).fit(data)


def _berliner(data: Dataset, city: str = "Berlin") -> str:
    users = data.users
    assert users is not None
    return str(users.loc[users["location"] == city, "user_id"].iloc[0])


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
""")
    assert [rule.name for rule in rules] == ["berlin promo", "shoe lovers", "rule 3"]
    assert rules.rules[2].bury is not None and rules.rules[2].bury.factor == 0.5
    assert set(rules.item_attributes) == {"category", "price"}
    assert rules.user_attributes == {"location"}
    assert rules.history_days == 7.0


def test_json_file_and_spec_agree(tmp_path: Path) -> None:
    toml = RuleSet.from_toml(SHOP_RULES)
    (tmp_path / "rules.json").write_text(json.dumps({"rules": toml.to_spec()}))
    (tmp_path / "rules.toml").write_text(SHOP_RULES)
    assert RuleSet.from_file(tmp_path / "rules.json") == toml
    assert RuleSet.from_file(tmp_path / "rules.toml") == toml
    assert RuleSet.from_json(json.dumps(toml.to_spec())) == toml
    assert RuleSet.from_spec(toml.to_spec()).to_spec() == toml.to_spec()


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
    ({"boots": {}}, r"'boots': unknown key"),
    ({"name": "idle", "when": "true"}, r"rule #1 \('idle'\), actions: has none"),
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


def test_the_model_checks_its_rules_and_base_when_built() -> None:
    with pytest.raises(ValueError, match=r"rules: rule #1, when: unexpected end"):
        RuleBased(rules=[{"when": "user.a ==", "pin": ["x"]}])
    with pytest.raises(ValueError, match=r"rules: the rules are not valid TOML"):
        RuleBased(rules="[[rules]")
    with pytest.raises(ValueError, match=r"base: unknown model 'nope'"):
        RuleBased(base="nope")
    with pytest.raises(ValueError, match=r"base: 'rules' cannot be its own base"):
        RuleBased(base="rules")
    with pytest.raises(ValueError, match=r"(?s)base_params for 'als'.*factors"):
        RuleBased(base="als", base_params={"factors": 0})


def test_toml_and_tables_give_the_same_config() -> None:
    from_toml = RuleBased(rules=SHOP_RULES)
    from_tables = RuleBased(rules=RuleSet.from_toml(SHOP_RULES).to_spec())
    assert from_toml.config == from_tables.config
    assert json.loads(from_toml.config.model_dump_json())["rules"][0]["name"] == "berlin promo"


# ---- applying ---------------------------------------------------------------------------


def test_apply_scales_negative_scores_the_right_way() -> None:
    rules = RuleSet.from_spec([{"boost": {"where": "true", "factor": 2}}])
    scores = rules.apply(np.array([[-1.0, 0.0, 3.0]]), ["a", "b", "c"], [UserFacts("u")])
    np.testing.assert_allclose(scores, [[-0.5, 0.0, 6.0]])


def test_apply_pins_in_order_and_exclusion_beats_a_pin() -> None:
    rules = RuleSet.from_spec([
        {"pin": ["c", "zzz", "a"]},
        {"when": "user.id == 'ann'", "pin": ["b"], "exclude": {"where": 'item_id == "a"'}},
    ])
    scores = rules.apply(np.array([[5.0, 2.0, 1.0, 9.0]] * 2), ["a", "b", "c", "d"],
                         [UserFacts("ann"), UserFacts("bob")])
    assert np.argsort(-scores[0]).tolist()[:3] == [2, 1, 3] and scores[0, 0] == -np.inf
    assert np.argsort(-scores[1]).tolist() == [2, 0, 3, 1]


def test_item_expressions_may_read_the_user() -> None:
    rules = RuleSet.from_spec([{"exclude": {"where": "price > user.budget"}}])
    items = pd.DataFrame({"price": [5.0, 50.0]})
    scores = rules.apply(np.ones((2, 2)), ["a", "b"],
                         [UserFacts("u", {"budget": 10}), UserFacts("v")], items)
    assert np.isinf(scores[0, 1]) and np.isfinite(scores[1]).all()  # no budget: null


# ---- the model --------------------------------------------------------------------------


def test_berliners_see_the_promotion_first(shop: RuleBased, data: Dataset) -> None:
    berliner, parisian = _berliner(data), _berliner(data, "Paris")
    first = shop.recommend([berliner, parisian], k=2, exclude_seen=False)
    by_user = first.groupby("user_id")["item_id"].agg(list)
    assert by_user[berliner] == ["B009", "A009"]
    assert by_user[parisian][:2] != ["B009", "A009"]


def test_a_new_profiled_user_gets_the_promotion(shop: RuleBased) -> None:
    query = UserQuery(("guest", "other"), profiles=pd.DataFrame(
        {"user_id": ["guest", "other"], "location": ["Berlin", None]}))
    recs = shop.recommend(query, k=2)
    assert recs.loc[recs["user_id"] == "guest", "item_id"].tolist() == ["B009", "A009"]
    assert "B009" not in recs.loc[recs["user_id"] == "other", "item_id"].tolist()[:1]


def test_a_profile_overrides_the_stored_attributes(shop: RuleBased, data: Dataset) -> None:
    parisian = _berliner(data, "Paris")
    query = UserQuery((parisian,), profiles=pd.DataFrame(
        {"user_id": [parisian], "location": ["Berlin"]}))
    assert shop.recommend(query, k=1, exclude_seen=False)["item_id"].tolist() == ["B009"]


def test_context_rules_follow_the_query(shop: RuleBased, data: Dataset) -> None:
    assert data.items is not None
    prices = dict(zip(data.items["item_id"], data.items["price"], strict=True))
    users = data.user_vocab.ids.tolist()
    mobile = shop.recommend(UserQuery(tuple(users), context={"device": "mobile"}), k=20)
    assert mobile["item_id"].map(prices).max() < 25
    desktop = shop.recommend(UserQuery(tuple(users), context={"device": "desktop"}), k=20)
    assert desktop["item_id"].map(prices).max() >= 25


def test_recent_counts_only_the_window() -> None:
    now = pd.Timestamp("2026-01-10", tz="UTC")
    events = pd.DataFrame({
        "user_id": ["old", "new", "x"], "item_id": ["A000", "A000", "A001"],
        "event_type": ["purchase", "purchase", "view"],
        "timestamp": [now - pd.Timedelta(days=30), now - pd.Timedelta(days=1), now]})
    items = pd.DataFrame({"item_id": ["A000", "A001"], "price": [1.0, 2.0]})
    model = RuleBased(rules=SHOP_RULES).fit(Dataset.from_frame(events, items=items))
    assert model.score(["old"])[0, 0] == pytest.approx(2.0)   # bought a month ago: no bury
    assert model.score(["new"])[0, 0] == pytest.approx(1.0)   # bought yesterday: buried
    # A query's own events count, with "now" the latest of training and query events.
    query = UserQuery(("q", "r"), pd.DataFrame({
        "user_id": ["q", "r"], "item_id": ["A001", "A001"], "event_type": ["purchase"] * 2,
        "timestamp": [now - pd.Timedelta(days=2), now - pd.Timedelta(days=20)]}))
    np.testing.assert_allclose(model.score(query)[:, 0], [1.0, 2.0])


def test_now_is_each_users_own_latest_event() -> None:
    events = pd.DataFrame({"user_id": ["u"], "item_id": ["A000"],
                           "timestamp": [pd.Timestamp("2026-01-01", tz="UTC")]})
    items = pd.DataFrame({"item_id": ["A000"], "price": [1.0]})
    model = RuleBased(rules=SHOP_RULES).fit(Dataset.from_frame(events, items=items))
    day = pd.Timestamp("2026-02-01", tz="UTC")
    purchases = pd.DataFrame({
        "user_id": ["q", "r"], "item_id": ["A000", "A000"], "event_type": ["purchase"] * 2,
        "timestamp": [day, day + pd.Timedelta(days=30)]})
    # Each bought on their own latest day, so both are buried, whoever else is asked.
    both = model.score(UserQuery(("q", "r"), purchases))
    np.testing.assert_allclose(both[:, 0], [0.5, 0.5])
    alone = model.score(UserQuery(("q",), purchases[purchases["user_id"] == "q"]))
    np.testing.assert_allclose(alone[:, 0], [0.5])


def test_users_without_history_get_rules_on_the_fallback(shop: RuleBased) -> None:
    # "x" bought only an unknown item, so has no history, but its purchase still counts.
    events = pd.DataFrame({"user_id": ["h", "x"], "item_id": ["A003", "no-such-item"],
                           "event_type": ["view", "purchase"]})
    profiles = pd.DataFrame({"user_id": ["h", "x", "guest"],
                             "location": ["Paris", "Paris", "Berlin"]})
    query = UserQuery(("h", "x", "guest", "nobody"), events, profiles=profiles)
    scores = shop.score(query)
    popular = Popular().fit(checkerboard()).score(["nobody"])[0]
    a000 = shop.item_vocab_.index("A000")
    assert scores[1, a000] == pytest.approx(popular[a000] * 0.5)  # buried
    assert np.argmax(scores[2]) == shop.item_vocab_.index("B009")  # pinned
    np.testing.assert_array_equal(scores[3], popular)
    for row, user in enumerate(query.user_ids):
        one = UserQuery((user,), events[events["user_id"] == user],
                        profiles=profiles[profiles["user_id"] == user])
        np.testing.assert_array_equal(shop.score(one)[0], scores[row])


def test_rules_on_a_model_that_reads_sequences(data: Dataset) -> None:
    item2vec = Item2Vec(factors=8, epochs=20, min_count=1, sample=0.0).fit(data)
    wrapped = RuleBased.wrap(item2vec, [{"name": "no A001", "exclude": {
        "where": 'item_id == "A001"'}}], data)
    fresh = UserQuery.from_histories({"new": ["B000", "B001"]})
    for users in (["a000", "nobody"], fresh):
        expected = item2vec.score(users)
        expected[:, data.item_vocab.index("A001")] = -np.inf
        np.testing.assert_allclose(wrapped.score(users), expected, rtol=1e-6)


def test_rules_need_the_item_attributes_they_read() -> None:
    events = pd.DataFrame({"user_id": ["u"], "item_id": ["i"]})
    model = RuleBased(rules=[{"name": "cheap", "boost": {"where": "price < 3", "factor": 2}}])
    with pytest.raises(InvalidDataError, match=r"rule 'cheap' reads item attribute 'price', "
                                               r"which the data lacks \(no item table\)"):
        model.fit(Dataset.from_frame(events))
    taste = RuleBased(rules=[{"name": "fan", "when": "recent(category='x') > 1",
                              "pin": ["i"]}])
    with pytest.raises(InvalidDataError, match="rule 'fan' counts events by category"):
        taste.fit(Dataset.from_frame(events, items=pd.DataFrame({"item_id": ["i"]})))


def test_saved_rules_round_trip(shop: RuleBased, tmp_path: Path) -> None:
    shop.save(tmp_path / "model")
    meta = json.loads((tmp_path / "model" / "config.json").read_text())
    assert [rule["name"] for rule in meta["config"]["rules"]] == [
        "berlin promo", "cheap on mobile", "recent buyers"]
    loaded = Recommender.load(tmp_path / "model")
    assert isinstance(loaded, RuleBased) and loaded.rule_set == shop.rule_set
    query = UserQuery(("guest", "a001"), context={"device": "mobile"}, profiles=pd.DataFrame(
        {"user_id": ["guest"], "location": ["Berlin"]}))
    pd.testing.assert_frame_equal(loaded.recommend(query, k=5), shop.recommend(query, k=5))


def test_rules_wrap_a_fitted_model(data: Dataset, tmp_path: Path) -> None:
    als = ALS(factors=2, iterations=15, alpha=5.0).fit(data)
    wrapped = RuleBased.wrap(als, [{"name": "no A001", "exclude": {
        "where": 'item_id == "A001"'}}], data)
    assert wrapped.config.base == "als" and wrapped.base_ is als
    users = ["a000", "b000", "nobody"]
    expected = als.score(users)
    expected[:, data.item_vocab.index("A001")] = -np.inf
    np.testing.assert_allclose(wrapped.score(users), expected, rtol=1e-6)
    loaded = Recommender.load(wrapped.save(tmp_path / "wrapped"))
    np.testing.assert_allclose(loaded.score(users), expected, rtol=1e-5)
    recs = wrapped.recommend(data.user_vocab.ids.tolist(), k=3)
    assert (recs["user_id"].map(group_of) == recs["item_id"].map(group_of)).all()
    with pytest.raises(InvalidDataError, match="not fitted on this data"):
        RuleBased.wrap(als, [], checkerboard(n_users=10, seed=4))


def test_without_rules_the_base_model_is_unchanged(data: Dataset) -> None:
    plain = RuleBased().fit(data)
    np.testing.assert_array_equal(plain.score(["a000", "nobody"]),
                                  Popular().fit(data).score(["a000", "nobody"]))


def test_rules_on_segments_serve_profiled_newcomers(data: Dataset) -> None:
    model = RuleBased(base="segments", base_params={"n_segments": 4, "prior": 5.0},
                      rules=[{"name": "berlin", "when": 'user.location == "Berlin"',
                              "pin": ["B009"]}]).fit(data)
    query = UserQuery(("newcomer",), profiles=pd.DataFrame(
        {"user_id": ["newcomer"], "taste": ["likes-a"], "location": ["Berlin"]}))
    recs = model.recommend(query, k=4)["item_id"].tolist()
    assert recs[0] == "B009" and {group_of(item) for item in recs[1:]} == {"a"}
