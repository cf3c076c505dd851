"""Neighbourhood collaborative filtering on sparse matrix products.

Items are alike when the same users touch them (:class:`ItemKNN`); users are alike when
they touch the same items (:class:`UserKNN`). Similarities are computed in blocks so a
large catalog never needs a dense item x item matrix. Each item (user) keeps its best
neighbours, ties going to the lower index, so that forgetting users can update the
neighbour lists in place and give exactly what a fit without them would.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field

from tailored.dataset import Dataset, UserQuery

from .base import (
    DroppedUsers,
    ModelConfig,
    Reason,
    Recommender,
    ScoringBatch,
    Users,
    strongest_entries,
)

_BLOCK_BUDGET = 2**22  # dense similarity cells per block while updating neighbours
_PAIR_BUDGET = 2**22  # similar pairs (at most) per block while picking neighbours


class KNNConfig(ModelConfig):
    """Neighbourhood parameters shared by item- and user-kNN.

    ``neighbors``: neighbours kept per item (or user). ``similarity``: ``cosine`` of
    weighted vectors or ``jaccard`` of who-touched-what sets. ``weighting`` re-weights
    the interaction matrix first: ``bm25`` or ``tfidf`` discount very active users (for
    items; very popular items for users) like stop words. ``shrinkage`` damps
    similarities built on little evidence (dot / (norms + shrinkage)). ``min_support``:
    pairs need at least this many common users (items) to count. ``binary``: presence
    instead of event weights.
    """

    neighbors: int = Field(100, ge=1)
    similarity: Literal["cosine", "jaccard"] = "cosine"
    weighting: Literal["none", "tfidf", "bm25"] = "none"
    shrinkage: float = Field(0.0, ge=0)
    min_support: int = Field(1, ge=1)
    binary: bool = False
    bm25_k1: float = Field(1.2, gt=0)
    bm25_b: float = Field(0.75, ge=0, le=1)


class ItemKNNConfig(KNNConfig):
    __doc__ = KNNConfig.__doc__


class UserKNNConfig(KNNConfig):
    __doc__ = KNNConfig.__doc__
    neighbors: int = Field(50, ge=1)


class ItemKNN(Recommender):
    """Scores an item by the user's items, each weighted by its similarity to it.

    Examples
    --------
    >>> import pandas as pd
    >>> import tailored
    >>> events = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c"],
    ...                        "item_id": ["x", "y", "x", "y", "x"]})
    >>> model = ItemKNN().fit(tailored.Dataset.from_frame(events))
    >>> model.recommend("c", k=1)["item_id"].tolist()
    ['y']
    >>> model.similar_items("x", k=1)["similar_item_id"].tolist()
    ['y']
    """

    name = "item_knn"
    example_params: ClassVar[dict[str, Any]] = {"neighbors": 20}
    Config = ItemKNNConfig
    config: ItemKNNConfig

    def _fit(self, matrix: sp.csr_matrix, data: Dataset) -> None:
        self.similarity_ = self._similarities(matrix).neighbours()

    def _similarities(self, matrix: sp.csr_matrix) -> _Similarities:
        prepared = _prepare(matrix, self.config.binary)
        # Items are the vectors (columns); users play the role of terms.
        weighted = _weigh(prepared.T.tocsr(), self.config).T.tocsr()
        return _Similarities(weighted, prepared, self.config)

    def _forget_rows(self, dropped: DroppedUsers) -> bool:
        """Update the neighbour lists exactly, touching only what their items changed.

        Without the users, similarities between items none of them touched stay as they
        were, and an untouched item's similarity to a touched one can only grow (same
        common users, a smaller norm or count). So a touched item's neighbours are
        recomputed in full, and an untouched item's new neighbours are among its old
        ones and the touched items: a few rows and columns of work, not a refit.
        """
        if self.config.weighting == "bm25":
            return False  # BM25 scales every item by the mean item length, which moved
        touched = np.unique(dropped.history.indices)
        if len(touched):
            similarities = self._similarities(self.user_items_)
            self.similarity_ = similarities.updated(self.similarity_, touched)
        return True

    def _score(self, batch: ScoringBatch) -> np.ndarray:
        history = _prepare(batch.history, self.config.binary)
        return np.asarray((history @ self.similarity_).toarray())

    def _item_similarity(self, columns: np.ndarray) -> np.ndarray:
        return np.asarray(self.similarity_[columns].toarray())

    def _explain(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                 ) -> list[Reason]:
        # The score is a sum over history items h of weight(h) * similarity(h, item):
        # name the h with the largest term.
        history = _prepare(sp.csr_matrix(batch.history[rows]), self.config.binary)
        targets = np.repeat(columns, np.diff(history.indptr))
        values = history.data * np.asarray(
            self.similarity_[history.indices, targets]).ravel()
        best, strength = strongest_entries(history, values)
        return [Reason("history", items=(str(self.item_vocab_.ids[b]),)) if s > 0
                else Reason("model") for b, s in zip(best, strength, strict=True)]

    def _arrays(self) -> dict[str, np.ndarray]:
        return _sparse_arrays("similarity", self.similarity_)

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        n = len(self.item_vocab_)
        self.similarity_ = _sparse_from("similarity", arrays, (n, n))


class UserKNN(Recommender):
    """Scores items by what the user's most similar users touched.

    A user who acts after training is compared with the training users on the spot,
    so new events count at once.

    Examples
    --------
    >>> import pandas as pd
    >>> import tailored
    >>> events = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c", "c"],
    ...                        "item_id": ["x", "y", "x", "z", "q", "r"]})
    >>> model = UserKNN().fit(tailored.Dataset.from_frame(events))
    >>> model.recommend("a", k=1)["item_id"].tolist()
    ['z']
    >>> model.similar_users("a", k=1)["similar_user_id"].tolist()
    ['b']
    """

    name = "user_knn"
    example_params: ClassVar[dict[str, Any]] = {"neighbors": 10}
    Config = UserKNNConfig
    config: UserKNNConfig

    def _fit(self, matrix: sp.csr_matrix, data: Dataset) -> None:
        prepared = _prepare(matrix, self.config.binary)
        self.idf_, self.user_vectors_ = _user_vectors(prepared, self.config)
        self.similarity_ = self._similarities(prepared).neighbours()
        self._prepare_lookup()

    def _similarities(self, prepared: sp.csr_matrix) -> _Similarities:
        return _Similarities(self.user_vectors_.T.tocsr(), prepared.T.tocsr(), self.config)

    def _forget_rows(self, dropped: DroppedUsers) -> bool:
        """Drop their rows and columns; users who had one of them as a neighbour pick
        their neighbours again among those left.

        Similarities between the other users do not change unless a weighting's item
        statistics (idf over users) do, so without one the result is exactly a fit
        without them.
        """
        gone = np.flatnonzero(~dropped.keep)
        if not len(gone):
            return self.config.weighting == "none"
        old = self.similarity_
        lost = np.unique(_rows_holding(old, gone))
        lost = lost[dropped.keep[lost]]
        self.similarity_ = sp.csr_matrix(old[dropped.keep][:, dropped.keep])
        self.user_vectors_ = sp.csr_matrix(self.user_vectors_[dropped.keep])
        prepared = _prepare(self.user_items_, self.config.binary)
        if self.config.weighting == "none":
            self.idf_ = _idf(prepared)  # unused in scoring, but learned from everyone
        if len(lost):
            rows = (np.cumsum(dropped.keep) - 1)[lost]  # their rows after the drop
            self.similarity_ = _with_rows(self.similarity_, rows,
                                          self._similarities(prepared).neighbours(rows))
        self._prepare_lookup()
        # With a weighting, every user's vector was scaled by idf learned from everyone.
        return self.config.weighting == "none"

    def _prepare_lookup(self) -> None:
        """What every request compares against: derived once per fit, not per call."""
        self._neighbour_items = _prepare(self.user_items_, self.config.binary)
        self._presence = sp.csr_matrix(self.user_vectors_ > 0, dtype=np.float32)
        self._counts = np.asarray(self._presence.sum(axis=1)).ravel()
        self._norms = sp.linalg.norm(self.user_vectors_, axis=1)

    def _neighbour_weights(self, batch: ScoringBatch) -> sp.csr_matrix:
        """Rows: each batch user's similarity to their nearest training users."""
        known = batch.users >= 0
        rows = [self.similarity_[batch.users[known]]]
        if (~known).any():
            fresh = _prepare(sp.csr_matrix(batch.history[~known]), self.config.binary)
            rows.append(self._similar_to(fresh))
        # Known users' rows first, then new users': put back in the batch's order.
        order = np.concatenate([np.flatnonzero(known), np.flatnonzero(~known)])
        return sp.csr_matrix(sp.vstack(rows, format="csr")[np.argsort(order)],
                             dtype=np.float32)

    def _similar_to(self, rows: sp.csr_matrix) -> sp.csr_matrix:
        """Similarity of new users' histories to every training user, pruned to top k."""
        vectors = _weigh_with(rows, self.idf_, self.config)
        dots = (vectors @ self.user_vectors_.T).toarray()
        if self.config.similarity == "jaccard":
            mine = np.asarray((rows > 0).sum(axis=1)).ravel()
            binary_dots = ((rows > 0).astype(np.float32) @ self._presence.T).toarray()
            denominator = (mine[:, None] + self._counts[None, :] - binary_dots
                           + self.config.shrinkage)
            similarity = np.divide(binary_dots, denominator, out=np.zeros_like(dots),
                                   where=denominator > 0)
        else:
            norms = sp.linalg.norm(vectors, axis=1)
            denominator = norms[:, None] * self._norms[None, :] + self.config.shrinkage
            similarity = np.divide(dots, denominator, out=np.zeros_like(dots),
                                   where=denominator > 0)
        return _prune_rows(similarity, self.config.neighbors)

    def _score(self, batch: ScoringBatch) -> np.ndarray:
        return np.asarray((self._neighbour_weights(batch) @ self._neighbour_items).toarray())

    def _explain(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                 ) -> list[Reason]:
        # The score sums the similarity of the neighbours who touched the item: say how
        # many of the user's neighbours did.
        weights = self._neighbour_weights(batch.take(np.unique(rows)))
        position = np.searchsorted(np.unique(rows), rows)
        touched = sp.csr_matrix(self._neighbour_items.T > 0, dtype=np.float32)[columns]
        counts = np.asarray((sp.csr_matrix(weights[position] > 0, dtype=np.float32)
                             .multiply(touched)).sum(axis=1)).ravel()
        return [Reason("similar_users", detail=str(int(n))) if n > 0 else Reason("model")
                for n in counts]

    def similar_users(self, users: Users, k: int = 10) -> pd.DataFrame:
        """The ``k`` training users most similar to each given user, by this model's own
        neighbour weights (a query with current histories: the generic measure)."""
        self._check_fitted()
        if isinstance(users, UserQuery):
            return super().similar_users(users, k)
        user_ids = [users] if isinstance(users, str) else list(users)
        rows = self.user_vocab_.indices(user_ids)
        records = []
        for user, row in zip(user_ids, rows, strict=True):
            if row < 0:
                continue
            similar = self.similarity_[row].toarray().ravel()
            top = np.argsort(-similar, kind="stable")[:k]
            records += [(user, self.user_vocab_.ids[t], float(similar[t]), rank + 1)
                        for rank, t in enumerate(top) if similar[t] > 0]
        return pd.DataFrame(records, columns=["user_id", "similar_user_id", "score", "rank"])

    def _arrays(self) -> dict[str, np.ndarray]:
        return {**_sparse_arrays("similarity", self.similarity_),
                **_sparse_arrays("user_vectors", self.user_vectors_), "idf": self.idf_}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        n_users, n_items = len(self.user_vocab_), len(self.item_vocab_)
        self.similarity_ = _sparse_from("similarity", arrays, (n_users, n_users))
        self.user_vectors_ = _sparse_from("user_vectors", arrays, (n_users, n_items))
        self.idf_ = arrays["idf"]
        self._prepare_lookup()


