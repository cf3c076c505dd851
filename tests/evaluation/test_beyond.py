from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tailored.dataset import Dataset
from tailored.errors import InvalidDataError
from tailored.evaluation.beyond import (
    MISSING_GROUP,
    AveragePopularity,
    CosineDistance,
    ExposureGini,
    IntraListDiversity,
    ItemPopularity,
    JaccardDistance,
    Novelty,
    Personalization,
    beyond_accuracy_metrics,
    exposure_by_group,
    fairness_report,
    gini_coefficient,
    metric_by_group,
    popularity_tiers,
)

GENRES = {"toy": ["Animation", "Comedy"], "heat": ["Action", "Crime"],
          "fargo": ["Comedy", "Crime"], "alien": ["Horror", "Sci-Fi"]}

items_strategy = st.lists(st.sampled_from("abcdefgh"), min_size=0, max_size=6)


def _events() -> Dataset:
    # a: 4 users, b: 2, c: 1, d: 1 of 4 users
    return Dataset.from_frame(pd.DataFrame({
        "user_id": ["u1", "u2", "u3", "u4", "u1", "u2", "u3", "u4", "u1"],
        "item_id": ["a", "a", "a", "a", "b", "b", "c", "d", "a"]}))


# ---------------------------------------------------------------- distances and diversity


def test_jaccard_distance_by_hand() -> None:
    distance = JaccardDistance(GENRES)
    matrix = distance(["toy", "heat", "fargo"])
    # toy/heat share nothing; toy/fargo share Comedy of 3; heat/fargo share Crime of 3
    assert matrix == pytest.approx(np.array([[0, 1, 2 / 3], [1, 0, 2 / 3], [2 / 3, 2 / 3, 0]]))


def test_jaccard_distance_treats_unknown_items_as_uncategorised() -> None:
    distance = JaccardDistance(GENRES)
    assert distance(["toy", "nobody-knows"])[0, 1] == 1.0
    assert distance(["unknown-1", "unknown-2"])[0, 1] == 0.0  # both empty: equal sets


def test_jaccard_distance_from_items_table() -> None:
    items = pd.DataFrame({"item_id": ["x", "y", "z"],
                          "categories": [["A", "B"], ["B"], float("nan")]})
    distance = JaccardDistance.from_items(items)
    assert distance(["x", "y", "z"]).tolist() == [[0, 0.5, 1], [0.5, 0, 1], [1, 1, 0]]
    with pytest.raises(InvalidDataError, match=r"lacks column\(s\) \['genres'\]"):
        JaccardDistance.from_items(items, column="genres")


def test_cosine_distance_by_hand() -> None:
    distance = CosineDistance({"a": [1, 0], "b": [3, 4], "z": [0, 0]})
    matrix = distance(["a", "b", "z"])
    assert matrix[0, 1] == pytest.approx(1 - 3 / 5)
    assert matrix[0, 2] == matrix[1, 2] == 1.0  # a zero vector is unlike everything
    assert np.diag(matrix).tolist() == [0, 0, 0]


def test_cosine_distance_refuses_items_without_a_vector() -> None:
    with pytest.raises(InvalidDataError, match=r"no vector for item\(s\) \['q'\]"):
        CosineDistance({"a": [1.0, 0.0]})(["a", "q"])


def test_intra_list_diversity_by_categories() -> None:
    diversity = IntraListDiversity(JaccardDistance(GENRES), k=3)
    # pairs: toy-heat 1, toy-fargo 2/3, heat-fargo 2/3; "alien" is beyond k
    assert diversity.update(["toy", "heat", "fargo", "alien"]) == pytest.approx(7 / 9)
    assert diversity.update(["toy", "toy"]) == 0.0
    assert diversity.value() == pytest.approx(7 / 18)
    assert diversity.name == "diversity@3"


def test_intra_list_diversity_by_embeddings() -> None:
    vectors = {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [-1.0, 0.0]}
    diversity = IntraListDiversity(CosineDistance(vectors))
    assert diversity.update(["a", "b", "c"]) == pytest.approx((1 + 2 + 1) / 3)


