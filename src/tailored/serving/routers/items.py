"""The catalog over REST (create, read, update, delete items) and similar items.

Reads need a ``read`` key, changes a ``write`` key. A change applies to the very next
recommendation: an item that is unavailable (``available: false``) or deleted is never
recommended, even by a model trained while it was on sale.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Response, status

from tailored.expressions import ExpressionError
from tailored.pipeline import LiveRecommender, Ranked
from tailored.pipeline.live import SimilarityKind
from tailored.schema import Id, Item

from ..auth import AUTH_RESPONSES, UserReadAccess, WriteAccess
from ..deps import LiveDep, SettingsDep, StoreDep
from ..errors import check_batch_size
from ..schemas import (
    CatalogItem,
    ItemFields,
    ItemOut,
    ItemPatch,
    PopularItems,
    ScoredItem,
    SimilarItems,
    SimilarRequest,
    SimilarToItems,
    Upserted,
)
from .recommendations import (
    MAX_K,
    BoostQuery,
    ContextQuery,
    ExcludeQuery,
    FilterQuery,
    expression_error,
    parse_context,
    parse_overrides,
)

router = APIRouter(tags=["items"], responses=AUTH_RESPONSES)

ItemId = Annotated[Id, Path(description="The item's id.")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such item in the catalog."}}


def _missing(item_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND,
                         detail=f"no item {item_id!r} in the catalog; PUT /items/{{item_id}} "
                                "creates it")


_SIMILAR_HELP = (
    "By the serving model's own item similarity (item factors, co-occurrence, content, "
    "as the model has it), through the recipe's rules and this request's `filter`, "
    "`boost` and `exclude` (the expression language of `GET /recommendations`, over item "
    "attributes and `context`). The items asked, unavailable and excluded items are left "
    "out.")
_KIND_HELP = ("How similarity is measured: `model`, the serving model's own; `content`, "
              "title, text and categories in the catalog now; `co_views`, how often the "
              "same users touched both items (training histories); `bought_together`, the "
              "share of the baskets with the item (purchases in one session, or by one "
              "user within a day when without a session) that hold the other too, as "
              "stored now (only items the serving model knows are listed).")
_SIMILAR_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "The model knows none of the items."},
    422: {"description": "A malformed parameter; for `filter` and `boost` the error names "
                         "the column of the problem."},
    503: {"description": "No trained model yet; run `tailored train`."}}


@router.get(
    "/items/{item_id}/similar",
    summary="Items similar to an item",
    description=(
        "The `k` items most similar to `item_id`. " + _SIMILAR_HELP + " An item put into "
        "the catalog after the model was trained is compared by its content (title, text, "
        "categories) at once; 404 for an item neither the model nor the catalog knows."),
    response_model=SimilarItems,
    responses=_SIMILAR_RESPONSES,
)
def similar_items(
    item_id: ItemId,
    caller: UserReadAccess,
    live: LiveDep,
    k: Annotated[int, Query(ge=1, le=MAX_K, description="How many items to return.")] = 10,
    exclude: ExcludeQuery = [],  # noqa: B006 (FastAPI copies defaults per request)
    filter: FilterQuery = None,
    boost: BoostQuery = [],  # noqa: B006
    context: ContextQuery = [],  # noqa: B006
    kind: Annotated[SimilarityKind, Query(description=_KIND_HELP)] = "model",
) -> SimilarItems:
    ranked = _similar(live, [item_id], k, filter, boost, exclude, parse_context(context),
                      "query", kind)
    return SimilarItems(item_id=item_id, items=_scored(ranked))


@router.post(
    "/items/similar",
    summary="Items similar to several items (a cart)",
    description=(
        "The `k` items most similar to all of `items` at once (the mean of their "
        "similarities): complements for a cart, a wish list, a page of products. "
        + _SIMILAR_HELP + " Items the model does not know add nothing, unless it knows none "
        "of them (then those in the catalog are compared by content); 404 when neither "
        "the model nor the catalog knows any."),
    response_model=SimilarToItems,
    responses=_SIMILAR_RESPONSES,
)
def similar_to_items(body: SimilarRequest, caller: UserReadAccess, live: LiveDep
                     ) -> SimilarToItems:
    ranked = _similar(live, body.items, body.k, body.filter, body.boost, body.exclude,
                      dict(body.context), "body", body.kind)
    return SimilarToItems(item_ids=body.items, items=_scored(ranked))


class _Counted:
    """The query of a popular or trending list (a FastAPI dependency: one declaration
    for both routes)."""

    def __init__(
        self,
        k: Annotated[int, Query(ge=1, le=MAX_K, description="How many items to return.")
                     ] = 10,
        category: Annotated[Id | None, Query(description="Only items of this category.")
                            ] = None,
        days: Annotated[float, Query(gt=0, le=3650, description="The window counted, in "
                                                                "days back from now.")] = 7.0,
        exclude: ExcludeQuery = [],  # noqa: B006 (FastAPI copies defaults per request)
        filter: FilterQuery = None,
        boost: BoostQuery = [],  # noqa: B006
        context: ContextQuery = [],  # noqa: B006
    ) -> None:
        self.k, self.category, self.days = k, category, days
        self.exclude, self.filter, self.boost, self.context = exclude, filter, boost, context

    def answer(self, live: LiveRecommender, trending: bool) -> PopularItems:
        overrides = parse_overrides(self.filter, self.boost, self.exclude, "query",
                                    live=live)
        try:
            ranked = live.popular_items(self.k, overrides, category=self.category,
                                        days=self.days, trending=trending,
                                        context=parse_context(self.context))
        except ExpressionError as error:
            raise expression_error(error, self.filter, self.boost, "query") from None
        return PopularItems(category=self.category, days=self.days, items=_scored(ranked))


@router.get(
    "/popular",
    summary="Popular items (of a category)",
    description=(
        "The `k` items with the most events (of types that weigh: impressions do not) in "
        "the last `days`, as stored now, of one `category` when given; the score is the "
        "count. Through the recipe's rules and this request's `filter`, `boost` and "
        "`exclude`; unavailable items left out. Items the serving model does not know "
        "are not listed."),
    response_model=PopularItems,
    responses=_SIMILAR_RESPONSES,
)
def popular(asked: Annotated[_Counted, Depends()], caller: UserReadAccess, live: LiveDep
            ) -> PopularItems:
    return asked.answer(live, trending=False)


@router.get(
    "/trending",
    summary="Trending items (of a category)",
    description=(
        "The `k` items whose event count grew most in the last `days` against the `days` "
        "before, scored `(recent + 1) / (earlier + 1)`, of one `category` when given; "
        "otherwise as `GET /popular`."),
    response_model=PopularItems,
    responses=_SIMILAR_RESPONSES,
)
def trending(asked: Annotated[_Counted, Depends()], caller: UserReadAccess, live: LiveDep
             ) -> PopularItems:
    return asked.answer(live, trending=True)


def _similar(live: LiveRecommender, item_ids: list[str], k: int, filter: str | None,
             boost: list[str], exclude: list[str], context: dict[str, Any], prefix: str,
             kind: SimilarityKind) -> Ranked:
    known = [item for item in item_ids if item in live.model.item_vocab_]
    if not known or kind == "bought_together":
        # Added to the catalog after training: compared by content, or by what was
        # bought with them (the events as stored now know new items as well as old).
        known = [item for item in item_ids if item in live.model.item_vocab_
                 or live.store.items.get(item) is not None]
    if not known:
        version = live.version
        which = (f"item {item_ids[0]!r} is" if len(item_ids) == 1
                 else f"the items {item_ids[:5]!r} are all")
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=(
            f"{which} unknown to the serving model {live.model.name} (version "
            f"{None if version is None else version.version}) and not in the catalog: "
            "put it with PUT /items/{item_id} (it is compared by its content at once)"))
    overrides = parse_overrides(filter, boost, exclude, prefix, live=live)
    try:
        return live.similar_items(known, k, overrides, context, kind)
    except ExpressionError as error:  # an attribute no item has: known once read
        raise expression_error(error, filter, boost, prefix) from None


def _scored(ranked: Ranked) -> list[ScoredItem]:
    return [ScoredItem(item_id=item, score=score, rank=rank)
            for rank, (item, score) in enumerate(zip(ranked.item_ids, ranked.scores,
                                                     strict=True), start=1)]


@router.get("/items", summary="Read several items", response_model=list[ItemOut],
            description="The items asked that are in the catalog, in the order asked "
                        "(each once; unknown ids are left out): what a page needs to show "
                        "a list of recommendations in one request.")
def get_items(ids: Annotated[list[Id], Query(min_length=1, max_length=100, description=(
        "Item ids, repeatable (`ids=a&ids=b`), at most 100."))],
              caller: UserReadAccess, store: StoreDep) -> list[ItemOut]:
    found = (store.items.get(item_id) for item_id in dict.fromkeys(ids))
    return [ItemOut.of(item) for item in found if item is not None]


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
