"""A snapshot for learning: events, vocabularies, the user-item matrix, item and user tables."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tailored.errors import InvalidDataError
from tailored.schema import EventWeights
from tailored.store import Store

from .vocabulary import Vocabulary

_SECONDS_PER_DAY = 86_400.0


def event_weights(events: pd.DataFrame, weights: EventWeights) -> np.ndarray:
    """The weight of each event: by its type, or its own value where the type says so.

    Without an ``event_type`` column events are views; without ``value``, values are 1.
    """
    if "event_type" in events.columns:
        types = np.asarray(events["event_type"].to_numpy(dtype=object, na_value="view"),
                           dtype=str)
    else:
        types = np.full(len(events), "view")
    values = (pd.to_numeric(events["value"]).to_numpy(dtype=np.float64, na_value=np.nan)
              if "value" in events.columns else np.full(len(events), np.nan))
    result = np.empty(len(events), dtype=np.float64)
    for event_type in np.unique(types):
        rows = types == event_type
        weight = weights.for_type(str(event_type))
        result[rows] = np.nan_to_num(values[rows], nan=1.0) if weight == "value" else weight
    return result


def interest_mask(events: pd.DataFrame, weights: EventWeights) -> np.ndarray:
    """Which events say something about interest: those whose type does not weigh 0.

    An impression (the item was shown) weighs 0 by default: it is kept apart, never
    counted as interest nor as "seen". A type weighing ``"value"`` counts whatever its
    value.

    Examples
    --------
    >>> events = pd.DataFrame({"event_type": ["view", "impression", "purchase"]})
    >>> interest_mask(events, EventWeights()).tolist()
    [True, False, True]
    """
    if "event_type" not in events.columns or not len(events):
        return np.ones(len(events), dtype=bool)
    types = events["event_type"].fillna("view").astype(str)
    zero = [t for t in types.unique() if weights.for_type(t) == 0]
    return ~types.isin(zero).to_numpy() if zero else np.ones(len(events), dtype=bool)


def _flatten(frame: pd.DataFrame, nested: str) -> pd.DataFrame:
    """Spread a column of dicts (``attributes``) into columns of their own."""
    if nested not in frame.columns:
        return frame
    spread = pd.json_normalize(frame[nested].tolist(), max_level=0)
    spread.index = frame.index
    spread = spread.drop(columns=[c for c in spread.columns if c in frame.columns])
    return pd.concat([frame.drop(columns=nested), spread], axis=1)


def normalise_events(events: pd.DataFrame) -> pd.DataFrame:
    """Check and tidy an events frame: string ids, a type per event, UTC timestamps."""
    missing = [c for c in ("user_id", "item_id") if c not in events.columns]
    if missing:
        raise InvalidDataError(
            f"events frame lacks column(s) {missing}; it has {list(events.columns)}. "
            "Rename the user and item columns to user_id and item_id.")
    frame = events.reset_index(drop=True).copy()
    if frame[["user_id", "item_id"]].isna().any().any():
        row = int(frame[["user_id", "item_id"]].isna().any(axis=1).to_numpy().argmax())
        raise InvalidDataError(f"events frame row {row} has no user_id or item_id; drop it")
    frame["user_id"] = frame["user_id"].astype(str)
    frame["item_id"] = frame["item_id"].astype(str)
    if "value" not in frame.columns:
        frame["value"] = np.nan
    frame["value"] = pd.to_numeric(frame["value"], errors="raise").astype("float64")
    if "event_type" not in frame.columns:
        # A bare value column is a strength (a rating); bare pairs are views.
        frame["event_type"] = np.where(frame["value"].notna(), "rating", "view")
    frame["event_type"] = frame["event_type"].fillna("view").astype(str)
    if "timestamp" not in frame.columns:
        frame["timestamp"] = pd.NaT
    timestamps = frame["timestamp"]
    if pd.api.types.is_numeric_dtype(timestamps):
        frame["timestamp"] = pd.to_datetime(timestamps, unit="s", utc=True)
    else:
        frame["timestamp"] = pd.to_datetime(timestamps, utc=True, format="mixed")
    return frame


class Dataset:
    """Interactions plus optional item and user tables, ready for models.

    String ids live here and in the vocabularies; models see dense integer indices.
    Events whose type weighs 0 (impressions: what was shown) are kept apart in
    ``impressions``; ``events``, the vocabularies and every matrix hold only interest.

    Examples
    --------
    >>> events = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": ["a", "b", "a"]})
    >>> data = Dataset.from_frame(events)
    >>> data.matrix().toarray().tolist()
    [[1.0, 1.0], [1.0, 0.0]]
    """

    def __init__(self, events: pd.DataFrame, items: pd.DataFrame | None = None,
                 users: pd.DataFrame | None = None, weights: EventWeights | None = None) -> None:
        interest = interest_mask(events, weights or EventWeights())
        if interest.all():
            self.events = events
            self.impressions = events.iloc[:0]
        else:
            self.events = events[interest].reset_index(drop=True)
            self.impressions = events[~interest].reset_index(drop=True)
        self.items = items
        self.users = users
        self.weights = weights or EventWeights()
        self.user_vocab = Vocabulary(self.events["user_id"])
        self.item_vocab = Vocabulary(self.events["item_id"])

    @classmethod
    def from_frame(cls, events: pd.DataFrame, items: pd.DataFrame | None = None,
                   users: pd.DataFrame | None = None,
                   weights: EventWeights | Mapping[str, Any] | None = None) -> Dataset:
        """Build from frames.

        ``events`` needs ``user_id`` and ``item_id``; ``event_type``, ``value`` and
        ``timestamp`` are optional (a frame with a ``value`` but no type is taken as
        ratings). ``items`` has ``item_id`` and any of title, text, categories,
        attributes; ``users`` has ``user_id`` and attributes.
        """
        if isinstance(weights, Mapping):
            weights = EventWeights(**weights)
        return cls(normalise_events(events), _table(items, "item_id"), _table(users, "user_id"),
                   weights)

    @classmethod
    def from_store(cls, store: Store, weights: EventWeights | None = None) -> Dataset:
        """Build from everything in the store but the events and profiles of users who
        withhold consent (no model, evaluation or segment learns from them)."""
        events = store.events.frame()
        users = store.users.frame() if store.users.count() else None
        withheld = store.users.without_consent()
        if withheld:
            events = events[~events["user_id"].isin(withheld)].reset_index(drop=True)
            assert users is not None
            users = users[~users["user_id"].isin(withheld)].reset_index(drop=True)
        if not interest_mask(events, weights or EventWeights()).any():
            raise InvalidDataError(
                f"the store at {store.url} has no events to learn from (impressions alone "
                "do not count, nor users who withhold consent); import some with "
                "`tailored import`")
        items = store.items.frame() if store.items.count() else None
        return cls.from_frame(events, items, users, weights)

    def __len__(self) -> int:
        return len(self.events)

    def __repr__(self) -> str:
        return (f"Dataset({len(self.events)} events, {len(self.user_vocab)} users, "
                f"{len(self.item_vocab)} items)")

    @property
    def n_users(self) -> int:
        return len(self.user_vocab)

    @property
    def n_items(self) -> int:
        return len(self.item_vocab)

    def matrix(self, half_life_days: float | None = None) -> sp.csr_matrix:
        """Users x items, summing event weights; older events fade with ``half_life_days``."""
        if half_life_days is None:
            return self._matrix
        return self.events_matrix(self.events, half_life_days=half_life_days)

    @cached_property
    def _matrix(self) -> sp.csr_matrix:
        return self.events_matrix(self.events)

    def events_matrix(self, events: pd.DataFrame, *, half_life_days: float | None = None,
                      user_vocab: Vocabulary | None = None) -> sp.csr_matrix:
        """Any events laid out on this dataset's item vocabulary (unknown items dropped)."""
        user_vocab = user_vocab or self.user_vocab
        return interaction_matrix(events, user_vocab, self.item_vocab, self.weights,
                                  half_life_days=half_life_days)

    def filter(self, mask: np.ndarray | pd.Series) -> Dataset:
        """A dataset of the events where ``mask`` holds (item and user tables kept)."""
        events = self.events[np.asarray(mask, dtype=bool)].reset_index(drop=True)
        return Dataset(events, self.items, self.users, self.weights)

    @cached_property
    def digest(self) -> str:
        """A short fingerprint of the events (who, what, how, when, how much) and their
        weights, recorded with every model trained on them."""
        hasher = hashlib.blake2b(digest_size=8)
        for column in ("user_id", "item_id", "event_type", "timestamp", "value"):
            if column in self.events.columns:
                hasher.update(pd.util.hash_pandas_object(self.events[column], index=False)
                              .to_numpy().tobytes())
        hasher.update(self.weights.model_dump_json().encode())
        return hasher.hexdigest()