def test_intra_list_diversity_of_a_one_item_list_has_no_value() -> None:
    diversity = IntraListDiversity(JaccardDistance(GENRES))
    assert math.isnan(diversity.update(["toy"]))
    assert math.isnan(diversity.value())
    diversity.update(["toy", "heat"])
    assert diversity.value() == 1.0
    assert len(diversity.values) == 2  # one value per user, in update order


@given(items_strategy)
def test_jaccard_diversity_lies_between_zero_and_one(items: list[str]) -> None:
    categories = {item: [item.upper(), "shared" if item < "e" else "other"]
                  for item in "abcdefgh"}
    value = IntraListDiversity(JaccardDistance(categories)).update(items)
    assert math.isnan(value) if len(items) < 2 else 0 <= value <= 1


# ---------------------------------------------------------------- popularity and novelty


def test_item_popularity_counts_distinct_users() -> None:
    popularity = ItemPopularity.from_dataset(_events())
    assert popularity.n_users == 4
    assert popularity.user_counts == {"a": 4, "b": 2, "c": 1, "d": 1}
    assert popularity.shares(["a", "b", "unseen"]).tolist() == [1.0, 0.5, 0.25]
    with pytest.raises(ValueError, match="n_users must be at least 1"):
        ItemPopularity({}, n_users=0)


def test_novelty_is_mean_self_information() -> None:
    novelty = Novelty(ItemPopularity.from_dataset(_events()), k=3)
    # -log2 of 1, 1/2 and 1/4
    assert novelty.update(["a", "b", "c", "d"]) == pytest.approx((0 + 1 + 2) / 3)
    assert novelty.update(["a"]) == 0.0
    assert math.isnan(novelty.update([]))
    assert novelty.value() == pytest.approx(0.5)


def test_average_popularity_is_mean_share_of_users() -> None:
    popularity = AveragePopularity(ItemPopularity.from_dataset(_events()), k=2)
    assert popularity.update(["a", "b", "c"]) == pytest.approx(0.75)
    assert popularity.update(["c", "d"]) == pytest.approx(0.25)
    assert popularity.value() == pytest.approx(0.5)
    assert popularity.name == "popularity@2"


def test_popularity_tiers_split_head_and_tail() -> None:
    tiers = popularity_tiers(ItemPopularity.from_dataset(_events()), head_fraction=0.5)
    assert tiers == {"a": "head", "b": "head", "c": "tail", "d": "tail"}
    with pytest.raises(ValueError, match="head_fraction"):
        popularity_tiers(ItemPopularity.from_dataset(_events()), head_fraction=1.0)


# ---------------------------------------------------------------- Gini and personalization


def test_gini_coefficient_by_hand() -> None:
    assert gini_coefficient([3, 3, 3]) == 0.0
    assert gini_coefficient([0, 0, 0, 0, 10]) == pytest.approx(0.8)
    # sum of |xi - xj| over ordered pairs / (2 n^2 mean) = (2 + 2) / (2 * 4 * 2)
    assert gini_coefficient([1, 3]) == pytest.approx(0.25)
    assert gini_coefficient([0, 0]) == 0.0
    with pytest.raises(ValueError, match="non-negative"):
        gini_coefficient([1, -1])


@given(st.lists(st.integers(0, 50), min_size=1, max_size=30))
def test_gini_coefficient_matches_the_mean_absolute_difference(counts: list[int]) -> None:
    values = np.asarray(counts, dtype=float)
    expected = (np.abs(values[:, None] - values[None, :]).sum() / (2 * len(values) ** 2
                                                                  * values.mean())
                if values.sum() else 0.0)
    assert gini_coefficient(values) == pytest.approx(expected, abs=1e-12)
    assert 0 <= gini_coefficient(values) < 1


def test_exposure_gini_counts_never_recommended_items_as_zero() -> None:
    gini = ExposureGini(n_items=5)
    assert math.isnan(gini.value())
    gini.update(["a", "b"])
    gini.update(["a", "b"])
    assert gini.value() == pytest.approx(gini_coefficient([2, 2, 0, 0, 0]))  # 0.6
    assert gini.value() == pytest.approx(0.6)
    everyone = ExposureGini(n_items=2)
    everyone.update(["a", "b"])
    assert everyone.value() == 0.0


