"""The FastAPI app: ``create_app(settings)`` builds it; its lifespan opens the store and
loads the active model version. Nothing is created at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tailored.models.base import package_version
from tailored.settings import Settings, load_settings
from tailored.store import Store, open_store

from .errors import add_error_handlers
from .routers import events, health, items, models, recommendations
from .state import REGISTRY_POLL_SECONDS, ServiceState

logger = logging.getLogger("tailored.serving")

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

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


def open_access_warning(host: str = "127.0.0.1") -> str:
    """What to tell an operator at startup: the API has no authentication (yet)."""
    text = ("the tailored API has no authentication: anyone who can reach it can read "
            "recommendations, write events and promote models; let it listen on 127.0.0.1 "
            "only")
    if host not in _LOOPBACK:
        text += (f" (it is set to listen on {host}, which other machines may reach; "
                 "set TAILORED_HOST=127.0.0.1 or put it behind an authenticating proxy)")
    return text


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
