"""The FastAPI app: ``create_app(settings)`` builds it; its lifespan opens the store and
loads the active model version. Nothing is created at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from tailored.models.base import package_version
from tailored.settings import Settings, load_settings
from tailored.store import Store, open_store

from .errors import add_error_handlers
from .routers import events, health, items, models, recommendations
from .security import mask_password, open_access_warning
from .state import REGISTRY_POLL_SECONDS, ServiceState

logger = logging.getLogger("tailored.serving")

_DESCRIPTION = """\
Recommendations from what your users do. Send events to `POST /events`; ask
`GET /recommendations/{user_id}`; the next answer already counts the events just sent.

**No authentication yet**: anyone who can reach this port can read recommendations,
write events and change the serving model. Listen on 127.0.0.1 only (the default).
"""

_TAGS = [
    {"name": "events", "description": "What users did (views, clicks, purchases, ratings)."},
    {"name": "recommendations", "description": "Items for a user."},
    {"name": "items", "description": "Items for an item."},
    {"name": "models", "description": "Trained versions, promotion and rollback."},
    {"name": "health", "description": "Liveness and what is serving."},
]


async def _check_reachable_from_workers(store: Store) -> None:
    """Requests run in worker threads; refuse to start on a store they cannot see."""
    try:
        await anyio.to_thread.run_sync(store.models.active)
    except Exception as error:
        raise RuntimeError(
            f"the store at {mask_password(store.url)} does not answer from the server's "
            f"worker threads ({type(error).__name__}: {error}). An in-memory SQLite store "
            "(sqlite://) lives in one thread only; serve from a file, sqlite:///PATH"
        ) from error


def create_app(settings: Settings | None = None, *, store: Store | None = None,
               registry_poll_seconds: float = REGISTRY_POLL_SECONDS) -> FastAPI:
    """The tailored REST API.

    Parameters
    ----------
    settings
        Where the store is and how to serve; read from the environment and
        ``tailored.toml`` when not given.
    store
        An open store to serve from (the caller keeps ownership and closes it); by
        default the lifespan opens ``settings.store_url`` and closes it at shutdown.
    registry_poll_seconds
        How often, at most, a request checks the registry for a version promoted by
        another process (``tailored train``, another API worker).
    """
    settings = settings if settings is not None else load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.warning(open_access_warning(settings.host))
        owned = store is None
        opened = open_store(settings.store_url) if store is None else store
        try:
            await _check_reachable_from_workers(opened)
            state = ServiceState(opened, settings, registry_poll_seconds=registry_poll_seconds)
            state.load_active()
            app.state.service = state
            yield
        finally:
            app.state.service = None
            if owned:
                opened.close()

    app = FastAPI(title="tailored", version=package_version(), description=_DESCRIPTION,
                  openapi_tags=_TAGS, lifespan=lifespan)
    add_error_handlers(app)
    for router in (events.router, recommendations.router, items.router, models.router,
                   health.router):
        app.include_router(router)
    return app
