"""Features for the learned ranker, and their preprocessing.

:class:`FeatureBuilder` turns candidates (see :mod:`tailored.ranking.candidates`) into
one row per (user, item), in groups a config can switch off:

- ``sources``: each source's score, its per-user z-score, its rank, and whether the
  source proposed the item;
- ``item``: popularity (log distinct users), recent popularity and trend (the last
  ``recent_days``), days since the item's last event (popularity recency), the item's
  age (from ``created_at``, else its first event) and its numeric attributes (price,
  year, ...);
- ``user``: activity (events, distinct items), recency (days since the last event),
  frequency (events per active day) and the user's attributes (age band, city, ...);
- ``match``: the share of the user's history in the item's categories;
- ``context``: hour of day and weekday (cyclic, so 23h is next to 0h), weekend,
  ``device`` and ``location``, and how much more often the item (and its categories)
  is taken in this context than on average, learned from the training events (lift of
  the device, the part of the day and the weekday), and the user's category shares
  reweighted by the within-user category lift of each key and of all keys at once
  (``context_category_match``, ``context_category_shift``: taste times the moment's
  multipliers, the way context shifts a session's preferences).

Context is what the query says (``UserQuery.context``: ``hour``, ``weekday``,
``device``, ``location``, or a ``timestamp`` they derive from); in training it is the
event that asked (the user's first event of the label period). Events give context
through ``device``/``location`` columns or a ``context`` dict column.

:class:`Preprocessor` fits scikit-learn transformers on training rows only (median or
mean imputation, min-max or z-score scaling, one-hot or target encoding of the
categorical columns) and keeps only their fitted parameters as arrays, so a saved
ranker holds no pickle and transforms exactly as the fitted transformers do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field

from tailored.dataset import Dataset
from tailored.models import ModelConfig, ScoringBatch
from tailored.models.base import DroppedUsers, among

from .candidates import CandidateSet

_SECONDS_PER_DAY = 86_400.0
CONTEXT_KEYS = ("hour", "weekday", "device", "location")
#: Parts of the day used for context lift: night, morning, afternoon, evening.
DAYPARTS = ("night", "morning", "afternoon", "evening")
_LIFT_PRIOR = 20.0  # pseudo-events that pull a rare item's context lift towards 1
_IGNORED_ITEM_COLUMNS = ("item_id", "title", "text", "categories", "available", "created_at")
_IGNORED_USER_COLUMNS = ("user_id", "consent")
_MAX_CATEGORY_LEVELS = 200


class FeatureConfig(ModelConfig):
    """Which feature groups the ranker sees; ``recent_days``: the window of recent
    popularity; ``context_keys``: the context values used (``hour``, ``weekday``,
    ``device``, ``location``)."""

    sources: bool = True
    item: bool = True
    user: bool = True
    user_attributes: bool = True
    match: bool = True
    context: bool = True
    recent_days: float = Field(default=7.0, gt=0)
    context_keys: tuple[str, ...] = CONTEXT_KEYS


class PreprocessingConfig(ModelConfig):
    """``impute``: fill missing numbers with the training ``median`` or ``mean``;
    ``scale``: ``none``, ``minmax`` or ``zscore``; ``encode``: categorical columns
    ``onehot``, ``target`` (mean label per value, cross-fitted on training rows), or
    ``auto`` (one-hot up to ``max_onehot`` values, target encoding above)."""

    impute: Literal["median", "mean"] = "median"
    scale: Literal["none", "minmax", "zscore"] = "none"
    encode: Literal["onehot", "target", "auto"] = "auto"
    max_onehot: int = Field(default=12, ge=1)


# ---- context ---------------------------------------------------------------------------


def daypart(hours: np.ndarray) -> np.ndarray:
    """0 night (0-5h), 1 morning (6-11h), 2 afternoon (12-17h), 3 evening (18-23h); -1 NaN."""
    hours = np.asarray(hours, dtype=np.float64)
    return np.where(np.isnan(hours), -1, np.floor(np.nan_to_num(hours) / 6)).astype(np.int64)


def event_context(events: pd.DataFrame) -> pd.DataFrame:
    """Each event's context: ``hour``, ``weekday`` (from its time), ``device``,
    ``location`` (from columns of that name or the ``context`` dict column)."""
    frame = pd.DataFrame(index=events.index)
    if "timestamp" in events.columns:
        times = pd.to_datetime(events["timestamp"], utc=True, errors="coerce")
        frame["hour"] = times.dt.hour.astype("float64")
        frame["weekday"] = times.dt.day_of_week.astype("float64")
    else:
        frame["hour"] = np.nan
        frame["weekday"] = np.nan
    nested = events["context"] if "context" in events.columns else None
    for key in ("device", "location"):
        if key in events.columns:
            values = events[key]
        elif nested is not None:
            values = nested.map(lambda c, k=key: c.get(k) if isinstance(c, Mapping) else None)
        else:
            values = pd.Series(None, index=events.index, dtype=object)
        frame[key] = values.astype(object).where(values.notna(), None)
    return frame


def query_context(context: Mapping[str, Any], n_users: int) -> pd.DataFrame:
    """A query's context mapping, one row per user, with the keys the features read.

    ``hour`` (0-23) and ``weekday`` (0 Monday - 6 Sunday) come from the mapping, else
    from its ``timestamp`` (ISO text or a datetime).
    """
    hour, weekday = context.get("hour"), context.get("weekday")
    stamp = context.get("timestamp")
    if stamp is not None and (hour is None or weekday is None):
        time = pd.Timestamp(stamp)
        time = time.tz_localize("UTC") if time.tzinfo is None else time.tz_convert("UTC")
        hour = time.hour if hour is None else hour
        weekday = time.weekday() if weekday is None else weekday
    row = {"hour": _number(hour, "hour", 0, 23), "weekday": _number(weekday, "weekday", 0, 6),
           "device": _text(context.get("device")), "location": _text(context.get("location"))}
    return pd.DataFrame([row] * n_users, columns=list(CONTEXT_KEYS))


def _number(value: Any, key: str, low: int, high: int) -> float:
    if value is None:
        return float("nan")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"context {key} must be a number from {low} to {high}, "
                         f"got {value!r}") from None
    if not low <= number <= high:
        raise ValueError(f"context {key} must be from {low} to {high}, got {value!r}")
    return number


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


# ---- the builder ----------------------------------------------------------------------


@dataclass(frozen=True)
class Features:
    """Rows of features: ``numeric`` (float, NaN when missing) and ``categorical``
    (strings or None), with their column names."""

    numeric: np.ndarray
    numeric_names: list[str]
    categorical: np.ndarray
    categorical_names: list[str]


class FeatureBuilder:
    """Learns item, user and context statistics from training data; builds feature rows."""

    def __init__(self, config: FeatureConfig) -> None:
        self.config = config

    # ---- learning --------------------------------------------------------------------

    def fit(self, data: Dataset, item_ids: np.ndarray, user_ids: np.ndarray) -> FeatureBuilder:
        """Statistics of ``data`` laid out on the given item and user vocabularies."""
        events = data.events
        n_items, n_users = len(item_ids), len(user_ids)
        item_index = pd.Index(item_ids)
        user_index = pd.Index(user_ids)
        items = item_index.get_indexer(events["item_id"].astype(str))
        users = user_index.get_indexer(events["user_id"].astype(str))
        seconds = _seconds(events["timestamp"]) if "timestamp" in events.columns else \
            np.full(len(events), np.nan)
        now = float(np.nanmax(seconds)) if np.isfinite(seconds).any() else float("nan")
        self.now_ = now
        known = items >= 0
        # Items: popularity, recent popularity, last and first event, attributes.
        pairs = pd.DataFrame({"item": items[known], "user": users[known]}).drop_duplicates()
        distinct = np.bincount(pairs["item"], minlength=n_items).astype(np.float64)
        recent = known & (seconds >= now - self.config.recent_days * _SECONDS_PER_DAY)
        recent_pairs = pd.DataFrame({"item": items[recent], "user": users[recent]})
        recent_count = np.bincount(recent_pairs.drop_duplicates()["item"],
                                   minlength=n_items).astype(np.float64)
        last = np.full(n_items, np.nan)
        first = np.full(n_items, np.nan)
        if np.isfinite(seconds).any():
            by_item = pd.DataFrame({"item": items[known], "s": seconds[known]}).groupby("item")["s"]
            last[by_item.max().index] = by_item.max().to_numpy()
            first[by_item.min().index] = by_item.min().to_numpy()
        table = (data.items.set_index("item_id").reindex(item_ids) if data.items is not None
                 else pd.DataFrame(index=item_ids))
        if "created_at" in table.columns:
            created = _seconds(table["created_at"])
            first = np.where(np.isfinite(created), created, first)
        self.item_numeric_names_ = [str(c) for c in table.columns
                                    if c not in _IGNORED_ITEM_COLUMNS
                                    and pd.api.types.is_numeric_dtype(table[c])
                                    and not pd.api.types.is_bool_dtype(table[c])]
        self.item_numeric_ = table[self.item_numeric_names_].to_numpy(np.float64) \
            if self.item_numeric_names_ else np.zeros((n_items, 0))
        total_recent = max(1.0, recent_count.sum())
        self.item_stats_ = np.stack([
            np.log1p(distinct), np.log1p(recent_count),
            np.log((recent_count + 1) / total_recent) - np.log((distinct + 1) / max(
                1.0, distinct.sum())),
            (now - last) / _SECONDS_PER_DAY, (now - first) / _SECONDS_PER_DAY], axis=1)
        # Categories: a binary items x categories matrix.
        categories = (table["categories"] if "categories" in table.columns
                      else pd.Series([None] * n_items, index=table.index))
        lists = [list(c) if isinstance(c, list | tuple | np.ndarray) else [] for c in categories]
        names = sorted({str(c) for values in lists for c in values})[:_MAX_CATEGORY_LEVELS]
        self.category_names_ = np.asarray(names, dtype=str)
        position = {name: i for i, name in enumerate(names)}
        cells = [(row, position[str(c)]) for row, values in enumerate(lists) for c in values
                 if str(c) in position]
        rows, cols = (np.array([r for r, _ in cells], dtype=np.int64),
                      np.array([c for _, c in cells], dtype=np.int64))
        self.item_categories_ = sp.csr_matrix(
            (np.ones(len(cells), np.float32), (rows, cols)), shape=(n_items, len(names)))
        # Users: activity, last event, active days; attributes.
        self.user_stats_ = self._user_stats(users, seconds, n_users)
        self._fit_user_attributes(data.users, user_ids)
        # Context lift of items and categories, by device, part of day and weekday.
        context = event_context(events)
        self.context_values_: dict[str, np.ndarray] = {}
        self.item_lift_: dict[str, np.ndarray] = {}
        self.category_lift_: dict[str, np.ndarray] = {}
        keyed = {"device": context["device"],
                 "daypart": pd.Series(daypart(context["hour"].to_numpy()))
                 .map(lambda d: DAYPARTS[d] if d >= 0 else None),
                 "weekday": context["weekday"].map(
                     lambda w: None if pd.isna(w) else str(int(w)))}
        for key, values in keyed.items():
            self._fit_lift(key, values.to_numpy(dtype=object), items, users)
        return self

    def _user_stats(self, users: np.ndarray, seconds: np.ndarray, n_users: int) -> np.ndarray:
        known = users >= 0
        counts = np.bincount(users[known], minlength=n_users).astype(np.float64)
        last = np.full(n_users, np.nan)
        first = np.full(n_users, np.nan)
        finite = known & np.isfinite(seconds)
        if finite.any():
            grouped = pd.Series(seconds[finite]).groupby(users[finite])
            last[grouped.max().index] = grouped.max().to_numpy()
            first[grouped.min().index] = grouped.min().to_numpy()
        return np.stack([counts, last, first], axis=1)

    def _fit_user_attributes(self, users: pd.DataFrame | None, user_ids: np.ndarray) -> None:
        self.user_numeric_names_: list[str] = []
        self.user_categorical_names_: list[str] = []
        self.user_table_ids_ = np.zeros(0, dtype=str)
        self.user_numeric_ = np.zeros((0, 0))
        self.user_categorical_ = np.zeros((0, 0), dtype=str)
        if users is None or not self.config.user_attributes:
            return
        table = users.drop_duplicates("user_id", keep="last")
        columns = [c for c in table.columns if c not in _IGNORED_USER_COLUMNS]
        numeric = [c for c in columns if pd.api.types.is_numeric_dtype(table[c])
                   and not pd.api.types.is_bool_dtype(table[c])]
        categorical = [c for c in columns if c not in numeric
                       and 1 < table[c].nunique() <= max(2, len(table) // 2)]
        self.user_table_ids_ = table["user_id"].astype(str).to_numpy(dtype=str)
        self.user_numeric_names_ = [str(c) for c in numeric]
        self.user_categorical_names_ = [str(c) for c in categorical]
        self.user_numeric_ = table[numeric].to_numpy(np.float64) if numeric else \
            np.zeros((len(table), 0))
        self.user_categorical_ = (table[categorical].astype(object).where(
            table[categorical].notna(), "").astype(str).to_numpy(dtype=str) if categorical
            else np.zeros((len(table), 0), dtype=str))

    def _fit_lift(self, key: str, values: np.ndarray, items: np.ndarray,
                  users: np.ndarray) -> None:
        """How much more often an item (a category) is taken in each context value.

        Items: P(value | item) / P(value), smoothed towards 1. Categories: observed over
        expected counts, where a user's expected count of a category in a context is
        their events in that context times their own share of the category, so the
        lift measures how the moment shifts a user's taste, not who uses which device.
        """
        present = pd.notna(values) & (items >= 0) & (users >= 0)
        levels = np.asarray(sorted({str(v) for v in values[present]}), dtype=str)
        self.context_values_[key] = levels
        n_items, n_categories = self.item_categories_.shape
        if len(levels) < 2:
            self.item_lift_[key] = np.ones((n_items, len(levels)), np.float32)
            self.category_lift_[key] = np.ones((n_categories, len(levels)), np.float32)
            return
        codes = pd.Index(levels).get_indexer(values[present].astype(str))
        ones = np.ones(len(codes))
        counts = sp.csr_matrix((ones, (items[present], codes)),
                               shape=(n_items, len(levels))).toarray()
        self.item_lift_[key] = _lift(counts)
        n_users = int(users.max()) + 1 if len(users) else 0
        user_items = sp.csr_matrix((ones, (users[present], items[present])),
                                   shape=(n_users, n_items))
        user_categories = np.asarray((user_items @ self.item_categories_).todense())
        totals = user_categories.sum(axis=1, keepdims=True)
        shares = user_categories / np.where(totals > 0, totals, 1.0)
        user_context = sp.csr_matrix((ones, (users[present], codes)),
                                     shape=(n_users, len(levels)))
        expected = np.asarray((user_context.T @ shares).T)  # categories x levels
        observed = np.asarray(self.item_categories_.T @ counts)
        self.category_lift_[key] = ((observed + _LIFT_PRIOR)
                                    / (expected + _LIFT_PRIOR)).astype(np.float32)

    # ---- building --------------------------------------------------------------------

    def build(self, batch: ScoringBatch, candidates: CandidateSet,
              source_scores: Sequence[np.ndarray], contexts: pd.DataFrame,
              user_rows: np.ndarray) -> Features:
        """Feature rows for ``candidates`` of ``batch``.

        ``source_scores`` are each source's full score rows (for per-user z-scores),
        ``contexts`` one row of context per batch user (:func:`query_context`),
        ``user_rows`` each batch user's row in the training user table (-1: unknown).
        """
        numeric: list[np.ndarray] = []
        names: list[str] = []
        categorical: list[np.ndarray] = []
        categorical_names: list[str] = []
        rows, items = candidates.rows, candidates.items
        config = self.config

        def add(name: str, values: np.ndarray) -> None:
            names.append(name)
            numeric.append(np.asarray(values, dtype=np.float64))

        if config.sources:
            for column, label in enumerate(candidates.labels):
                full = np.asarray(source_scores[column], dtype=np.float64)
                full = np.where(np.isfinite(full), full, np.nan)
                mean = np.nanmean(full, axis=1)
                spread = np.nanstd(full, axis=1)
                spread = np.where(spread > 0, spread, 1.0)
                add(f"{label}_score", candidates.scores[:, column])
                add(f"{label}_zscore", (candidates.scores[:, column] - mean[rows]) / spread[rows])
                add(f"{label}_rank", np.log2(candidates.ranks[:, column]))
                add(f"{label}_proposed", candidates.proposed[:, column])
            add("sources_proposing", candidates.proposed.sum(axis=1))
        if config.item:
            for column, name in enumerate(("item_popularity", "item_recent_popularity",
                                           "item_trend", "item_days_since_last_event",
                                           "item_age_days")):
                add(name, self.item_stats_[items, column])
            for column, name in enumerate(self.item_numeric_names_):
                add(f"item_{name}", self.item_numeric_[items, column])
        history = batch.history
        if config.user:
            lengths = np.diff(history.indptr).astype(np.float64)
            weights = np.asarray(history.sum(axis=1)).ravel()
            stats = self._batch_user_stats(batch, user_rows)
            add("user_items", np.log1p(lengths[rows]))
            add("user_weight", np.log1p(weights[rows]))
            add("user_events", np.log1p(stats[rows, 0]))
            add("user_days_since_last_event", stats[rows, 1])
            add("user_events_per_active_day", stats[rows, 2])
        if config.user_attributes and self.user_table_ids_.size:
            table_rows = pd.Index(self.user_table_ids_).get_indexer(pd.Index(batch.user_ids))
            profile_numeric, profile_categorical = self._profile_attributes(batch, table_rows)
            for column, name in enumerate(self.user_numeric_names_):
                add(f"user_{name}", profile_numeric[rows, column])
            for column, name in enumerate(self.user_categorical_names_):
                categorical_names.append(f"user_{name}")
                categorical.append(profile_categorical[rows, column])
        if config.match and self.item_categories_.shape[1]:
            user_categories = np.asarray((history @ self.item_categories_).todense())
            totals = np.asarray(history.sum(axis=1)).ravel()
            shares = user_categories / np.where(totals > 0, totals, 1.0)[:, None]
            item_categories = self.item_categories_[items]
            matched = np.asarray(item_categories.multiply(shares[rows]).sum(axis=1)).ravel()
            best = np.asarray(item_categories.multiply(shares[rows]).max(axis=1).todense()
                              ).ravel()
            add("category_match", matched)
            add("category_match_best", best)
        if config.context:
            self._context_features(add, categorical, categorical_names, contexts, rows, items,
                                   history)
        categorical_matrix = (np.stack(categorical, axis=1).astype(object) if categorical
                              else np.zeros((len(rows), 0), dtype=object))
        return Features(np.stack(numeric, axis=1) if numeric else np.zeros((len(rows), 0)),
                        names, categorical_matrix, categorical_names)

    def _context_features(self, add: Any, categorical: list[np.ndarray],
                          categorical_names: list[str], contexts: pd.DataFrame,
                          rows: np.ndarray, items: np.ndarray, history: sp.csr_matrix) -> None:
        keys = self.config.context_keys
        hour = contexts["hour"].to_numpy(np.float64)
        weekday = contexts["weekday"].to_numpy(np.float64)
        if "hour" in keys:
            add("context_hour_sin", np.sin(2 * np.pi * hour / 24)[rows])
            add("context_hour_cos", np.cos(2 * np.pi * hour / 24)[rows])
        if "weekday" in keys:
            add("context_weekday_sin", np.sin(2 * np.pi * weekday / 7)[rows])
            add("context_weekday_cos", np.cos(2 * np.pi * weekday / 7)[rows])
            add("context_weekend", np.where(np.isnan(weekday), np.nan, weekday >= 5)[rows])
        for key in ("device", "location"):
            if key in keys:
                values = contexts[key].to_numpy(dtype=object)
                categorical_names.append(f"context_{key}")
                categorical.append(values[rows])
        parts = daypart(hour)
        lift_values: dict[str, np.ndarray | None] = {
            "device": contexts["device"].to_numpy(dtype=object) if "device" in keys else None,
            "daypart": np.array([DAYPARTS[p] if p >= 0 else None for p in parts], dtype=object)
            if "hour" in keys else None,
            "weekday": np.array([None if np.isnan(w) else str(int(w)) for w in weekday],
                                dtype=object) if "weekday" in keys else None}
        n_categories = self.item_categories_.shape[1]
        shares = self._category_shares(history) if n_categories else np.zeros((0, 0))
        combined = np.zeros((len(rows), n_categories))  # summed log lifts of known keys
        any_known = np.zeros(len(rows), dtype=bool)
        for key, observed in lift_values.items():
            if observed is None or key not in self.item_lift_:
                continue
            levels = pd.Index(self.context_values_[key])
            codes = levels.get_indexer(pd.Index(observed.astype(str))) if len(levels) else \
                np.full(len(observed), -1)
            codes = np.where(pd.isna(observed), -1, codes)[rows]
            item_lift = np.full(len(rows), np.nan)
            category_lift = np.full(len(rows), np.nan)
            ok = codes >= 0
            if ok.any():
                item_lift[ok] = self.item_lift_[key][items[ok], codes[ok]]
                membership = self.item_categories_[items[ok]]
                lifts = self.category_lift_[key][:, codes[ok]]  # categories x rows
                counts = np.asarray(membership.sum(axis=1)).ravel()
                summed = np.asarray(membership.multiply(lifts.T).sum(axis=1)).ravel()
                category_lift[ok] = np.where(counts > 0, summed / np.maximum(counts, 1), np.nan)
            add(f"context_{key}_item_lift", np.log(item_lift))
            add(f"context_{key}_category_lift", np.log(category_lift))
            if n_categories:
                lift_rows = np.ones((len(rows), n_categories))
                if ok.any():
                    lift_rows[ok] = self.category_lift_[key][:, codes[ok]].T
                    combined[ok] += np.log(lift_rows[ok])
                    any_known |= ok
                add(f"context_{key}_category_match",
                    self._context_match(shares, lift_rows, ok, rows, items))
        if n_categories and any(observed is not None and key in self.item_lift_
                                for key, observed in lift_values.items()):
            # All keys at once: the generator-like model "taste times the product of the
            # moment's multipliers", which no single key's match expresses.
            match = self._context_match(shares, np.exp(combined), any_known, rows, items)
            plain = self._context_match(shares, np.ones_like(combined), any_known, rows,
                                        items)
            add("context_category_match", match)
            add("context_category_shift", np.log((match + 1e-3) / (plain + 1e-3)))

    def _category_shares(self, history: sp.csr_matrix) -> np.ndarray:
        """Each batch user's share of their history in each category."""
        shares = np.asarray((history @ self.item_categories_).todense(), dtype=np.float64)
        totals = shares.sum(axis=1, keepdims=True)
        result: np.ndarray = shares / np.where(totals > 0, totals, 1.0)
        return result

    def _context_match(self, shares: np.ndarray, lift: np.ndarray, known: np.ndarray,
                       rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The user's category shares reweighted by the context's category lift (``lift``:
        one row per candidate, one column per category; what the user likes, as this
        moment shifts it), summed over the item's categories; NaN where the context is
        not ``known``."""
        result = np.full(len(rows), np.nan)
        if known.any():
            adjusted = shares[rows[known]] * lift[known]
            sums = adjusted.sum(axis=1, keepdims=True)
            adjusted = adjusted / np.where(sums > 0, sums, 1.0)
            result[known] = np.asarray(self.item_categories_[items[known]].multiply(adjusted)
                                       .sum(axis=1)).ravel()
        return result

    def _batch_user_stats(self, batch: ScoringBatch, user_rows: np.ndarray) -> np.ndarray:
        """Per batch user: events, days since the last event, events per active day."""
        n = len(batch)
        counts = np.full(n, np.nan)
        last = np.full(n, np.nan)
        first = np.full(n, np.nan)
        known = user_rows >= 0
        counts[known] = self.user_stats_[user_rows[known], 0]
        last[known] = self.user_stats_[user_rows[known], 1]
        first[known] = self.user_stats_[user_rows[known], 2]
        now = self.now_
        if batch.events is not None and len(batch.events):
            events = batch.events
            position = pd.Index(list(batch.user_ids)).get_indexer(
                pd.Index(events["user_id"].astype(str)))
            ok = position >= 0
            counts = np.bincount(position[ok], minlength=n).astype(np.float64)
            if "timestamp" in events.columns:
                seconds = _seconds(events["timestamp"])[ok]
                finite = np.isfinite(seconds)
                if finite.any():
                    grouped = pd.Series(seconds[finite]).groupby(position[ok][finite])
                    last[:] = np.nan
                    first[:] = np.nan
                    last[grouped.max().index] = grouped.max().to_numpy()
                    first[grouped.min().index] = grouped.min().to_numpy()
                    now = float(np.nanmax([now, float(np.nanmax(seconds[finite]))]))
        elif batch.events is not None:
            counts = np.zeros(n)
        days = (now - last) / _SECONDS_PER_DAY
        active = np.maximum((last - first) / _SECONDS_PER_DAY, 1.0)
        return np.stack([counts, days, counts / active], axis=1)

    @property
    def reads_profiles(self) -> bool:
        """Whether the features hold profile attributes (read from a query's profiles)."""
        return bool(self.user_numeric_names_ or self.user_categorical_names_)

    def _profile_attributes(self, batch: ScoringBatch, table_rows: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray]:
        n = len(batch)
        numeric = np.full((n, len(self.user_numeric_names_)), np.nan)
        categorical = np.full((n, len(self.user_categorical_names_)), None, dtype=object)
        known = table_rows >= 0
        numeric[known] = self.user_numeric_[table_rows[known]]
        categorical[known] = self.user_categorical_[table_rows[known]]
        categorical[categorical == ""] = None
        profiles = batch.profiles
        if profiles is not None and "user_id" in profiles.columns and len(profiles):
            position = pd.Index(list(batch.user_ids)).get_indexer(
                pd.Index(profiles["user_id"].astype(str)))
            for column, name in enumerate(self.user_numeric_names_):
                if name in profiles.columns:
                    values = pd.to_numeric(profiles[name], errors="coerce").to_numpy(np.float64)
                    ok = (position >= 0) & np.isfinite(values)
                    numeric[position[ok], column] = values[ok]
            for column, name in enumerate(self.user_categorical_names_):
                if name in profiles.columns:
                    values = profiles[name].to_numpy(dtype=object)
                    ok = (position >= 0) & pd.notna(values)
                    categorical[position[ok], column] = values[ok].astype(str)
        return numeric, categorical

    # ---- forgetting and persistence ---------------------------------------------------

    def forget(self, dropped: DroppedUsers) -> None:
        """Remove the users' statistics (rows of the training users) and attributes
        (rows of the users table). Item and context statistics keep their events."""
        self.user_stats_ = self.user_stats_[dropped.keep]
        listed = among(self.user_table_ids_, dropped.user_ids)
        self.user_table_ids_ = self.user_table_ids_[~listed]
        self.user_numeric_ = self.user_numeric_[~listed]
        self.user_categorical_ = self.user_categorical_[~listed]

    def arrays(self) -> dict[str, np.ndarray]:
        categories = self.item_categories_.tocsr()
        arrays = {
            "now": np.array([self.now_]), "item_stats": self.item_stats_,
            "item_numeric": self.item_numeric_,
            "item_numeric_names": np.asarray(self.item_numeric_names_, dtype=str),
            "category_names": self.category_names_,
            "categories.indptr": categories.indptr, "categories.indices": categories.indices,
            "user_stats": self.user_stats_, "user_table_ids": self.user_table_ids_,
            "user_numeric": self.user_numeric_, "user_categorical": self.user_categorical_,
            "user_numeric_names": np.asarray(self.user_numeric_names_, dtype=str),
            "user_categorical_names": np.asarray(self.user_categorical_names_, dtype=str),
        }
        for key in self.item_lift_:
            arrays[f"lift.{key}.values"] = self.context_values_[key]
            arrays[f"lift.{key}.items"] = self.item_lift_[key]
            arrays[f"lift.{key}.categories"] = self.category_lift_[key]
        return arrays

    def restore(self, arrays: Mapping[str, np.ndarray]) -> FeatureBuilder:
        self.now_ = float(arrays["now"][0])
        self.item_stats_ = arrays["item_stats"]
        self.item_numeric_ = arrays["item_numeric"]
        self.item_numeric_names_ = [str(n) for n in arrays["item_numeric_names"]]
        self.category_names_ = arrays["category_names"]
        indices = arrays["categories.indices"]
        self.item_categories_ = sp.csr_matrix(
            (np.ones(len(indices), np.float32), indices, arrays["categories.indptr"]),
            shape=(len(self.item_stats_), len(self.category_names_)))
        self.user_stats_ = arrays["user_stats"]
        self.user_table_ids_ = arrays["user_table_ids"]
        self.user_numeric_ = arrays["user_numeric"]
        self.user_categorical_ = arrays["user_categorical"]
        self.user_numeric_names_ = [str(n) for n in arrays["user_numeric_names"]]
        self.user_categorical_names_ = [str(n) for n in arrays["user_categorical_names"]]
        keys = sorted({k.split(".")[1] for k in arrays if k.startswith("lift.")})
        self.context_values_ = {k: arrays[f"lift.{k}.values"] for k in keys}
        self.item_lift_ = {k: arrays[f"lift.{k}.items"] for k in keys}
        self.category_lift_ = {k: arrays[f"lift.{k}.categories"] for k in keys}
        return self


def _lift(counts: np.ndarray) -> np.ndarray:
    """Rows x context values counts -> smoothed lift P(value | row) / P(value)."""
    counts = np.asarray(counts, dtype=np.float64)
    overall = counts.sum(axis=0)
    share = overall / max(1.0, overall.sum())
    totals = counts.sum(axis=1, keepdims=True)
    conditional = (counts + _LIFT_PRIOR * share) / (totals + _LIFT_PRIOR)
    return (conditional / np.where(share > 0, share, 1.0)).astype(np.float32)


def _seconds(times: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(times, utc=True, errors="coerce")
    return np.asarray((stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds(), dtype=np.float64)


# ---- preprocessing ---------------------------------------------------------------------


class Preprocessor:
    """Imputation, scaling and categorical encoding fitted with scikit-learn on training
    rows, kept as plain arrays.

    Examples
    --------
    >>> numeric = np.array([[1.0], [np.nan], [3.0]])
    >>> categorical = np.array([["mobile"], ["desktop"], [None]], dtype=object)
    >>> prep = Preprocessor(PreprocessingConfig(scale="minmax", encode="onehot"))
    >>> matrix = prep.fit_transform(numeric, ["x"], categorical, ["device"], np.zeros(3))
    >>> prep.names_
    ['x', 'device=desktop', 'device=mobile']
    >>> matrix.tolist()
    [[0.0, 0.0, 1.0], [0.5, 1.0, 0.0], [1.0, 0.0, 0.0]]
    """

    def __init__(self, config: PreprocessingConfig) -> None:
        self.config = config

    def fit_transform(self, numeric: np.ndarray, numeric_names: list[str],
                      categorical: np.ndarray, categorical_names: list[str],
                      target: np.ndarray) -> np.ndarray:
        """Fit on training rows and return them transformed (target encoding cross-fitted,
        so a row's own label never encodes its value)."""
        from sklearn.impute import SimpleImputer
        from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

        config = self.config
        self.numeric_names_ = list(numeric_names)
        self.categorical_names_ = list(categorical_names)
        blocks: list[np.ndarray] = []
        names: list[str] = []
        if numeric.shape[1]:
            # A column with no value at all keeps 0 (sklearn would drop it).
            filled = np.where(np.isnan(numeric).all(axis=0), 0.0, np.nan)
            numeric = np.where(np.isnan(numeric) & ~np.isnan(filled), filled, numeric)
            imputer = SimpleImputer(strategy=config.impute, keep_empty_features=True)
            imputed = imputer.fit_transform(numeric)
            self.fill_ = np.asarray(imputer.statistics_, dtype=np.float64)
            if config.scale == "minmax":
                scaler: Any = MinMaxScaler().fit(imputed)
                self.center_, self.scale_ = -scaler.min_ / scaler.scale_, 1 / scaler.scale_
            elif config.scale == "zscore":
                scaler = StandardScaler().fit(imputed)
                self.center_, self.scale_ = scaler.mean_, scaler.scale_
            else:
                scaler = None
                self.center_ = np.zeros(numeric.shape[1])
                self.scale_ = np.ones(numeric.shape[1])
            self.center_ = np.asarray(self.center_, dtype=np.float64)
            self.scale_ = np.where(self.scale_ > 0, self.scale_, 1.0).astype(np.float64)
            blocks.append(scaler.transform(imputed) if scaler is not None else imputed)
            names += self.numeric_names_
        else:
            self.fill_ = self.center_ = self.scale_ = np.zeros(0)
        self.levels_: list[np.ndarray] = []
        self.encodings_: list[np.ndarray] = []
        self.kinds_: list[str] = []
        target = np.asarray(target, dtype=np.float64)
        for column, name in enumerate(categorical_names):
            values = _categories(categorical[:, column])
            distinct = np.unique(values)
            kind = config.encode if config.encode != "auto" else (
                "onehot" if len(distinct) <= config.max_onehot else "target")
            self.kinds_.append(kind)
            if kind == "onehot":
                encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False,
                                        dtype=np.float64).fit(values[:, None])
                levels = np.asarray(encoder.categories_[0], dtype=str)
                levels = levels[levels != _MISSING]
                self.levels_.append(levels)
                self.encodings_.append(np.zeros(0))
                blocks.append(_one_hot(values, levels))
                names += [f"{name}={level}" for level in levels]
            else:
                encoder = _target_encoder()
                crossed = encoder.fit_transform(values[:, None], target)
                self.levels_.append(np.asarray(encoder.categories_[0], dtype=str))
                self.encodings_.append(np.append(encoder.encodings_[0],
                                                 encoder.target_mean_).astype(np.float64))
                blocks.append(crossed)
                names.append(f"{name}_target_mean")
        self.names_ = names
        return np.hstack(blocks) if blocks else np.zeros((len(target), 0))

    def transform(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """Apply the fitted parameters (what the fitted scikit-learn transformers do)."""
        blocks = []
        if len(self.fill_):
            filled = np.where(np.isnan(numeric), self.fill_[None, :], numeric)
            blocks.append((filled - self.center_) / self.scale_)
        for column, kind in enumerate(self.kinds_):
            values = _categories(categorical[:, column])
            levels = self.levels_[column]
            if kind == "onehot":
                blocks.append(_one_hot(values, levels))
            else:
                codes = pd.Index(levels).get_indexer(values)
                table = self.encodings_[column]  # per level, then the overall mean
                blocks.append(table[np.where(codes >= 0, codes, len(levels))][:, None])
        return np.hstack(blocks) if blocks else np.zeros((len(numeric), 0))

    def arrays(self) -> dict[str, np.ndarray]:
        arrays = {"fill": self.fill_, "center": self.center_, "scale": self.scale_,
                  "numeric_names": np.asarray(self.numeric_names_, dtype=str),
                  "categorical_names": np.asarray(self.categorical_names_, dtype=str),
                  "kinds": np.asarray(self.kinds_, dtype=str),
                  "names": np.asarray(self.names_, dtype=str)}
        for column in range(len(self.kinds_)):
            arrays[f"levels.{column}"] = self.levels_[column]
            arrays[f"encodings.{column}"] = self.encodings_[column]
        return arrays

    def restore(self, arrays: Mapping[str, np.ndarray]) -> Preprocessor:
        self.fill_, self.center_, self.scale_ = arrays["fill"], arrays["center"], arrays["scale"]
        self.numeric_names_ = [str(n) for n in arrays["numeric_names"]]
        self.categorical_names_ = [str(n) for n in arrays["categorical_names"]]
        self.kinds_ = [str(k) for k in arrays["kinds"]]
        self.names_ = [str(n) for n in arrays["names"]]
        self.levels_ = [arrays[f"levels.{c}"] for c in range(len(self.kinds_))]
        self.encodings_ = [arrays[f"encodings.{c}"] for c in range(len(self.kinds_))]
        return self


_MISSING = "\x00missing"


def _target_encoder() -> Any:
    """A seeded, cross-fitting TargetEncoder (scikit-learn 1.9 takes the seed via ``cv``)."""
    import sklearn
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import TargetEncoder

    major, minor = (int(part) for part in sklearn.__version__.split(".")[:2])
    if (major, minor) >= (1, 9):
        return TargetEncoder(target_type="continuous",
                             cv=KFold(n_splits=5, shuffle=True, random_state=0))
    return TargetEncoder(target_type="continuous", random_state=0)


def _categories(values: np.ndarray) -> np.ndarray:
    return np.array([_MISSING if v is None or (isinstance(v, float) and np.isnan(v))
                     else str(v) for v in values], dtype=str)


def _one_hot(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    codes = pd.Index(levels).get_indexer(values)
    block = np.zeros((len(values), len(levels)))
    ok = codes >= 0
    block[np.flatnonzero(ok), codes[ok]] = 1.0
    return block


__all__ = ["CONTEXT_KEYS", "DAYPARTS", "FeatureBuilder", "FeatureConfig", "Features",
           "PreprocessingConfig", "Preprocessor", "daypart", "event_context", "query_context"]
