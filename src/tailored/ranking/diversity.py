"""Diversity, discovery and revenue: re-rank a candidate list by a weighted mix of aims.

Four knobs, applied together by :func:`diversify` to a recommendations frame
(``user_id``, ``item_id``, ``score``, ``rank``; more candidates per user than ``k``)
and returning ``k`` items per user:

- ``revenue``: weighs expected revenue against relevance. Relevance becomes
  ``(1 - revenue) * relevance + revenue * expected_revenue``, where relevance (below)
  stands for the chance of a click and ``expected_revenue`` is ``price * relevance``
  divided by its largest value among the user's candidates (so it is in [0, 1] too).
  An item without a price (or with a price that is not a positive number) brings no
  revenue; when no candidate of a list has any expected revenue, it ranks like
  relevance, as it does when every price is equal, so such a list keeps its order.

- ``diversity`` (MMR, Carbonell & Goldstein 1998): items are picked one at a time by
  ``(1 - diversity) * relevance - diversity * max similarity to the items already
  picked``; ``diversity`` is ``1 - lambda`` of the paper, so 0 keeps the original order
  and 1 picks by dissimilarity alone (after the first item).
- ``max_per_category``: no category appears on more than this many items of a list
  (items without categories are never held back). The cap is strict: when the
  candidates run out, the list is shorter than ``k``; ask for more candidates.
- ``novelty``: penalises popular items. Relevance (after ``revenue``) becomes
  ``(1 - novelty) * relevance + novelty * (1 - popularity)``, where popularity is
  ``log(1 + users) / log(1 + users of the most popular item)`` (0 for an unknown item).

MMR then picks by that mix, so one call weighs relevance, revenue, novelty and
diversity together. Relevance is the candidate's ``score`` min-max scaled to [0, 1]
within the user's list (``+inf``, as a pinned item may have, counts as 1;
``-inf``/NaN as 0), ties kept in ``rank`` order: the best candidate counts as 1 and
the weakest as 0 whatever the scorer's scale, so scores of different scorers weigh
alike against price, popularity and similarity. Similarity is in [0, 1] and comes
from one of:

- :class:`ModelSimilarity`: the model's own item similarity
  (:meth:`Recommender.item_similarity`: cosine of item factors for ALS/BPR/item2vec,
  the neighbour weights of item-kNN, content vectors, EASE weights), or the cosine of
  co-occurrence in the model's training matrix (``measure="cooccurrence"``);
  negative values count as 0.
- :class:`CategorySimilarity`: Jaccard overlap of the items' category sets (from the
  catalog), the same measure the evaluation's intra-list diversity uses.

The service calls ``diversify(recommendations, k, diversity=..., similarity=...,
categories=..., max_per_category=..., novelty=..., popularity=..., revenue=...,
prices=...)`` with candidates
from ``model.recommend(query, k=candidates)``; one list of 200 candidates takes well
under a millisecond of numpy (``benchmarks/tradeoffs.py`` measures it).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Literal, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tailored.models import Recommender
from tailored.models.threads import blas_threads

_DENSE_ITEMS = 2048  # catalogs up to this size get their whole similarity matrix cached


class ItemSimilarity(Protocol):
    """Pairwise similarity in [0, 1] of a list's items, as a square matrix."""

    def __call__(self, items: Sequence[str]) -> np.ndarray: ...


