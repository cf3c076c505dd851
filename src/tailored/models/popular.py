"""Most popular items, optionally favouring recent popularity."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from tailored.dataset import Dataset

from .base import DroppedUsers, ModelConfig, Reason, Recommender, ScoringBatch


class _SameForEveryone(Recommender):
    """A ranking that ignores who asks: ``item_scores_`` for every user, seen items aside."""

    item_scores_: np.ndarray

    def _score(self, batch: ScoringBatch) -> np.ndarray:
        return np.tile(self.item_scores_, (len(batch), 1))

    def _fallback(self, batch: ScoringBatch | None = None) -> np.ndarray:
        return self.item_scores_

    def _reason(self) -> Reason:
        return Reason("popular")

    def _explain(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                 ) -> list[Reason]:
        return [self._reason()] * len(rows)

    def _explain_fallback(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                          ) -> list[Reason]:
        return self._explain(batch, rows, columns)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"item_scores": self.item_scores_}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_scores_ = arrays["item_scores"]


class PopularConfig(ModelConfig):
    """``count``: ``"users"`` counts distinct users per item, ``"weight"`` sums event
    weights. ``half_life_days``: an event that old counts half (``None``: no decay)."""

    count: Literal["users", "weight"] = "users"
    half_life_days: float | None = Field(None, gt=0)


class Popular(_SameForEveryone):
    """The same popular items for everyone (minus what each user has seen).

    Examples
    --------
    >>> import pandas as pd
    >>> import tailored
    >>> events = pd.DataFrame({"user_id": ["a", "b", "b", "c"], "item_id": ["x", "x", "y", "z"]})
    >>> model = Popular().fit(tailored.Dataset.from_frame(events))
    >>> model.recommend("a", k=2)["item_id"].tolist()
    ['y', 'z']
    """

    name = "popular"
    personalised = False
    Config = PopularConfig
    config: PopularConfig

    def _fit(self, matrix: sp.csr_matrix, data: Dataset) -> None:
        if self.config.half_life_days is not None:
            matrix = data.matrix(half_life_days=self.config.half_life_days)
            if self.config.count == "users":  # decayed presence: each user counts at most 1
                matrix = matrix.minimum(1)
            self.item_scores_ = _column_sums(matrix)
        else:
            self._count(matrix)

    def _count(self, matrix: sp.csr_matrix) -> None:
        if self.config.count == "users":
            matrix = (matrix > 0).astype(np.float32)
        self.item_scores_ = _column_sums(matrix)

    def _forget_rows(self, dropped: DroppedUsers) -> bool:
        if self.config.half_life_days is not None:
            return False  # decayed counts need the events' times, which the model drops
        self._count(self.user_items_)
        return True


class TrendingConfig(ModelConfig):
    """``window_days``: the recent period. ``baseline_days``: the period before it that
    sets the normal rate. ``prior``: pseudo-counts that keep rare items from trending on
    one or two events. ``volume``: how much the recent volume itself counts (0: growth
    only, 1: growth times volume)."""

    window_days: float = Field(7.0, gt=0)
    baseline_days: float = Field(28.0, gt=0)
    prior: float = Field(5.0, gt=0)
    volume: float = Field(0.5, ge=0, le=1)


class Trending(_SameForEveryone):
    """Items growing fastest now compared with their own recent past.

    Score = (recent rate + prior) / (baseline rate + prior) x (recent count + 1) ** volume,
    with rates in distinct users per day, measured back from the newest event.

    Examples
    --------
    >>> import pandas as pd
    >>> import tailored
    >>> events = pd.DataFrame({
    ...     "user_id": [f"u{i}" for i in range(12)],
    ...     "item_id": ["old"] * 6 + ["new"] * 6,
    ...     "timestamp": pd.to_datetime(["2026-01-01"] * 6 + ["2026-02-01"] * 6, utc=True)})
    >>> Trending(prior=1).fit(tailored.Dataset.from_frame(events)).recommend("x", k=2)[
    ...     "item_id"].tolist()
    ['new', 'old']
    """

    name = "trending"
    personalised = False
    example_params: ClassVar[dict[str, Any]] = {"window_days": 0.05, "baseline_days": 0.1}
    Config = TrendingConfig
    config: TrendingConfig

    def _fit(self, matrix: sp.csr_matrix, data: Dataset) -> None:
        events = data.events
        times = events["timestamp"]
        if times.isna().all():
            self.item_scores_ = np.asarray((matrix > 0).sum(axis=0), np.float32).ravel()
            return
        newest = times.max()
        age_days = ((newest - times).dt.total_seconds() / 86_400).to_numpy()
        recent = age_days <= self.config.window_days
        baseline = (~recent) & (age_days <= self.config.window_days + self.config.baseline_days)
        recent_rate = self._distinct_users(data, recent) / self.config.window_days
        baseline_rate = self._distinct_users(data, baseline) / self.config.baseline_days
        growth = (recent_rate + self.config.prior) / (baseline_rate + self.config.prior)
        volume = np.power(recent_rate * self.config.window_days + 1, self.config.volume)
        self.item_scores_ = (growth * volume).astype(np.float32)

    def _reason(self) -> Reason:
        return Reason("trending", detail=f"{self.config.window_days:g}")

    def _forget_rows(self, dropped: DroppedUsers) -> bool:
        return False  # counts per time window need the events' times, which it drops

    @staticmethod
    def _distinct_users(data: Dataset, mask: np.ndarray) -> np.ndarray:
        pairs = data.events.loc[mask, ["user_id", "item_id"]].drop_duplicates()
        columns = data.item_vocab.indices(pairs["item_id"])
        return np.bincount(columns[columns >= 0], minlength=data.n_items).astype(np.float64)


def _column_sums(matrix: sp.csr_matrix) -> np.ndarray:
    return np.asarray(matrix.sum(axis=0), dtype=np.float32).ravel()