def interaction_matrix(events: pd.DataFrame, user_vocab: Vocabulary, item_vocab: Vocabulary,
                       weights: EventWeights, *, half_life_days: float | None = None,
                       now: pd.Timestamp | None = None) -> sp.csr_matrix:
    """Sum event weights into a users x items CSR matrix over the given vocabularies."""
    rows = user_vocab.indices(events["user_id"].to_numpy())
    cols = item_vocab.indices(events["item_id"].to_numpy())
    values = event_weights(events, weights) if len(events) else np.zeros(0)
    if half_life_days is not None and len(events):
        times = events["timestamp"]
        now = now if now is not None else times.max()
        age_days = ((now - times).dt.total_seconds() / _SECONDS_PER_DAY).fillna(0).to_numpy()
        values = values * np.power(0.5, np.clip(age_days, 0, None) / half_life_days)
    # A zero weight (an impression, a rating of 0) is no interaction: an explicit zero
    # in the matrix would still mark the item as "seen".
    keep = (rows >= 0) & (cols >= 0) & (values != 0)
    matrix = sp.csr_matrix(
        (values[keep].astype(np.float32), (rows[keep], cols[keep])),
        shape=(len(user_vocab), len(item_vocab)), dtype=np.float32,
    )
    matrix.sum_duplicates()
    return matrix


def profile_table(users: pd.DataFrame) -> pd.DataFrame:
    """Profiles as models read them: ``user_id`` and one column per attribute (from the
    store's ``attributes`` dicts), one row per user.

    Examples
    --------
    >>> users = pd.DataFrame({"user_id": ["u1"], "attributes": [{"age_band": "25-34"}]})
    >>> profile_table(users).to_dict("records")
    [{'user_id': 'u1', 'age_band': '25-34'}]
    """
    table = _table(users.drop(columns=["consent"], errors="ignore"), "user_id")
    assert table is not None
    return table


def _table(frame: pd.DataFrame | None, key: str) -> pd.DataFrame | None:
    if frame is None:
        return None
    if key not in frame.columns:
        raise InvalidDataError(f"table lacks its key column {key!r}; it has {list(frame.columns)}")
    table = _flatten(frame.reset_index(drop=True), "attributes")
    table[key] = table[key].astype(str)
    return table.drop_duplicates(key, keep="last").reset_index(drop=True)