class ModelSimilarity:
    """Item similarity as a fitted model sees it (unknown items: similarity 0).

    Parameters
    ----------
    model : a fitted Recommender
    measure : ``"model"`` (the model's own, see :meth:`Recommender.item_similarity`) or
        ``"cooccurrence"`` (cosine of who touched both items in the model's training
        data). Values are made symmetric, negatives count as 0, and a measure that
        goes above 1 (EASE weights) is divided by its largest value.

    Catalogs of up to 2,048 items get the whole matrix computed once (16 MB), so a
    list costs one gather; larger ones are computed per list. Build one per model
    version and reuse it.

    Examples
    --------
    >>> import pandas as pd
    >>> import tailored
    >>> from tailored.models import ItemKNN
    >>> events = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c"],
    ...                        "item_id": ["x", "y", "x", "y", "z"]})
    >>> similarity = ModelSimilarity(ItemKNN().fit(tailored.Dataset.from_frame(events)))
    >>> similarity(["x", "y", "z", "new"]).round(2).tolist()
    [[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    """

    def __init__(self, model: Recommender,
                 measure: Literal["model", "cooccurrence"] = "model") -> None:
        if measure not in ("model", "cooccurrence"):
            raise ValueError(f"measure must be 'model' or 'cooccurrence', got {measure!r}")
        model._check_fitted()
        self.model = model
        self.measure = measure
        self._index = pd.Index(model.item_ids)
        self._rows = {str(item): row for row, item in enumerate(model.item_ids)}
        self._dense: np.ndarray | None = None
        self._scale = 1.0
        if len(self._index) <= _DENSE_ITEMS:
            self._dense = self._block(np.arange(len(self._index)))

    def _raw(self, columns: np.ndarray) -> np.ndarray:
        if self.measure == "cooccurrence":
            return Recommender._item_similarity(self.model, columns)
        return self.model._item_similarity(columns)

    def _block(self, columns: np.ndarray) -> np.ndarray:
        """Similarity among ``columns`` (all items when it is the whole catalog)."""
        raw = np.asarray(self._raw(columns), dtype=np.float32)[:, columns]
        block = np.clip(np.nan_to_num((raw + raw.T) / 2), 0, None)
        if len(columns) == len(self._index):  # whole catalog: fix the scale once
            off_diagonal = block.copy()
            np.fill_diagonal(off_diagonal, 0)
            largest = float(off_diagonal.max(initial=0.0))
            self._scale = largest if largest > 1 else 1.0
        return block / self._scale

    def __call__(self, items: Sequence[str]) -> np.ndarray:
        columns = np.fromiter((self._rows.get(item, -1) for item in items), dtype=np.int64,
                              count=len(items))
        known = columns >= 0
        similarity = np.zeros((len(columns), len(columns)), dtype=np.float32)
        if known.any():
            picked = columns[known]
            block = (self._dense[np.ix_(picked, picked)] if self._dense is not None
                     else np.clip(self._block(picked), 0, 1))
            similarity[np.ix_(known, known)] = block
        np.fill_diagonal(similarity, 1.0)
        return np.clip(similarity, 0, 1)


class CategorySimilarity:
    """Jaccard similarity of item category sets (items without categories: 0 to all).

    Examples
    --------
    >>> similarity = CategorySimilarity({"a": ["Comedy"], "b": ["Comedy", "Drama"],
    ...                                  "c": ["War"]})
    >>> similarity(["a", "b", "c", "unknown"]).tolist()
    [[1.0, 0.5, 0.0, 0.0], [0.5, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    """

    def __init__(self, categories: Mapping[str, Collection[str]]) -> None:
        self.flags, index, self.names = category_flags(categories)
        self._rows = {item: row for row, item in enumerate(index)}
        # Few categories (genres, departments): dense flags make a list one small matmul.
        self._dense = (self.flags.toarray() if self.flags.shape[1] <= 1024 else None)

    @classmethod
    def from_items(cls, items: pd.DataFrame, column: str = "categories") -> CategorySimilarity:
        """From a catalog frame (``item_id`` and a column of category lists)."""
        return cls(categories_of(items, column))

    def __call__(self, items: Sequence[str]) -> np.ndarray:
        rows = np.fromiter((self._rows.get(item, -1) for item in items), dtype=np.int64,
                           count=len(items))
        if self._dense is not None:
            flags = self._dense[np.maximum(rows, 0)] * (rows >= 0)[:, None]
            shared = (flags @ flags.T).astype(np.float32)
        else:
            sparse = sp.csr_matrix(self.flags[np.maximum(rows, 0)].multiply(
                (rows >= 0)[:, None]))
            shared = np.asarray((sparse @ sparse.T).toarray(), dtype=np.float32)
        sizes = np.diag(shared)
        either = sizes[:, None] + sizes[None, :] - shared
        similarity = np.divide(shared, either, out=np.zeros_like(shared), where=either > 0)
        np.fill_diagonal(similarity, 1.0)
        return similarity


def similarity_for(model: Recommender, items: pd.DataFrame | None = None) -> ItemSimilarity:
    """The similarity ``diversify`` should use: category overlap when the catalog
    ``items`` has categories, else the model's own (:class:`ModelSimilarity`)."""
    if items is not None and "categories" in items.columns:
        categories = categories_of(items)
        if any(categories.values()):
            return CategorySimilarity(categories)
    return ModelSimilarity(model)


def categories_of(items: pd.DataFrame, column: str = "categories") -> dict[str, list[str]]:
    """``item_id -> categories`` from a catalog frame (a missing cell: no categories).

    Examples
    --------
    >>> categories_of(pd.DataFrame({"item_id": ["a", "b"], "categories": [["x"], None]}))
    {'a': ['x'], 'b': []}
    """
    missing = [c for c in ("item_id", column) if c not in items.columns]
    if missing:
        raise ValueError(f"the items frame lacks column(s) {missing}; it has "
                         f"{list(items.columns)}. Pass column= naming the category lists")
    return {str(item): _labels(value) for item, value in zip(items["item_id"], items[column],
                                                             strict=True)}