def test_exposure_gini_refuses_more_items_than_the_catalog() -> None:
    gini = ExposureGini(n_items=1)
    gini.update(["a", "b"])
    with pytest.raises(InvalidDataError, match="catalog has n_items=1"):
        gini.value()


def test_personalization_by_hand() -> None:
    same = Personalization()
    for _ in range(3):
        same.update(["a", "b", "c"])
    assert same.value() == 0.0
    apart = Personalization()
    apart.update(["a", "b"])
    apart.update(["c", "d"])
    assert apart.value() == 1.0
    half = Personalization()
    half.update(["a", "b", "c"])
    half.update(["b", "c", "d"])  # 2 shared of 4
    assert half.value() == pytest.approx(0.5)


def test_personalization_leaves_out_empty_lists_and_needs_two() -> None:
    personalization = Personalization()
    personalization.update(["a"])
    personalization.update([])
    assert math.isnan(personalization.value())


def test_personalization_samples_pairs_when_there_are_many_users() -> None:
    rng = np.random.default_rng(0)
    lists = [list(rng.choice(list("abcdefghijklmnop"), size=5, replace=False))
             for _ in range(300)]
    exact = Personalization()  # 44,850 pairs, all taken
    sampled, again = (Personalization(max_pairs=4000, seed=1) for _ in range(2))
    for items in lists:
        for personalization in (exact, sampled, again):
            personalization.update(items)
    assert sampled.value() == again.value()
    assert sampled.value() == pytest.approx(exact.value(), abs=0.01)
    assert sampled.value() != exact.value()


@given(st.lists(items_strategy, min_size=2, max_size=8))
def test_personalization_lies_between_zero_and_one(lists: list[list[str]]) -> None:
    personalization = Personalization()
    for items in lists:
        personalization.update(items)
    value = personalization.value()
    assert math.isnan(value) if sum(bool(items) for items in lists) < 2 else 0 <= value <= 1


def test_beyond_accuracy_metrics_use_categories_when_the_data_has_them() -> None:
    items = pd.DataFrame({"item_id": ["a", "b", "c", "d"],
                          "categories": [["x"], ["x", "y"], ["z"], []]})
    data = Dataset.from_frame(_events().events, items=items)
    metrics = beyond_accuracy_metrics(data, k=2)
    assert [metric.name for metric in metrics] == [
        "novelty@2", "popularity@2", "diversity@2", "gini", "personalization"]
    for items_of_user in (["a", "b"], ["c", "d"]):
        for metric in metrics:
            metric.update(items_of_user)
    values = {metric.name: metric.value() for metric in metrics}
    assert values["diversity@2"] == pytest.approx((0.5 + 1) / 2)
    assert values["gini"] == 0.0
    assert values["personalization"] == 1.0
    assert "diversity@2" not in {m.name for m in beyond_accuracy_metrics(_events(), k=2)}


# ---------------------------------------------------------------- fairness


def test_metric_by_group_by_hand() -> None:
    values = {"u1": 0.5, "u2": 0.3, "u3": 0.1, "u4": 0.1, "u5": 0.0}
    groups = pd.Series({"u1": "F", "u2": "F", "u3": "M", "u4": "M"})
    table = metric_by_group(values, groups)
    assert table.index.tolist() == ["(missing)", "F", "M"]
    assert table["users"].tolist() == [1, 2, 2]
    assert table["mean"].tolist() == pytest.approx([0.0, 0.4, 0.1])
    assert table.attrs["overall"].mean == pytest.approx(0.2)
    assert table["relative_gap"].tolist() == pytest.approx([-1.0, 1.0, -0.5])
    assert (table["low"] <= table["mean"]).all()
    assert (table["mean"] <= table["high"]).all()
    assert table.loc["F", "low"] == pytest.approx(0.3)
    assert table.loc["F", "high"] == pytest.approx(0.5)


def test_metric_by_group_matches_user_ids_of_any_type() -> None:
    users = pd.DataFrame({"user_id": [1, 2], "gender": ["F", None]})
    table = metric_by_group({"1": 1.0, "2": 0.0}, users.set_index("user_id")["gender"])
    assert table["users"].to_dict() == {MISSING_GROUP: 1, "F": 1}


