"""Demographic segments: users clustered by who they are and how they behave, each
segment recommended what is popular in it.

Users are clustered (k-means, or a Gaussian mixture for soft membership) on
demographics (one-hot categorical attributes of the ``users`` table, standardised
numeric ones) and behaviour (log of the user's item count, and the share of their
items in each of the most common item categories). A segment's popularity, the share
of its users who touched an item, is shrunk towards the global share by ``prior``
pseudo-users, so a small segment does not recommend noise.

A user is scored by the popularity of their segment(s). Demographics come from the
``users`` table, overridden by the query's ``profiles`` row.

- A known user scored from training history keeps the segment found at training.
- A current history (a query with events) is placed by the clustering when the user
  has demographics, else by a classifier from behaviour alone.
- A user without history (new, or in the ``users`` table without events) is placed
  by a classifier from demographics alone; with no demographics either, the user
  gets global popularity.

Classifiers mix segments by their probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.mixture import GaussianMixture

from tailored.dataset import Dataset, UserQuery
from tailored.errors import InvalidDataError
from tailored.expressions import normalise

from .base import DroppedUsers, ModelConfig, Reason, Recommender, ScoringBatch, Users, among
from .threads import all_threads

_THREADED_USERS = 50_000  # fewer users: fit on one thread
MAX_LEVELS = 50  # categorical attributes with more values are skipped (or cut to these)
_NUMBER, _CATEGORY = "number", "category"


class SegmentsConfig(ModelConfig):
    """``n_segments``: how many segments (fewer if there are fewer distinct users).
    ``method``: ``kmeans`` (each user in one segment) or ``gaussian_mixture`` (soft
    membership, diagonal covariances). ``prior``: pseudo-users of global popularity
    added to every segment (larger: small segments lean more on global popularity).
    ``attributes``: user attribute columns to use (default: every numeric column and
    every categorical one with 2 to 50 values, at most one per two users, so ids and
    zip codes are left out).
    ``behaviour_weight``: weight of the behaviour features against demographics (0:
    segments by demographics only). ``top_categories``: item categories whose shares
    describe behaviour. ``seed``: clustering seed."""

    n_segments: int = Field(8, ge=1, le=1000)
    method: Literal["kmeans", "gaussian_mixture"] = "kmeans"
    prior: float = Field(20.0, ge=0)
    attributes: tuple[str, ...] | None = None
    behaviour_weight: float = Field(1.0, ge=0)
    top_categories: int = Field(20, ge=0, le=1000)
    seed: int = 0


class Segments(Recommender):
    """Popular items within the user's segment (demographics + behaviour clusters).

    Examples
    --------
    >>> import pandas as pd
    >>> import tailored
    >>> events = pd.DataFrame({"user_id": ["a1", "a1", "a2", "a2", "b1", "b1", "b2", "b2"],
    ...                        "item_id": ["x", "y", "x", "v", "z", "w", "z", "u"]})
    >>> users = pd.DataFrame({"user_id": ["a1", "a2", "b1", "b2"],
    ...                       "age_band": ["18-24", "18-24", "56+", "56+"]})
    >>> data = tailored.Dataset.from_frame(events, users=users)
    >>> model = Segments(n_segments=2, prior=1.0).fit(data)
    >>> model.recommend("a2", k=1)["item_id"].tolist()    # popular with the other 18-24
    ['y']
    >>> newcomer = pd.DataFrame({"user_id": ["c"], "age_band": ["56+"]})
    >>> model.recommend(tailored.UserQuery(("c",), profiles=newcomer), k=1)["item_id"].tolist()
    ['z']
    >>> a1, b1, nobody = model.segment_of(["a1", "b1", "nobody"]).tolist()
    >>> a1 != b1, nobody                # nobody has neither a history nor a profile
    (True, -1)
    >>> model.segment_of(newcomer).tolist() == [b1]
    True
    """

    name = "segments"
    example_params: ClassVar[dict[str, Any]] = {"n_segments": 4, "prior": 5.0}

    @property
    def reads_profiles(self) -> bool:
        return True  # a user's segment comes from their profile
    Config = SegmentsConfig
    config: SegmentsConfig

    # ---- learning --------------------------------------------------------------------

    def _fit(self, matrix: sp.csr_matrix, data: Dataset) -> None:
        # On small problems thread start-up costs more than the work (6x on the tests).
        with all_threads(1 if matrix.shape[0] < _THREADED_USERS else None):
            self._fit_segments(matrix, data)

    def _fit_segments(self, matrix: sp.csr_matrix, data: Dataset) -> None:
        binary = sp.csr_matrix((matrix > 0).astype(np.float32))
        n_users = binary.shape[0]
        self._learn_encoder(data)
        self._learn_categories(data, binary)
        self._store_user_table(data)

        # Each block (demographics, behaviour) is scaled to a total variance of one, so
        # neither dominates by its number of columns; behaviour_weight then tilts.
        cells = self._table_for(list(self.user_vocab_.ids), None)
        self.block_scales_ = np.ones(2)  # unscaled first, to measure each block's variance
        demographics, has_demographics = self._encode(cells)
        behaviour_raw = self._behaviour_raw(binary)
        self.behaviour_mean_ = behaviour_raw.mean(axis=0)
        spread = behaviour_raw.std(axis=0)
        self.behaviour_scale_ = np.where(spread > 1e-9, spread, 1.0)
        behaviour = self._behaviour(binary)
        variances = (demographics.var(axis=0).sum(), behaviour.var(axis=0).sum())
        self.block_scales_ = np.array([1 / math.sqrt(v) if v > 1e-12 else 1.0
                                       for v in variances])
        self.block_scales_[1] *= self.config.behaviour_weight
        demographics *= self.block_scales_[0]
        behaviour *= self.block_scales_[1]
        features = np.hstack([demographics, behaviour])

        k = max(1, min(self.config.n_segments, len(np.unique(features.round(6), axis=0))))
        self._cluster(features, k)
        memberships = self._assign(features)
        self.memberships_ = memberships.astype(np.float32)

        global_rate = np.asarray(binary.sum(axis=0)).ravel() / max(n_users, 1)
        counts = np.asarray(binary.T @ memberships).T  # segments x items
        sizes = memberships.sum(axis=0)
        prior = self.config.prior
        denominator = (sizes + prior)[:, None]
        self.segment_scores_ = np.divide(
            counts + prior * global_rate[None, :], denominator,
            out=np.tile(global_rate, (k, 1)), where=denominator > 0).astype(np.float32)
        self.global_rate_ = global_rate.astype(np.float32)

        labels = memberships.argmax(axis=1)
        self.demographic_model_ = _fit_classifier(demographics[has_demographics],
                                                  labels[has_demographics])
        self.behaviour_model_ = _fit_classifier(behaviour, labels)
        self.segment_sizes_ = sizes.astype(np.float64)
        onehots = self._onehot(cells)
        self.level_shares_ = _means(memberships, onehots)
        self.global_level_shares_ = onehots.mean(axis=0) if n_users else np.zeros(
            onehots.shape[1])
        self.segment_behaviour_ = _means(memberships, behaviour_raw)
        self.segment_numbers_ = _means(memberships, self._numbers(cells))

    def _learn_encoder(self, data: Dataset) -> None:
        """Which attributes, their kind, their levels (categorical) or mean/std (numeric)."""
        users = data.users
        columns = [c for c in (users.columns if users is not None else []) if c != "user_id"]
        if self.config.attributes is not None:
            missing = [a for a in self.config.attributes if a not in columns]
            if missing:
                raise InvalidDataError(
                    f"attributes: {missing} are not columns of the users table "
                    f"({', '.join(map(str, columns)) or 'no users table'})")
            columns = list(self.config.attributes)
        names, kinds, levels, owners, means, scales = [], [], [], [], [], []
        for column in columns:
            assert users is not None
            values = [normalise(v) for v in users[column].tolist()]
            present = [v for v in values if v is not None and not isinstance(v, tuple)]
            numeric = bool(present) and all(isinstance(v, int | float)
                                            and not isinstance(v, bool) for v in present)
            distinct = pd.Series([str(v) for v in present]).value_counts(sort=True)
            explicit = self.config.attributes is not None
            id_like = len(distinct) > min(MAX_LEVELS, max(2, len(present) // 2))
            if len(distinct) < 2 or (not numeric and not explicit and id_like):
                continue  # constant, empty, or nearly one value per user (ids, zip codes)
            names.append(str(column))
            if numeric:
                numbers = np.asarray(present, dtype=np.float64)
                kinds.append(_NUMBER)
                means.append(float(numbers.mean()))
                scales.append(float(numbers.std()) or 1.0)
            else:
                kinds.append(_CATEGORY)
                means.append(math.nan)
                scales.append(math.nan)
                kept = distinct.index[:MAX_LEVELS].tolist()
                levels += kept
                owners += [len(names) - 1] * len(kept)
        self.attribute_names_ = np.asarray(names, dtype=str)
        self.attribute_kinds_ = np.asarray(kinds, dtype=str)
        self.levels_ = np.asarray(levels, dtype=str)
        self.level_owners_ = np.asarray(owners, dtype=np.int64)
        self.attribute_means_ = np.asarray(means, dtype=np.float64)
        self.attribute_scales_ = np.asarray(scales, dtype=np.float64)

    def _learn_categories(self, data: Dataset, binary: sp.csr_matrix) -> None:
        """The most common item categories, and which items belong to each."""
        n_items = binary.shape[1]
        items = data.items
        if items is None or "categories" not in items.columns or not self.config.top_categories:
            self.category_names_ = np.zeros(0, dtype=str)
            self.item_categories_ = np.zeros((n_items, 0), dtype=bool)
            return
        by_item = items.set_index("item_id")["categories"].reindex(self.item_vocab_.ids)
        lists = [tuple(str(c) for c in v) if isinstance(v, list | tuple | np.ndarray) else ()
                 for v in by_item.tolist()]
        interactions = np.asarray(binary.sum(axis=0)).ravel()
        weight: dict[str, float] = {}
        for categories, count in zip(lists, interactions, strict=True):
            for category in categories:
                weight[category] = weight.get(category, 0.0) + float(count)
        top = sorted(weight, key=lambda c: (-weight[c], c))[: self.config.top_categories]
        position = {c: i for i, c in enumerate(top)}
        membership = np.zeros((n_items, len(top)), dtype=bool)
        for item, categories in enumerate(lists):
            for category in categories:
                if category in position:
                    membership[item, position[category]] = True
        self.category_names_ = np.asarray(top, dtype=str)
        self.item_categories_ = membership

    def _store_user_table(self, data: Dataset) -> None:
        """Raw attribute values of every user in the users table (with or without events)."""
        users = data.users
        if users is None or not len(self.attribute_names_):
            self.table_user_ids_ = np.zeros(0, dtype=str)
            self.table_values_ = np.zeros((0, len(self.attribute_names_)), dtype=str)
            return
        users = users.assign(user_id=users["user_id"].astype(str)).drop_duplicates(
            "user_id", keep="last")
        self.table_user_ids_ = users["user_id"].to_numpy(dtype=str)
        cells = [[_cell(v) for v in users[name].tolist()] for name in self.attribute_names_]
        self.table_values_ = np.asarray(cells, dtype=str).T.reshape(len(users), -1)

    def _cluster(self, features: np.ndarray, k: int) -> None:
        if self.config.method == "kmeans":
            solver = KMeans(n_clusters=k, n_init=4, random_state=self.config.seed)
            solver.fit(features)
            self.centers_ = np.asarray(solver.cluster_centers_, dtype=np.float64)
            self.variances_ = np.ones_like(self.centers_)
            self.mixing_ = np.full(k, 1.0 / k)
        else:
            mixture = GaussianMixture(n_components=k, covariance_type="diag", reg_covar=1e-3,
                                      random_state=self.config.seed)
            mixture.fit(features)
            self.centers_ = np.asarray(mixture.means_, dtype=np.float64)
            self.variances_ = np.asarray(mixture.covariances_, dtype=np.float64)
            self.mixing_ = np.asarray(mixture.weights_, dtype=np.float64)

    # ---- features --------------------------------------------------------------------

    def _table_for(self, user_ids: Sequence[str], profiles: pd.DataFrame | None) -> np.ndarray:
        """Raw attribute cells ('' = missing) for users: stored table, then profile rows."""
        n_attributes = len(self.attribute_names_)
        cells = np.full((len(user_ids), n_attributes), "", dtype=object)
        if len(self.table_user_ids_) and n_attributes:
            rows = pd.Index(self.table_user_ids_).get_indexer(pd.Index(list(user_ids)))
            cells[rows >= 0] = self.table_values_[rows[rows >= 0]]
        if profiles is not None and n_attributes and "user_id" in profiles.columns:
            given = profiles.drop_duplicates("user_id", keep="last")
            rows = pd.Index(given["user_id"].astype(str)).get_indexer(
                pd.Index(list(user_ids)))
            for column, name in enumerate(self.attribute_names_):
                if name not in given.columns:
                    continue
                values = [_cell(v) for v in given[name].tolist()]
                for position, row in enumerate(rows):
                    if row >= 0 and values[row]:
                        cells[position, column] = values[row]
        return cells

    def _onehot(self, cells: np.ndarray) -> np.ndarray:
        """0/1 per categorical level (missing or unseen values: all zero)."""
        onehot = np.zeros((len(cells), len(self.levels_)), dtype=np.float64)
        for attribute in np.flatnonzero(self.attribute_kinds_ == _CATEGORY):
            columns = np.flatnonzero(self.level_owners_ == attribute)
            codes = pd.Index(self.levels_[columns]).get_indexer(
                pd.Index(cells[:, attribute].astype(str)))
            hit = codes >= 0
            onehot[np.flatnonzero(hit), columns[codes[hit]]] = 1.0
        return onehot

    def _numbers(self, cells: np.ndarray) -> np.ndarray:
        """Numeric attributes as floats (NaN where missing or not a number)."""
        numeric = np.flatnonzero(self.attribute_kinds_ == _NUMBER)
        numbers = np.full((len(cells), len(numeric)), np.nan)
        for position, attribute in enumerate(numeric):
            numbers[:, position] = pd.to_numeric(pd.Series(cells[:, attribute]),
                                                 errors="coerce").to_numpy(dtype=np.float64)
        return numbers

    def _encode(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Demographic features (one-hot levels, standardised numbers; missing values
        are zeros) and whether each user has any demographic value at all."""
        numeric = np.flatnonzero(self.attribute_kinds_ == _NUMBER)
        numbers = self._numbers(cells)
        standard = (numbers - self.attribute_means_[numeric]) / self.attribute_scales_[numeric]
        features = np.hstack([self._onehot(cells), np.nan_to_num(standard)])
        has = (cells != "").any(axis=1) if cells.shape[1] else np.zeros(len(cells), bool)
        return features * self.block_scales_[0], has

    def _behaviour_raw(self, history: sp.csr_matrix) -> np.ndarray:
        binary = sp.csr_matrix((history > 0).astype(np.float64))
        activity = np.asarray(binary.sum(axis=1)).ravel()
        shares = np.asarray(binary @ self.item_categories_.astype(np.float64))
        shares = shares / np.maximum(activity, 1)[:, None]
        return np.hstack([np.log1p(activity)[:, None], shares])

    def _behaviour(self, history: sp.csr_matrix) -> np.ndarray:
        """Standardised behaviour features, weighted against demographics."""
        standard = (self._behaviour_raw(history) - self.behaviour_mean_) / self.behaviour_scale_
        return standard * self.block_scales_[1]

    # ---- placing users and scoring ---------------------------------------------------

    def _assign(self, features: np.ndarray) -> np.ndarray:
        """Segment memberships from full features (one-hot for k-means)."""
        k = len(self.centers_)
        # Squared (precision-weighted) distances by expansion: no users x k x d array.
        precision = 1.0 / self.variances_
        distances = ((features ** 2) @ precision.T - 2 * features @ (self.centers_ * precision).T
                     + (self.centers_ ** 2 * precision).sum(axis=1)[None, :])
        if self.config.method == "kmeans":
            return np.eye(k)[distances.argmin(axis=1)] if len(features) else np.zeros((0, k))
        log_density = -0.5 * (np.log(2 * np.pi * self.variances_).sum(axis=1)[None, :]
                              + distances)
        return _softmax(log_density + np.log(self.mixing_)[None, :])

    def _placed_by_history(self, batch: ScoringBatch) -> np.ndarray:
        """Segment weights of the users with a history (zero rows for the others)."""
        k = len(self.centers_)
        weights = np.zeros((len(batch), k))
        known = batch.users >= 0
        weights[known] = self.memberships_[batch.users[known]]
        current = np.flatnonzero(~known & (np.diff(batch.history.indptr) > 0))
        cells = self._table_for([batch.user_ids[i] for i in current], batch.profiles)
        demographics, has_demographics = self._encode(cells)
        behaviour = self._behaviour(batch.history[current])
        weights[current[has_demographics]] = self._assign(
            np.hstack([demographics, behaviour])[has_demographics])
        weights[current[~has_demographics]] = _predict(self.behaviour_model_,
                                                       behaviour[~has_demographics], k)
        return weights

    def _placed_by_demographics(self, batch: ScoringBatch) -> np.ndarray:
        """Segment weights from demographics alone (zero rows for users without any)."""
        k = len(self.centers_)
        weights = np.zeros((len(batch), k))
        demographics, has_demographics = self._encode(
            self._table_for(batch.user_ids, batch.profiles))
        weights[has_demographics] = _predict(self.demographic_model_,
                                             demographics[has_demographics], k)
        return weights

    def _popularity_in(self, weights: np.ndarray) -> np.ndarray:
        """Scores by segment weights; a user in no segment gets global popularity."""
        scores = (weights @ self.segment_scores_).astype(np.float32)
        scores[weights.sum(axis=1) == 0] = self.global_rate_
        return scores

    def _score(self, batch: ScoringBatch) -> np.ndarray:
        # Users without history get global popularity here; the base class replaces
        # their rows with _fallback's.
        return self._popularity_in(self._placed_by_history(batch))

    def _fallback(self, batch: ScoringBatch | None = None) -> np.ndarray:
        if batch is None:
            return self.global_rate_
        return self._popularity_in(self._placed_by_demographics(batch))

    # ---- explanations ----------------------------------------------------------------

    def _explain(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                 ) -> list[Reason]:
        return self._segment_reasons(self._placed_by_history(batch), rows)

    def _explain_fallback(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                          ) -> list[Reason]:
        return self._segment_reasons(self._placed_by_demographics(batch), rows)

    def _segment_reasons(self, weights: np.ndarray, rows: np.ndarray) -> list[Reason]:
        """"popular in your segment" for users placed in one (described by what sets it
        apart), "popular" for users scored by global popularity."""
        placed = weights.sum(axis=1) > 0
        segment = weights.argmax(axis=1)
        described: list[list[str]] = (self.segment_profiles_["top_attributes"].tolist()
                                      if placed[rows].any() else [])
        reasons = []
        for row in rows:
            if not placed[row]:
                reasons.append(Reason("popular"))
                continue
            reasons.append(Reason("segment", detail=", ".join(
                str(text).split(" (")[0] for text in described[int(segment[row])][:2])))
        return reasons

    def segment_of(self, users: Users | pd.DataFrame) -> np.ndarray:
        """Each user's (most likely) segment; -1 for a user with no history or demographics.

        ``users`` is ids, a :class:`UserQuery` (histories, profiles), or a frame of
        profiles (``user_id`` optional) describing new users by attributes alone.
        """
        self._check_fitted()
        if isinstance(users, pd.DataFrame):
            profiles = users if "user_id" in users.columns else users.assign(
                user_id=[f"profile-{i}" for i in range(len(users))])
            users = UserQuery(tuple(profiles["user_id"].astype(str)), profiles=profiles)
        batch = self._resolve(users)
        weights = self._placed_by_history(batch)
        without_history = np.flatnonzero(np.diff(batch.history.indptr) == 0)
        weights[without_history] = self._placed_by_demographics(batch.take(without_history))
        return np.where(weights.sum(axis=1) > 0, weights.argmax(axis=1), -1)

    @property
    def segment_profiles_(self) -> pd.DataFrame:
        """One row per segment: its size, what sets its users apart, its top items.

        ``top_attributes`` lists attribute values over-represented in the segment
        (share in the segment vs overall) and numeric means; ``top_categories`` the
        categories its users favour most compared with everyone; ``top_items`` the
        items it ranks first (what "popular in your segment" shows).
        """
        self._check_fitted()
        rows = []
        total = max(float(self.segment_sizes_.sum()), 1e-12)
        numeric = self.attribute_names_[self.attribute_kinds_ == _NUMBER]
        for segment in range(len(self.centers_)):
            shares = self.level_shares_[segment]
            lift = shares - self.global_level_shares_
            best = [i for i in np.argsort(-lift, kind="stable")[:3] if lift[i] > 0]
            described = [f"{self.attribute_names_[self.level_owners_[i]]}={self.levels_[i]} "
                         f"({shares[i]:.0%} vs {self.global_level_shares_[i]:.0%})"
                         for i in best]
            described += [f"{name}≈{self.segment_numbers_[segment, i]:.1f}"
                          for i, name in enumerate(numeric)]
            category_lift = (self.segment_behaviour_[segment, 1:]
                             - self.segment_behaviour_[:, 1:].T @ self.segment_sizes_ / total)
            categories = [str(self.category_names_[i])
                          for i in np.argsort(-category_lift, kind="stable")[:3]
                          if category_lift[i] > 0]
            top = np.argsort(-self.segment_scores_[segment], kind="stable")[:5]
            rows.append({"segment": segment, "users": float(self.segment_sizes_[segment]),
                         "share": float(self.segment_sizes_[segment]) / total,
                         "top_attributes": described, "top_categories": categories,
                         "top_items": self.item_vocab_.ids[top].tolist()})
        return pd.DataFrame(rows)

    # ---- forgetting ------------------------------------------------------------------

    def _profile_ids(self) -> list[np.ndarray]:
        return [self.table_user_ids_]

    def _forget_rows(self, dropped: DroppedUsers) -> bool:
        self.memberships_ = self.memberships_[dropped.keep]
        listed = among(self.table_user_ids_, dropped.user_ids)
        self.table_user_ids_ = self.table_user_ids_[~listed]
        self.table_values_ = self.table_values_[~listed]
        return False  # clusters, segment popularity and classifiers learned from them

    # ---- persistence -----------------------------------------------------------------

    _ARRAYS = ("memberships_", "segment_scores_", "global_rate_", "centers_", "variances_",
               "mixing_", "attribute_names_", "attribute_kinds_", "levels_", "level_owners_",
               "attribute_means_", "attribute_scales_", "category_names_", "item_categories_",
               "table_user_ids_", "table_values_", "behaviour_mean_", "behaviour_scale_",
               "segment_sizes_", "level_shares_", "global_level_shares_",
               "segment_behaviour_", "segment_numbers_", "block_scales_")

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {name.rstrip("_"): np.asarray(getattr(self, name)) for name in self._ARRAYS}
        for prefix, model in (("demographic_model", self.demographic_model_),
                              ("behaviour_model", self.behaviour_model_)):
            for key, value in model.items():
                arrays[f"{prefix}.{key}"] = value
        return arrays

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        for name in self._ARRAYS:
            setattr(self, name, arrays[name.rstrip("_")])
        for prefix in ("demographic_model", "behaviour_model"):
            model = {key[len(prefix) + 1:]: value for key, value in arrays.items()
                     if key.startswith(prefix + ".")}
            setattr(self, prefix + "_", model)


