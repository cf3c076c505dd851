"""Train/test splits. Each is named and says exactly who is tested on what.

Protocols
---------
One split each, by name in :data:`SPLITS` (build with :func:`split_by_name`):

- ``temporal``: one global time cut; the last 20% of events are the test period.
- ``leave-last-one-out``: per user (>= 5 events), their last event.
- ``user-temporal-ratio``: per user (>= 5 events), their last 20% of events.
- ``random-holdout``: per user (>= 5 events), a seeded random 20% of their events.

Several splits each, by name in :data:`MULTI_SPLITS` (build with :func:`splits_by_name`,
which also accepts the single-split names and then returns a list of one):

- ``user-kfold``: users in 5 folds; fold f holds out the last 20% of its users' events.
- ``time-series``: an expanding window; 3 global cuts, each tested on the next 10%.

Ground truth is built the same way by every protocol. The *held-out* events are the
events a protocol removes from training for its test period (kept in
``Split.held_out``). A (user, item) pair from them is ground truth when the user still
has training events, the item occurs in training (someone touched it), and the user did
not touch the item in their own training events. Models rank every train item except the
user's own train items (``exclude_seen``), which is what
:func:`tailored.evaluation.evaluate_model` does.

For tuning, :func:`validation_split` carves a validation split from a split's *training*
data with the same protocol, so tuning never sees test data.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tailored.errors import InvalidDataError

from .interactions import Dataset

#: Slack for fractions times counts that land a hair below an integer (10 * 0.9 < 9).
_ROUNDING = 1e-9


@dataclass(frozen=True)
class Split:
    """Training data, and the items each test user should be recommended.

    ``truth`` has one row per relevant (user_id, item_id). The optional fields say how
    the split was made: ``held_out`` is the events removed from training for the test
    period (before the ground-truth rules dropped any), ``protocol`` the registered
    protocol name and ``params`` its parameters, so :func:`validation_split` can repeat
    the protocol on ``train``.
    """

    name: str
    train: Dataset
    truth: pd.DataFrame  # user_id, item_id: one row per relevant (user, item)
    held_out: pd.DataFrame | None = field(default=None, repr=False)
    protocol: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def test_users(self) -> list[str]:
        return sorted(self.truth["user_id"].unique().tolist())


# --- shared rules -----------------------------------------------------------------------


def _check_fraction(test_fraction: float) -> None:
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")


def _check_min_events(min_events: int) -> None:
    if min_events < 2:
        raise ValueError(
            f"min_events must be at least 2 (so test users keep training history), "
            f"got {min_events}")


def _require_timestamps(events: pd.DataFrame, protocol: str) -> None:
    missing = int(events["timestamp"].isna().sum())
    if missing:
        raise InvalidDataError(
            f"the {protocol} split needs a timestamp on every event; {missing} events have "
            "none. Add timestamps, or use the random-holdout protocol.")


def _require_events(events: pd.DataFrame, protocol: str) -> None:
    if events.empty:
        raise InvalidDataError(f"the {protocol} split needs events; the dataset has none")


def _floor(value: float) -> int:
    """``floor`` that forgives float error: ``_floor(10 * (1 - 0.9)) == 1``."""
    return math.floor(value + _ROUNDING)


def _truth(train: Dataset, held_out: pd.DataFrame) -> pd.DataFrame:
    """The held-out pairs of users with train history, on train items, new to the user."""
    pairs = pd.concat([train.events[["user_id", "item_id"]], held_out[["user_id", "item_id"]]],
                      ignore_index=True)
    users = pd.factorize(pairs["user_id"])[0].astype(np.int64)
    items = pd.factorize(pairs["item_id"])[0].astype(np.int64)
    codes = users * (int(items.max(initial=0)) + 1) + items
    n_train = len(train.events)

    def seen_in_train(values: np.ndarray) -> np.ndarray:
        return pd.Series(values[n_train:]).isin(values[:n_train]).to_numpy()

    is_truth = seen_in_train(users) & seen_in_train(items) & ~seen_in_train(codes)
    truth = held_out.loc[is_truth, ["user_id", "item_id"]].drop_duplicates()
    return truth.sort_values(["user_id", "item_id"]).reset_index(drop=True)


def _make_split(name: str, data: Dataset, is_train: np.ndarray, held: np.ndarray,
                protocol: str, params: Mapping[str, Any]) -> Split:
    train = data.filter(is_train)
    held_out = data.events[held].reset_index(drop=True)
    return Split(name, train, _truth(train, held_out), held_out, protocol, dict(params))


def _held_counts(sizes: np.ndarray, test_fraction: float) -> np.ndarray:
    """Per user with ``sizes`` events: ceil(size * fraction), at least 1, at most size - 1."""
    counts = np.ceil(sizes * test_fraction - _ROUNDING).astype(np.int64)
    return np.clip(counts, 1, np.maximum(sizes - 1, 1))


def _last_per_user(events: pd.DataFrame, order_keys: list[np.ndarray],
                   test_fraction: float | None, n: int, min_events: int) -> np.ndarray:
    """Which events are each eligible user's last ones, ordered by ``order_keys``.

    Within a user, events are ordered by the keys (first key first; ties by row order).
    Eligible users have at least ``min_events`` events; each holds out their last
    ``test_fraction`` share (see :func:`_held_counts`) or, without one, their last ``n``.
    """
    user_codes = pd.factorize(events["user_id"], sort=True)[0]
    order = np.lexsort([*reversed(order_keys), user_codes])  # stable: ties keep row order
    sizes = np.bincount(user_codes)
    counts = (_held_counts(sizes, test_fraction) if test_fraction is not None
              else np.full_like(sizes, n))
    sorted_users = user_codes[order]
    first_of_user = np.cumsum(sizes) - sizes
    position_from_end = (first_of_user + sizes)[sorted_users] - 1 - np.arange(len(order))
    held_in_order = ((position_from_end < counts[sorted_users])
                     & (sizes[sorted_users] >= min_events))
    held = np.zeros(len(events), dtype=bool)
    held[order[held_in_order]] = True
    return held


def _by_time(events: pd.DataFrame) -> list[np.ndarray]:
    """Sort keys for "by time, ties by item id" (events without a time sort last)."""
    times = events["timestamp"].to_numpy(dtype="datetime64[ns]")
    return [times, pd.factorize(events["item_id"], sort=True)[0]]


# --- single splits ----------------------------------------------------------------------


def temporal_split(data: Dataset, test_fraction: float = 0.2) -> Split:
    """One global time cut: the last ``test_fraction`` of events form the test period.

    Events are ordered by time; the cut is the timestamp of the first test event (event
    number ``floor(n_events * (1 - test_fraction))`` in time order), and every event at
    or after it is test. Test users have at least one train event and one test event on
    an item that exists in train and that they did not touch in train; those items are
    their ground truth. Models rank all train items except the user's own train items.

    Examples
    --------
    >>> events = pd.DataFrame({
    ...     "user_id": ["a", "a", "b", "b", "a"], "item_id": ["x", "y", "x", "z", "z"],
    ...     "timestamp": [1, 2, 3, 4, 5]})
    >>> split = temporal_split(Dataset.from_frame(events), test_fraction=0.2)
    >>> split.truth.values.tolist()
    [['a', 'z']]
    """
    _check_fraction(test_fraction)
    events = data.events
    _require_timestamps(events, "temporal")
    _require_events(events, "temporal")
    times = np.sort(events["timestamp"].to_numpy())
    first_test = min(len(times) - 1, _floor(len(times) * (1 - test_fraction)))
    cut = times[first_test]
    is_train = (events["timestamp"] < cut).to_numpy()
    return _make_split("temporal", data, is_train, ~is_train, "temporal",
                       {"test_fraction": test_fraction})


def leave_last_out_split(data: Dataset, n: int = 1, min_events: int = 5) -> Split:
    """Per user, hold out their last ``n`` events.

    Users with at least ``min_events`` events are candidates; their events are ordered
    by time (ties by item id) and the last ``n`` are held out of training. Test users
    are candidates with a held-out item that exists in training (touched by someone
    else) and that they did not touch in their remaining training events; those items
    are the ground truth. Models rank all train items except the user's train items.
    Other users' events stay in training even when they are later than a test event.

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
    held = _last_per_user(data.events, _by_time(data.events), None, n, min_events)
    return _make_split(f"leave-last-{n}-out", data, ~held, held, "leave-last-one-out",
                       {"n": n, "min_events": min_events})


