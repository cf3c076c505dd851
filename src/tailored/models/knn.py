"""Item-based collaborative filtering: items are alike when the same users touch them."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from tailored.dataset import Dataset

from .base import ModelConfig, Recommender, ScoringBatch

_BLOCK_BUDGET = 2**22  # dense similarity cells per block while pruning neighbours


class ItemKNNConfig(ModelConfig):
    """``neighbors``: similar items kept per item. ``shrinkage``: damps similarities
    built on few common users (cosine / (norms + shrinkage)). ``binary``: ignore event
    weights and count presence only."""

    neighbors: int = Field(100, ge=1)
    shrinkage: float = Field(0.0, ge=0)
    binary: bool = False


class ItemKNN(Recommender):
    """Scores an item by the user's items weighted by their cosine similarity to it.

    Examples
    --------
    >>> import pandas as pd
    >>> import tailored
    >>> events = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c"],
    ...                        "item_id": ["x", "y", "x", "y", "x"]})
    >>> model = ItemKNN().fit(tailored.Dataset.from_frame(events))
    >>> model.recommend("c", k=1)["item_id"].tolist()
    ['y']
    """

    name = "item_knn"
    Config = ItemKNNConfig
    config: ItemKNNConfig

    def _fit(self, matrix: sp.csr_matrix, data: Dataset) -> None:
        self.similarity_ = _cosine_neighbours(self._prepare(matrix), self.config.neighbors,
                                              self.config.shrinkage)

    def _prepare(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        return (matrix > 0).astype(np.float32) if self.config.binary else matrix

    def _score(self, batch: ScoringBatch) -> np.ndarray:
        return np.asarray((self._prepare(batch.history) @ self.similarity_).toarray())

    def _item_similarity(self, columns: np.ndarray) -> np.ndarray:
        return np.asarray(self.similarity_[columns].toarray())

    def _arrays(self) -> dict[str, np.ndarray]:
        s = self.similarity_
        return {"similarity.data": s.data, "similarity.indices": s.indices,
                "similarity.indptr": s.indptr}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        n = len(self.item_vocab_)
        self.similarity_ = sp.csr_matrix(
            (arrays["similarity.data"], arrays["similarity.indices"],
             arrays["similarity.indptr"]), shape=(n, n))


def _cosine_neighbours(matrix: sp.csr_matrix, neighbors: int, shrinkage: float) -> sp.csr_matrix:
    """Item x item cosine similarity keeping each item's ``neighbors`` best, row by row.

    Computed in blocks of items so memory stays bounded for large catalogs.
    """
    columns = sp.csc_matrix(matrix, dtype=np.float32)
    n_items = columns.shape[1]
    norms = np.sqrt(np.asarray(columns.multiply(columns).sum(axis=0)).ravel())
    keep = min(neighbors, max(n_items - 1, 1))
    block = max(1, _BLOCK_BUDGET // max(n_items, 1))
    data, indices, indptr = [], [], [0]
    transposed = columns.T.tocsr()
    for start in range(0, n_items, block):
        stop = min(start + block, n_items)
        dots = (transposed[start:stop] @ columns).toarray()
        denominator = norms[start:stop, None] * norms[None, :] + shrinkage
        similarity = np.divide(dots, denominator, out=np.zeros_like(dots),
                               where=denominator > 0)
        similarity[np.arange(stop - start), np.arange(start, stop)] = 0  # not its own neighbour
        best = np.argpartition(-similarity, keep - 1, axis=1)[:, :keep]
        for row, candidates in enumerate(best):
            values = similarity[row, candidates]
            positive = values > 0
            order = np.argsort(candidates[positive])
            indices.append(candidates[positive][order])
            data.append(values[positive][order])
            indptr.append(indptr[-1] + int(positive.sum()))
    return sp.csr_matrix(
        (np.concatenate(data) if data else np.zeros(0, np.float32),
         np.concatenate(indices) if indices else np.zeros(0, np.int32), np.asarray(indptr)),
        shape=(n_items, n_items), dtype=np.float32)
