"""Impressions (what was shown) weigh 0: never interest, never "seen", kept apart."""

from __future__ import annotations

import pandas as pd

from tailored.dataset import Dataset, UserQuery, interest_mask
from tailored.models import create
from tailored.schema import EventWeights

EVENTS = pd.DataFrame({
    "user_id": ["u1", "u1", "u1", "u2", "u2", "u3"],
    "item_id": ["a", "b", "shown-only", "a", "c", "b"],
    "event_type": ["view", "purchase", "impression", "view", "impression", "view"],
})


def test_impressions_leave_the_events_vocabularies_and_matrix() -> None:
    data = Dataset.from_frame(EVENTS)

    assert data.impressions["item_id"].tolist() == ["shown-only", "c"]
    assert "impression" not in set(data.events["event_type"])
    assert "shown-only" not in data.item_vocab and "c" not in data.item_vocab
    assert data.matrix().nnz == 4


def test_a_zero_weight_never_leaves_an_explicit_zero_in_a_history() -> None:
    data = Dataset.from_frame(EVENTS[EVENTS["event_type"] != "impression"])
    model = create("popular").fit(data)
    query = UserQuery(("u9",), pd.DataFrame({"user_id": ["u9", "u9"], "item_id": ["a", "b"],
                                             "event_type": ["impression", "view"]}))

    recommended = model.recommend(query, k=5)["item_id"].tolist()

    assert "a" in recommended and "b" not in recommended  # shown is not seen


def test_any_type_weighted_zero_counts_as_exposure_only() -> None:
    weights = EventWeights(custom={"hover": 0.0}, view=1.0)
    events = pd.DataFrame({"event_type": ["hover", "view", "rating"]})

    assert interest_mask(events, weights).tolist() == [False, True, True]
    assert weights.zero_weight_types() == {"hover", "impression"}


def test_impressions_can_count_when_configured() -> None:
    data = Dataset.from_frame(EVENTS, weights={"impression": 0.5})

    assert data.impressions.empty and "shown-only" in data.item_vocab
