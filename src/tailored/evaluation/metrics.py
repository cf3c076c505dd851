"""Ranking metrics as small accumulating objects: ``update`` per user, ``value`` overall.

Per-user values are kept (``values``) so intervals and paired tests can be computed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence

import numpy as np


class RankingMetric(ABC):
    """A metric over one user's ranked list and their relevant items, averaged over users."""

    label: str

    def __init__(self, k: int = 10) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.k = k
        self.values: list[float] = []

    @property
    def name(self) -> str:
        return f"{self.label}@{self.k}"

    def update(self, recommended: Sequence[str], relevant: Collection[str]) -> float:
        """Score one user's list against their relevant items; return that user's value."""
        value = self._one(list(recommended)[: self.k], set(relevant))
        self.values.append(value)
        return value

    def value(self) -> float:
        """Mean over users so far (NaN before any update)."""
        return float(np.mean(self.values)) if self.values else float("nan")

    @abstractmethod
    def _one(self, top: list[str], relevant: set[str]) -> float: ...


class NDCG(RankingMetric):
    """Normalised discounted cumulative gain with binary relevance.

    Examples
    --------
    >>> metric = NDCG(k=3)
    >>> round(metric.update(["a", "b", "c"], {"b"}), 4)   # 1/log2(3) over ideal 1
    0.6309
    >>> metric.update(["x"], {"a", "b"})
    0.0
    >>> round(metric.value(), 4)
    0.3155
    """

    label = "ndcg"

    def _one(self, top: list[str], relevant: set[str]) -> float:
        if not relevant:
            return 0.0
        gains = sum(1 / np.log2(rank + 2) for rank, item in enumerate(top) if item in relevant)
        ideal = sum(1 / np.log2(rank + 2) for rank in range(min(len(relevant), self.k)))
        return float(gains / ideal)


class Recall(RankingMetric):
    """Share of the user's relevant items found in the top k.

    Examples
    --------
    >>> Recall(k=2).update(["a", "b", "c"], {"a", "c"})
    0.5
    """

    label = "recall"

    def _one(self, top: list[str], relevant: set[str]) -> float:
        if not relevant:
            return 0.0
        return len(relevant.intersection(top)) / len(relevant)
