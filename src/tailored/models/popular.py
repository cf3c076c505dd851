"""Most popular items, optionally favouring recent popularity."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from tailored.dataset import Dataset

from .base import ModelConfig, Recommender, ScoringBatch


class PopularConfig(ModelConfig):
    """``count``: ``"users"`` counts distinct users per item, ``"weight"`` sums event
    weights. ``half_life_days``: an event that old counts half (``None``: no decay)."""

    count: Literal["users", "weight"] = "users"
    half_life_days: float | None = Field(None, gt=0)


class Popular(Recommender):
    """The same popular items for everyone (minus what each user has seen).

    Examples
    --------
    >>> import pandas as pd
    >>> import tailored
    >>> events = pd.DataFrame({"user_id": ["a", "b", "b", "c"], "item_id": ["x", "x", "y", "z"]})
    >>> model = Popular().fit(tailored.Dataset.from_frame(events))
    >>> model.recommend("a", k=2)["item_id"].tolist()
    ['y', 'z']
    """

    name = "popular"
    Config = PopularConfig
    config: PopularConfig

    def _fit(self, matrix: sp.csr_matrix, data: Dataset) -> None:
        if self.config.half_life_days is not None:
            matrix = data.matrix(half_life_days=self.config.half_life_days)
            if self.config.count == "users":  # decayed presence: each user counts at most 1
                matrix = matrix.minimum(1)
        elif self.config.count == "users":
            matrix = (matrix > 0).astype(np.float32)
        self.item_scores_ = np.asarray(matrix.sum(axis=0), dtype=np.float32).ravel()

    def _score(self, batch: ScoringBatch) -> np.ndarray:
        return np.tile(self.item_scores_, (len(batch), 1))

    def _fallback(self) -> np.ndarray:
        return self.item_scores_

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"item_scores": self.item_scores_}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_scores_ = arrays["item_scores"]
