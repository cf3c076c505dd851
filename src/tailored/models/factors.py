"""What every matrix-factorization family shares: a score is the inner product of a user's
vector and an item's, so the same vectors feed exact scoring, the approximate item index,
forgetting users and saving."""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import scipy.sparse as sp

from .base import DroppedUsers, Reason, Recommender, ScoringBatch


class FactorModel(Recommender):
    """A :class:`Recommender` with ``user_factors_`` and ``item_factors_`` (one row per
    user and item of the training vocabularies); a user outside them is folded in from
    their history by :meth:`_fold_in`."""

    user_factors_: np.ndarray
    item_factors_: np.ndarray

    @abstractmethod
    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """Vectors for users known only by their histories (rows of ``history``)."""

    def _user_factors(self, batch: ScoringBatch) -> np.ndarray:
        """Trained vectors for training users, folded-in ones for histories."""
        factors = np.empty((len(batch), self.item_factors_.shape[1]), dtype=np.float32)
        known = batch.users >= 0
        factors[known] = self.user_factors_[batch.users[known]]
        if (~known).any():
            factors[~known] = self._fold_in(sp.csr_matrix(batch.history[~known]))
        return factors

    def _score(self, batch: ScoringBatch) -> np.ndarray:
        return self._user_factors(batch) @ self.item_factors_.T

    def _item_similarity(self, columns: np.ndarray) -> np.ndarray:
        """Cosine similarity of the item vectors."""
        norms = np.linalg.norm(self.item_factors_, axis=1)
        norms[norms == 0] = 1
        unit = self.item_factors_ / norms[:, None]
        return unit[columns] @ unit.T

    def _history_reason(self, seen: np.ndarray, contributions: np.ndarray) -> Reason:
        """The history item (of columns ``seen``) with the largest share of a score, or
        the model itself when no item adds to it."""
        best = int(np.argmax(contributions))
        if contributions[best] > 0:
            return Reason("history", items=(str(self.item_vocab_.ids[seen[best]]),))
        return Reason("model")

    def _index_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        return self.item_factors_, np.arange(len(self.item_factors_))

    def _query_vectors(self, batch: ScoringBatch) -> tuple[np.ndarray, np.ndarray]:
        return self._user_factors(batch), np.diff(batch.history.indptr) > 0

    def _forget_rows(self, dropped: DroppedUsers) -> bool:
        self.user_factors_ = self.user_factors_[dropped.keep]
        return False  # the item factors were learned with the dropped users' rows

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_factors_ = arrays["user_factors"]
        self.item_factors_ = arrays["item_factors"]
