from __future__ import annotations

import contextlib
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tailored.dataset import Dataset
from tailored.dataset.splits import (
    MULTI_SPLITS,
    SPLITS,
    Split,
    leave_last_out_split,
    random_holdout_split,
    split_by_name,
    splits_by_name,
    temporal_split,
    time_series_splits,
    user_kfold_splits,
    user_temporal_ratio_split,
    validation_split,
)
from tailored.errors import InvalidDataError


def _frame(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    """Events from (user, item, timestamp) rows, each with its own event_id."""
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return frame.assign(event_id=np.arange(len(frame)))


def _ids(frame: pd.DataFrame | None) -> set[int]:
    assert frame is not None
    return set(frame["event_id"].tolist())


def _pairs(split: Split) -> list[list[str]]:
    return split.truth.values.tolist()


# --- user-temporal-ratio ----------------------------------------------------------------


def _ratio_events() -> Dataset:
    return Dataset.from_frame(_frame([
        # a: 6 events; ceil(6 * 0.3) = 2 held: the two at t=5, tie broken by item id
        # (p before q), so the last two are p@5 and q@5; e@3 sits before them.
        ("a", "x", 1), ("a", "y", 2), ("a", "e", 3), ("a", "q", 5), ("a", "p", 5),
        ("a", "z", 0),
        # b: 5 events; ceil(5 * 0.3) = 2 held: y@8 and w@9. y is in b's own train
        # history (y@1) and w is unknown to training, so b has no truth.
        ("b", "y", 1), ("b", "p", 2), ("b", "q", 3), ("b", "y", 8), ("b", "w", 9),
        # c: 2 events, under min_events: all in train, never tested.
        ("c", "e", 20), ("c", "x", 21),
    ]))


def test_user_temporal_ratio_holds_each_users_last_share_by_time_ties_by_item() -> None:
    split = user_temporal_ratio_split(_ratio_events(), test_fraction=0.3, min_events=5)
    assert split.name == "user-temporal-ratio"
    assert split.held_out is not None
    held = sorted(map(tuple, split.held_out[["user_id", "item_id"]].values.tolist()))
    assert held == [("a", "p"), ("a", "q"), ("b", "w"), ("b", "y")]
    assert len(split.train) == 13 - 4
    # a-p and a-q: known to training through b, new to a.
    assert _pairs(split) == [["a", "p"], ["a", "q"]]
    assert split.test_users == ["a"]


def test_user_temporal_ratio_keeps_at_least_one_and_leaves_history() -> None:
    events = _frame([("a", f"i{n}", n) for n in range(5)] + [("b", f"i{n}", n) for n in range(5)])
    tiny = user_temporal_ratio_split(Dataset.from_frame(events), test_fraction=0.01)
    assert tiny.held_out is not None and len(tiny.held_out) == 2  # one each, not zero
    huge = user_temporal_ratio_split(Dataset.from_frame(events), test_fraction=0.99)
    assert huge.held_out is not None and len(huge.held_out) == 8  # four each: one stays
    assert huge.train.events.groupby("user_id").size().tolist() == [1, 1]


def test_per_user_protocols_check_their_parameters() -> None:
    data = _ratio_events()
    with pytest.raises(ValueError, match="test_fraction"):
        user_temporal_ratio_split(data, test_fraction=1.0)
    with pytest.raises(ValueError, match="min_events"):
        random_holdout_split(data, min_events=1)
    no_time = Dataset.from_frame(pd.DataFrame({"user_id": ["a"], "item_id": ["x"]}))
    for protocol in (user_temporal_ratio_split, user_kfold_splits, time_series_splits):
        with pytest.raises(InvalidDataError, match="timestamp"):
            protocol(no_time)


# --- random-holdout ---------------------------------------------------------------------


def test_random_holdout_draws_the_right_count_reproducibly_without_timestamps() -> None:
    events = pd.DataFrame({"user_id": ["a"] * 5 + ["b"] * 10 + ["c"] * 2,
                           "item_id": [f"i{n}" for n in range(5)]
                           + [f"i{n}" for n in range(10)] + ["i0", "i1"]})
    data = Dataset.from_frame(events)
    split = random_holdout_split(data, test_fraction=0.25, min_events=3, seed=7)
    assert split.held_out is not None
    # ceil(5 * 0.25) = 2 for a, ceil(10 * 0.25) = 3 for b, c has too few events.
    assert split.held_out.groupby("user_id").size().to_dict() == {"a": 2, "b": 3}
    again = random_holdout_split(data, test_fraction=0.25, min_events=3, seed=7)
    assert again.held_out is not None and again.held_out.equals(split.held_out)
    draws = {tuple(sorted(random_holdout_split(data, 0.25, 3, seed=seed).held_out["item_id"]))
             for seed in range(10)}
    assert len(draws) > 1  # the seed matters


def test_random_holdout_picks_every_position_not_just_the_last() -> None:
    events = _frame([("a", f"i{n}", n) for n in range(5)] + [("b", "i0", 0)])
    data = Dataset.from_frame(events)
    counts: Counter[str] = Counter()
    for seed in range(100):
        held = random_holdout_split(data, test_fraction=0.2, min_events=5, seed=seed).held_out
        assert held is not None and len(held) == 1
        counts.update(held["item_id"])
    # Each of the 5 events has chance 1/5: about 20 of 100 draws each (sd 4).
    assert sorted(counts) == [f"i{n}" for n in range(5)]
    assert min(counts.values()) > 8 and max(counts.values()) < 35


# --- user-kfold -------------------------------------------------------------------------


def _many_users(n_users: int = 7, per_user: int = 10) -> Dataset:
    rows = [(f"u{u}", f"i{(u + n) % 9}", 10 * n + u) for u in range(n_users)
            for n in range(per_user)]
    rows.append(("tiny", "i0", 3))  # under min_events: in no fold
    return Dataset.from_frame(_frame(rows))


def test_user_kfold_tests_every_eligible_user_in_exactly_one_fold() -> None:
    data = _many_users()
    folds = user_kfold_splits(data, n_folds=3, test_fraction=0.3, seed=4)
    assert [s.name for s in folds] == ["user-kfold/1-of-3", "user-kfold/2-of-3",
                                       "user-kfold/3-of-3"]
    held_users = [set(s.held_out["user_id"]) for s in folds if s.held_out is not None]
    assert sorted(len(users) for users in held_users) == [2, 2, 3]
    assert set().union(*held_users) == {f"u{u}" for u in range(7)}
    assert sum(len(users) for users in held_users) == 7  # disjoint
    ratio = user_temporal_ratio_split(data, test_fraction=0.3)
    assert ratio.held_out is not None
    for split, users in zip(folds, held_users, strict=True):
        assert split.held_out is not None
        # fold users lose exactly what the per-user ratio split holds out ...
        expected = ratio.held_out[ratio.held_out["user_id"].isin(users)]
        assert _ids(split.held_out) == _ids(expected)
        # ... and every other user's events all stay in training.
        others = data.events[~data.events["user_id"].isin(users)]
        assert _ids(others) <= _ids(split.train.events)
        assert set(split.test_users) <= users


def test_user_kfold_is_seeded_and_needs_enough_users() -> None:
    data = _many_users()
    first = [s.truth for s in user_kfold_splits(data, n_folds=3, seed=1)]
    again = [s.truth for s in user_kfold_splits(data, n_folds=3, seed=1)]
    assert all(a.equals(b) for a, b in zip(first, again, strict=True))
    with pytest.raises(InvalidDataError, match="at least n_folds=8 users"):
        user_kfold_splits(data, n_folds=8)
    with pytest.raises(ValueError, match="n_folds"):
        user_kfold_splits(data, n_folds=1)


# --- time-series ------------------------------------------------------------------------


def _ten_events() -> Dataset:
    return Dataset.from_frame(_frame([
        ("a", "x", 0), ("b", "y", 1), ("a", "y", 2), ("b", "z", 3), ("c", "x", 4),
        ("a", "z", 5), ("b", "x", 6), ("c", "y", 7), ("a", "w", 8), ("c", "z", 9)]))


def test_time_series_windows_expand_and_test_on_the_next_slice() -> None:
    # 10 events, 3 cuts of 20%: windows start at events 4, 6 and 8.
    windows = time_series_splits(_ten_events(), n_cuts=3, test_fraction=0.2)
    assert [s.name for s in windows] == ["time-series/1-of-3", "time-series/2-of-3",
                                         "time-series/3-of-3"]
    assert [len(s.train) for s in windows] == [4, 6, 8]
    assert [sorted(_ids(s.held_out)) for s in windows] == [[4, 5], [6, 7], [8, 9]]
    # window 1: c has no train history; a-z new to a.
    # window 2: b-x new to b; c-y has no c history in train (c@4 is x): c-y is truth.
    # window 3: a-w, w unknown to training; c-z new to c.
    assert [_pairs(s) for s in windows] == [[["a", "z"]], [["b", "x"], ["c", "y"]],
                                            [["c", "z"]]]


def test_one_time_series_cut_is_the_temporal_split() -> None:
    data = _ten_events()
    for fraction in (0.1, 0.3, 0.5, 0.9):
        (window,) = time_series_splits(data, n_cuts=1, test_fraction=fraction)
        temporal = temporal_split(data, test_fraction=fraction)
        assert window.truth.equals(temporal.truth)
        assert _ids(window.train.events) == _ids(temporal.train.events)


def test_time_series_refuses_empty_windows() -> None:
    tied = Dataset.from_frame(_frame([("a", "x", 0), ("b", "y", 1), ("a", "y", 2),
                                      ("b", "x", 2), ("a", "z", 2), ("b", "z", 2)]))
    with pytest.raises(InvalidDataError, match="same timestamp"):
        time_series_splits(tied, n_cuts=2, test_fraction=0.2)
    with pytest.raises(ValueError, match="below 1"):
        time_series_splits(_ten_events(), n_cuts=5, test_fraction=0.2)


def test_temporal_fraction_is_not_lost_to_float_rounding() -> None:
    # 10 * (1 - 0.9) is 0.9999999999999998 in floats; the test period is 9 events.
    split = temporal_split(_ten_events(), test_fraction=0.9)
    assert split.held_out is not None and len(split.held_out) == 9


# --- validation and registries ----------------------------------------------------------


def test_validation_repeats_the_protocol_on_train_only() -> None:
    data = _many_users()
    outer = user_temporal_ratio_split(data, test_fraction=0.3)
    inner = validation_split(outer)
    assert inner.name == "user-temporal-ratio/validation"
    assert inner.protocol == "user-temporal-ratio" and inner.params["test_fraction"] == 0.3
    expected = user_temporal_ratio_split(outer.train, test_fraction=0.3)
    assert inner.truth.equals(expected.truth)
    assert _ids(inner.train.events) < _ids(outer.train.events)
    override = validation_split(outer, test_fraction=0.5)
    assert override.params["test_fraction"] == 0.5
    other = validation_split(outer, protocol="temporal", test_fraction=0.5)
    assert other.name == "user-temporal-ratio/validation" and other.protocol == "temporal"


def test_validation_of_folds_and_windows_uses_their_single_split_protocol() -> None:
    data = _many_users()
    fold = user_kfold_splits(data, n_folds=3, test_fraction=0.3)[0]
    inner = validation_split(fold)
    assert inner.name == "user-kfold/1-of-3/validation"
    assert inner.truth.equals(user_temporal_ratio_split(fold.train, 0.3).truth)
    window = time_series_splits(data, n_cuts=2, test_fraction=0.2)[1]
    assert validation_split(window).truth.equals(temporal_split(window.train, 0.2).truth)


def test_validation_says_what_is_missing() -> None:
    data = _many_users()
    with pytest.raises(ValueError, match="needs protocol="):
        validation_split(data)
    assert validation_split(data, protocol="temporal").name == "temporal/validation"
    by_hand = Split("mine", data, pd.DataFrame({"user_id": [], "item_id": []}))
    with pytest.raises(ValueError, match="does not record its protocol"):
        validation_split(by_hand)
    with pytest.raises(InvalidDataError, match="no test users"):
        validation_split(leave_last_out_split(data), min_events=50)
    with pytest.raises(ValueError, match="unknown protocol 'nope'"):
        validation_split(data, protocol="nope")


def test_every_protocol_is_registered_by_name() -> None:
    data = _many_users()
    assert set(SPLITS) == {"temporal", "leave-last-one-out", "user-temporal-ratio",
                           "random-holdout"}
    assert set(MULTI_SPLITS) == {"user-kfold", "time-series"}
    for name in SPLITS:
        split = split_by_name(data, name)
        assert split.protocol == name
        assert [s.name for s in splits_by_name(data, name)] == [split.name]
    assert split_by_name(data, "random-holdout", seed=3).params["seed"] == 3
    assert len(splits_by_name(data, "user-kfold", n_folds=2)) == 2
    assert len(splits_by_name(data, "time-series")) == 3
    with pytest.raises(ValueError, match="use splits_by_name"):
        split_by_name(data, "time-series")
    with pytest.raises(ValueError, match="unknown protocol"):
        splits_by_name(data, "leave-none-out")


# --- no leakage, for every protocol -----------------------------------------------------

_GLOBAL_CUT = {"temporal", "time-series"}


def _all_splits(data: Dataset, seed: int) -> list[Split]:
    splits = [
        temporal_split(data, test_fraction=0.3),
        leave_last_out_split(data, n=1, min_events=2),
        user_temporal_ratio_split(data, test_fraction=0.3, min_events=2),
        random_holdout_split(data, test_fraction=0.3, min_events=2, seed=seed),
    ]
    with contextlib.suppress(InvalidDataError):  # refused: under two users with 2 events
        splits += user_kfold_splits(data, n_folds=2, test_fraction=0.3, seed=seed,
                                    min_events=2)
    with contextlib.suppress(InvalidDataError):  # refused: ties in time empty a window
        splits += time_series_splits(data, n_cuts=2, test_fraction=0.2)
    return splits


Event = tuple[str, str, pd.Timestamp]


def _records(frame: pd.DataFrame | None) -> dict[int, Event]:
    """event_id -> (user, item, time); plain Python, which is fast on tiny frames."""
    assert frame is not None
    return dict(zip(frame["event_id"].tolist(), zip(
        frame["user_id"].tolist(), frame["item_id"].tolist(), frame["timestamp"].tolist(),
        strict=True), strict=True))


def _check_no_leak(data: Dataset, split: Split) -> None:
    assert split.protocol is not None
    everything, train, held = (_records(data.events), _records(split.train.events),
                               _records(split.held_out))
    assert not train.keys() & held.keys(), "a held-out event reached training"
    assert train.keys() | held.keys() <= everything.keys()
    if split.protocol == "time-series":
        # train, the window, then the unused later events, in time order.
        later = everything.keys() - train.keys() - held.keys()
        if later:
            assert min(everything[e][2] for e in later) > max(t for _, _, t in held.values())
        if split.params["window"] == split.params["n_cuts"] - 1:
            assert not later
    else:
        assert train.keys() | held.keys() == everything.keys()
    if split.protocol in _GLOBAL_CUT and train and held:
        assert max(t for _, _, t in train.values()) < min(t for _, _, t in held.values())
    if split.protocol in {"leave-last-one-out", "user-temporal-ratio", "user-kfold"}:
        # per user, nothing held out precedes anything kept (time, then item id).
        for user in {u for u, _, _ in held.values()}:
            kept = [(t, i) for u, i, t in train.values() if u == user]
            assert kept, "a user lost their whole history"
            assert max(kept) <= min((t, i) for u, i, t in held.values() if u == user)
    truth = set(zip(split.truth["user_id"], split.truth["item_id"], strict=True))
    train_pairs = {(u, i) for u, i, _ in train.values()}
    assert {i for _, i in truth} <= {i for _, i in train_pairs} == set(split.train.item_vocab.ids)
    assert {u for u, _ in truth} <= {u for u, _ in train_pairs}
    assert not truth & train_pairs
    assert truth <= {(u, i) for u, i, _ in held.values()}


_EVENTS = st.lists(
    st.tuples(st.sampled_from("abcde"), st.sampled_from("pqrstuv"), st.integers(0, 40)),
    min_size=15, max_size=50)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_EVENTS, seed=st.integers(0, 2**16))
