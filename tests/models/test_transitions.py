"""Item transitions keep the shared contract, count what followed what, and read order."""

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from tailored.dataset import Dataset, UserQuery
from tailored.models import ItemTransitions, Recommender
from tailored.testing import RecommenderContract


class TestItemTransitions(RecommenderContract):
    def make_model(self) -> Recommender:
        return ItemTransitions(window=2)


def histories(rows: dict[str, list[str]]) -> Dataset:
    events = [(user, item, t) for user, items in rows.items() for t, item in enumerate(items)]
    return Dataset.from_frame(pd.DataFrame(events, columns=["user_id", "item_id", "timestamp"]))


def cycles(n_users: int = 30, n_items: int = 6, length: int = 12) -> Dataset:
    """Every user walks the items in the same cycle 0 -> 1 -> ... -> n-1 -> 0."""
    return histories({f"u{u}": [f"i{(u + t) % n_items}" for t in range(length)]
                      for u in range(n_users)})


def transitions(model: ItemTransitions) -> pd.DataFrame:
    ids = model.item_ids
    return pd.DataFrame(model.transitions_.toarray(), index=ids, columns=ids)


def test_each_later_event_in_the_window_counts_one_over_its_gap() -> None:
    data = histories({"a": ["x", "y", "z"], "b": ["x", "z"]})
    counts = transitions(ItemTransitions(window=2, conditional=False).fit(data))
    # a: x->y (gap 1), y->z (1), x->z (gap 2, 1/2); b: x->z (1)
    assert counts.loc["x", "y"] == pytest.approx(1.0)
    assert counts.loc["x", "z"] == pytest.approx(1.5)
    assert counts.loc["y", "z"] == pytest.approx(1.0)
    assert counts.loc["z"].sum() == 0 and counts.loc["y", "x"] == 0


def test_conditional_weights_of_each_item_sum_to_one() -> None:
    data = histories({"a": ["x", "y", "z"], "b": ["x", "z"]})
    counts = transitions(ItemTransitions(window=2).fit(data))
    assert counts.loc["x", "y"] == pytest.approx(1.0 / 2.5)
    assert counts.loc["x", "z"] == pytest.approx(1.5 / 2.5)
    np.testing.assert_allclose(counts.sum(axis=1).to_numpy(), [1.0, 1.0, 0.0], atol=1e-6)


def test_an_item_repeated_is_not_its_own_successor() -> None:
    counts = transitions(ItemTransitions(conditional=False).fit(histories({"a": ["x", "x", "y"]})))
    assert counts.loc["x", "x"] == 0 and counts.loc["x", "y"] == pytest.approx(1.5)


def test_only_the_strongest_successors_are_kept() -> None:
    data = histories({"a": ["x", "y"], "b": ["x", "y"], "c": ["x", "z"], "d": ["w", "z"]})
    counts = transitions(ItemTransitions(window=1, successors=1, conditional=False).fit(data))
    assert counts.loc["x", "y"] == 2 and counts.loc["x", "z"] == 0
    assert counts.loc["w", "z"] == 1


def test_the_order_of_a_history_decides_the_next_item() -> None:
    model = ItemTransitions().fit(cycles())
    query = UserQuery.from_histories({"at-2": ["i0", "i1", "i2"], "at-4": ["i2", "i3", "i4"]})
    recs = model.recommend(query, k=1, exclude_seen=False)
    assert recs["item_id"].tolist() == ["i3", "i5"]


def test_the_latest_items_weigh_most_and_only_the_recent_count() -> None:
    data = histories({"a": ["x", "y"], "b": ["x", "y"], "c": ["z", "w"]})
    query = UserQuery.from_histories({"u": ["x", "z"]})  # z is the latest
    decayed = ItemTransitions(recency_decay=0.5).fit(data).score(query, ["y", "w"])[0]
    assert decayed[1] > decayed[0] > 0
    latest_only = ItemTransitions(recent=1).fit(data).score(query, ["y", "w"])[0]
    assert latest_only[1] > 0 and latest_only[0] <= latest_only[1] / 2  # y by popularity alone


def test_items_the_history_leads_nowhere_to_follow_by_popularity() -> None:
    data = histories({"a": ["x", "y"], "b": ["p", "q"], "c": ["p", "q"], "d": ["q"]})
    scores = pd.Series(ItemTransitions().fit(data).score(
        UserQuery.from_histories({"u": ["x"]}))[0], index=["p", "q", "x", "y"])
    assert scores["y"] > scores["q"] > scores["p"] > 0


def test_the_explanation_names_the_item_that_led_there() -> None:
    data = histories({"a": ["x", "y"], "b": ["x", "y"], "c": ["z", "w"]})
    model = ItemTransitions().fit(data)
    query = UserQuery.from_histories({"u": ["z", "x"]})
    recs = model.explanations(query, model.recommend(query, k=2))
    reasons = dict(zip(recs["item_id"], recs["reason_items"], strict=True))
    assert reasons == {"y": ["x"], "w": ["z"]}


def test_a_window_of_zero_is_refused() -> None:
    with pytest.raises(ValidationError, match="window"):
        ItemTransitions(window=0)
