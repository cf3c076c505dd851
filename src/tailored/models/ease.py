"""EASE: a linear item-item model learned in closed form (Steck, 2019)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from scipy.linalg import lapack

from tailored.dataset import Dataset

from .base import ModelConfig, Reason, Recommender, ScoringBatch, strongest_entries
from .threads import blas_threads

_BLOCK_BUDGET = 2**24  # Gram matrix cells computed per sparse product
_THREADED_ITEMS = 4096  # from this catalog size on, the solve uses BLAS threads


class EASEConfig(ModelConfig):
    """``regularization``: the L2 penalty lambda added to the diagonal of the item-item
    Gram matrix X'X; larger values shrink the weights towards plain co-occurrence. It
    is in units of squared weight: with ``binary`` the paper's range (a few hundred)
    applies; with summed weights such as ratings 1-5 (mean square about 13) the same
    strength needs roughly ten times more (2000, the default, was best on a validation
    split of MovieLens 100K, where ``binary`` was best at 100-250). ``binary``: learn
    from presence (1 per item with a positive summed weight) instead of the summed
    event weights. ``max_items``: the largest catalog to accept; EASE holds dense items
    x items matrices (8 bytes per cell while solving, 4 in the model: about 4.8 GB at
    20,000 items), so a bigger catalog is refused at fit instead of exhausting
    memory."""

    regularization: float = Field(2000.0, gt=0)
    binary: bool = False
    max_items: int = Field(20_000, ge=1)


class EASE(Recommender):
    """Embarrassingly Shallow Autoencoder: score = history @ B, with diag(B) = 0.

    ``B`` minimises ``||X - X B||^2 + lambda ||B||^2`` under a zero diagonal, which has
    the closed form ``B = I - P diagMat(1 / diag(P))`` with ``P = (X'X + lambda I)^-1``
    (Steck, 2019). ``B[i, j]`` is the weight of item ``i`` in predicting item ``j``, so a
    user's scores are their history row times ``B``; a new history scores the same way,
    without retraining. The model is a dense items x items matrix: it suits catalogs up
    to some tens of thousands of items (see ``max_items``).

    Examples
    --------
    >>> import pandas as pd
    >>> import tailored
    >>> events = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c"],
    ...                        "item_id": ["x", "y", "x", "y", "x"]})
    >>> model = EASE(regularization=1.0).fit(tailored.Dataset.from_frame(events))
    >>> model.recommend("c", k=1)["item_id"].tolist()
    ['y']
    """

    name = "ease"
    example_params: ClassVar[dict[str, Any]] = {"regularization": 10.0}
    Config = EASEConfig
    config: EASEConfig

    def _prepare(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        if self.config.binary:
            return sp.csr_matrix((matrix > 0).astype(np.float32))
        return sp.csr_matrix(matrix, dtype=np.float32)

    def _fit(self, matrix: sp.csr_matrix, data: Dataset) -> None:
        n_items = matrix.shape[1]
        if n_items > self.config.max_items:
            raise ValueError(
                f"EASE max_items is {self.config.max_items:,} but the catalog has "
                f"{n_items:,} items: its dense items x items matrices would need about "
                f"{_size(n_items**2 * 12)} (float64 to solve, float32 to keep). Raise "
                "max_items if the machine has the memory, or use item_knn or als, which "
                "scale to large catalogs")
        self.weights_matrix_ = _ease_weights(self._prepare(matrix), self.config.regularization)

    def _score(self, batch: ScoringBatch) -> np.ndarray:
        return np.asarray(self._prepare(batch.history) @ self.weights_matrix_)

    def _item_similarity(self, columns: np.ndarray) -> np.ndarray:
        # Row i: what having item i alone says about every other item.
        return np.asarray(self.weights_matrix_[columns])

    def _explain(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                 ) -> list[Reason]:
        # score(item) = sum over history items h of x_h * B[h, item]: the largest term.
        history = self._prepare(sp.csr_matrix(batch.history[rows]))
        targets = np.repeat(columns, np.diff(history.indptr))
        values = history.data * self.weights_matrix_[history.indices, targets]
        best, strength = strongest_entries(history, values)
        return [Reason("history", items=(str(self.item_vocab_.ids[b]),)) if s > 0
                else Reason("model") for b, s in zip(best, strength, strict=True)]

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights_matrix_}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights_matrix_ = arrays["weights"]


def _ease_weights(matrix: sp.csr_matrix, regularization: float) -> np.ndarray:
    """``B = I - P diagMat(1 / diag(P))``, ``P = (X'X + lambda I)^-1``, as float32.

    Solved in float64 by Cholesky (the regularised Gram matrix is symmetric positive
    definite), in place, so the peak is one float64 items x items matrix plus the
    float32 result.
    """
    columns = sp.csc_matrix(matrix, dtype=np.float64)
    n_items = columns.shape[1]
    gram = np.empty((n_items, n_items), dtype=np.float64, order="F")
    transposed = columns.T.tocsr()
    block = max(1, _BLOCK_BUDGET // max(n_items, 1))
    for start in range(0, n_items, block):  # bounded sparse intermediates
        stop = min(start + block, n_items)
        gram[:, start:stop] = (transposed @ columns[:, start:stop]).toarray()
    gram[np.diag_indices_from(gram)] += regularization
    # A small solve takes milliseconds on one thread, while BLAS threads that find
    # the cores busy can spin for seconds; large catalogs keep BLAS's own threading.
    with blas_threads(1 if n_items < _THREADED_ITEMS else None):
        factor, info = lapack.dpotrf(gram, lower=False, overwrite_a=True)
        if info != 0:  # cannot happen for lambda > 0 unless the weights hold inf or nan
            raise ValueError(f"EASE could not factor the Gram matrix (LAPACK info {info}); "
                             "check that event weights are finite")
        inverse, info = lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise ValueError(f"EASE could not invert the Gram matrix (LAPACK info {info})")
    _mirror_upper(inverse)  # dpotri fills the upper triangle only
    inverse /= -np.diag(inverse)[None, :]  # B[i, j] = -P[i, j] / P[j, j]
    inverse[np.diag_indices_from(inverse)] = 0.0
    return np.ascontiguousarray(inverse, dtype=np.float32)


def _mirror_upper(square: np.ndarray, block: int = 1024) -> None:
    """Copy the upper triangle onto the lower one, in place, a band of rows at a time."""
    n = square.shape[0]
    for start in range(0, n, block):
        stop = min(start + block, n)
        square[start:stop, :start] = square[:start, start:stop].T
        diagonal = square[start:stop, start:stop]
        diagonal[...] = np.triu(diagonal) + np.triu(diagonal, 1).T


def _size(n_bytes: float) -> str:
    """A byte count for people: ``'3.2 GB'``."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if n_bytes < 1000:
            return f"{n_bytes:.3g} {unit}"
        n_bytes /= 1000
    return f"{n_bytes:,.1f} TB"
