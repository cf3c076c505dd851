"""GET /models, POST /models/{version}/promote and POST /models/rollback: the registry,
and hot swaps (an ``admin`` key to change what serves, a ``read`` key to list)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status

from ..auth import AUTH_RESPONSES, AdminAccess, ReadAccess
from ..deps import StateDep
from ..schemas import ModelVersionInfo, ModelVersions, Promotion, Rollback

router = APIRouter(prefix="/models", tags=["models"], responses=AUTH_RESPONSES)

_CANNOT_LOAD: dict[int | str, dict[str, Any]] = {
    409: {"description": "The version's artifact cannot be loaded; nothing changed."}}


@router.get(
    "",
    summary="List model versions",
    description="Every trained version in the registry with its validation metrics, which "
                "one the registry marks active and which one this process serves, and "
                "how many erasures wait for a retraining.",
    response_model=ModelVersions,
)
def list_models(caller: ReadAccess, state: StateDep) -> ModelVersions:
    state.refresh()
    versions = state.store.models.list()
    active = next((v.version for v in versions if v.active), None)
    pending = state.store.privacy.erasures(pending=True)
    return ModelVersions(active=active, serving=state.serving_version,
                         versions=[ModelVersionInfo.of(v) for v in versions],
                         erasures_pending=len(pending),
                         erasure_retrain_due=min((e.retrain_due for e in pending
                                                  if e.retrain_due), default=None))


@router.post(
    "/{version}/promote",
    summary="Promote a version and serve it",
    description=(
        "Marks `version` active in the registry and swaps the served model without "
        "dropping a request: the new model is loaded completely first, then replaces the "
        "old one. Other processes serving the same store follow within a few seconds."
    ),
    response_model=Promotion,
    responses={404: {"description": "No such version in the registry."}, **_CANNOT_LOAD},
)
def promote(
    version: Annotated[int, Path(ge=1, le=2**63 - 1, description="A version from GET /models.")],
    caller: AdminAccess,
    state: StateDep,
) -> Promotion:
    promoted, previous = state.promote(version)
    return Promotion(serving=ModelVersionInfo.of(promoted), previous=previous)


@router.post(
    "/rollback",
    summary="Roll back to the previously active version",
    description=(
        "Serves again the version that was active before the active one was promoted, "
        "swapped in like a promotion (loaded first, no request dropped). A second rollback "
        "goes one version further back. 409 when there is no earlier version."
    ),
    response_model=Rollback,
    responses={409: {"description": "No earlier version to roll back to, or its artifact "
                                    "cannot be loaded; nothing changed."}},
)
def rollback(caller: AdminAccess, state: StateDep) -> Rollback:
    target = state.store.models.previous()
    if target is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail="no earlier version to roll back to: the active version is the first "
                   "one promoted; GET /models lists the versions, and POST "
                   "/models/{version}/promote serves any of them")
    promoted, previous = state.promote(target.version)  # promoting the previous one pops
    return Rollback(serving=ModelVersionInfo.of(promoted), rolled_back=previous)