def category_flags(categories: Mapping[str, Collection[str]]
                   ) -> tuple[sp.csr_matrix, pd.Index, np.ndarray]:
    """Items x categories 0/1 matrix, the item index and the category names."""
    index = pd.Index([str(item) for item in categories])
    names: dict[str, int] = {}
    rows, columns = [], []
    for row, values in enumerate(categories.values()):
        for value in _labels(values):
            rows.append(row)
            columns.append(names.setdefault(value, len(names)))
    flags = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, columns)),
                          shape=(len(index), len(names)))
    flags.data[:] = 1.0  # a category listed twice is still one category
    return flags, index, np.array(list(names), dtype=object)


def item_popularity(model: Recommender) -> dict[str, float]:
    """How many training users touched each of the model's items (for ``novelty``)."""
    model._check_fitted()
    return dict(zip(model.item_ids.tolist(), model.popularity_.astype(float).tolist(),
                    strict=True))


def diversify(recommendations: pd.DataFrame, k: int = 10, *, diversity: float = 0.0,
              similarity: ItemSimilarity | None = None,
              categories: Mapping[str, Collection[str]] | None = None,
              max_per_category: int | None = None, novelty: float = 0.0,
              popularity: Mapping[str, float] | None = None, revenue: float = 0.0,
              prices: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Re-rank each user's candidates for diversity, novelty and revenue; ``k`` per user.

    Parameters
    ----------
    recommendations : frame with ``user_id``, ``item_id``, ``score``, ``rank``
        Candidates, usually more than ``k`` per user (``model.recommend(q, k=100)``).
    k : how many items each user keeps.
    diversity : float in [0, 1]
        MMR's ``1 - lambda``: 0 keeps the order, larger trades relevance for variety.
        Needs ``similarity`` (or ``categories``, whose Jaccard overlap is then used).
    similarity : ItemSimilarity, optional
        :class:`ModelSimilarity` or :class:`CategorySimilarity` (or any callable
        giving a square matrix in [0, 1]).
    categories : mapping item id -> categories, optional
        For ``max_per_category`` (and the default similarity).
    max_per_category : int, optional
        At most this many items per category in a list (strict; see module notes).
    novelty : float in [0, 1]
        Weight of unpopularity against relevance. Needs ``popularity``.
    popularity : mapping item id -> users who touched it, optional
        :func:`item_popularity` gives it from a model.
    revenue : float in [0, 1]
        Weight of expected revenue (price times relevance, scaled by the list's
        largest) against relevance. Needs ``prices``.
    prices : mapping item id -> price, optional
        Items absent, or priced at 0 or less, bring no revenue
        (:func:`tailored.ranking.rerankers.item_prices` reads them from a catalog).

    Returns
    -------
    The chosen rows of ``recommendations`` (every column kept, ``score`` unchanged),
    ``rank`` renumbered 1..k per user, users in their original order.

    Examples
    --------
    >>> recs = pd.DataFrame({"user_id": ["u"] * 4, "item_id": ["a1", "a2", "a3", "b1"],
    ...                      "score": [1.0, 0.9, 0.8, 0.5], "rank": [1, 2, 3, 4]})
    >>> genres = {"a1": ["Action"], "a2": ["Action"], "a3": ["Action"], "b1": ["Drama"]}
    >>> diversify(recs, k=3)["item_id"].tolist()
    ['a1', 'a2', 'a3']
    >>> diversify(recs, k=3, diversity=0.5, categories=genres)["item_id"].tolist()
    ['a1', 'b1', 'a2']
    >>> diversify(recs, k=3, categories=genres, max_per_category=2)["item_id"].tolist()
    ['a1', 'a2', 'b1']
    >>> diversify(recs, k=2, novelty=1.0, popularity={"a1": 90, "a2": 50, "a3": 5})[
    ...     "item_id"].tolist()     # b1 is unknown to the popularity table: novel
    ['b1', 'a3']
    >>> prices = {"a1": 10.0, "a2": 10.0, "a3": 80.0, "b1": 100.0}
    >>> diversify(recs, k=3, revenue=0.5, prices=prices)["item_id"].tolist()
    ['a3', 'a1', 'a2']
    """
    _check_weight("diversity", diversity)
    _check_weight("novelty", novelty)
    _check_weight("revenue", revenue)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if max_per_category is not None and max_per_category < 1:
        raise ValueError(f"max_per_category must be at least 1, got {max_per_category}")
    missing = [c for c in ("user_id", "item_id", "score", "rank")
               if c not in recommendations.columns]
    if missing:
        raise ValueError(f"recommendations lack column(s) {missing}; pass the frame "
                         "recommend() returned (user_id, item_id, score, rank)")
    if diversity > 0 and similarity is None:
        if categories is None:
            raise ValueError("diversity > 0 needs similarity= (ModelSimilarity(model) or "
                             "CategorySimilarity(...)) or categories=")
        similarity = CategorySimilarity(categories)
    if novelty > 0 and popularity is None:
        raise ValueError("novelty > 0 needs popularity= (item_popularity(model))")
    if revenue > 0 and prices is None:
        raise ValueError("revenue > 0 needs prices= (item id -> price, e.g. item_prices("
                         "catalog) from tailored.ranking.rerankers)")
    if max_per_category is not None and categories is None:
        raise ValueError("max_per_category needs categories= (item id -> categories)")
    if recommendations.empty:
        return recommendations.copy()

    user_codes, users = pd.factorize(recommendations["user_id"], sort=False)
    # Users in first-seen order, each user's candidates by rank (ties: given order).
    order = np.lexsort((recommendations["rank"].to_numpy(), user_codes))
    frame = recommendations.iloc[order]
    user_codes = user_codes[order]
    counts = np.bincount(user_codes, minlength=len(users))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    width = int(counts.max())
    # Padded (users x candidates) layout: slot j of user u is row starts[u] + j.
    slot = np.arange(len(frame)) - starts[user_codes]
    valid = np.zeros((len(users), width), dtype=bool)
    valid[user_codes, slot] = True
    item_ids = frame["item_id"].astype(str).to_numpy()

    relevance = np.zeros((len(users), width))
    relevance[user_codes, slot] = frame["score"].to_numpy(dtype=np.float64)
    relevance = _scaled(relevance, valid)
    if revenue > 0:
        assert prices is not None
        price = np.zeros((len(users), width))
        price[user_codes, slot] = [float(prices.get(item, 0.0)) for item in item_ids]
        relevance = (1 - revenue) * relevance + revenue * expected_revenue(
            relevance, price, valid)
    if novelty > 0:
        assert popularity is not None
        relevance = (1 - novelty) * relevance + novelty * (1 - _popularity_scores(
            popularity, item_ids, user_codes, slot, relevance.shape))

    pairwise = None
    # Small products only: BLAS threads would contend with the server's own.
    with blas_threads(1):
        if diversity > 0:
            assert similarity is not None
            pairwise = np.zeros((len(users), width, width), dtype=np.float32)
            for user in range(len(users)):
                start, count = starts[user], counts[user]
                pairwise[user, :count, :count] = similarity(
                    item_ids[start:start + count].tolist())
        flags = None
        if max_per_category is not None:
            assert categories is not None
            flags = _flags(categories, item_ids, user_codes, slot, (len(users), width))
        chosen = greedy_rerank(relevance, valid, k, diversity=diversity, similarity=pairwise,
                               flags=flags, max_per_category=max_per_category)
    picked_user, picked_step = np.nonzero(chosen >= 0)
    rows = starts[picked_user] + chosen[picked_user, picked_step]
    result = frame.iloc[rows].copy()
    result["rank"] = picked_step + 1
    return result.reset_index(drop=True)


def greedy_rerank(relevance: np.ndarray, valid: np.ndarray, k: int, *, diversity: float = 0.0,
                  similarity: np.ndarray | None = None, flags: np.ndarray | None = None,
                  max_per_category: int | None = None) -> np.ndarray:
    """The MMR / category-cap greedy pick for many lists at once, in positions.

    ``relevance`` and ``valid`` are (lists x candidates); ``similarity`` is (lists x
    candidates x candidates) in [0, 1]; ``flags`` (lists x candidates x categories)
    marks each candidate's categories. Returns (lists x k) candidate positions in
    picking order, -1 where a list ran out. Ties go to the earlier candidate.

    Examples
    --------
    >>> relevance = np.array([[1.0, 0.9, 0.2]])
    >>> similarity = np.array([[[1, 1, 0], [1, 1, 0], [0, 0, 1]]], dtype=float)
    >>> greedy_rerank(relevance, np.ones((1, 3), bool), 2, diversity=0.5,
    ...               similarity=similarity).tolist()
    [[0, 2]]
    """
    n_lists, width = relevance.shape
    steps = min(k, width)
    chosen = np.full((n_lists, k), -1, dtype=np.int64)
    available = valid.copy()
    closest = np.zeros((n_lists, width))  # max similarity to the items picked so far
    used = None if flags is None else np.zeros((n_lists, flags.shape[2]))
    lists = np.arange(n_lists)
    for step in range(steps):
        value = (1 - diversity) * relevance - diversity * closest
        allowed = available
        if flags is not None and used is not None and max_per_category is not None:
            full = used >= max_per_category  # (lists x categories)
            blocked = np.einsum("lnc,lc->ln", flags, full.astype(flags.dtype)) > 0
            allowed = available & ~blocked
        value = np.where(allowed, value, -np.inf)
        pick = np.argmax(value, axis=1)  # first of the best: ties keep rank order
        live = np.isfinite(value[lists, pick])
        if not live.any():
            break
        chosen[live, step] = pick[live]
        available[lists[live], pick[live]] = False
        if similarity is not None and diversity > 0:
            closest[live] = np.maximum(closest[live], similarity[lists[live], pick[live]])
        if used is not None and flags is not None:
            used[live] += flags[lists[live], pick[live]]
    return chosen


def expected_revenue(relevance: np.ndarray, price: np.ndarray,
                     valid: np.ndarray) -> np.ndarray:
    """``price * relevance`` per list, divided by the list's largest (so in [0, 1]).

    ``relevance`` (lists x candidates, in [0, 1]) stands for the chance of a click;
    prices that are not positive numbers bring nothing. A list where no candidate has
    any expected revenue gets its relevance back (what equal prices would give), so
    a catalog without prices leaves the order alone.

    Examples
    --------
    >>> relevance = np.array([[1.0, 0.8, 0.5, 0.0], [1.0, 0.5, 0.0, 0.0]])
    >>> price = np.array([[10.0, 50.0, 30.0, 100.0], [0.0, 0.0, 0.0, 0.0]])
    >>> expected_revenue(relevance, price, np.ones((2, 4), bool)).tolist()
    [[0.25, 1.0, 0.375, 0.0], [1.0, 0.5, 0.0, 0.0]]
    """
    price = np.where(np.isfinite(price) & (price > 0), price, 0.0)
    money = np.where(valid, price * relevance, 0.0)
    top = money.max(axis=1, keepdims=True, initial=0.0)
    scaled = np.divide(money, top, out=np.zeros_like(money), where=top > 0)
    return np.where(top > 0, scaled, np.where(valid, relevance, 0.0))


def _check_weight(name: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")


def _scaled(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Scores min-max scaled to [0, 1] per row over valid slots (+inf: 1, -inf/NaN: 0)."""
    finite = valid & np.isfinite(scores)
    low = np.where(finite, scores, np.inf).min(axis=1, keepdims=True)
    high = np.where(finite, scores, -np.inf).max(axis=1, keepdims=True)
    span = high - low
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(span > 0, (scores - low) / np.where(span > 0, span, 1), 1.0)
    scaled = np.where(finite, scaled, 0.0)
    scaled = np.where(valid & (scores == np.inf), 1.0, scaled)
    return np.where(valid, scaled, 0.0)


def _popularity_scores(popularity: Mapping[str, float], item_ids: np.ndarray,
                       user_codes: np.ndarray, slot: np.ndarray,
                       shape: tuple[int, int]) -> np.ndarray:
    counts = np.array([max(float(popularity.get(item, 0.0)), 0.0) for item in item_ids])
    largest = max((float(v) for v in popularity.values()), default=0.0)
    scores = np.zeros(shape)
    if largest > 0:
        scores[user_codes, slot] = np.log1p(counts) / np.log1p(largest)
    return np.clip(scores, 0, 1)


def _flags(categories: Mapping[str, Collection[str]], item_ids: np.ndarray,
           user_codes: np.ndarray, slot: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(lists x candidates x categories) 0/1 flags, categories limited to those present."""
    labels = [_labels(categories.get(item, ())) for item in item_ids]
    names = {name: column for column, name in enumerate(sorted({c for ls in labels for c in ls}))}
    flags = np.zeros((*shape, max(1, len(names))), dtype=np.float32)
    for row, values in enumerate(labels):
        for value in values:
            flags[user_codes[row], slot[row], names[value]] = 1.0
    return flags


def _labels(value: object) -> list[str]:
    """A categories cell as distinct strings (a lone string is one category)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray, pd.Series)):
        return sorted({str(v) for v in value if isinstance(v, str) or pd.notna(v)})
    return []


__all__ = ["CategorySimilarity", "ItemSimilarity", "ModelSimilarity", "categories_of",
           "category_flags", "diversify", "expected_revenue", "greedy_rerank",
           "item_popularity", "similarity_for"]
