"""GET /health (open to all): can the service answer, from which store, with which model;
GET /metrics (a ``read`` key): Prometheus metrics."""

from __future__ import annotations

import logging
from datetime import datetime

from fastapi import APIRouter, Request, Response, status
from prometheus_client import CONTENT_TYPE_LATEST

from tailored.pipeline import LiveRecommender

from ..auth import AUTH_RESPONSES, ReadAccess, get_caller
from ..deps import StateDep
from ..metrics import MetricsDep
from ..schemas import Health, ServingModel
from ..security import mask_password

router = APIRouter(tags=["health"])
logger = logging.getLogger("tailored.serving")


def _trained_at(live: LiveRecommender) -> datetime | None:
    fitted = getattr(live.model, "fitted_at_", None)
    if isinstance(fitted, str):
        try:
            return datetime.fromisoformat(fitted)
        except ValueError:
            pass
    return None if live.version is None else live.version.created_at


@router.get(
    "/health",
    summary="Service health",
    description="200 while the store answers (status `degraded` when the registry's "
                "active model cannot be loaded; `model` is null until one is trained); "
                "503 when the store does not answer. Open to all; the store's address, "
                "its event count and the reasons of failures only for an `admin` key.",
    response_model=Health,
    responses={503: {"description": "The store does not answer."}},
)
def health(state: StateDep, response: Response, request: Request) -> Health:
    # Anyone may ask whether the service is up; only an operator learns where its store
    # is, how much it holds and why a model does not load (paths, hosts).
    operator = get_caller(request).grants("admin")
    store_url = mask_password(state.store.url)
    try:
        events = state.store.events.count() if operator else None
        live = state.current()
    except Exception as error:  # the store is down: say so instead of failing
        logger.error("health check: the store at %s does not answer: %s", store_url,
                     type(error).__name__)
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Health(status="unavailable", store=store_url if operator else None,
                      events=None, model=None,
                      detail=f"the store does not answer: {type(error).__name__}")
    model = None
    if live is not None:
        model = ServingModel(name=live.name,
                             version=None if live.version is None else live.version.version,
                             trained_at=_trained_at(live))
    error_text = state.load_error
    if error_text and not operator:
        error_text = "the active model cannot be loaded (an admin key sees why)"
    return Health(status="degraded" if error_text else "ok",
                  store=store_url if operator else None, events=events, model=model,
                  detail=error_text)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Request latency histograms and counts per route template and status, "
                "recommendation cache lookups (hit rate), events ingested and the model "
                "version serving, in the Prometheus text format. Scrape with a `read` key "
                "(`authorization: {credentials: <key>}` in the scrape config).",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                     "description": "The Prometheus text exposition format."},
               **AUTH_RESPONSES},
)
def metrics(caller: ReadAccess, metrics: MetricsDep) -> Response:
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
