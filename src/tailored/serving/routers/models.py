"""GET /models and POST /models/{version}/promote: the registry, and hot swaps."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from ..deps import StateDep
from ..schemas import ModelVersionInfo, ModelVersions, Promotion

router = APIRouter(prefix="/models", tags=["models"])


@router.get(
    "",
    summary="List model versions",
    description="Every trained version in the registry with its validation metrics, which "
                "one the registry marks active and which one this process serves.",
    response_model=ModelVersions,
)
def list_models(state: StateDep) -> ModelVersions:
    state.refresh()
    versions = state.store.models.list()
    active = next((v.version for v in versions if v.active), None)
    return ModelVersions(active=active, serving=state.serving_version,
                         versions=[ModelVersionInfo.of(v) for v in versions])


@router.post(
    "/{version}/promote",
    summary="Promote a version and serve it",
    description=(
        "Marks `version` active in the registry and swaps the served model without "
        "dropping a request: the new model is loaded completely first, then replaces the "
        "old one. Promoting an earlier version is a rollback. Other processes serving the "
        "same store follow within a few seconds."
    ),
    response_model=Promotion,
    responses={404: {"description": "No such version in the registry."},
               409: {"description": "The version's artifact cannot be loaded; nothing "
                                    "changed."}},
)
def promote(
    version: Annotated[int, Path(ge=1, le=2**63 - 1, description="A version from GET /models.")],
    state: StateDep,
) -> Promotion:
    promoted, previous = state.promote(version)
    return Promotion(serving=ModelVersionInfo.of(promoted), previous=previous)