# ---- shared machinery --------------------------------------------------------------------

def _prepare(matrix: sp.csr_matrix, binary: bool) -> sp.csr_matrix:
    return (matrix > 0).astype(np.float32) if binary else sp.csr_matrix(matrix, dtype=np.float32)


def _idf(vectors: sp.csr_matrix) -> np.ndarray:
    """Inverse document frequency of each term (column) over vectors (rows)."""
    documents = np.bincount(vectors.indices, minlength=vectors.shape[1])
    return np.log(vectors.shape[0] / (1.0 + documents)).clip(min=0).astype(np.float32) + 1e-3


def _weigh_with(vectors: sp.csr_matrix, idf: np.ndarray, config: KNNConfig) -> sp.csr_matrix:
    """TF-IDF or BM25 weights for rows of ``vectors`` given term idf."""
    weighted = sp.csr_matrix(vectors, dtype=np.float32, copy=True)
    if config.weighting == "none":
        return weighted
    terms = weighted.indices
    if config.weighting == "tfidf":
        weighted.data = np.sqrt(weighted.data) * idf[terms]
        return weighted
    lengths = np.asarray(weighted.sum(axis=1)).ravel()
    average = lengths.mean() if lengths.size and lengths.mean() > 0 else 1.0
    row_of = np.repeat(np.arange(weighted.shape[0]), np.diff(weighted.indptr))
    k1, b = config.bm25_k1, config.bm25_b
    saturation = k1 * (1 - b + b * lengths[row_of] / average)
    weighted.data = weighted.data * (k1 + 1) / (weighted.data + saturation) * idf[terms]
    return weighted


