"""Prometheus metrics of a running service, served at ``GET /metrics``.

Each app has its own :class:`ServiceMetrics` (its own ``CollectorRegistry``), so several
apps in one process (tests) never clash. Requests are labelled by route *template*
(``/recommendations/{user_id}``), never by raw path, so the number of series stays
bounded whatever the ids.

:data:`CACHE_LOOKUPS` is process-wide, so code far from a request (a cache in the
service state) can count without being handed the app: every app in the process
exposes it (a production process serves one app).

Metrics
-------
- ``tailored_http_request_duration_seconds{method, route}``: latency histogram.
- ``tailored_http_requests_total{method, route, status}``: requests by status.
- ``tailored_cache_lookups_total{result="hit"|"miss"}``: recommendation cache lookups;
  the hit rate is ``rate(..{result="hit"}) / rate(..)``.
- ``tailored_events_ingested_total{outcome="stored"|"duplicate"}``: events posted.
- ``tailored_serving_model_version{model}``: the registry version this process serves.

Examples
--------
>>> metrics = ServiceMetrics()
>>> metrics.observe_request("GET", "/recommendations/{user_id}", 200, 0.004)
>>> text = metrics.exposition().decode()
>>> print([line for line in text.splitlines() if line.startswith("tailored_http_requests_total")])
['tailored_http_requests_total{method="GET",route="/recommendations/{user_id}",status="200"} 1.0']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Cache lookups on the recommendation path, process-wide: ``.labels(result="hit").inc()``.
CACHE_LOOKUPS = Counter("tailored_cache_lookups", "Recommendation cache lookups by result "
                        "(hit or miss).", ["result"], registry=None)
for _result in ("hit", "miss"):  # both series exist from the start, at 0
    CACHE_LOOKUPS.labels(_result)

#: Latency buckets in seconds: fine below 25 ms, where a recommendation should answer.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0)

#: Methods that get a label of their own; any other (a client may send any token) is
#: ``OTHER``, so junk requests cannot grow the number of series without bound.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: The route label of a request no route matched (a 404 on an unknown path).
UNMATCHED = "unmatched"


class _ServingModel(Collector):
    """The served model version, read from the app at scrape time (never stale)."""

    def __init__(self, serving: Callable[[], tuple[str, int | None] | None]) -> None:
        self.serving = serving

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("tailored_serving_model_version",
                                  "The model registry version this process serves.",
                                  labels=["model"])
        serving = self.serving()
        if serving is not None and serving[1] is not None:
            gauge.add_metric([serving[0]], serving[1])
        yield gauge


class _DataRights(Collector):
    """Deletions for data rights, read from the store at scrape time: retention runs in
    the worker or the command line, erasures in any process."""

    def __init__(self, deletions: Callable[[], dict[str, int] | None]) -> None:
        self.deletions = deletions

    def collect(self) -> Iterator[Metric]:
        deleted = CounterMetricFamily(
            "tailored_retention_deleted", "Rows and versions deleted by data retention, by "
            "kind (events, impressions, served, versions, artifacts).", labels=["kind"])
        erased = CounterMetricFamily("tailored_erasures", "Users erased.")
        pending = GaugeMetricFamily(
            "tailored_erasures_pending", "Erasures whose users a model still carries at "
            "item level, until a retraining replaces it.")
        counts = self.deletions()
        if counts is not None:
            for kind, count in sorted(counts.items()):
                if kind not in ("erasures", "erasures_pending"):
                    deleted.add_metric([kind], count)
            erased.add_metric([], counts.get("erasures", 0))
            pending.add_metric([], counts.get("erasures_pending", 0))
        yield from (deleted, erased, pending)


class ServiceMetrics:
    """One app's metrics, in its own registry."""

    def __init__(self, serving: Callable[[], tuple[str, int | None] | None] = lambda: None,
                 deletions: Callable[[], dict[str, int] | None] = lambda: None) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "tailored_http_request_duration_seconds", "Request latency by route template.",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.requests = Counter(
            "tailored_http_requests", "Requests by route template and status code.",
            ["method", "route", "status"], registry=self.registry)
        self.events_ingested = Counter(
            "tailored_events_ingested", "Events posted, by outcome (stored or duplicate).",
            ["outcome"], registry=self.registry)
        self.recommendations = Counter(
            "tailored_recommendations", "Answers served, by placement (empty: none) and the "
            "name of the version that served them.", ["placement", "model"],
            registry=self.registry)
        self.registry.register(CACHE_LOOKUPS)
        self.registry.register(_ServingModel(serving))
        self.registry.register(_DataRights(deletions))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.request_seconds.labels(method, route).observe(seconds)
        self.requests.labels(method, route, str(status)).inc()

    def served(self, placement: str | None, model: str) -> None:
        """Count one answer (placements are few: at most ``MAX_PLACEMENTS`` exist)."""
        self.recommendations.labels(placement or "", model).inc()

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)


class RequestMetricsMiddleware:
    """Times every HTTP request and counts it by route template and status."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The router stores the matched route in the scope; its path is the template.
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"] if scope["method"] in HTTP_METHODS else "OTHER"
            self.metrics.observe_request(method, route, status,
                                         time.perf_counter() - started)


def get_metrics(request: Request) -> ServiceMetrics:
    metrics = getattr(request.app.state, "metrics", None)
    if not isinstance(metrics, ServiceMetrics):
        raise RuntimeError("the app has no metrics; build it with create_app()")
    return metrics


MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