def _cell(value: Any) -> str:
    """An attribute value as text ('' when missing)."""
    value = normalise(value)
    if value is None or isinstance(value, tuple):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _means(memberships: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Membership-weighted mean of ``values`` per segment (NaN values left out)."""
    present = np.isfinite(values)
    totals = memberships.T @ np.where(present, values, 0.0)
    counts = memberships.T @ present.astype(np.float64)
    return np.divide(totals, counts, out=np.zeros_like(totals, dtype=np.float64),
                     where=counts > 0)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=1, keepdims=True)


def _fit_classifier(features: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """A multinomial logistic regression from features to segment, as plain arrays.

    With a single segment among the labels it predicts that segment; without
    features or users it predicts nothing.
    """
    if not features.shape[1] or not len(labels):
        return {"coef": np.zeros((0, features.shape[1])), "intercept": np.zeros(0),
                "classes": np.zeros(0, dtype=np.int64)}
    classes = np.unique(labels)
    if len(classes) == 1:
        return {"coef": np.zeros((1, features.shape[1])), "intercept": np.zeros(1),
                "classes": classes.astype(np.int64)}
    solver = LogisticRegression(C=1.0, max_iter=1000)
    solver.fit(features, labels)
    coef, intercept = solver.coef_, solver.intercept_
    if len(classes) == 2:  # sklearn keeps one row for two classes; softmax needs both
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    return {"coef": np.asarray(coef, dtype=np.float64),
            "intercept": np.asarray(intercept, dtype=np.float64),
            "classes": solver.classes_.astype(np.int64)}


def _predict(model: dict[str, np.ndarray], features: np.ndarray, k: int) -> np.ndarray:
    """Segment probabilities (all zero when the model predicts nothing)."""
    weights = np.zeros((len(features), k))
    if not len(model["classes"]):
        return weights
    probabilities = _softmax(features @ model["coef"].T + model["intercept"][None, :])
    weights[:, model["classes"]] = probabilities
    return weights
