"""Ranking metrics as small accumulating objects: ``update`` per user, ``value`` overall.

Per-user values are kept (``values``) so intervals and paired tests can be computed
(``tailored.evaluation.statistics``). Figures of the lists alone (diversity, novelty,
popularity, fairness) are in ``tailored.evaluation.beyond``. A metric that needs more
than ``k`` (``Revenue``: the catalog's prices) is built from the training data with
:meth:`PerUserMetric.for_data`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Self

import numpy as np

from tailored.ranking.rerankers import item_prices

if TYPE_CHECKING:
    from tailored.dataset import Dataset


class PerUserMetric(ABC):
    """A figure of each user's top ``k``, kept per user (``values``) and averaged over users."""

    label: str

    def __init__(self, k: int = 10) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.k = k
        self.values: list[float] = []

    @property
    def name(self) -> str:
        return f"{self.label}@{self.k}"

    @classmethod
    def for_data(cls, k: int, data: Dataset) -> Self:
        """The metric at ``k`` for lists recommended from ``data`` (the training data),
        with what it needs from there (the catalog's prices, its categories...)."""
        return cls(k)

    def value(self) -> float:
        """Mean over users so far, leaving out NaN (users without a value); NaN before any."""
        values = np.asarray(self.values, dtype=np.float64)
        scored = values[~np.isnan(values)]
        return float(scored.mean()) if scored.size else float("nan")


class RankingMetric(PerUserMetric):
    """A metric over one user's ranked list and their relevant items, averaged over users."""

    def update(self, recommended: Sequence[str], relevant: Collection[str]) -> float:
        """Score one user's list against their relevant items; return that user's value."""
        value = self._one(list(recommended)[: self.k], set(relevant))
        self.values.append(value)
        return value

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


class HitRate(RankingMetric):
    """1 if any relevant item is in the top k, else 0.

    Examples
    --------
    >>> HitRate(k=2).update(["a", "b", "c"], {"c"})
    0.0
    """

    label = "hit_rate"

    def _one(self, top: list[str], relevant: set[str]) -> float:
        return float(bool(relevant.intersection(top)))


class MAP(RankingMetric):
    """Mean average precision: precision at each hit, averaged over min(|relevant|, k).

    Examples
    --------
    >>> MAP(k=3).update(["a", "x", "b"], {"a", "b"})  # (1/1 + 2/3) / 2
    0.8333333333333333
    """

    label = "map"

    def _one(self, top: list[str], relevant: set[str]) -> float:
        if not relevant:
            return 0.0
        hits, total = 0, 0.0
        for rank, item in enumerate(top, start=1):
            if item in relevant:
                hits += 1
                total += hits / rank
        return total / min(len(relevant), self.k)


class Precision(RankingMetric):
    """Share of the top ``k`` places that hold a relevant item.

    The denominator is ``k``: a list shorter than ``k`` counts its missing places as
    misses, so a model cannot gain by recommending fewer items.

    Examples
    --------
    >>> Precision(k=4).update(["a", "x", "b", "y"], {"a", "b", "c"})
    0.5
    >>> Precision(k=4).update(["a"], {"a"})   # one hit in four places
    0.25
    """

    label = "precision"

    def _one(self, top: list[str], relevant: set[str]) -> float:
        return len(relevant.intersection(top)) / self.k


class F1(RankingMetric):
    """Harmonic mean of one user's precision and recall at ``k`` (0 when both are 0).

    Examples
    --------
    >>> F1(k=4).update(["a", "x", "b", "y"], {"a", "b", "c"})  # 2 * 1/2 * 2/3 / (1/2 + 2/3)
    0.5714285714285715
    >>> F1(k=2).update(["x", "y"], {"a"})
    0.0
    """

    label = "f1"

    def _one(self, top: list[str], relevant: set[str]) -> float:
        hits = len(relevant.intersection(top))
        if hits == 0:
            return 0.0
        precision, recall = hits / self.k, hits / len(relevant)
        return 2 * precision * recall / (precision + recall)


class MRR(RankingMetric):
    """Reciprocal rank of the first relevant item in the top ``k`` (0 if there is none).

    Examples
    --------
    >>> MRR(k=3).update(["x", "a", "b"], {"a", "b"})
    0.5
    >>> MRR(k=2).update(["x", "y", "a"], {"a"})   # found only at rank 3, beyond k
    0.0
    """

    label = "mrr"

    def _one(self, top: list[str], relevant: set[str]) -> float:
        for rank, item in enumerate(top, start=1):
            if item in relevant:
                return 1 / rank
        return 0.0


class Coverage:
    """Share of the catalog that appears in at least one recommended list.

    Examples
    --------
    >>> coverage = Coverage(n_items=4)
    >>> coverage.update(["a", "b"]); coverage.update(["b", "c"])
    >>> coverage.value()
    0.75
    """

    name = "coverage"

    def __init__(self, n_items: int) -> None:
        if n_items < 1:
            raise ValueError(f"n_items must be at least 1, got {n_items}")
        self.n_items = n_items
        self.seen: set[str] = set()

    def update(self, recommended: Sequence[str]) -> None:
        self.seen.update(recommended)

    def value(self) -> float:
        return len(self.seen) / self.n_items


class Revenue(RankingMetric):
    """Money the list would have made: the summed price of the user's relevant items in
    the top ``k`` (a hit without a price counts 0), averaged over users.

    Parameters
    ----------
    prices : mapping of item id to price
        :func:`tailored.ranking.rerankers.item_prices` reads them from a catalog;
        :meth:`for_data` from the training data's items table.
    k : int, default 10

    Examples
    --------
    >>> revenue = Revenue({"a": 20.0, "b": 5.0, "c": 100.0}, k=2)
    >>> revenue.update(["a", "x", "c"], {"a", "c"})   # c is beyond k
    20.0
    >>> revenue.update(["b", "a"], {"a", "b", "z"})
    25.0
    >>> revenue.value()
    22.5
    """

    label = "revenue"

    def __init__(self, prices: Mapping[str, float], k: int = 10) -> None:
        super().__init__(k)
        self.prices = prices

    @classmethod
    def for_data(cls, k: int, data: Dataset) -> Self:
        """Prices from ``data.items`` (its ``price`` column or attribute)."""
        return cls(item_prices(data.items), k)

    def _one(self, top: list[str], relevant: set[str]) -> float:
        return float(sum(self.prices.get(item, 0.0) for item in dict.fromkeys(top)
                         if item in relevant))


def mean_price(prices: Mapping[str, float]) -> float:
    """The mean positive price of a catalog (NaN when no item has one): the unit that
    makes revenue comparable with the other metrics (``revenue / mean_price`` counts
    hits of average-priced items).

    Examples
    --------
    >>> mean_price({"a": 10.0, "b": 30.0, "c": 0.0})
    20.0
    """
    values = np.asarray([v for v in prices.values() if v > 0], dtype=np.float64)
    return float(values.mean()) if values.size else float("nan")