@example(rows=[("a", "p", 0)], seed=0)  # one event: nothing can be tested
@example(rows=[("a", "p", 5), ("b", "q", 5), ("a", "q", 5), ("b", "p", 5)] * 2, seed=0)  # ties
@example(rows=[("a", "p", 0), ("a", "p", 1), ("a", "q", 2), ("b", "q", 0), ("b", "p", 3)],
         seed=1)  # repeats: a held-out item the user already had is never truth
def test_no_protocol_leaks_test_events_into_training(
        rows: list[tuple[str, str, int]], seed: int) -> None:
    data = Dataset.from_frame(_frame(rows))
    for split in _all_splits(data, seed):
        _check_no_leak(data, split)
        try:
            inner = validation_split(split)
        except InvalidDataError:
            continue  # nothing to validate on: refused, never an empty split
        _check_no_leak(split.train, inner)
        assert not inner.truth.empty
        # validation sees the outer training data only, and holds some of it out.
        assert _ids(inner.train.events) < _ids(split.train.events)
        assert _ids(inner.held_out) <= _ids(split.train.events)


def test_the_leak_check_can_fail() -> None:
    data = _ten_events()
    honest = temporal_split(data, test_fraction=0.3)
    _check_no_leak(data, honest)
    assert honest.held_out is not None
    leaky = Split(honest.name, data, honest.truth, honest.held_out, honest.protocol)
    with pytest.raises(AssertionError, match="reached training"):
        _check_no_leak(data, leaky)
