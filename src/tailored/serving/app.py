"""The FastAPI app: ``create_app(settings)`` builds it; its lifespan opens the store and
loads the active model version. Nothing is created at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from tailored.models.artifact import package_version
from tailored.pipeline import load_placements, save_placement
from tailored.settings import Settings, load_settings
from tailored.store import Store, open_store_from

from .auth import KeyVerifier, check_open_access
from .errors import add_error_handlers
from .guard import AccessGuard
from .metrics import RequestMetricsMiddleware, ServiceMetrics
from .routers import dashboard as dashboard_router
from .routers import (
    events,
    health,
    items,
    keys,
    models,
    placements,
    recommendations,
    storefront,
    users,
)
from .routers import experiments as experiments_router
from .routers import webhooks as webhooks_router
from .security import BodyLimitMiddleware, mask_password, redact_access_log
from .state import REGISTRY_POLL_SECONDS, ServiceState

logger = logging.getLogger("tailored.serving")

_DESCRIPTION = """\
Recommendations from what your users do. Send events to `POST /events`; ask
`GET /recommendations/{user_id}`; the next answer already counts the events just sent.

**API keys.** Send a key as `Authorization: Bearer <key>` (or `X-API-Key: <key>`).
Create one with `tailored keys create --scope read|write|admin --name NAME`; it is
shown once and stored hashed. Scopes are ordered, each granting the ones before it:

- `read`: recommendations (without reasons or `model`), similar items, item reads,
  metrics;
- `write`: also `explain`, events, catalog and profile changes, profile reads, user
  tokens (a backend's key);
- `admin`: also `model`, model promotion and rollback, experiments, keys and webhooks.

**User tokens** (`POST /users/{user_id}/token`) are what a web page sends instead of a
key: bound to one user, they read that user's recommendations (with reasons), similar
items and items, and send that user's events.

No credential: 401 (before a body is read); too weak a one: 403; `/health` needs none.
Until the store holds its first key the service is open (every route answers without
one) and says so loudly at startup; it then answers only requests made on this machine
(loopback address and host, no foreign `Origin`, changes as JSON), unless
`allow_open_access` is set (behind a proxy that authenticates).

**Browsers.** A page on another origin may call the API only when that origin is listed
in `cors_allowed_origins` (CORS for GET and POST with `Authorization` and
`Content-Type`; preflights are answered without a credential). None is by default.

**Limits.** Bodies up to `max_body_bytes` (413 beyond), batches up to
`max_batch_events` (10,000), ids up to 256 characters, `k` up to 1,000, filters and
boosts within a cost budget (422 beyond), `rate_limit_per_second` per key and
`rate_limit_per_user_per_second` per user token or unidentified address (429 with
`Retry-After` beyond). A malformed request gets a 4xx naming the field, never a 5xx; a
busy or unreachable store a 503 with `Retry-After` (nothing stored: send it again).
"""

_TAGS = [
    {"name": "events", "description": "What users did (views, clicks, purchases, ratings)."},
    {"name": "recommendations", "description": "Items for a user."},
    {"name": "items", "description": "Items for an item."},
    {"name": "models", "description": "Trained versions, promotion and rollback."},
    {"name": "users", "description": "User profiles (attributes, consent)."},
    {"name": "keys", "description": "API keys (admin)."},
    {"name": "webhooks", "description": "Signed POSTs to your URLs when a model is promoted, "
     "a drift alert is raised, an experiment stops or batch recommendations are ready "
     "(admin)."},
    {"name": "experiments", "description": "A/B tests between model versions, with "
     "their analysis."},
    {"name": "health", "description": "Liveness and what is serving."},
    {"name": "dashboard", "description": "The operator's page (/dashboard) and its figures: "
     "events, models, experiments, drift alerts, top items, coverage."},
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
        owned = store is None
        opened = open_store_from(settings) if store is None else store
        try:
            await _check_reachable_from_workers(opened)
            verifier = KeyVerifier(opened, settings.key_cache_seconds)
            warning = check_open_access(settings, keys_exist=not verifier.is_open())
            if warning is not None:
                logger.warning(warning)
            app.state.keys = verifier
            if settings.placements_file is not None:  # each worker: unchanged ones are kept
                for name, placement in load_placements(settings.placements_file).items():
                    save_placement(opened, name, placement, by="placements file")
            if settings.demo_storefront:
                storefront.store_demo_placements(opened)
            state = ServiceState(opened, settings, registry_poll_seconds=registry_poll_seconds)
            state.load_active()
            app.state.service = state
            yield
        finally:
            service = getattr(app.state, "service", None)
            if isinstance(service, ServiceState):
                service.close()  # writes the rest of the served log
            app.state.service = None
            if owned:
                opened.close()

    redact_access_log(logging.getLogger("uvicorn.access"))
    app = FastAPI(title="tailored", version=package_version(), description=_DESCRIPTION,
                  openapi_tags=_TAGS, lifespan=lifespan)
    add_error_handlers(app)
    metrics = ServiceMetrics(serving=lambda: _serving_model(app),
                             deletions=lambda: _deletions(app))
    app.state.metrics = metrics
    # Outermost last: the guard answers strangers before the body is read; the timing
    # covers every answer.
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(AccessGuard, settings=settings)
    if settings.cors_allowed_origins:
        # Outside the guard: a preflight carries no credential, so it is answered here
        # (listed origins only), and the guard's refusals carry CORS headers a page reads.
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_allowed_origins,
                           allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"],
                           expose_headers=["Retry-After"], max_age=600)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    # Each router names the scope of its routes (a router-wide dependency, or per route
    # with ReadAccess/WriteAccess/AdminAccess); tests/serving/test_auth.py lists them all.
    for router in (recommendations.router, events.router, items.router, users.router,
                   models.router, keys.router, health.router, placements.router):
        app.include_router(router)
    app.include_router(dashboard_router.router)  # the page is open; its data needs read
    app.include_router(storefront.router)  # a demo page, off unless demo_storefront
    app.include_router(experiments_router.router)  # scopes per route: admin changes, read
    app.include_router(webhooks_router.router)  # admin
    return app


def _deletions(app: FastAPI) -> dict[str, int] | None:
    state = getattr(app.state, "service", None)
    return None if state is None else state.store.privacy.deletions()


def _serving_model(app: FastAPI) -> tuple[str, int | None] | None:
    state = getattr(app.state, "service", None)
    live = None if state is None else state.live
    if live is None:
        return None
    return live.name, None if live.version is None else live.version.version
