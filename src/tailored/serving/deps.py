"""Typed dependencies: what a route needs, taken from the app's :class:`ServiceState`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from tailored.pipeline import LiveRecommender
from tailored.settings import Settings
from tailored.store import Store

from .state import ServiceState

NO_MODEL = "no trained model; run `tailored train`"


# Cheap dependencies are coroutines: a plain ``def`` would cost each request a hop to
# the thread pool and back.
async def get_state(request: Request) -> ServiceState:
    state = getattr(request.app.state, "service", None)
    if not isinstance(state, ServiceState):
        raise RuntimeError("the app's lifespan has not run (in tests, use "
                           "`with TestClient(app) as client:`)")
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


async def get_store(state: StateDep) -> Store:
    return state.store


async def get_settings(state: StateDep) -> Settings:
    return state.settings


def get_live(state: StateDep) -> LiveRecommender:
    """The model serving now; 503 while there is none."""
    live = state.current()
    if live is None:
        detail = NO_MODEL
        if state.load_error:
            detail = f"the active model cannot be loaded ({state.load_error}); " \
                     "promote another version or run `tailored train`"
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=detail)
    return live


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
LiveDep = Annotated[LiveRecommender, Depends(get_live)]