def test_metric_by_group_needs_values() -> None:
    with pytest.raises(ValueError, match="per_user_values is empty"):
        metric_by_group({}, {})


def test_exposure_by_group_by_hand() -> None:
    tiers = {"a": "head", "b": "tail", "c": "tail", "d": "tail"}
    table = exposure_by_group({"u1": ["a", "b", "zzz"], "u2": ["a", "a"]}, tiers,
                              train=_events())
    assert table.index.tolist() == ["(missing)", "head", "tail"]
    assert table["exposure"].tolist() == [1, 3, 1]
    assert table["exposure_share"].tolist() == pytest.approx([0.2, 0.6, 0.2])
    assert table["catalog_share"].tolist() == pytest.approx([0.0, 0.25, 0.75])
    # 5 of 9 training events are on "a"
    assert table["interaction_share"].tolist() == pytest.approx([0.0, 5 / 9, 4 / 9])
    assert table[["exposure_share", "catalog_share", "interaction_share"]].sum().tolist() == (
        pytest.approx([1.0, 1.0, 1.0]))
    assert "interaction_share" not in exposure_by_group([["a"]], tiers).columns


def test_fairness_report_flags_gaps_above_the_threshold_only() -> None:
    # F: 11 x 0.30 and 0.33; M: 11 x 0.255 and 0.22; each group is 9.1% off the overall
    values = {f"f{i}": 0.30 for i in range(12)} | {f"m{i}": 0.255 for i in range(12)}
    values |= {"f0": 0.33, "m0": 0.22}
    gender = {user: user[0].upper() for user in values}
    strict = fairness_report({"ndcg@10": values}, {"gender": gender}, threshold=0.05)
    assert not strict.passed
    assert strict.users["flagged"].tolist() == [True, True]
    assert strict.findings[0].startswith("ndcg@10 for gender=F: mean 0.3025")
    assert "9% above the overall 0.2773" in strict.findings[0]
    assert "the interval excludes the overall mean" in strict.findings[0]
    assert "gap(s) above 5%" in str(strict)

    lenient = fairness_report({"ndcg@10": values}, {"gender": gender}, threshold=0.10)
    assert lenient.passed
    assert lenient.users["flagged"].tolist() == [False, False]
    assert str(lenient) == (
        "fairness: no group differs from the overall figure by more than 10%")


def test_fairness_report_warns_about_small_groups() -> None:
    values = {"u1": 0.3, "u2": 0.3, "u3": 0.1}
    report = fairness_report({"ndcg@10": values}, {"age_band": {"u1": "18-24", "u2": "18-24",
                                                                "u3": "56+"}})
    assert len(report.findings) == 2
    assert "only 1 users (fewer than 10), too few to tell a gap from chance" in (
        report.findings[1])


def test_fairness_report_audits_exposure() -> None:
    exposure = exposure_by_group([["a", "a", "b"]], {"a": "head", "b": "tail", "c": "tail"},
                                 train=_events())
    report = fairness_report({}, {}, exposure=exposure, threshold=0.2)
    assert report.exposure is not None
    # groups: (missing) (item "d", in train only), head, tail
    assert report.exposure["flagged"].tolist() == [False, True, True]
    assert report.findings[1] == (
        "items in group 'tail' get 33.3% of recommendations against 66.7% of the catalog "
        "(50% below their share)")
    # interactions: head 5/9, tail 3/9 (as its exposure), "d" (no group) 1/9
    by_interactions = fairness_report({}, {}, exposure=exposure, threshold=0.1,
                                      exposure_baseline="interactions")
    assert by_interactions.findings == [
        "items in group '(missing)' get 0.0% of recommendations against 11.1% of the "
        "interactions (100% below their share)",
        "items in group 'head' get 66.7% of recommendations against 55.6% of the "
        "interactions (20% above their share)"]
    without_train = exposure_by_group([["a"]], {"a": "head"})
    with pytest.raises(InvalidDataError, match="pass train= to exposure_by_group"):
        fairness_report({}, {}, exposure=without_train, exposure_baseline="interactions")


def test_fairness_report_refuses_a_negative_threshold() -> None:
    with pytest.raises(ValueError, match="threshold must be a non-negative"):
        fairness_report({}, {}, threshold=-0.1)
