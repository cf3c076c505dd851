"""GET /dashboard: a page for an operator, and GET /dashboard/data, the JSON behind it.

The page (``tailored/serving/dashboard/``: HTML, script, style, and Chart.js vendored
under ``vendor/``) holds no data; its script reads ``/dashboard/data``, which needs a
``read`` key once the store holds keys (the page asks for one and keeps it in the
browser tab's sessionStorage). Everything shown is computed from the store: events over
time, model versions with their offline metrics and retraining decisions, experiments
with their cumulative CTR curves and verdicts
(:func:`tailored.monitoring.abtest.analyze`), the drift detectors and their alerts
(:mod:`tailored.monitoring.drift`), the top items and the catalog coverage.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse

from tailored.monitoring.abtest import analyze_frames
from tailored.monitoring.drift import IMPRESSION, DetectorState, check_drift
from tailored.store import Store

from ..auth import AUTH_RESPONSES, get_caller, require_scope
from ..deps import StateDep

router = APIRouter(tags=["dashboard"])
logger = logging.getLogger("tailored.serving")

#: The data is recomputed at most this often per process (it reads every event), or
#: less often when it takes long.
CACHE_SECONDS = 10.0
TOP_ITEMS = 15
EXPERIMENTS_SHOWN = 4
ALERTS_SHOWN = 20

_STATIC = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "vendor/chart.umd.min.js": "text/javascript",
}


def _asset(name: str) -> Any:
    return resources.files("tailored.serving").joinpath("dashboard", name)


# The page is a user interface, not an API (it holds no data and needs no key), so it
# stays out of the OpenAPI spec; /dashboard/data is the documented, protected route.
@router.get("/dashboard", summary="The operator's dashboard (HTML)",
            response_class=HTMLResponse, include_in_schema=False)
def dashboard_page() -> HTMLResponse:
    return HTMLResponse(_asset("index.html").read_text(encoding="utf-8"),
                        headers={"Cache-Control": "no-cache"})


@router.get("/dashboard/static/{name:path}", summary="The dashboard's script, style and "
            "vendored chart library", include_in_schema=False)
def dashboard_static(name: Annotated[str, Path(max_length=64)]) -> FileResponse:
    media_type = _STATIC.get(name)
    if media_type is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail=f"no dashboard file {name!r}; there are {sorted(_STATIC)}")
    with resources.as_file(_asset(name)) as path:
        return FileResponse(path, media_type=media_type,
                            headers={"Cache-Control": "max-age=300"})


@router.get(
    "/dashboard/data",
    summary="The dashboard's figures (JSON)",
    description="Events per day and type, model versions and their offline metrics, "
                "experiments with curves and verdicts, drift detectors and alerts, top "
                f"items and coverage. Recomputed at most every {CACHE_SECONDS:.0f} s "
                "unless `fresh=true` (an `admin` key: recomputing reads every event).",
    dependencies=[Depends(require_scope("read"))],
    responses=AUTH_RESPONSES,
)
def dashboard_data(
    request: Request, state: StateDep,
    fresh: Annotated[bool, Query(description="Recompute now instead of using the copy "
                                             "of the last few seconds (`admin`).")] = False,
) -> dict[str, Any]:
    if fresh and not get_caller(request).grants("admin"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=(
            "`fresh=true` recomputes every figure from every event: it needs an API key "
            "with scope 'admin'; without it the figures are at most "
            f"{CACHE_SECONDS:.0f} s old"))
    cache: _Cache = _cache_of(request)
    return cache.get(lambda: collect(state.store, serving=state.serving_version), fresh=fresh)


class _Cache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: dict[str, Any] | None = None
        self._until = -math.inf
        self._computed_from = -math.inf

    def get(self, compute: Any, *, fresh: bool) -> dict[str, Any]:
        asked = time.monotonic()
        with self._lock:  # one computation at a time; the others wait and reuse it
            # A fresh request is served by any computation that started after it came.
            stale = self._computed_from < asked if fresh else time.monotonic() > self._until
            if self._value is None or stale:
                started = self._computed_from = time.monotonic()
                self._value = compute()
                # On a large store the figures take seconds: keep them for several times
                # that, so an open page never keeps a core of the service busy.
                took = time.monotonic() - started
                self._until = time.monotonic() + max(CACHE_SECONDS, 5 * took)
            assert self._value is not None
            return self._value


_CACHE_LOCK = threading.Lock()


def _cache_of(request: Request) -> _Cache:
    with _CACHE_LOCK:
        cache = getattr(request.app.state, "dashboard_cache", None)
        if not isinstance(cache, _Cache):
            cache = _Cache()
            request.app.state.dashboard_cache = cache
        return cache


# ---- the figures ----------------------------------------------------------------------

def collect(store: Store, *, serving: int | None = None) -> dict[str, Any]:
    """Every figure of the dashboard, JSON-ready, computed from ``store``."""
    events = store.events.frame()
    items = store.items.frame()
    drift = check_drift(store, record=False, events=events)
    behaviour = events[events["event_type"] != IMPRESSION]
    return _jsonable({
        "generated_at": datetime.now(UTC),
        "totals": {"events": len(events), "items": len(items),
                   "users": int(events["user_id"].nunique()),
                   "impressions": int((events["event_type"] == IMPRESSION).sum()),
                   "first_event": events["timestamp"].min() if len(events) else None,
                   "last_event": events["timestamp"].max() if len(events) else None},
        "serving": serving,
        "events_over_time": _events_over_time(events),
        "models": _models(store),
        "experiments": _experiments(store, events),
        "drift": {"detectors": [_detector(d) for d in drift.detectors],
                  "reference_until": drift.reference_until,
                  "alerts": [_alert(a) for a in store.alerts.list(limit=ALERTS_SHOWN)],
                  "unhandled": len(store.alerts.list(unhandled=True))},
        "top_items": _top_items(behaviour, items),
        "coverage": _coverage(store, behaviour, items),
        "privacy": _privacy(store),
    })


def _privacy(store: Store) -> dict[str, Any]:
    """Erasures, and those whose users a serving model still carries at item level."""
    pending = store.privacy.erasures(pending=True)
    return {"erasures": store.privacy.last_erasure_id(), "pending": len(pending),
            "retrain_due": min((e.retrain_due for e in pending if e.retrain_due),
                               default=None)}


def _period(times: pd.Series) -> tuple[str, str]:
    span = times.max() - times.min() if len(times) else pd.Timedelta(0)
    if span > pd.Timedelta(days=3):
        return "D", "day"
    return ("h", "hour") if span > pd.Timedelta(hours=3) else ("min", "minute")


def _events_over_time(events: pd.DataFrame) -> dict[str, Any]:
    if events.empty:
        return {"period": "day", "at": [], "series": {}}
    code, name = _period(events["timestamp"])
    counts = (events.assign(at=events["timestamp"].dt.floor(code))
              .pivot_table(index="at", columns="event_type", values="event_id",
                           aggfunc="count", fill_value=0))
    counts = counts.reindex(pd.date_range(counts.index.min(), counts.index.max(), freq=code),
                            fill_value=0)
    order = counts.sum().sort_values(ascending=False).index
    return {"period": name, "at": list(counts.index),
            "series": {str(t): counts[t].astype(int).tolist() for t in order}}


def _models(store: Store) -> list[dict[str, Any]]:
    rows = []
    for version in store.models.list():
        retrain = version.details.get("retrain")
        rows.append({
            "version": version.version, "name": version.name,
            "created_at": version.created_at, "active": version.active,
            "metrics": version.metrics,
            "recipe": (version.details.get("recipe") or {}).get("name"),
            "events": version.details.get("events"),
            "retrain": None if retrain is None else {
                "reason": retrain.get("reason"), "decision": retrain.get("decision"),
                "promoted": retrain.get("promoted"), "metric": retrain.get("metric"),
                "incumbent": (retrain.get("incumbent") or {}).get("version"),
                "incumbent_metrics": (retrain.get("incumbent") or {}).get("metrics")},
        })
    return rows


def _experiments(store: Store, events: pd.DataFrame) -> list[dict[str, Any]]:
    # Running ones first, then the most recently created.
    experiments = sorted(store.experiments.list(),
                         key=lambda e: (e.status != "running", -e.created_at.timestamp()))
    reports = []
    for experiment in experiments[:EXPERIMENTS_SHOWN]:
        # analyze() on the events read once for the whole page; the page shows the
        # delta-method (user-level) p-value, not the bootstrap, so that is skipped.
        served = store.served.frame(experiment_id=experiment.experiment_id)
        users = events["user_id"].isin(set(served["user_id"]))
        try:
            report = analyze_frames(experiment, served, events[users], resamples=0).to_dict()
        except Exception as error:  # one experiment's panel fails, not the whole page
            logger.exception("dashboard: cannot analyse experiment %s", experiment.experiment_id)
            report = {"experiment": experiment.to_dict(), "control": experiment.control.name,
                      "metric": "ctr", "confidence": 0.95, "planned_sample_size": None,
                      "sample_progress": None, "variants": [], "curve": [],
                      "curve_period": "day", "winner": None,
                      "verdict": f"cannot analyse: {type(error).__name__}: {error}"}
        reports.append({key: report[key] for key in (
            "experiment", "control", "metric", "confidence", "planned_sample_size",
            "sample_progress", "variants", "curve", "curve_period", "winner", "verdict")})
    return reports


def _detector(state: DetectorState) -> dict[str, Any]:
    series = state.series
    return {
        "name": state.name, "description": state.description, "status": state.status,
        "observations": state.observations, "estimate": state.estimate,
        "latest": state.latest,
        "series": {"at": list(series["at"]), "value": series["value"].tolist(),
                   **({"impressions": series["impressions"].tolist()}
                      if "impressions" in series else {})},
        "drifts": [{"at": p.detected_at, "before": p.before, "after": p.after,
                    "direction": p.direction} for p in state.drifts],
    }


def _alert(alert: Any) -> dict[str, Any]:
    return {"alert_id": alert.alert_id, "detector": alert.detector,
            "detected_at": alert.detected_at, "message": alert.message,
            "handled_at": alert.handled_at, "handled_by": alert.handled_by}


def _top_items(behaviour: pd.DataFrame, items: pd.DataFrame) -> list[dict[str, Any]]:
    counts = behaviour["item_id"].value_counts().head(TOP_ITEMS)
    titles = items.set_index("item_id")["title"] if len(items) else pd.Series(dtype=object)
    return [{"item_id": str(item), "title": str(titles.get(item, "") or ""),
             "events": int(count)} for item, count in counts.items()]


def _coverage(store: Store, behaviour: pd.DataFrame, items: pd.DataFrame) -> dict[str, Any]:
    catalog = len(items) or int(behaviour["item_id"].nunique())
    served = store.served.frame()
    recommended = ({str(i) for ids in served["item_ids"] for i in ids}
                   if len(served) else set())
    interacted = int(behaviour["item_id"].nunique())
    # Long tail: the share of interactions taken by the most popular x% of items.
    counts = np.sort(behaviour["item_id"].value_counts().to_numpy())[::-1]
    shares = np.linspace(0, 1, 21)
    taken = ([float(counts[:round(float(s) * len(counts))].sum() / counts.sum()) for s in shares]
             if len(counts) else [])
    return {"catalog": catalog, "recommended": len(recommended),
            "recommended_share": len(recommended) / catalog if catalog else None,
            "interacted": interacted,
            "interacted_share": interacted / catalog if catalog else None,
            "answers": len(served),
            "long_tail": {"item_share": shares.tolist() if taken else [],
                          "interaction_share": taken}}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is pd.NaT:
        return None
    if isinstance(value, datetime):  # pandas Timestamps included
        return value.isoformat()
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
