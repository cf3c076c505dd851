"""The catalog over REST (create, read, update, delete items) and similar items.

Reads need a ``read`` key, changes a ``write`` key. A change applies to the very next
recommendation: an item that is unavailable (``available: false``) or deleted is never
recommended, even by a model trained while it was on sale.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Query, Response, status

from tailored.schema import Id, Item

from ..auth import AUTH_RESPONSES, UserReadAccess, WriteAccess
from ..deps import LiveDep, SettingsDep, StoreDep
from ..errors import check_batch_size
from ..schemas import (
    CatalogItem,
    ItemFields,
    ItemOut,
    ItemPatch,
    SimilarItems,
    Upserted,
    scored_items,
)
from .recommendations import MAX_K

router = APIRouter(tags=["items"], responses=AUTH_RESPONSES)

ItemId = Annotated[Id, Path(description="The item's id.")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such item in the catalog."}}


def _missing(item_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND,
                         detail=f"no item {item_id!r} in the catalog; PUT /items/{{item_id}} "
                                "creates it")


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
    item_id: ItemId,
    caller: UserReadAccess,
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


@router.get("/items/{item_id}", summary="Read an item", response_model=ItemOut,
            responses=_NOT_FOUND)
def get_item(item_id: ItemId, caller: UserReadAccess, store: StoreDep) -> ItemOut:
    item = store.items.get(item_id)
    if item is None:
        raise _missing(item_id)
    return ItemOut.of(item)


@router.put(
    "/items/{item_id}",
    summary="Create or replace an item",
    description="Stores the item as sent (fields left out take their defaults). 201 when it "
                "is new, 200 when it replaced one. A deleted item put again is recommended "
                "again.",
    response_model=ItemOut,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": ItemOut, "description": "An existing item was replaced."}},
)
def put_item(item_id: ItemId, fields: ItemFields, caller: WriteAccess, store: StoreDep,
             response: Response) -> ItemOut:
    existed = store.items.get(item_id) is not None
    item = Item(item_id=item_id, **fields.model_dump())
    store.items.upsert([item])
    if existed:
        response.status_code = status.HTTP_200_OK
    return ItemOut.of(item)


@router.patch(
    "/items/{item_id}",
    summary="Change some fields of an item",
    description="Only the fields sent change. `attributes` are merged into the stored ones; "
                "an attribute set to null is removed. `available: false` hides the item "
                "from every recommendation from the next request on.",
    response_model=ItemOut,
    responses=_NOT_FOUND,
)
def patch_item(item_id: ItemId, patch: ItemPatch, caller: WriteAccess,
               store: StoreDep) -> ItemOut:
    item = store.items.update(item_id, patch.changes())
    if item is None:
        raise _missing(item_id)
    return ItemOut.of(item)


@router.delete(
    "/items/{item_id}",
    summary="Delete an item",
    description="Removes the item from the catalog; it is never recommended again (events "
                "about it stay, for training), until it is put again.",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_NOT_FOUND,
)
def delete_item(item_id: ItemId, caller: WriteAccess, store: StoreDep) -> Response:
    if not store.items.delete(item_id):
        raise _missing(item_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/items",
    summary="Create or replace items in a batch",
    description="Upserts every item of the list in one transaction (at most "
                "`max_batch_events` items): a catalog sync.",
    response_model=Upserted,
    responses={413: {"description": "More items than `max_batch_events`."}},
)
def post_items(items: Annotated[list[CatalogItem], Body(min_length=1)], caller: WriteAccess,
               store: StoreDep, settings: SettingsDep) -> Upserted:
    check_batch_size(len(items), settings.max_batch_events, "items")
    store.items.upsert([Item(**item.model_dump()) for item in items])
    return Upserted(received=len(items))