def user_temporal_ratio_split(data: Dataset, test_fraction: float = 0.2,
                              min_events: int = 5) -> Split:
    """Per user, hold out the last ``test_fraction`` of their events by time.

    Users with at least ``min_events`` events are candidates. Each candidate's events
    are ordered by time (ties by item id, then by row order) and their last
    ``ceil(n * test_fraction)`` events are held out of training, at least one and at
    most ``n - 1`` so they keep history (``n`` is the user's event count). Users with
    fewer events keep all their events in training and are never tested. Test users are
    candidates with a held-out item that exists in training and that they did not touch
    in their own training events; those items are the ground truth. Models rank all
    train items except the user's train items. Other users' events stay in training
    even when they are later than a test event (a per-user, not a global, time cut).

    Examples
    --------
    ``a`` has 5 events, so their last ``ceil(5 * 0.4) = 2`` (``w`` at 4, ``v`` at 5)
    are held out; ``b`` has 2 events, under ``min_events``, and stays in training.

    >>> events = pd.DataFrame({
    ...     "user_id": ["a"] * 5 + ["b"] * 2,
    ...     "item_id": ["x", "y", "z", "w", "v", "w", "v"],
    ...     "timestamp": [1, 2, 3, 4, 5, 1, 9]})
    >>> split = user_temporal_ratio_split(
    ...     Dataset.from_frame(events), test_fraction=0.4, min_events=3)
    >>> split.truth.values.tolist()
    [['a', 'v'], ['a', 'w']]
    >>> len(split.train), len(split.held_out)
    (5, 2)
    """
    _check_fraction(test_fraction)
    _check_min_events(min_events)
    _require_timestamps(data.events, "user-temporal-ratio")
    held = _last_per_user(data.events, _by_time(data.events), test_fraction, 1, min_events)
    return _make_split("user-temporal-ratio", data, ~held, held, "user-temporal-ratio",
                       {"test_fraction": test_fraction, "min_events": min_events})


