"""Beyond accuracy and fairness: what the lists are like, and whom they serve.

Accuracy says whether users get items they go on to touch. These figures say what
else the lists do: how varied each list is (``IntraListDiversity``), how far from the
obvious (``Novelty``, ``AveragePopularity``), how unequally they spread attention over
the catalog (``ExposureGini``; ``Coverage`` is in ``metrics``), how much they differ
between users (``Personalization``), and whether any group of users or items is served
worse than the rest (``metric_by_group``, ``exposure_by_group``, ``fairness_report``).

Every accumulator takes one user's recommended list at a time with ``update`` and
gives the figure so far with ``value``; per-user ones keep ``values`` in update order.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from tailored.dataset import Dataset
from tailored.errors import InvalidDataError

from .metrics import PerUserMetric
from .statistics import bootstrap_ci

#: The group of users or items whose attribute is unknown.
MISSING_GROUP = "(missing)"


class ListAccumulator(Protocol):
    """What every figure here offers: one recommended list at a time, then a value."""

    @property
    def name(self) -> str: ...

    def update(self, recommended: Sequence[str]) -> Any: ...

    def value(self) -> float: ...


# --------------------------------------------------------------------------- distances


class ItemDistance(Protocol):
    """Pairwise distances between the items of one list, as a square matrix."""

    def __call__(self, items: Sequence[str]) -> np.ndarray: ...


class CosineDistance:
    """Cosine distance (1 - cosine similarity) between given item vectors.

    Vectors can be anything that places items in a space: a model's item factors,
    text embeddings. A zero vector is at distance 1 from every other item.

    Parameters
    ----------
    vectors : mapping of item id to vector
        One vector per item, all of the same length. Asking for an item without a
        vector raises ``InvalidDataError``.

    Examples
    --------
    >>> distance = CosineDistance({"a": [1.0, 0.0], "b": [0.0, 2.0], "c": [1.0, 1.0]})
    >>> distance(["a", "b", "c"]).round(4).tolist()
    [[0.0, 1.0, 0.2929], [1.0, 0.0, 0.2929], [0.2929, 0.2929, 0.0]]
    """

    def __init__(self, vectors: Mapping[str, npt.ArrayLike]) -> None:
        if not vectors:
            raise ValueError("CosineDistance needs a vector for at least one item")
        self.index = {str(item): row for row, item in enumerate(vectors)}
        matrix = np.vstack([np.asarray(v, dtype=np.float64).ravel() for v in vectors.values()])
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self.unit_vectors = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)

    def __call__(self, items: Sequence[str]) -> np.ndarray:
        missing = [item for item in items if item not in self.index]
        if missing:
            raise InvalidDataError(
                f"no vector for item(s) {missing[:5]} in CosineDistance (it has "
                f"{len(self.index)} items); give a vector for every item a model can recommend")
        vectors = self.unit_vectors[[self.index[item] for item in items]]
        distances = 1.0 - vectors @ vectors.T
        np.fill_diagonal(distances, 0.0)
        return np.clip(distances, 0.0, 2.0)


class JaccardDistance:
    """Jaccard distance (1 - |shared| / |either|) between item category sets.

    An item absent from ``categories`` has no categories. Two items without any
    category are at distance 0 (equal sets, as ``scipy.spatial.distance.jaccard``
    has it); one with and one without are at distance 1.

    Parameters
    ----------
    categories : mapping of item id to a collection of category names

    Examples
    --------
    >>> distance = JaccardDistance({"a": ["Comedy"], "b": ["Comedy", "Drama"], "c": ["War"]})
    >>> distance(["a", "b", "c"]).tolist()
    [[0.0, 0.5, 1.0], [0.5, 0.0, 1.0], [1.0, 1.0, 0.0]]
    """

    def __init__(self, categories: Mapping[str, Collection[str]]) -> None:
        names: dict[str, int] = {}
        self.category_ids = {
            str(item): np.asarray(sorted({names.setdefault(str(c), len(names)) for c in cats}),
                                  dtype=np.int64)
            for item, cats in categories.items()}

    @classmethod
    def from_items(cls, items: pd.DataFrame, column: str = "categories") -> JaccardDistance:
        """From an items table (``Dataset.items``): ``item_id`` and a column of lists.

        Examples
        --------
        >>> items = pd.DataFrame({"item_id": ["a", "b"], "categories": [["x"], None]})
        >>> JaccardDistance.from_items(items)(["a", "b"]).tolist()
        [[0.0, 1.0], [1.0, 0.0]]
        """
        missing = [c for c in ("item_id", column) if c not in items.columns]
        if missing:
            raise InvalidDataError(
                f"items table lacks column(s) {missing} for JaccardDistance; it has "
                f"{list(items.columns)}. Pass column= naming the list of categories")
        return cls({
            str(item): (list(value) if isinstance(value, Collection)
                        and not isinstance(value, str) else [])
            for item, value in zip(items["item_id"], items[column], strict=True)})

    def __call__(self, items: Sequence[str]) -> np.ndarray:
        found = [self.category_ids.get(item, _NO_CATEGORIES) for item in items]
        # The list's items by the categories they use, as 0/1 flags.
        used, columns = np.unique(np.concatenate([_NO_CATEGORIES, *found]), return_inverse=True)
        flags = np.zeros((len(found), max(1, used.size)))
        flags[np.repeat(np.arange(len(found)), [ids.size for ids in found]), columns] = 1.0
        shared = flags @ flags.T
        sizes = np.diag(shared)
        either = sizes[:, None] + sizes[None, :] - shared
        return np.where(either > 0, 1.0 - shared / np.maximum(either, 1.0), 0.0)


_NO_CATEGORIES = np.zeros(0, dtype=np.int64)


# --------------------------------------------------------------------------- popularity


@dataclass(frozen=True)
class ItemPopularity:
    """How many distinct training users touched each item, out of how many users.

    An item nobody touched counts as touched by one user, so every share is positive
    and its self-information finite.

    Examples
    --------
    >>> events = pd.DataFrame({"user_id": ["u", "u", "v", "w"], "item_id": ["a", "b", "a", "a"]})
    >>> popularity = ItemPopularity.from_dataset(Dataset.from_frame(events))
    >>> popularity.shares(["a", "b", "never"]).round(4).tolist()
    [1.0, 0.3333, 0.3333]
    """

    user_counts: Mapping[str, int]
    n_users: int

    def __post_init__(self) -> None:
        if self.n_users < 1:
            raise ValueError(f"n_users must be at least 1, got {self.n_users}")

    @classmethod
    def from_dataset(cls, data: Dataset) -> ItemPopularity:
        """Count, for each item, the distinct users with any event on it in ``data``."""
        counts = data.events.groupby("item_id")["user_id"].nunique()
        return cls({str(item): int(n) for item, n in counts.items()}, data.n_users)

    def shares(self, items: Iterable[str]) -> np.ndarray:
        """The share of users who touched each item (at least ``1 / n_users``)."""
        counts = [max(self.user_counts.get(item, 0), 1) for item in items]
        return np.asarray(counts, dtype=np.float64) / self.n_users


def popularity_tiers(popularity: ItemPopularity, head_fraction: float = 0.2) -> dict[str, str]:
    """Label the most popular ``head_fraction`` of items ``"head"`` and the rest ``"tail"``.

    Items are ranked by users who touched them (ties by id); use the result as the
    ``item_group`` of ``exposure_by_group`` to see whether the long tail gets seen.

    Examples
    --------
    >>> popularity = ItemPopularity({"a": 9, "b": 5, "c": 1, "d": 1, "e": 1}, n_users=10)
    >>> popularity_tiers(popularity, head_fraction=0.4)
    {'a': 'head', 'b': 'head', 'c': 'tail', 'd': 'tail', 'e': 'tail'}
    """
    if not 0 < head_fraction < 1:
        raise ValueError(f"head_fraction must be between 0 and 1, got {head_fraction}")
    ranked = sorted(popularity.user_counts, key=lambda item: (-popularity.user_counts[item], item))
    n_head = max(1, round(head_fraction * len(ranked)))
    return {item: "head" if rank < n_head else "tail" for rank, item in enumerate(ranked)}


def gini_coefficient(values: npt.ArrayLike) -> float:
    """How unequally a non-negative quantity is spread: 0 equal, (n-1)/n all on one.

    Examples
    --------
    >>> gini_coefficient([5, 5, 5, 5])
    0.0
    >>> gini_coefficient([0, 0, 0, 8])
    0.75
    >>> round(gini_coefficient([1, 2, 3]), 4)   # (2*(1+4+9)) / (3*6) - 4/3
    0.2222
    """
    array = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if array.size == 0:
        return float("nan")
    if (array < 0).any():
        raise ValueError("gini_coefficient needs non-negative values (exposure counts, shares)")
    total = array.sum()
    if total == 0:
        return 0.0
    n = array.size
    ranks = np.arange(1, n + 1)
    return float(2 * (ranks * array).sum() / (n * total) - (n + 1) / n)


# --------------------------------------------------------------------------- list metrics


class ListMetric(PerUserMetric):
    """A figure of one user's top ``k`` alone (no ground truth), averaged over users.

    A user whose list gives no value (an empty list, a one-item list for diversity)
    is recorded as NaN and left out of ``value``.
    """

    def update(self, recommended: Sequence[str]) -> float:
        """Take one user's list; return that user's value."""
        value = self._one([str(item) for item in list(recommended)[: self.k]])
        self.values.append(value)
        return value

    @abstractmethod
    def _one(self, top: list[str]) -> float: ...


class IntraListDiversity(ListMetric):
    """Mean pairwise distance between the items of each list.

    Parameters
    ----------
    distance : ItemDistance
        ``CosineDistance`` (item vectors) or ``JaccardDistance`` (categories), or any
        callable that gives the square distance matrix of a list.
    k : int, default 10

    Examples
    --------
    >>> genres = JaccardDistance({"a": ["Comedy"], "b": ["Comedy", "Drama"], "c": ["War"]})
    >>> diversity = IntraListDiversity(genres, k=3)
    >>> diversity.update(["a", "b", "c"])          # (0.5 + 1 + 1) / 3
    0.8333333333333334
    >>> diversity.update(["a"])                    # one item: no pair, no value
    nan
    >>> diversity.value()
    0.8333333333333334
    """

    label = "diversity"

    def __init__(self, distance: ItemDistance, k: int = 10) -> None:
        super().__init__(k)
        self.distance = distance

    @classmethod
    def for_data(cls, k: int, data: Dataset) -> Self:
        """By the genre-like categories of ``data.items`` (:class:`JaccardDistance`)."""
        if data.items is None or "categories" not in data.items.columns:
            raise InvalidDataError(
                "diversity@K measures lists by item categories, and the items table has "
                "none; give items categories (or use IntraListDiversity with a "
                "CosineDistance of item vectors)")
        return cls(JaccardDistance.from_items(data.items), k)

    def _one(self, top: list[str]) -> float:
        if len(top) < 2:
            return float("nan")
        upper = np.triu_indices(len(top), k=1)
        return float(self.distance(top)[upper].mean())


class _PopularityMetric(ListMetric):
    """A list metric over the training popularity of the recommended items."""

    def __init__(self, popularity: ItemPopularity, k: int = 10) -> None:
        super().__init__(k)
        self.popularity = popularity

    @classmethod
    def for_data(cls, k: int, data: Dataset) -> Self:
        """By the popularity of items in ``data``."""
        return cls(ItemPopularity.from_dataset(data), k)


class Novelty(_PopularityMetric):
    """Mean self-information of the recommended items, ``-log2(share of users who touched it)``.

    An item every training user touched has novelty 0; one touched by a single user
    of ``n`` has ``log2(n)``.

    Examples
    --------
    >>> popularity = ItemPopularity({"a": 8, "b": 2, "c": 1}, n_users=8)
    >>> Novelty(popularity, k=2).update(["a", "b", "c"])   # (0 + 2) / 2
    1.0
    """

    label = "novelty"

    def _one(self, top: list[str]) -> float:
        if not top:
            return float("nan")
        return float(-np.log2(self.popularity.shares(top)).mean())


class AveragePopularity(_PopularityMetric):
    """Mean training popularity (share of users who touched it) of the recommended items.

    Higher means the lists lean on what is already popular.

    Examples
    --------
    >>> popularity = ItemPopularity({"a": 8, "b": 2}, n_users=8)
    >>> AveragePopularity(popularity).update(["a", "b"])   # (1 + 0.25) / 2
    0.625
    """

    label = "popularity"

    def _one(self, top: list[str]) -> float:
        if not top:
            return float("nan")
        return float(self.popularity.shares(top).mean())


# --------------------------------------------------------------------------- catalog figures


class ExposureGini:
    """Gini coefficient of how often each catalog item is recommended.

    Items never recommended count as zero exposure, so a model that shows the same
    few items to everyone approaches 1 and one that spreads its lists evenly over the
    whole catalog scores 0.

    Parameters
    ----------
    n_items : int
        Size of the catalog (as for ``Coverage``).

    Examples
    --------
    >>> gini = ExposureGini(n_items=4)
    >>> gini.update(["a", "b"]); gini.update(["a", "c"])
    >>> gini.value()   # exposure 2, 1, 1, 0
    0.375
    """

    name = "gini"

    def __init__(self, n_items: int) -> None:
        if n_items < 1:
            raise ValueError(f"n_items must be at least 1, got {n_items}")
        self.n_items = n_items
        self.exposure: Counter[str] = Counter()

    def update(self, recommended: Sequence[str]) -> None:
        self.exposure.update(recommended)

    def value(self) -> float:
        """The Gini coefficient so far (NaN before any recommendation)."""
        if not self.exposure:
            return float("nan")
        if len(self.exposure) > self.n_items:
            raise InvalidDataError(
                f"{len(self.exposure)} distinct items were recommended but the catalog has "
                f"n_items={self.n_items}; give ExposureGini the size of the whole catalog")
        counts = np.zeros(self.n_items)
        counts[: len(self.exposure)] = list(self.exposure.values())
        return gini_coefficient(counts)


class Personalization:
    """1 - mean Jaccard overlap between the lists of two different users.

    0 when everyone gets the same list, 1 when no two lists share an item. With more
    than ``max_pairs`` pairs of users, ``max_pairs`` pairs are drawn at random (with
    ``seed``) instead of taking all. Empty lists are left out.

    Examples
    --------
    >>> personalization = Personalization()
    >>> for items in (["a", "b"], ["b", "c"], ["a", "b"]):
    ...     personalization.update(items)
    >>> round(personalization.value(), 4)   # 1 - (1/3 + 1 + 1/3) / 3
    0.4444
    """

    name = "personalization"

    def __init__(self, max_pairs: int = 100_000, seed: int = 0) -> None:
        if max_pairs < 1:
            raise ValueError(f"max_pairs must be at least 1, got {max_pairs}")
        self.max_pairs = max_pairs
        self.seed = seed
        self.lists: list[list[str]] = []

    def update(self, recommended: Sequence[str]) -> None:
        if len(recommended):
            self.lists.append([str(item) for item in recommended])

    def value(self) -> float:
        """The figure over the lists so far (NaN with fewer than two)."""
        n = len(self.lists)
        if n < 2:
            return float("nan")
        index: dict[str, int] = {}
        rows = np.repeat(np.arange(n), [len(items) for items in self.lists])
        columns = [index.setdefault(item, len(index)) for items in self.lists for item in items]
        lists = sp.csr_matrix((np.ones(len(columns)), (rows, columns)), shape=(n, len(index)))
        lists.data[:] = 1.0  # an item twice in a list is still one item
        sizes = np.asarray(lists.sum(axis=1)).ravel()
        if n * (n - 1) // 2 <= self.max_pairs:
            first, second = np.triu_indices(n, k=1)
            shared = (lists @ lists.T).toarray()[first, second]
        else:
            rng = np.random.default_rng(self.seed)
            first = rng.integers(0, n, self.max_pairs)
            second = rng.integers(0, n - 1, self.max_pairs)
            second += second >= first  # a different user
            shared = np.asarray(lists[first].multiply(lists[second]).sum(axis=1)).ravel()
        overlap = shared / (sizes[first] + sizes[second] - shared)
        return float(1.0 - overlap.mean())


def beyond_accuracy_metrics(train: Dataset, k: int = 10, *,
                            item_distance: ItemDistance | None = None,
                            seed: int = 0) -> list[ListAccumulator]:
    """The beyond-accuracy accumulators for lists of ``k`` recommended from ``train``.

    Novelty, average popularity, exposure Gini and personalization always; intra-list
    diversity by ``item_distance``, or else by category when ``train`` has an items
    table with a ``categories`` column.

    Examples
    --------
    >>> events = pd.DataFrame({"user_id": ["u", "u", "v"], "item_id": ["a", "b", "a"]})
    >>> metrics = beyond_accuracy_metrics(Dataset.from_frame(events), k=2)
    >>> for metric in metrics:
    ...     _ = metric.update(["a", "b"])
    >>> {metric.name: round(metric.value(), 3) for metric in metrics}
    {'novelty@2': 0.5, 'popularity@2': 0.75, 'gini': 0.0, 'personalization': nan}
    """
    popularity = ItemPopularity.from_dataset(train)
    if (item_distance is None and train.items is not None
            and "categories" in train.items.columns):
        item_distance = JaccardDistance.from_items(train.items)
    metrics: list[ListAccumulator] = [Novelty(popularity, k), AveragePopularity(popularity, k)]
    if item_distance is not None:
        metrics.append(IntraListDiversity(item_distance, k))
    metrics += [ExposureGini(train.n_items), Personalization(seed=seed)]
    return metrics


# --------------------------------------------------------------------------- fairness


def _group_of(groups: Mapping[str, Any], key: str) -> str:
    """The group label of ``key``, or ``MISSING_GROUP`` when it has none."""
    label = groups.get(key)
    if label is None or (pd.api.types.is_scalar(label) and pd.isna(label)):
        return MISSING_GROUP
    return str(label)


def _relative_gap(value: float, reference: float) -> float:
    if reference == 0:
        return 0.0 if value == 0 else math.copysign(math.inf, value)
    return (value - reference) / abs(reference)


def metric_by_group(per_user_values: Mapping[str, float], groups: Mapping[str, Any] | pd.Series,
                    *, confidence: float = 0.95, n_resamples: int = 2000,
                    seed: int = 0) -> pd.DataFrame:
    """A per-user metric's mean, user count and bootstrap interval for each group of users.

    Parameters
    ----------
    per_user_values : mapping of user id to value
        E.g. ``dict(zip(split.test_users, result.per_user["ndcg@10"]))``.
    groups : mapping or Series of user id to group label
        Any user attribute: ``users.set_index("user_id")["gender"]``. Users without a
        label are in the group ``"(missing)"``.
    confidence, n_resamples, seed
        For ``bootstrap_ci``.

    Returns
    -------
    DataFrame
        Indexed by group (sorted), with ``users``, ``mean``, ``low``, ``high`` and
        ``relative_gap`` ((group mean - overall mean) / overall mean). The overall
        ``(mean, low, high)`` is in ``frame.attrs["overall"]``.

    Examples
    --------
    >>> values = {"u1": 0.2, "u2": 0.4, "u3": 0.0, "u4": 0.2}
    >>> table = metric_by_group(values, {"u1": "F", "u2": "F", "u3": "M", "u4": "M"})
    >>> table[["users", "mean", "relative_gap"]]  # doctest: +NORMALIZE_WHITESPACE
           users  mean  relative_gap
    group
    F          2   0.3           0.5
    M          2   0.1          -0.5
    """
    if not per_user_values:
        raise ValueError("per_user_values is empty; evaluate some users first")
    labels = {str(user): label for user, label in groups.items()}
    frame = pd.DataFrame({
        "group": [_group_of(labels, user) for user in per_user_values],
        "value": np.asarray(list(per_user_values.values()), dtype=np.float64)})
    overall = bootstrap_ci(frame["value"], confidence, n_resamples, seed)
    rows = []
    for group, values in frame.groupby("group", sort=True)["value"]:
        mean, low, high = bootstrap_ci(values, confidence, n_resamples, seed)
        rows.append({"group": group, "users": len(values), "mean": mean, "low": low,
                     "high": high, "relative_gap": _relative_gap(mean, overall.mean)})
    table = pd.DataFrame(rows).set_index("group")
    table.attrs["overall"] = overall
    return table


def exposure_by_group(recommended: Mapping[str, Sequence[str]] | Iterable[Sequence[str]],
                      item_group: Mapping[str, Any], *,
                      train: Dataset | None = None) -> pd.DataFrame:
    """Each item group's share of recommendations against its share of the catalog.

    Parameters
    ----------
    recommended : mapping of user id to list, or an iterable of lists
        Every recommended list; each place in a list is one exposure.
    item_group : mapping of item id to group label
        The catalog: every item with its group (a provider, a category,
        ``popularity_tiers``). Recommended items not in it are in ``"(missing)"``.
    train : Dataset, optional
        With it, each group's share of the training interactions too.

    Returns
    -------
    DataFrame
        Indexed by group, with ``exposure`` (count), ``exposure_share``,
        ``catalog_share`` and, with ``train``, ``interaction_share``.

    Examples
    --------
    >>> tiers = {"a": "head", "b": "tail", "c": "tail", "d": "tail"}
    >>> exposure_by_group([["a", "b"], ["a", "c"]], tiers)  # doctest: +NORMALIZE_WHITESPACE
           exposure  exposure_share  catalog_share
    group
    head          2             0.5           0.25
    tail          2             0.5           0.75
    """
    lists = recommended.values() if isinstance(recommended, Mapping) else recommended
    counts = {
        "exposure": Counter(_group_of(item_group, str(item)) for items in lists for item in items),
        "catalog": Counter(_group_of(item_group, str(item)) for item in item_group)}
    if train is not None:
        counts["interaction"] = Counter(
            _group_of(item_group, item) for item in train.events["item_id"])
    groups = sorted(set().union(*counts.values()))
    table = pd.DataFrame({"group": groups}).set_index("group")
    table["exposure"] = [counts["exposure"][group] for group in groups]
    for name, counter in counts.items():
        table[f"{name}_share"] = [counter[group] / max(1, counter.total()) for group in groups]
    return table


@dataclass(frozen=True)
class FairnessReport:
    """Groups whose figures stand more than ``threshold`` (relative) from the reference.

    ``users`` has one row per (metric, attribute, group); ``exposure`` one per item
    group (when given); both carry a ``flagged`` column. ``findings`` are the flagged
    rows in words; ``passed`` is true when there are none.
    """

    threshold: float
    users: pd.DataFrame
    exposure: pd.DataFrame | None = None
    findings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.findings

    def __str__(self) -> str:
        if self.passed:
            return (f"fairness: no group differs from the overall figure by more than "
                    f"{self.threshold:.0%}")
        return "\n".join([f"fairness: {len(self.findings)} gap(s) above {self.threshold:.0%}",
                          *(f"- {finding}" for finding in self.findings)])


def fairness_report(per_user: Mapping[str, Mapping[str, float]],
                    attributes: Mapping[str, Mapping[str, Any] | pd.Series], *,
                    exposure: pd.DataFrame | None = None, threshold: float = 0.10,
                    exposure_baseline: Literal["catalog", "interactions"] = "catalog",
                    min_users: int = 10, confidence: float = 0.95, n_resamples: int = 2000,
                    seed: int = 0) -> FairnessReport:
    """Audit per-user metrics by user group, and exposure by item group.

    A user group is flagged when its mean is more than ``threshold`` away from the
    overall mean, relative to it; an item group when its share of recommendations is
    more than ``threshold`` away from its share of the catalog (or of the training
    interactions), relative to that share. Each finding says whether the group's
    confidence interval excludes the overall mean, as small groups gap by chance, and
    warns when the group has fewer than ``min_users`` users (a bootstrap interval of a
    handful of values is too narrow to trust).

    Parameters
    ----------
    per_user : mapping of metric name to {user id: value}
        E.g. ``{"ndcg@10": dict(zip(split.test_users, result.per_user["ndcg@10"]))}``.
    attributes : mapping of attribute name to {user id: group label}
        E.g. ``{a: users.set_index("user_id")[a] for a in ("gender", "age_band")}``.
    exposure : DataFrame, optional
        From ``exposure_by_group``.
    threshold : float, default 0.10
        The largest relative gap let pass.
    exposure_baseline : {"catalog", "interactions"}
        What an item group's exposure share is held against.
    min_users : int, default 10
        Groups smaller than this are still flagged, with a warning that they are small.
    confidence, n_resamples, seed
        For the groups' bootstrap intervals.

    Examples
    --------
    >>> ndcg = {"u1": 0.30, "u2": 0.34, "u3": 0.10, "u4": 0.14}
    >>> gender = {"u1": "F", "u2": "F", "u3": "M", "u4": "M"}
    >>> import textwrap
    >>> report = fairness_report({"ndcg@10": ndcg}, {"gender": gender}, threshold=0.2,
    ...                          min_users=2)
    >>> report.passed
    False
    >>> print(textwrap.fill(report.findings[0], 88))
    ndcg@10 for gender=F: mean 0.32 (95% CI 0.3 to 0.34, 2 users) is 45% above the overall
    0.22; the interval excludes the overall mean
    """
    if threshold < 0:
        raise ValueError(f"threshold must be a non-negative relative gap (0.1 = 10%), got "
                         f"{threshold}")
    if min_users < 1:
        raise ValueError(f"min_users must be at least 1, got {min_users}")
    level = f"{confidence * 100:g}%"
    tables, findings = [], []
    for metric, values in per_user.items():
        for attribute, groups in attributes.items():
            table = metric_by_group(values, groups, confidence=confidence,
                                    n_resamples=n_resamples, seed=seed)
            overall = table.attrs["overall"].mean
            table = table.assign(metric=metric, attribute=attribute, overall=overall,
                                 flagged=table["relative_gap"].abs() > threshold)
            tables.append(table.reset_index())
            for group, row in table[table["flagged"]].iterrows():
                if row["users"] < min_users:
                    caution = (f"only {row['users']} users (fewer than {min_users}), too few "
                               "to tell a gap from chance")
                elif row["low"] <= overall <= row["high"]:
                    caution = "the interval holds the overall mean, so the gap may be chance"
                else:
                    caution = "the interval excludes the overall mean"
                findings.append(
                    f"{metric} for {attribute}={group}: mean {row['mean']:.4g} ({level} CI "
                    f"{row['low']:.4g} to {row['high']:.4g}, {row['users']} users) is "
                    f"{_gap_words(row['relative_gap'])} the overall {overall:.4g}; {caution}")
    users = (pd.concat(tables, ignore_index=True)[
        ["metric", "attribute", "group", "users", "mean", "low", "high", "overall",
         "relative_gap", "flagged"]] if tables else pd.DataFrame())
    if exposure is not None:
        baseline = {"catalog": "catalog_share", "interactions": "interaction_share"}[
            exposure_baseline]
        if baseline not in exposure.columns:
            raise InvalidDataError(
                f"the exposure table has no {baseline!r} column (it has "
                f"{list(exposure.columns)}); pass train= to exposure_by_group to compare "
                "against interactions, or use exposure_baseline='catalog'")
        gaps = [_relative_gap(share, reference)
                for share, reference in zip(exposure["exposure_share"], exposure[baseline],
                                            strict=True)]
        exposure = exposure.assign(relative_gap=gaps,
                                   flagged=[abs(gap) > threshold for gap in gaps])
        for group, row in exposure[exposure["flagged"]].iterrows():
            findings.append(
                f"items in group {group!r} get {row['exposure_share']:.1%} of recommendations "
                f"against {row[baseline]:.1%} of the {exposure_baseline} "
                f"({_gap_words(row['relative_gap'])} their share)")
    return FairnessReport(threshold, users, exposure, findings)


def _gap_words(gap: float) -> str:
    if math.isinf(gap):
        return "above" if gap > 0 else "below"
    return f"{abs(gap):.0%} {'above' if gap > 0 else 'below'}"
