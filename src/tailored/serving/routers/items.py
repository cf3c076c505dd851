"""GET /items/{item_id}/similar: items like this one ("customers also viewed")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from tailored.schema import Id

from ..deps import LiveDep
from ..schemas import SimilarItems, scored_items
from .recommendations import MAX_K

router = APIRouter(tags=["items"])


@router.get(
    "/items/{item_id}/similar",
    summary="Items similar to an item",
    description=(
        "The `k` items most similar to `item_id` according to the serving model (the item "
        "itself and unavailable items left out). 404 for an item the model does not know: "
        "it had no events when the model was trained."
    ),
    response_model=SimilarItems,
    responses={404: {"description": "The model does not know the item."},
               503: {"description": "No trained model yet; run `tailored train`."}},
)
def similar_items(
    item_id: Annotated[Id, Path(description="The item's id.")],
    live: LiveDep,
    k: Annotated[int, Query(ge=1, le=MAX_K, description="How many items to return.")] = 10,
) -> SimilarItems:
    if item_id not in live.model.item_vocab_:
        version = live.version
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"item {item_id!r} is unknown to the serving model {live.model.name} "
                   f"(version {None if version is None else version.version}): it had no "
                   "events when the model was trained; a retrain after its first events "
                   "includes it")
    similar = live.similar_items(item_id, k=k)
    return SimilarItems(item_id=item_id, items=scored_items(similar, "similar_item_id"))
