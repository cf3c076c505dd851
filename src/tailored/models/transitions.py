"""Item transitions: what users did next after the items a user just touched.

Sequential rules in the session-based literature (Ludewig and Jannach, 2018): every
event counts as following each of the ``window`` events before it in its user's time
order, weighing 1 / the gap, so an item's successors are what tends to come next. A
user is scored from their latest distinct items, newest weighing most. Cheap to fit
(one pass over the events) and strong wherever order matters (a user's next item),
where the order-blind neighbourhoods and factorisations miss it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from tailored.dataset import Dataset

from .base import (
    DroppedUsers,
    ModelConfig,
    Reason,
    Recommender,
    ScoringBatch,
    recent_items,
    strongest_entries,
)


class ItemTransitionsConfig(ModelConfig):
    """``window``: how many later events of a user count as following an event, the one
    ``g`` places later weighing ``1 / g``. ``conditional``: each item's successor
    weights sum to 1 (how likely each successor is after it) instead of raw counts,
    which favour items that are simply touched often. ``successors``: the strongest
    successors kept per item. ``recent``: how many of the user's latest distinct items
    score; ``recency_decay``: the item ``k`` places before the latest weighs
    ``recency_decay ** k`` (1: all alike). Items none of them leads to rank after those
    they do, by popularity.
    """

    window: int = Field(5, ge=1, le=100)
    conditional: bool = True
    successors: int = Field(100, ge=1, le=100_000)
    recent: int = Field(20, ge=1, le=1000)
    recency_decay: float = Field(0.7, gt=0, le=1)


class ItemTransitions(Recommender):
    """Scores an item by how often it followed the user's latest items.

    Examples
    --------
    >>> import pandas as pd
    >>> import tailored
    >>> events = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c"],
    ...                        "item_id": ["x", "y", "x", "y", "x"],
    ...                        "timestamp": [1, 2, 1, 2, 1]})
    >>> model = ItemTransitions().fit(tailored.Dataset.from_frame(events))
    >>> model.recommend("c", k=1)["item_id"].tolist()
    ['y']
    >>> model.similar_items("x", k=1)["similar_item_id"].tolist()
    ['y']
    """

    name = "transitions"
    example_params: ClassVar[dict[str, Any]] = {"window": 2}
    Config = ItemTransitionsConfig
    config: ItemTransitionsConfig
    needs_sequences = True

    def _fit(self, matrix: sp.csr_matrix, data: Dataset) -> None:
        self.transitions_ = self._count(matrix.shape[1])

    def _count(self, n_items: int) -> sp.csr_matrix:
        """Items x items: each successor's summed 1 / gap, pruned and normalised."""
        items = np.concatenate([np.zeros(0, np.int64), *self.sequences_]).astype(np.int32)
        owners = np.repeat(np.arange(len(self.sequences_)),
                           [len(sequence) for sequence in self.sequences_])
        counts = sp.csr_matrix((n_items, n_items), dtype=np.float64)
        for gap in range(1, self.config.window + 1):  # one gap at a time bounds the memory
            same_user = owners[:-gap] == owners[gap:]
            counts += sp.csr_matrix(
                (np.full(int(same_user.sum()), 1.0 / gap),
                 (items[:-gap][same_user], items[gap:][same_user])), shape=(n_items, n_items))
        counts.setdiag(0)  # an item repeated is not a step to take
        counts.eliminate_zeros()
        kept = _strongest_per_row(counts, self.config.successors)
        if self.config.conditional:
            totals = np.asarray(kept.sum(axis=1)).ravel()
            kept = sp.csr_matrix(sp.diags(1 / np.where(totals > 0, totals, 1)) @ kept)
        return kept.astype(np.float32)

    def _forget_rows(self, dropped: DroppedUsers) -> bool:
        # Counts follow from the remaining users' sequences alone: recount them.
        self.transitions_ = self._count(len(self.item_vocab_))
        return True

    def _query(self, batch: ScoringBatch) -> sp.csr_matrix:
        """Users x items: the weight of each of a user's latest distinct items."""
        if batch.sequences is None:  # pragma: no cover - the base class always sets them
            raise RuntimeError("ItemTransitions scores from sequences; the batch has none")
        rows, columns, weights = [], [], []
        for row, sequence in enumerate(batch.sequences):
            items, item_weights = recent_items(np.asarray(sequence, dtype=np.int64),
                                               self.config.recent, self.config.recency_decay)
            rows.append(np.full(len(items), row))
            columns.append(items)
            weights.append(item_weights)
        return sp.csr_matrix(
            (np.concatenate([np.zeros(0), *weights]),
             (np.concatenate([np.zeros(0, np.int64), *rows]),
              np.concatenate([np.zeros(0, np.int64), *columns]))),
            shape=(len(batch), len(self.item_vocab_)))

    def _score(self, batch: ScoringBatch) -> np.ndarray:
        scores = np.asarray((self._query(batch) @ self.transitions_).toarray())
        # Below each user's weakest successor, the items their latest lead nowhere to
        # follow by popularity, so a list never ends in arbitrary order.
        positive = np.where(scores > 0, scores, np.inf).min(axis=1, initial=np.inf)
        floor = np.where(np.isfinite(positive), positive / 2, 1.0)
        popularity = self.popularity_ / max(float(self.popularity_.max(initial=0)), 1e-12)
        return np.where(scores > 0, scores, floor[:, None] * popularity[None, :])

    def _item_similarity(self, columns: np.ndarray) -> np.ndarray:
        return np.asarray(self.transitions_[columns].toarray())

    def _explain(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                 ) -> list[Reason]:
        # The score is a sum over the latest items h of weight(h) * transition(h, item):
        # name the h with the largest term.
        query = self._query(batch.take(rows))
        targets = np.repeat(columns, np.diff(query.indptr))
        values = query.data * np.asarray(self.transitions_[query.indices, targets]).ravel()
        best, strength = strongest_entries(query, values)
        return [Reason("history", items=(str(self.item_vocab_.ids[b]),)) if s > 0
                else Reason("popular") for b, s in zip(best, strength, strict=True)]

    def _arrays(self) -> dict[str, np.ndarray]:
        matrix = self.transitions_
        return {"transitions.data": matrix.data, "transitions.indices": matrix.indices,
                "transitions.indptr": matrix.indptr}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        n = len(self.item_vocab_)
        self.transitions_ = sp.csr_matrix(
            (arrays["transitions.data"], arrays["transitions.indices"],
             arrays["transitions.indptr"]), shape=(n, n))


def _strongest_per_row(matrix: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """Each row's ``keep`` largest entries (ties going to the lower column)."""
    matrix = sp.csr_matrix(matrix)
    matrix.sort_indices()
    if matrix.nnz == 0 or np.diff(matrix.indptr).max() <= keep:
        return matrix
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    order = np.lexsort((matrix.indices, -matrix.data, rows))
    rank = np.arange(matrix.nnz) - matrix.indptr[rows[order]]
    chosen = np.sort(order[rank < keep])
    return sp.csr_matrix((matrix.data[chosen], (rows[chosen], matrix.indices[chosen])),
                         shape=matrix.shape)