def random_holdout_split(data: Dataset, test_fraction: float = 0.2, min_events: int = 5,
                         seed: int = 0) -> Split:
    """Per user, hold out a seeded random ``test_fraction`` of their events.

    Users with at least ``min_events`` events are candidates; each holds out
    ``ceil(n * test_fraction)`` of their ``n`` events (at least one, at most ``n - 1``),
    drawn uniformly at random with ``numpy.random.default_rng(seed)``, so the same data
    and seed give the same split. Timestamps are not needed and not used: training may
    hold events later than the test events, so this protocol measures how well a model
    fills gaps, not how well it predicts the future. Users with fewer events stay in
    training. Test users are candidates with a held-out item that exists in training and
    that they did not touch in their own training events; those items are the ground
    truth. Models rank all train items except the user's train items.

    Examples
    --------
    >>> events = pd.DataFrame({"user_id": ["a"] * 4 + ["b"] * 4,
    ...                        "item_id": ["w", "x", "y", "z"] * 2})
    >>> split = random_holdout_split(Dataset.from_frame(events), 0.25, min_events=4)
    >>> split.held_out.groupby("user_id").size().tolist()  # ceil(4 * 0.25) each
    [1, 1]
    >>> split.truth.equals(random_holdout_split(
    ...     Dataset.from_frame(events), 0.25, min_events=4).truth)
    True
    """
    _check_fraction(test_fraction)
    _check_min_events(min_events)
    events = data.events
    random_order = np.random.default_rng(seed).permutation(len(events))
    held = _last_per_user(events, [random_order], test_fraction, 1, min_events)
    return _make_split("random-holdout", data, ~held, held, "random-holdout",
                       {"test_fraction": test_fraction, "min_events": min_events, "seed": seed})


