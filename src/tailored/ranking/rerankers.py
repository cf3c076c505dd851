"""Re-rankers, a stage of every pipeline: diversity (MMR), a cap per category, novelty.

A re-ranker changes the order of a user's best ``pool`` items, never their relevance:
the scores stay the scorer's (after business rules), the ``rank`` is the new order.
Stages run in the order a recipe lists them; the last one keeps ``k`` items. Similarity
comes from the catalog the pipeline runs against (:meth:`ItemTable.similarity`): the
overlap of categories when items have any, else the scorer's own item similarity; a
stage may ask for the scorer's similarity (``similarity = "model"``) explicitly.

Re-rankers that learn online (exploration, a bandit that learns from clicks) are the
service's stage (:mod:`tailored.serving.exploration`) and are refused in a recipe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tailored.models import Recommender

from .catalog import ItemTable
from .diversity import diversify

#: Re-rankers that need online state, applied by the service, not inside a pipeline.
ONLINE_RERANKERS = ("explore", "exploration", "bandit", "linucb")


class RerankerStage(BaseModel):
    """One re-ranker: ``kind = "diversify"`` with its knobs (see
    :func:`tailored.ranking.diversify`). ``similarity``: ``categories`` (the catalog's
    categories, else the scorer's similarity) or ``model`` (the scorer's)."""

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
                "applied by the service, not stored in a pipeline; leave it out of the "
                "recipe and ask for it per request (`explore`) or in the service settings "
                "(`exploration_share`)")
        return value

    @property
    def is_identity(self) -> bool:
        return self.diversity == 0 and self.novelty == 0 and self.max_per_category is None


def rerank(recommendations: pd.DataFrame, k: int, stages: Sequence[RerankerStage],
           items: ItemTable, scorer: Recommender) -> pd.DataFrame:
    """Each user's candidates re-ranked by ``stages`` in order; ``k`` per user.

    Examples
    --------
    >>> import numpy as np
    >>> from tailored.testing import checkerboard
    >>> from tailored.models import ItemKNN
    >>> model = ItemKNN().fit(checkerboard())
    >>> table = pd.DataFrame({"item_id": model.item_ids,
    ...                       "categories": [[str(i)[0]] for i in model.item_ids]})
    >>> items = ItemTable(model.item_ids, table)
    >>> recs = model.recommend("a000", k=20)
    >>> stages = [RerankerStage(max_per_category=1)]
    >>> rerank(recs, 2, stages, items, model)["item_id"].str[0].tolist()
    ['A', 'B']
    """
    stages = [stage for stage in stages if not stage.is_identity]
    if not stages:
        return recommendations.groupby("user_id", sort=False).head(k).reset_index(drop=True)
    categories = items.categories()
    sizes = recommendations.groupby("user_id", sort=False).size()
    pool = int(sizes.max()) if len(sizes) else 0
    scores = recommendations["score"].to_numpy()
    for position, stage in enumerate(stages):
        last = position + 1 == len(stages)
        if position:  # a later stage starts from the order the one before chose
            sizes = recommendations.groupby("user_id", sort=False)["rank"].transform("size")
            recommendations = recommendations.assign(
                score=(1.0 - (recommendations["rank"] - 1) / sizes).astype(np.float32))
        similarity = (items.similarity(scorer, stage.similarity) if stage.diversity > 0
                      else None)
        recommendations = diversify(
            recommendations.assign(row=np.arange(len(recommendations))) if not position
            else recommendations, k if last else max(k, pool), diversity=stage.diversity,
            similarity=similarity, categories=categories,
            max_per_category=stage.max_per_category, novelty=stage.novelty,
            popularity=items.popularity(scorer) if stage.novelty > 0 else None)
    # Re-rankers change the order, not relevance: the scores stay the scorer's.
    recommendations["score"] = scores[recommendations.pop("row").to_numpy()]
    return recommendations.reset_index(drop=True)


__all__ = ["ONLINE_RERANKERS", "RerankerStage", "rerank"]
