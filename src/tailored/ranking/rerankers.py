"""Re-rankers, a stage of every pipeline: diversity (MMR), a cap per category, novelty,
expected revenue.

A re-ranker changes the order of a user's best ``pool`` items, never their relevance:
the scores stay the scorer's (after business rules), the ``rank`` is the new order.
Stages run in the order a recipe lists them; the last one keeps ``k`` items. Similarity
comes from the catalog the pipeline runs against (:meth:`ItemTable.similarity`): the
overlap of categories when items have any, else the scorer's own item similarity; a
stage may ask for the scorer's similarity (``similarity = "model"``) explicitly.
Prices come from the same catalog: its ``price`` attribute (:func:`item_prices`).

Re-rankers that learn online (exploration, a bandit that learns from clicks) are the
service's stage (:mod:`tailored.serving.exploration`) and are refused in a recipe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, cast

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tailored.models import Recommender

from .catalog import ItemTable, catalog_attributes
from .diversity import diversify

#: Re-rankers that need online state, applied by the service, not inside a pipeline.
ONLINE_RERANKERS = ("explore", "exploration", "bandit", "linucb")


class RerankerStage(BaseModel):
    """One re-ranker: ``kind = "diversify"`` with its knobs (see
    :func:`tailored.ranking.diversify`), one weighted mix of relevance, revenue,
    novelty and diversity over the user's best ``pool`` items.

    - ``revenue`` (0-1, default 0): each candidate's value becomes
      ``(1 - revenue) * relevance + revenue * expected_revenue``. Relevance is the
      scorer's score min-max scaled within the user's pool (best candidate 1, weakest
      0: a proxy of the click probability that puts every scorer on one scale);
      expected revenue is ``price * relevance`` divided by the pool's largest, with
      the price from the catalog's ``price`` attribute (an item without one brings
      nothing; a pool where nothing has a price keeps its order).
    - ``novelty`` (0-1): then ``(1 - novelty) * value + novelty * (1 - popularity)``.
    - ``diversity`` (0-1): MMR picks by ``(1 - diversity) * value - diversity *
      similarity to the items already picked``. ``similarity``: ``categories`` (the
      catalog's categories, else the scorer's similarity) or ``model`` (the scorer's).
    - ``max_per_category``: at most this many items of one category in a list.

    All at their defaults, the stage is the identity: the scorer's order.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["diversify"] = "diversify"
    diversity: float = Field(default=0.0, ge=0, le=1)
    similarity: Literal["categories", "model"] = "categories"
    max_per_category: int | None = Field(default=None, ge=1)
    novelty: float = Field(default=0.0, ge=0, le=1)
    revenue: float = Field(default=0.0, ge=0, le=1)

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
        return (self.diversity == 0 and self.novelty == 0 and self.revenue == 0
                and self.max_per_category is None)


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
            popularity=items.popularity(scorer) if stage.novelty > 0 else None,
            revenue=stage.revenue, prices=catalog_prices(items) if stage.revenue > 0 else None)
    # Re-rankers change the order, not relevance: the scores stay the scorer's.
    recommendations["score"] = scores[recommendations.pop("row").to_numpy()]
    return recommendations.reset_index(drop=True)


def item_prices(items: pd.DataFrame | None, column: str = "price") -> dict[str, float]:
    """``item_id -> price`` from a catalog frame: a ``price`` column, or the
    ``attributes`` dicts of a store's items. Only positive numbers count; an item
    without one (missing, not a number, 0 or below) is left out, as it brings no
    revenue.

    Examples
    --------
    >>> items = pd.DataFrame({"item_id": ["a", "b", "c", "d"],
    ...                       "price": [19.99, None, "n/a", -1]})
    >>> item_prices(items)
    {'a': 19.99}
    >>> item_prices(pd.DataFrame({"item_id": ["a"], "attributes": [{"price": 5}]}))
    {'a': 5.0}
    """
    if items is None or items.empty:
        return {}
    if "attributes" in items.columns:
        items = catalog_attributes(items).rename_axis("item_id").reset_index()
    if column not in items.columns:
        return {}
    values = items[column].map(lambda v: None if isinstance(v, bool) else v)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    priced = np.isfinite(numbers) & (numbers > 0)
    return dict(zip(items["item_id"].astype(str).to_numpy()[priced].tolist(),
                    numbers[priced].tolist(), strict=True))


def catalog_prices(items: ItemTable) -> dict[str, float]:
    """:func:`item_prices` of the table a pipeline runs against, read once per table (a
    live catalog's view is rebuilt when an item changes, so a new price counts)."""
    return cast(dict[str, float], items._derived(("prices",), lambda: item_prices(items.table)))


__all__ = ["ONLINE_RERANKERS", "RerankerStage", "catalog_prices", "item_prices", "rerank"]
