"""Train/test splits. Each is named and says exactly who is tested on what."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tailored.errors import InvalidDataError

from .interactions import Dataset


@dataclass(frozen=True)
class Split:
    """Training data, and the items each test user should be recommended."""

    name: str
    train: Dataset
    truth: pd.DataFrame  # user_id, item_id: one row per relevant (user, item)

    @property
    def test_users(self) -> list[str]:
        return sorted(self.truth["user_id"].unique().tolist())


def temporal_split(data: Dataset, test_fraction: float = 0.2) -> Split:
    """One global time cut: the last ``test_fraction`` of events form the test period.

    Events are ordered by time; the cut is the timestamp of the first test event, and
    every event at or after it is test. Test users have at least one train event and
    one test event on an item that exists in train and that they did not touch in
    train; those items are their ground truth. Models rank all train items except the
    user's own train items.

    Examples
    --------
    >>> events = pd.DataFrame({
    ...     "user_id": ["a", "a", "b", "b", "a"], "item_id": ["x", "y", "x", "z", "z"],
    ...     "timestamp": [1, 2, 3, 4, 5]})
    >>> split = temporal_split(Dataset.from_frame(events), test_fraction=0.2)
    >>> split.truth.values.tolist()
    [['a', 'z']]
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    events = data.events
    if events["timestamp"].isna().any():
        raise InvalidDataError(
            "the temporal split needs a timestamp on every event; "
            f"{int(events['timestamp'].isna().sum())} events have none")
    times = np.sort(events["timestamp"].to_numpy())
    first_test = min(len(times) - 1, math.floor(len(times) * (1 - test_fraction)))
    cut = times[first_test]
    is_train = (events["timestamp"] < cut).to_numpy()
    train = data.filter(is_train)
    test = events[~is_train]
    train_pairs = pd.MultiIndex.from_frame(train.events[["user_id", "item_id"]])
    test_pairs = test[["user_id", "item_id"]].drop_duplicates()
    known = (test_pairs["user_id"].isin(train.user_vocab.ids)
             & test_pairs["item_id"].isin(train.item_vocab.ids)
             & ~pd.MultiIndex.from_frame(test_pairs).isin(train_pairs))
    truth = test_pairs[known].sort_values(["user_id", "item_id"]).reset_index(drop=True)
    return Split("temporal", train, truth)


def leave_last_out_split(data: Dataset, n: int = 1, min_events: int = 5) -> Split:
    """Per user, hold out their last ``n`` events.

    Users with at least ``min_events`` events are candidates; their events are ordered
    by time (ties by item id) and the last ``n`` are held out of training. Test users
    are candidates with a held-out item that exists in training (touched by someone
    else) and that they did not touch in their remaining training events; those items
    are the ground truth. Models rank all train items except the user's train items.

    Examples
    --------
    >>> events = pd.DataFrame({
    ...     "user_id": ["a"] * 3 + ["b"] * 3, "item_id": ["x", "y", "z", "z", "x", "y"],
    ...     "timestamp": [1, 2, 3, 1, 2, 3]})
    >>> split = leave_last_out_split(Dataset.from_frame(events), min_events=3)
    >>> split.truth.values.tolist()
    [['a', 'z'], ['b', 'y']]
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if min_events <= n:
        raise ValueError(f"min_events must exceed n (so users keep history), got {min_events}")
    events = data.events
    ordered = events.assign(_row=np.arange(len(events))).sort_values(
        ["user_id", "timestamp", "item_id"], kind="stable")
    position_from_end = ordered.groupby("user_id").cumcount(ascending=False).to_numpy()
    sizes = ordered.groupby("user_id")["item_id"].transform("size").to_numpy()
    held = (position_from_end < n) & (sizes >= min_events)
    is_train = np.ones(len(events), dtype=bool)
    is_train[ordered["_row"].to_numpy()[held]] = False
    train = data.filter(is_train)
    test_pairs = events.loc[~is_train, ["user_id", "item_id"]].drop_duplicates()
    train_pairs = pd.MultiIndex.from_frame(train.events[["user_id", "item_id"]])
    known = (test_pairs["item_id"].isin(train.item_vocab.ids)
             & test_pairs["user_id"].isin(train.user_vocab.ids)
             & ~pd.MultiIndex.from_frame(test_pairs).isin(train_pairs))
    truth = test_pairs[known].sort_values(["user_id", "item_id"]).reset_index(drop=True)
    return Split(f"leave-last-{n}-out", train, truth)


SPLITS: dict[str, Callable[[Dataset], Split]] = {
    "temporal": temporal_split,
    "leave-last-one-out": leave_last_out_split,
}


def split_by_name(data: Dataset, protocol: str) -> Split:
    """The named protocol's split with its defaults (``temporal``, ``leave-last-one-out``)."""
    if protocol not in SPLITS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {sorted(SPLITS)}")
    return SPLITS[protocol](data)
