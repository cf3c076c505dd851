"""Implicit-feedback matrix factorization by alternating least squares (``implicit``)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from pydantic import Field

from tailored.dataset import Dataset

from .base import ItemIndexConfig, Reason, ScoringBatch
from .factors import FactorModel
from .threads import blas_threads


class ALSConfig(ItemIndexConfig):
    """``factors``: latent dimensions. ``regularization``: L2 penalty. ``alpha``:
    confidence per unit of (scaled) weight. ``confidence``: how event weights become
    confidence: ``linear`` (as is), ``log1p`` (dampens heavy repeaters), ``binary``.
    ``ann_*``: the approximate item index on large catalogs (:class:`ItemIndexConfig`)."""

    factors: int = Field(32, ge=1, le=1024)
    regularization: float = Field(0.1, ge=0)
    alpha: float = Field(1.0, gt=0)
    iterations: int = Field(15, ge=1, le=500)
    confidence: Literal["linear", "log1p", "binary"] = "log1p"
    seed: int = 0


class ALS(FactorModel):
    """Hu, Koren & Volinsky (2008) implicit ALS; new events fold in without retraining.

    Examples
    --------
    >>> import pandas as pd
    >>> import tailored
    >>> events = pd.DataFrame({"user_id": list("aabbcc"), "item_id": list("xyxyzw")})
    >>> model = ALS(factors=4, iterations=5).fit(tailored.Dataset.from_frame(events))
    >>> model.recommend("a", k=2).shape
    (2, 4)
    """

    name = "als"
    example_params: ClassVar[dict[str, Any]] = {"factors": 2, "iterations": 15, "alpha": 5.0}
    Config = ALSConfig
    config: ALSConfig
    #: Factors ``from_factors`` hands to ``fit`` (None: ``fit`` solves them).
    _given_factors: dict[str, np.ndarray] | None = None

    def _confidence(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        scaled = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        if self.config.confidence == "log1p":
            scaled.data = np.log1p(scaled.data)
        elif self.config.confidence == "binary":
            scaled.data = np.ones_like(scaled.data)
        return scaled

    def _solver(self) -> AlternatingLeastSquares:
        return AlternatingLeastSquares(
            factors=self.config.factors, regularization=self.config.regularization,
            alpha=self.config.alpha, iterations=self.config.iterations,
            random_state=self.config.seed, calculate_training_loss=False)

    @classmethod
    def from_factors(cls, data: Dataset, user_factors: np.ndarray, item_factors: np.ndarray,
                     config: ALSConfig | None = None) -> ALS:
        """A fitted ALS from factors solved elsewhere (on Spark, say), as ``fit`` on
        ``data`` would leave it: rows of ``user_factors`` and ``item_factors`` follow
        ``data``'s user and item vocabularies; everything else (history, popularity,
        fold-in, item index) is built from ``data`` as usual.

        Examples
        --------
        >>> import pandas as pd
        >>> import tailored
        >>> data = tailored.Dataset.from_frame(
        ...     pd.DataFrame({"user_id": list("aab"), "item_id": list("xyx")}))
        >>> model = ALS.from_factors(data, np.eye(2), np.eye(2), ALSConfig(factors=2))
        >>> model.recommend("b", k=1)["item_id"].tolist()
        ['y']
        """
        model = cls(config)
        expected = {"user_factors": (data.n_users, model.config.factors),
                    "item_factors": (data.n_items, model.config.factors)}
        given = {"user_factors": np.asarray(user_factors, dtype=np.float32),
                 "item_factors": np.asarray(item_factors, dtype=np.float32)}
        for name, array in given.items():
            if array.shape != expected[name]:
                raise ValueError(f"{name} has shape {array.shape}; the data and config need "
                                 f"{expected[name]} (one row per vocabulary entry, "
                                 "config.factors columns)")
        model._given_factors = given
        try:
            return model.fit(data)
        finally:
            model._given_factors = None

    def _fit(self, matrix: sp.csr_matrix, data: Dataset) -> None:
        given = self._given_factors
        if given is not None:  # from_factors: solved elsewhere
            self.user_factors_ = given["user_factors"]
            self.item_factors_ = given["item_factors"]
            self._prepare_fold_in()
            return
        # implicit parallelises over users itself; a threaded BLAS underneath only contends.
        with blas_threads(1):
            solver = self._solver()
            solver.fit(self._confidence(matrix), show_progress=False)
        self.user_factors_ = np.asarray(solver.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(solver.item_factors, dtype=np.float32)
        self._prepare_fold_in()

    def _prepare_fold_in(self) -> None:
        """Item factors (float64) and YᵀY + λI, shared by every fold-in of this fit."""
        self._items = self.item_factors_.astype(np.float64)
        with blas_threads(1):
            self._gram = (self._items.T @ self._items
                          + self.config.regularization * np.eye(self._items.shape[1]))

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """Factors for users from their history alone, with the item factors fixed.

        The same least-squares step ALS takes for a user during training, in implicit's
        convention (confidence c = alpha * scaled weight):
        (YᵀY + Σ (c_i - 1) y_i y_iᵀ + λI) x = Σ c_i y_i over the user's items i. Done
        here rather than through implicit's ``recalculate_user``, which spins up a
        thread pool per call: milliseconds a request cannot spare.
        """
        items, gram = self._items, self._gram
        confidence = self._confidence(history)
        factors = np.zeros((history.shape[0], items.shape[1]), dtype=np.float32)
        with blas_threads(1):  # tiny systems: BLAS threads would only contend
            for row in range(history.shape[0]):
                start, stop = confidence.indptr[row], confidence.indptr[row + 1]
                if start == stop:
                    continue
                touched = items[confidence.indices[start:stop]]
                c = self.config.alpha * confidence.data[start:stop].astype(np.float64)
                system = gram + (touched.T * (c - 1)) @ touched
                factors[row] = np.linalg.solve(system, touched.T @ c)
        return factors

    def _explain(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                 ) -> list[Reason]:
        """The history item with the largest share of the score (Hu et al., 2008, 5).

        A history's factors are x = W sum_h c_h y_h with W = (YᵀY + Σ (c_h - 1) y_h y_hᵀ
        + λI)⁻¹ (the fold-in), so score(i) = sum_h c_h y_iᵀ W y_h exactly: each history
        item's term. Users scored from trained factors are explained by the fold-in of
        the same history (the factors ALS's next user step would give).
        """
        items, gram = self._items, self._gram
        confidence = self._confidence(sp.csr_matrix(batch.history))
        reasons: list[Reason] = []
        cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        with blas_threads(1):
            for row, column in zip(rows, columns, strict=True):
                if row not in cache:
                    start, stop = confidence.indptr[row], confidence.indptr[row + 1]
                    seen = confidence.indices[start:stop]
                    touched = items[seen]
                    c = self.config.alpha * confidence.data[start:stop].astype(np.float64)
                    system = gram + (touched.T * (c - 1)) @ touched
                    # Column h: c_h W y_h, so y_i @ this row-vector gives every term.
                    cache[int(row)] = (seen, np.linalg.solve(system, touched.T) * c)
                seen, terms = cache[int(row)]
                reasons.append(self._history_reason(seen, items[column] @ terms))
        return reasons

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        super()._restore(arrays)
        self._prepare_fold_in()
