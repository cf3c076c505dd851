"""GET /metrics: Prometheus text with latency per route template, status counts, cache
lookups, events ingested and the serving model version."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tailored.jobs import TrainedModel
from tailored.serving.metrics import CACHE_LOOKUPS, ServiceMetrics
from tailored.settings import Settings
from tailored.store import Store

from .conftest import Keys


def samples(client: TestClient, **kwargs: object) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics", **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def value(found: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def test_requests_are_counted_by_route_template_never_by_raw_path(client: TestClient) -> None:
    for user in ("alice0", "bob0", "someone-else"):
        client.get(f"/recommendations/{user}")
    client.get("/recommendations/alice0", params={"k": 0})  # 422
    client.get("/no/such/path")

    found = samples(client)

    route = "/recommendations/{user_id}"
    assert value(found, "tailored_http_requests_total", method="GET", route=route,
                 status="200") == 3
    assert value(found, "tailored_http_requests_total", method="GET", route=route,
                 status="422") == 1
    assert value(found, "tailored_http_requests_total", method="GET", route="unmatched",
                 status="404") == 1
    assert value(found, "tailored_http_request_duration_seconds_count", method="GET",
                 route=route) == 4
    assert value(found, "tailored_http_request_duration_seconds_bucket", method="GET",
                 route=route, le="+Inf") == 4
    assert not any("alice0" in str(labels) for _, labels in found)


def test_unknown_methods_share_one_label(client: TestClient) -> None:
    for n in range(50):
        client.request(f"JUNK{n}", "/health")

    exposition = client.get("/metrics").text
    series = [line for line in exposition.splitlines()
              if line.startswith("tailored_http_requests_total{")]

    assert not any("JUNK" in line for line in series)
    assert any('method="OTHER"' in line for line in series)


def test_events_ingested_are_counted_by_outcome(client: TestClient) -> None:
    batch = [{"event_id": f"m{j}", "user_id": "u", "item_id": "a0"} for j in range(3)]
    client.post("/events", json=batch)
    client.post("/events", json=batch[:2])

    found = samples(client)

    assert value(found, "tailored_events_ingested_total", outcome="stored") == 3
    assert value(found, "tailored_events_ingested_total", outcome="duplicate") == 2


def test_the_serving_model_version_follows_promotions(client: TestClient,
                                                      trained: TrainedModel) -> None:
    found = samples(client)

    assert value(found, "tailored_serving_model_version", model="item_knn") == \
        trained.version.version


def test_cache_lookups_are_exposed_with_both_results(client: TestClient) -> None:
    before = samples(client)
    CACHE_LOOKUPS.labels(result="hit").inc(2)
    CACHE_LOOKUPS.labels(result="miss").inc()

    after = samples(client)

    for result, added in (("hit", 2), ("miss", 1)):
        assert value(after, "tailored_cache_lookups_total", result=result) - value(
            before, "tailored_cache_lookups_total", result=result) == added


def test_each_app_has_its_own_registry(settings: Settings, trained: TrainedModel,
                                       make_client: Callable[..., TestClient]) -> None:
    first, second = make_client(), make_client()
    first.get("/recommendations/alice0")

    found = samples(second)

    assert value(found, "tailored_http_requests_total", method="GET",
                 route="/recommendations/{user_id}", status="200") == 0


def test_metrics_need_a_read_key_once_keys_exist(secured: TestClient, keys: Keys) -> None:
    assert secured.get("/metrics").status_code == 401
    found = samples(secured, headers=keys.headers("read"))
    assert value(found, "tailored_http_requests_total", method="GET", route="/metrics",
                 status="401") == 1


def test_service_metrics_alone() -> None:
    metrics = ServiceMetrics(serving=lambda: ("als", 7))
    metrics.observe_request("POST", "/events", 201, 0.003)

    text = metrics.exposition().decode()

    assert 'tailored_serving_model_version{model="als"} 7.0' in text
    assert 'tailored_http_request_duration_seconds_bucket{le="0.005",method="POST",' \
           'route="/events"} 1.0' in text


def test_retention_deletions_and_erasures_are_counted(client: TestClient, store: Store,
                                                      settings: Settings) -> None:
    from datetime import timedelta

    from tailored.jobs.retention import apply_retention

    before = samples(client)
    newest = store.events.frame()["timestamp"].max().to_pydatetime()
    report = apply_retention(store, settings.model_copy(update={"retention_days": 1}),
                             now=newest + timedelta(days=1, hours=12))
    # Someone no model knows: the session's shared artifact must not be rewritten.
    client.post("/users/someone-unknown/erase")
    after = samples(client)

    assert report.events > 0
    assert value(after, "tailored_retention_deleted_total", kind="events") - value(
        before, "tailored_retention_deleted_total", kind="events") == report.events
    assert value(after, "tailored_erasures_total") == value(
        before, "tailored_erasures_total") + 1
    assert value(after, "tailored_erasures_pending") == 0  # no model carried them