# --- several splits ---------------------------------------------------------------------


def user_kfold_splits(data: Dataset, n_folds: int = 5, test_fraction: float = 0.2,
                      seed: int = 0, min_events: int = 5) -> list[Split]:
    """Users in ``n_folds`` folds; in fold ``f``, fold-``f`` users hold out their last events.

    Users with at least ``min_events`` events are shuffled with
    ``numpy.random.default_rng(seed)`` and dealt round-robin into ``n_folds`` folds
    (sizes differ by at most one); users with fewer events are in no fold. In split
    ``f`` (named ``user-kfold/{f+1}-of-{n_folds}``), each fold-``f`` user's last
    ``ceil(n * test_fraction)`` events by time (ties by item id; at least one, at most
    ``n - 1``) are held out, exactly as in :func:`user_temporal_ratio_split`; every
    other user's events are all in training. Test users are fold-``f`` users with a
    held-out item that exists in training and that they did not touch in their own
    training events; those items are the ground truth. Models rank all train items
    except the user's train items. Every eligible user is held out in exactly one fold.

    Examples
    --------
    >>> events = pd.DataFrame({"user_id": ["a"] * 3 + ["b"] * 3,
    ...                        "item_id": ["x", "y", "z", "y", "z", "x"],
    ...                        "timestamp": [1, 2, 3, 1, 2, 3]})
    >>> folds = user_kfold_splits(Dataset.from_frame(events), n_folds=2,
    ...                           test_fraction=0.3, min_events=3)
    >>> [(s.name, s.truth.values.tolist(), len(s.train)) for s in folds]
    [('user-kfold/1-of-2', [['a', 'z']], 5), ('user-kfold/2-of-2', [['b', 'x']], 5)]
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    _check_fraction(test_fraction)
    _check_min_events(min_events)
    events = data.events
    _require_timestamps(events, "user-kfold")
    sizes = events.groupby("user_id").size()
    eligible = np.sort(sizes.index[sizes >= min_events].to_numpy(dtype=str))
    if len(eligible) < n_folds:
        raise InvalidDataError(
            f"user-kfold needs at least n_folds={n_folds} users with >= {min_events} "
            f"events; the data has {len(eligible)}. Lower n_folds or min_events.")
    shuffled = np.random.default_rng(seed).permutation(eligible)
    would_hold = _last_per_user(events, _by_time(events), test_fraction, 1, min_events)
    splits = []
    for fold in range(n_folds):
        held = would_hold & events["user_id"].isin(shuffled[fold::n_folds]).to_numpy()
        splits.append(_make_split(
            f"user-kfold/{fold + 1}-of-{n_folds}", data, ~held, held, "user-kfold",
            {"n_folds": n_folds, "test_fraction": test_fraction, "seed": seed,
             "min_events": min_events, "fold": fold}))
    return splits


def time_series_splits(data: Dataset, n_cuts: int = 3, test_fraction: float = 0.1
                       ) -> list[Split]:
    """An expanding window: ``n_cuts`` global time cuts, each tested on the window after it.

    Events are ordered by time. Window ``w`` (``w = 1 .. n_cuts``) starts at event number
    ``floor(n_events * (1 - (n_cuts - w + 1) * test_fraction))`` in time order, so the
    windows are the last ``n_cuts`` slices of ``test_fraction`` of the events each; its
    cut is that event's timestamp. In split ``w`` (named ``time-series/{w}-of-{n_cuts}``)
    training is every event before the cut, and the held-out events are those at or after
    it and before the next window's cut (the last window runs to the end); later events
    are unused. Test users have training events and a held-out item that exists in
    training and that they did not touch in training; those items are the ground truth.
    Models rank all train items except the user's train items. With ``n_cuts=1`` this is
    :func:`temporal_split`.

    Raises
    ------
    InvalidDataError
        When ties in time leave a window, or the first training period, empty.

    Examples
    --------
    >>> events = pd.DataFrame({
    ...     "user_id": ["a", "b", "a", "b", "a", "b"], "item_id": ["x", "y", "y", "x", "z", "z"],
    ...     "timestamp": [1, 2, 3, 4, 5, 6]})
    >>> windows = time_series_splits(Dataset.from_frame(events), n_cuts=2, test_fraction=0.3)
    >>> [(s.name, len(s.train), s.truth.values.tolist()) for s in windows]
    [('time-series/1-of-2', 2, [['a', 'y'], ['b', 'x']]), ('time-series/2-of-2', 4, [])]
    """
    if n_cuts < 1:
        raise ValueError(f"n_cuts must be at least 1, got {n_cuts}")
    _check_fraction(test_fraction)
    if n_cuts * test_fraction >= 1:
        raise ValueError(
            f"n_cuts * test_fraction must be below 1 (the windows leave training data), "
            f"got {n_cuts} * {test_fraction}")
    events = data.events
    _require_timestamps(events, "time-series")
    _require_events(events, "time-series")
    times = np.sort(events["timestamp"].to_numpy())
    starts = [min(len(times) - 1,
                  _floor(len(times) * (1 - (n_cuts - window) * test_fraction)))
              for window in range(n_cuts)]
    cuts = [times[start] for start in starts]
    if cuts[0] == times[0]:
        raise InvalidDataError(
            f"time-series: the first window starts at the earliest timestamp {cuts[0]}, so "
            "it has no training events; use fewer cuts or a smaller test_fraction")
    timestamps = events["timestamp"].to_numpy()
    splits = []
    for window, cut in enumerate(cuts):
        is_train = timestamps < cut
        held = ~is_train
        if window + 1 < n_cuts:
            if cuts[window + 1] == cut:
                raise InvalidDataError(
                    f"time-series: windows {window + 1} and {window + 2} start at the same "
                    f"timestamp {cut} (ties in time), so window {window + 1} is empty; use "
                    "fewer cuts or a larger test_fraction")
            held &= timestamps < cuts[window + 1]
        splits.append(_make_split(
            f"time-series/{window + 1}-of-{n_cuts}", data, is_train, held, "time-series",
            {"n_cuts": n_cuts, "test_fraction": test_fraction, "window": window}))
    return splits


# --- registries and validation ----------------------------------------------------------

#: Protocols that give one split, by name; each takes the data and keyword parameters.
SPLITS: dict[str, Callable[..., Split]] = {
    "temporal": temporal_split,
    "leave-last-one-out": leave_last_out_split,
    "user-temporal-ratio": user_temporal_ratio_split,
    "random-holdout": random_holdout_split,
}

#: Protocols that give several splits (folds or windows), by name.
MULTI_SPLITS: dict[str, Callable[..., list[Split]]] = {
    "user-kfold": user_kfold_splits,
    "time-series": time_series_splits,
}

#: The single-split protocol that validates one split of a multi-split protocol.
_VALIDATION_PROTOCOL = {"user-kfold": "user-temporal-ratio", "time-series": "temporal"}


def _unknown(protocol: str) -> ValueError:
    return ValueError(f"unknown protocol {protocol!r}; choose one of "
                      f"{sorted(SPLITS)} (one split) or {sorted(MULTI_SPLITS)} (several)")


def split_by_name(data: Dataset, protocol: str, **params: Any) -> Split:
    """The named single-split protocol's split, with its defaults unless ``params`` say.

    Names are the keys of :data:`SPLITS`: ``temporal``, ``leave-last-one-out``,
    ``user-temporal-ratio``, ``random-holdout``. Multi-split protocols (``user-kfold``,
    ``time-series``) are built with :func:`splits_by_name`.

    Examples
    --------
    >>> events = pd.DataFrame({"user_id": ["a", "a", "b", "b"], "item_id": list("xyyx"),
    ...                        "timestamp": [1, 2, 3, 4]})
    >>> split_by_name(Dataset.from_frame(events), "temporal", test_fraction=0.5).name
    'temporal'
    """
    if protocol in MULTI_SPLITS:
        raise ValueError(f"protocol {protocol!r} gives several splits; "
                         f"use splits_by_name(data, {protocol!r})")
    if protocol not in SPLITS:
        raise _unknown(protocol)
    return SPLITS[protocol](data, **params)


def splits_by_name(data: Dataset, protocol: str, **params: Any) -> list[Split]:
    """Every split of the named protocol: a list of one for a single-split protocol.

    Names are the keys of :data:`SPLITS` and :data:`MULTI_SPLITS`.

    Examples
    --------
    >>> events = pd.DataFrame({"user_id": ["a", "b"] * 4, "item_id": list("xyyxzwwz"),
    ...                        "timestamp": range(8)})
    >>> [s.name for s in splits_by_name(Dataset.from_frame(events), "time-series",
    ...                                 n_cuts=2, test_fraction=0.25)]
    ['time-series/1-of-2', 'time-series/2-of-2']
    """
    if protocol in MULTI_SPLITS:
        return MULTI_SPLITS[protocol](data, **params)
    return [split_by_name(data, protocol, **params)]


def validation_split(split_or_train: Split | Dataset, protocol: str | None = None,
                     **params: Any) -> Split:
    """A validation split carved from a split's training data only, for tuning.

    The validation split applies a protocol to ``split.train`` (or to the dataset given),
    so its training data and its ground truth both come from the outer training data and
    tuning never sees the outer test period. Given a :class:`Split` and no ``protocol``,
    it repeats the split's own protocol and parameters (``params`` override them); a fold
    of ``user-kfold`` is validated with ``user-temporal-ratio`` and a window of
    ``time-series`` with ``temporal``, at the same ``test_fraction`` (and
    ``min_events``). The result is named ``"{split.name}/validation"`` (or
    ``"{protocol}/validation"`` for a dataset).

    Raises
    ------
    InvalidDataError
        When the validation split has no test users (nothing to tune on).

    Examples
    --------
    >>> events = pd.DataFrame({"user_id": ["a", "b"] * 5, "item_id": list("xyyxzwwzvv"),
    ...                        "timestamp": range(10)})
    >>> outer = temporal_split(Dataset.from_frame(events), test_fraction=0.2)
    >>> inner = validation_split(outer, test_fraction=0.25)
    >>> inner.name, len(outer.train), len(inner.train), inner.truth.values.tolist()
    ('temporal/validation', 8, 6, [['a', 'w'], ['b', 'z']])
    """
    if isinstance(split_or_train, Split):
        train, prefix = split_or_train.train, split_or_train.name
        recorded: Mapping[str, Any] = {}
        if protocol is None or protocol == split_or_train.protocol:
            if split_or_train.protocol is None:
                raise ValueError(
                    f"split {split_or_train.name!r} does not record its protocol (it was "
                    f"built by hand); pass protocol=, one of {sorted(SPLITS)}")
            protocol = split_or_train.protocol
            recorded = split_or_train.params
    else:
        if protocol is None:
            raise ValueError(f"validating a dataset needs protocol=, one of {sorted(SPLITS)}")
        train, prefix, recorded = split_or_train, protocol, {}
    single = _VALIDATION_PROTOCOL.get(protocol, protocol)
    if single not in SPLITS:
        raise _unknown(protocol)
    function = SPLITS[single]
    accepted = set(inspect.signature(function).parameters) - {"data"}
    kwargs = {key: value for key, value in recorded.items() if key in accepted} | params
    split = function(train, **kwargs)
    if split.truth.empty:
        raise InvalidDataError(
            f"the {single} validation split of {prefix!r} has no test users: no user held "
            "out an item that is new to them and known to training. Use more data, a "
            "larger test_fraction or a lower min_events.")
    return dataclasses.replace(split, name=f"{prefix}/validation")


__all__ = [
    "MULTI_SPLITS",
    "SPLITS",
    "Split",
    "leave_last_out_split",
    "random_holdout_split",
    "split_by_name",
    "splits_by_name",
    "temporal_split",
    "time_series_splits",
    "user_kfold_splits",
    "user_temporal_ratio_split",
    "validation_split",
]