def _weigh(vectors: sp.csr_matrix, config: KNNConfig) -> sp.csr_matrix:
    return _weigh_with(vectors, _idf(vectors), config)


def _user_vectors(matrix: sp.csr_matrix, config: KNNConfig) -> tuple[np.ndarray, sp.csr_matrix]:
    idf = _idf(matrix)
    return idf, _weigh_with(matrix, idf, config)


class _Similarities:
    """Similarity between the columns of ``weighted`` (the vectors), before pruning.

    ``presence`` has the same layout and supplies co-occurrence counts for Jaccard and
    ``min_support``. Any block of rows and columns gives the same values as the whole
    matrix would, so parts can be recomputed exactly.
    """

    def __init__(self, weighted: sp.csr_matrix, presence: sp.csr_matrix,
                 config: KNNConfig) -> None:
        self.config = config
        self.columns = sp.csc_matrix(weighted, dtype=np.float32)
        self.binary = sp.csc_matrix(presence > 0, dtype=np.float32)
        self.n = self.columns.shape[1]
        self.norms = np.sqrt(np.asarray(self.columns.multiply(self.columns).sum(axis=0)).ravel())
        self.counts = np.asarray(self.binary.sum(axis=0)).ravel()
        self.rows_t, self.binary_t = self.columns.T.tocsr(), self.binary.T.tocsr()
        self.term_sizes = np.asarray(self.binary.sum(axis=1)).ravel()  # vectors per term

    def pairs(self, rows: np.ndarray, columns: np.ndarray) -> sp.coo_matrix:
        """The positive similarities of vectors ``rows`` to vectors ``columns`` (none to
        itself): only pairs that share a term can have one, so they stay sparse."""
        config = self.config
        jaccard = config.similarity == "jaccard"
        common = (self.binary_t[rows] @ self.binary[:, columns]
                  if jaccard or config.min_support > 1 else None)
        matrix = common if jaccard else self.rows_t[rows] @ self.columns[:, columns]
        assert matrix is not None
        if common is not None and config.min_support > 1:
            matrix = matrix.multiply(common >= config.min_support)
        found = sp.coo_matrix(matrix)
        row, column, numerator = found.row, found.col, found.data
        if jaccard:
            denominator = (self.counts[rows[row]] + self.counts[columns[column]] - numerator
                           + config.shrinkage)
        else:
            denominator = (self.norms[rows[row]] * self.norms[columns[column]]
                           + config.shrinkage)
        similarity = np.divide(numerator, denominator, out=np.zeros_like(numerator),
                               where=denominator > 0)
        kept = (similarity > 0) & (rows[row] != columns[column])
        return sp.coo_matrix((similarity[kept], (row[kept], column[kept])),
                             shape=(len(rows), len(columns)))

    def neighbours(self, rows: np.ndarray | None = None) -> sp.csr_matrix:
        """The best neighbours of vectors ``rows`` (default: all), one sparse row each."""
        rows = np.arange(self.n) if rows is None else np.asarray(rows)
        every = np.arange(self.n)
        # Blocks of rows whose pairs (at most: their terms' vectors) fit the budget.
        bound = np.minimum(self.binary_t[rows] @ self.term_sizes, self.n)
        block = np.cumsum(bound) // _PAIR_BUDGET
        starts = np.flatnonzero(np.diff(block, prepend=-1))
        parts = [_strongest(self.pairs(rows[start:end], every), self.config.neighbors)
                 for start, end in zip(starts, [*starts[1:], len(rows)], strict=True)]
        if not parts:
            return sp.csr_matrix((len(rows), self.n), dtype=np.float32)
        return sp.csr_matrix(sp.vstack(parts), dtype=np.float32)

    def updated(self, similarity: sp.csr_matrix, touched: np.ndarray) -> sp.csr_matrix:
        """``similarity`` (pruned neighbours) after the vectors ``touched`` changed by
        losing entries, all others staying as they were.

        Touched vectors get their neighbours anew; every other vector's new neighbours
        are the best of its old ones and the touched vectors, whose similarity to it can
        only have grown (see ``ItemKNN._forget_rows``).
        """
        if 2 * len(touched) > self.n:  # most vectors changed: a refit costs less
            return self.neighbours()
        rows, parts = [touched], [self.neighbours(touched)]
        others = np.setdiff1d(np.arange(self.n), touched)
        had_touched = np.zeros(self.n, dtype=bool)
        had_touched[_rows_holding(similarity, touched)] = True
        step = max(1, _BLOCK_BUDGET // max(len(touched), 1))
        for start in range(0, len(others), step):
            chunk = others[start:start + step]
            fresh = self.pairs(chunk, touched).toarray()
            changed = had_touched[chunk] | (fresh > 0).any(axis=1)
            if changed.any():
                rows.append(chunk[changed])
                parts.append(self._merged(similarity, chunk[changed], touched,
                                          fresh[changed]))
        return _with_rows(similarity, np.concatenate(rows), sp.vstack(parts, format="csr"))

    def _merged(self, similarity: sp.csr_matrix, rows: np.ndarray, touched: np.ndarray,
                fresh: np.ndarray) -> sp.csr_matrix:
        """Rows' best neighbours among their stored ones (columns ``touched`` left out)
        and ``fresh``, their similarities to ``touched``; ties to the lower column."""
        stored = sp.csr_matrix(similarity[rows])
        row = np.repeat(np.arange(len(rows)), np.diff(stored.indptr))
        untouched = ~np.isin(stored.indices, touched)
        row, column, value = row[untouched], stored.indices[untouched], stored.data[untouched]
        # One padded slot table per row: stored entries first, then the touched columns.
        slot = np.arange(len(row)) - np.searchsorted(row, row)
        width = int(slot.max(initial=-1)) + 1
        values = np.zeros((len(rows), width + len(touched)), dtype=np.float32)
        columns = np.full(values.shape, self.n, dtype=np.int64)
        values[row, slot], columns[row, slot] = value, column
        values[:, width:], columns[:, width:] = fresh, touched
        best_row, best_slot = np.nonzero(_best(values, self.config.neighbors, columns))
        return sp.csr_matrix((values[best_row, best_slot],
                              (best_row, columns[best_row, best_slot])),
                             shape=(len(rows), self.n), dtype=np.float32)


def _best(values: np.ndarray, keep: int, columns: np.ndarray | None = None) -> np.ndarray:
    """Per row, where its ``keep`` largest positive values are, ties going to the lower
    column (``columns``: each slot's column; default: its position)."""
    width = values.shape[1]
    if keep >= width:
        return values > 0
    kth = np.partition(values, width - keep, axis=1)[:, width - keep:width - keep + 1]
    above = values > kth
    tied = (values == kth) & (kth > 0)  # ties at zero are dropped anyway
    room = keep - above.sum(axis=1)
    crowded = np.flatnonzero(tied.sum(axis=1) > room)
    if len(crowded):  # more ties than room: the lower columns first
        ranked = tied[crowded]
        if columns is None:  # slots are in column order already
            ranked &= np.cumsum(ranked, axis=1) <= room[crowded, None]
        else:
            order = np.argsort(columns[crowded], axis=1, kind="stable")
            ranked = np.take_along_axis(ranked, order, axis=1)
            ranked &= np.cumsum(ranked, axis=1) <= room[crowded, None]
            kept = np.empty_like(ranked)
            np.put_along_axis(kept, order, ranked, axis=1)
            ranked = kept
        tied[crowded] = ranked
    return (above | tied) & (values > 0)


def _prune_rows(similarity: np.ndarray, keep: int) -> sp.csr_matrix:
    """Keep each row's ``keep`` largest positive entries (ties to the lower column)."""
    rows, columns = np.nonzero(_best(similarity, keep))
    return sp.csr_matrix((similarity[rows, columns].astype(np.float32), (rows, columns)),
                         shape=similarity.shape, dtype=np.float32)


def _strongest(pairs: sp.coo_matrix, keep: int) -> sp.csr_matrix:
    """Keep each row's ``keep`` largest entries (ties to the lower column).

    Rows with more entries than that are picked from padded tables, one per group of
    rows of about the same length, so a table holds at most twice their entries (a
    block more than half filled is picked from as it stands, densely)."""
    if 2 * pairs.nnz > pairs.shape[0] * pairs.shape[1]:
        return _prune_rows(pairs.toarray(), keep)
    pairs = sp.csr_matrix(pairs)
    lengths = np.diff(pairs.indptr)
    crowded = np.flatnonzero(lengths > keep)
    dropped = np.zeros(pairs.nnz, dtype=bool)
    group = np.ceil(np.log2(lengths[crowded])).astype(int)
    for rows in (crowded[group == g] for g in np.unique(group)):
        place = np.arange(lengths[rows].max())
        filled = place[None, :] < lengths[rows, None]
        slots = np.where(filled, pairs.indptr[rows, None] + place[None, :], 0)
        values = np.where(filled, pairs.data[slots], 0)  # padding is never kept
        columns = np.where(filled, pairs.indices[slots], pairs.shape[1])
        dropped[slots[filled & ~_best(values, keep, columns)]] = True
    pairs.data[dropped] = 0
    pairs.eliminate_zeros()
    return pairs


def _rows_holding(matrix: sp.csr_matrix, columns: np.ndarray) -> np.ndarray:
    """The row of every stored entry of ``matrix`` in one of ``columns``."""
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    return rows[np.isin(matrix.indices, columns)]


def _with_rows(matrix: sp.csr_matrix, rows: np.ndarray, replacement: sp.csr_matrix
               ) -> sp.csr_matrix:
    """``matrix`` with its ``rows`` replaced by the rows of ``replacement``, in order."""
    old = sp.coo_matrix(matrix)
    stays = ~np.isin(old.row, rows)
    new = sp.coo_matrix(replacement)
    return sp.csr_matrix((np.concatenate([old.data[stays], new.data]),
                          (np.concatenate([old.row[stays], rows[new.row]]),
                           np.concatenate([old.col[stays], new.col]))),
                         shape=matrix.shape, dtype=np.float32)


def _sparse_arrays(prefix: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    return {f"{prefix}.data": matrix.data, f"{prefix}.indices": matrix.indices,
            f"{prefix}.indptr": matrix.indptr}


def _sparse_from(prefix: str, arrays: dict[str, np.ndarray],
                 shape: tuple[int, int]) -> sp.csr_matrix:
    return sp.csr_matrix((arrays[f"{prefix}.data"], arrays[f"{prefix}.indices"],
                          arrays[f"{prefix}.indptr"]), shape=shape)
