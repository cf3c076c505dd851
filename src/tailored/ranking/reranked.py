"""A model whose lists go through re-rankers: the ``rerankers`` stage of a pipeline recipe.

:class:`Reranked` (``reranked``) wraps a base model (any registered family, a hybrid, the
learned ranker or a rule set) and, in :meth:`Reranked.recommend`, takes the base model's
best ``pool`` items per user and re-ranks them with :func:`tailored.ranking.diversify`
(MMR diversity, a cap per category, novelty), in the order the stages are listed. Its
``score`` is the base model's; a re-ranked list's ``score`` column is its new order
(1 for the first item, falling evenly), since a re-ranker changes order, not relevance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tailored.dataset import Dataset
from tailored.models import ModelConfig, Recommender, ScoringBatch
from tailored.models.base import Reason, Users

from .diversity import CategorySimilarity, ModelSimilarity, diversify, item_popularity
from .parts import Part, Parts

#: Re-rankers that need online state (a bandit that learns from clicks) and so are
#: applied by the service, not inside a saved model.
ONLINE_RERANKERS = ("explore", "exploration", "bandit", "linucb")


class RerankerStage(BaseModel):
    """One re-ranker: ``kind = "diversify"`` with its knobs (see
    :func:`tailored.ranking.diversify`). ``similarity``: ``categories`` (Jaccard of the
    items' categories) or ``model`` (the base model's item similarity)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["diversify"] = "diversify"
    diversity: float = Field(default=0.0, ge=0, le=1)
    similarity: Literal["categories", "model"] = "categories"
    max_per_category: int | None = Field(default=None, ge=1)
    novelty: float = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _online_kinds(cls, value: Any) -> Any:
        kind = value.get("kind") if isinstance(value, dict) else None
        if isinstance(kind, str) and kind.lower() in ONLINE_RERANKERS:
            raise ValueError(
                f"re-ranker {kind!r} learns online from clicks (a LinUCB bandit) and is "
                "applied by the service, not stored in a model; leave it out of the recipe "
                "and enable exploration in the service settings")
        return value


class RerankedConfig(ModelConfig):
    """``base``/``base_params``: the model whose lists are re-ranked; ``rerankers``: the
    stages, in order; ``pool``: how many of the base model's items each re-ranker may
    choose from (at least the ``k`` asked for)."""

    base: str = "popular"
    base_params: dict[str, Any] = Field(default_factory=dict)
    rerankers: list[RerankerStage] = Field(default_factory=list)
    pool: int = Field(default=100, ge=1)

    @model_validator(mode="after")
    def _base_is_valid(self) -> RerankedConfig:
        Part(model=self.base, params=self.base_params)
        return self


class Reranked(Recommender):
    """A base model's lists re-ranked for diversity, category caps and novelty.

    Examples
    --------
    >>> from tailored.testing import checkerboard
    >>> model = Reranked(base="item_knn", rerankers=[{"max_per_category": 1}])
    >>> recs = model.fit(checkerboard()).recommend("a000", k=2)
    >>> recs["item_id"].str[0].tolist()  # at most one item of each category (group)
    ['A', 'B']
    """

    name = "reranked"
    Config = RerankedConfig
    config: RerankedConfig
    parts_: Parts

    @property
    def _part(self) -> Part:
        return Part(model=self.config.base, params=self.config.base_params)

    @property
    def base_(self) -> Recommender:
        return self.parts_[self._part]

    def _fit(self, matrix: sp.csr_matrix, data: Dataset) -> None:
        self.parts_ = Parts([self._part]).fit(data)
        categories: list[str] = [""] * len(self.item_vocab_)
        if data.items is not None and "categories" in data.items.columns:
            table = data.items.set_index("item_id")["categories"].reindex(self.item_vocab_.ids)
            categories = ["\x1f".join(str(c) for c in value)
                          if isinstance(value, list | tuple | np.ndarray) else ""
                          for value in table]
        self.item_categories_ = np.asarray(categories, dtype=str)

    def _resolve(self, users: Users) -> ScoringBatch:
        return self.parts_.resolve(self, users)

    def _score(self, batch: ScoringBatch) -> np.ndarray:
        return self.base_._score(batch)

    def _fallback(self, batch: ScoringBatch | None = None) -> np.ndarray:
        return self.base_._fallback(batch)

    def _item_similarity(self, columns: np.ndarray) -> np.ndarray:
        return self.base_._item_similarity(columns)

    def _explain(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                 ) -> list[Reason]:
        return self.base_._explain(batch, rows, columns)

    def _explain_fallback(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                          ) -> list[Reason]:
        return self.base_._explain_fallback(batch, rows, columns)

    def recommend(self, users: Users, k: int = 10, *, exclude_seen: bool = True,
                  candidates: Sequence[str] | None = None,
                  exclude: Sequence[str] = ()) -> pd.DataFrame:
        """The base model's best ``pool`` items per user, re-ranked; ``k`` per user."""
        recs = super().recommend(users, k=max(k, self.config.pool), exclude_seen=exclude_seen,
                                 candidates=candidates, exclude=exclude)
        if not self.config.rerankers:
            return recs.groupby("user_id", sort=False).head(k).reset_index(drop=True)
        categories = {item: value.split("\x1f") if value else [] for item, value in
                      zip(self.item_vocab_.ids, self.item_categories_, strict=True)}
        for position, stage in enumerate(self.config.rerankers):
            last = position + 1 == len(self.config.rerankers)
            similarity = (ModelSimilarity(self.base_) if stage.similarity == "model"
                          else CategorySimilarity(categories))
            recs = diversify(recs, k if last else max(k, self.config.pool),
                             diversity=stage.diversity,
                             similarity=similarity if stage.diversity > 0 else None,
                             categories=categories, max_per_category=stage.max_per_category,
                             novelty=stage.novelty,
                             popularity=item_popularity(self.base_) if stage.novelty else None)
        recs = recs[["user_id", "item_id", "score", "rank"]].reset_index(drop=True)
        sizes = recs.groupby("user_id", sort=False)["rank"].transform("size")
        recs["score"] = (1.0 - (recs["rank"] - 1) / sizes).astype(np.float32)
        return recs

    def _arrays(self) -> dict[str, np.ndarray]:
        return {**self.parts_.arrays(), "item_categories": self.item_categories_}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.parts_ = Parts([self._part]).restore(self, arrays)
        self.item_categories_ = arrays["item_categories"]


__all__ = ["ONLINE_RERANKERS", "Reranked", "RerankedConfig", "RerankerStage"]
