"""Placements over REST: read them with a ``read`` key, change them with ``admin``.

A placement is where a list is shown (:mod:`tailored.pipeline.placement`); a request
names one with ``?placement=NAME``. Every change is a new version, so an answer's
recorded placement version tells which configuration made it. Workers pick up a change
within the registry poll (2 s); the worker that made it, at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel, ConfigDict, Field

from tailored.pipeline import Placement, save_placement, stored_placement
from tailored.pipeline.placement import PLACEMENT_NAME
from tailored.store import PlacementVersion

from ..auth import AUTH_RESPONSES, AdminAccess, ReadAccess
from ..deps import StateDep, StoreDep

router = APIRouter(prefix="/placements", tags=["placements"], responses=AUTH_RESPONSES)

NameParam = Annotated[str, Path(pattern=PLACEMENT_NAME.pattern,
                                description="The placement's name, e.g. home.")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such placement."}}


class StoredPlacement(BaseModel):
    """One version of a placement: its configuration, when and by whom it was written."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: int
    placement: Placement | None = Field(description="None: deleted at this version.")
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, version: PlacementVersion) -> StoredPlacement:
        return cls(name=version.name, version=version.version,
                   placement=None if version.deleted else stored_placement(version),
                   created_at=version.created_at, created_by=version.created_by)


def _found(store_version: PlacementVersion | None, name: str) -> PlacementVersion:
    if store_version is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=(
            f"no placement named {name!r}; `GET /placements` lists them"))
    return store_version


@router.get("", summary="List placements", response_model=list[StoredPlacement],
            description="The current version of every placement, by name.")
def list_placements(store: StoreDep, caller: ReadAccess) -> list[StoredPlacement]:
    return [StoredPlacement.of(version) for version in store.placements.list()]


@router.get("/{name}", summary="Show a placement", response_model=StoredPlacement,
            responses=_NOT_FOUND)
def show_placement(name: NameParam, store: StoreDep, caller: ReadAccess) -> StoredPlacement:
    return StoredPlacement.of(_found(store.placements.get(name), name))


@router.get("/{name}/versions", summary="A placement's versions",
            response_model=list[StoredPlacement], responses=_NOT_FOUND,
            description="Every version of a placement there is, oldest first (a deletion "
                        "in between is a version without a placement). A deleted "
                        "placement is a 404 like its other routes; its versions stay in the "
                        "store for the served log (`tailored placements show NAME`).")
def placement_versions(name: NameParam, store: StoreDep, caller: ReadAccess
                       ) -> list[StoredPlacement]:
    _found(store.placements.get(name), name)
    return [StoredPlacement.of(version) for version in store.placements.history(name)]


@router.put("/{name}", summary="Create or change a placement", response_model=StoredPlacement,
            description="Stores the placement as its new version (none when unchanged). "
                        "Its filter and boosts are checked as a request's are (422 naming "
                        "the problem); `model` is not checked until a request uses it (a "
                        "404 then if no such version exists).",
            responses={422: {"description": "A malformed field, or too many placements."}})
def put_placement(name: NameParam, placement: Placement, store: StoreDep, state: StateDep,
                  caller: AdminAccess) -> StoredPlacement:
    stored = save_placement(store, name, placement, by=caller.name)
    state.reread_soon()  # this worker serves the change at once
    return StoredPlacement.of(stored)


@router.delete("/{name}", summary="Delete a placement", response_model=StoredPlacement,
               responses=_NOT_FOUND,
               description="Requests naming it get a 404 from now on (other workers within "
                           "the registry poll); its versions stay for the served log.")
def delete_placement(name: NameParam, store: StoreDep, state: StateDep, caller: AdminAccess
                     ) -> StoredPlacement:
    _found(store.placements.get(name), name)
    store.placements.delete(name, by=caller.name)
    state.reread_soon()
    return StoredPlacement.of(store.placements.history(name)[-1])
