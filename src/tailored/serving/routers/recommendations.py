"""GET /recommendations/{user_id}: the top items for a user, from their history as of now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from tailored.schema import Id

from ..deps import LiveDep
from ..schemas import ModelRef, Recommendations, scored_items

router = APIRouter(tags=["recommendations"])

MAX_K = 1000


@router.get(
    "/recommendations/{user_id}",
    summary="Recommend items for a user",
    description=(
        "The top `k` items for the user, scored by the serving model from the user's "
        "history as stored right now: an event acknowledged by `POST /events` a moment "
        "ago already counts, without retraining. Items the user already interacted with, "
        "unavailable items and `exclude`d items are left out. A user the store knows "
        "nothing about gets the most popular items (never an error). 503 while no model "
        "is trained."
    ),
    response_model=Recommendations,
    responses={503: {"description": "No trained model yet; run `tailored train`."}},
)
def recommend(
    user_id: Annotated[Id, Path(description="The user's id, as sent with their events.")],
    live: LiveDep,
    k: Annotated[int, Query(ge=1, le=MAX_K, description="How many items to return.")] = 10,
    exclude: Annotated[list[Id], Query(
        description="Item ids to leave out (repeat the parameter for several).",
        max_length=MAX_K)] = [],  # noqa: B006 (FastAPI copies defaults per request)
) -> Recommendations:
    top = live.recommend([user_id], k=k, exclude=exclude)
    version = live.version
    return Recommendations(
        user_id=user_id,
        model=ModelRef(name=live.model.name, version=None if version is None else version.version),
        items=scored_items(top),
    )
