from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailored.dataset import Dataset, UserQuery, Vocabulary, temporal_split
from tailored.errors import InvalidDataError
from tailored.schema import EventWeights
from tailored.testing import checkerboard


def test_vocabulary_maps_ids_both_ways() -> None:
    vocab = Vocabulary(["10", "2", "10", "a"])
    assert vocab.ids.tolist() == ["10", "2", "a"]
    assert vocab.indices(["a", "10", "missing"]).tolist() == [2, 0, -1]
    assert "2" in vocab and "3" not in vocab


def test_event_weights_by_type_and_rating_value() -> None:
    events = pd.DataFrame({
        "user_id": ["u"] * 5, "item_id": ["v", "c", "k", "p", "r"],
        "event_type": ["view", "click", "add_to_cart", "purchase", "rating"],
        "value": [None, None, None, 99.0, 3.5]})
    matrix = Dataset.from_frame(events).matrix().toarray()[0]
    # columns sorted: c, k, p, r, v
    assert matrix.tolist() == [2.0, 4.0, 8.0, 3.5, 1.0]


def test_custom_weights_and_repeated_events_sum() -> None:
    events = pd.DataFrame({"user_id": ["u", "u", "u"], "item_id": ["a", "a", "b"],
                           "event_type": ["view", "view", "wishlist"]})
    weights = EventWeights(view=0.5, custom={"wishlist": 3.0})
    data = Dataset.from_frame(events, weights=weights)
    assert data.matrix().toarray().tolist() == [[1.0, 3.0]]


def test_a_value_column_without_types_is_taken_as_ratings() -> None:
    data = Dataset.from_frame(pd.DataFrame({"user_id": [1], "item_id": [2], "value": [4.0]}))
    assert data.events["event_type"].tolist() == ["rating"]
    assert data.matrix().toarray().tolist() == [[4.0]]


def test_time_decay_halves_weight_per_half_life() -> None:
    events = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["old", "new"],
                           "timestamp": ["2026-01-01", "2026-01-11"]})
    decayed = Dataset.from_frame(events).matrix(half_life_days=10).toarray()[0]
    np.testing.assert_allclose(decayed, [1.0, 0.5])  # columns: new, old


def test_missing_columns_are_named() -> None:
    with pytest.raises(InvalidDataError, match=r"lacks column\(s\) \['item_id'\]"):
        Dataset.from_frame(pd.DataFrame({"user_id": ["u"]}))


def test_item_and_user_tables_are_flattened() -> None:
    events = pd.DataFrame({"user_id": ["u"], "item_id": ["i"]})
    items = pd.DataFrame({"item_id": ["i"], "title": ["Shoe"],
                          "attributes": [{"price": 10.0, "brand": "x"}]})
    users = pd.DataFrame({"user_id": [7], "age_band": ["25-34"]})
    data = Dataset.from_frame(events, items=items, users=users)
    assert data.items is not None and data.items.loc[0, "price"] == 10.0
    assert data.users is not None and data.users.loc[0, "user_id"] == "7"


def test_user_query_keeps_the_callers_order() -> None:
    query = UserQuery.from_histories({"z": ["a"], "a": []})
    assert query.user_ids == ("z", "a")
    assert UserQuery.of("u1").user_ids == ("u1",)


def _events() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": ["a", "a", "b", "b", "c", "a", "b", "c", "d", "a"],
        "item_id": ["x", "y", "x", "z", "y", "z", "y", "q", "x", "x"],
        "timestamp": range(10)})


def test_temporal_split_follows_its_definition() -> None:
    split = temporal_split(Dataset.from_frame(_events()), test_fraction=0.5)
    # train: t < 5 (first 5 events); test: t >= 5.
    assert split.train.events["timestamp"].max() < pd.Timestamp(5, unit="s", tz="UTC")
    # a-z new; b-y new; c-q item unknown to train; d has no train history;
    # a-x already in train for a.
    assert split.truth.values.tolist() == [["a", "z"], ["b", "y"]]
    assert split.test_users == ["a", "b"]


def test_no_test_period_event_reaches_training() -> None:
    data = Dataset.from_frame(_events())
    split = temporal_split(data, test_fraction=0.3)
    cut = split.train.events["timestamp"].max()
    later = data.events[data.events["timestamp"] > cut]
    assert len(split.train) + len(later) == len(data)
    assert split.train.matrix().sum() == len(split.train)


def test_temporal_split_needs_timestamps() -> None:
    data = Dataset.from_frame(pd.DataFrame({"user_id": ["a"], "item_id": ["x"]}))
    with pytest.raises(InvalidDataError, match="timestamp"):
        temporal_split(data)


def test_the_digest_tells_apart_times_values_and_weights() -> None:
    data = checkerboard()
    events = data.events
    variants = [events.assign(timestamp=events["timestamp"] + pd.Timedelta(hours=1)),
                events.assign(value=2.0)]
    digests = {data.digest, *(Dataset(v).digest for v in variants),
               Dataset(events, weights=data.weights.model_copy(update={"view": 3.0})).digest}
    assert len(digests) == 4
    assert checkerboard().digest == data.digest


def test_users_who_withhold_consent_are_left_out_of_a_dataset_from_the_store() -> None:
    from tailored.schema import Event, User
    from tailored.store import open_store

    store = open_store("sqlite://")
    store.users.upsert([User(user_id="yes", attributes={"age": "30s"}),
                        User(user_id="no", attributes={"age": "40s"}, consent=False)])
    store.events.add([Event(user_id=user, item_id=item, timestamp=1714564800 + n)
                      for n, (user, item) in enumerate(
                          [("yes", "i1"), ("no", "i2"), ("no", "i1"), ("anon", "i3")])])

    data = Dataset.from_store(store)

    assert "no" not in data.user_vocab and {"yes", "anon"} <= set(data.user_vocab.ids)
    assert set(data.events["user_id"]) == {"yes", "anon"}
    assert "i2" not in data.item_vocab  # only the withheld user touched it
    assert data.users is None or "no" not in set(data.users.index.astype(str))
