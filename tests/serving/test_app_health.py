"""The app as a whole: startup, health, no-model mode, docs (keys: test_auth.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tailored.jobs import TrainedModel, train_model
from tailored.serving import create_app, run
from tailored.serving.security import mask_password
from tailored.settings import Settings
from tailored.store import Store
from tailored.testing import LOCAL

from .conftest import Keys
from .taste_groups import synthetic_events

MakeClient = Callable[..., TestClient]


def test_health_reports_store_events_and_model(client: TestClient, settings: Settings,
                                               trained: TrainedModel) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["store"] == settings.store_url
    assert body["events"] == len(synthetic_events())
    assert body["model"]["name"] == "item_knn"
    assert body["model"]["version"] == trained.version.version
    assert body["model"]["trained_at"].startswith(trained.pipeline.scorer.fitted_at_[:10])


def test_health_tells_strangers_only_whether_it_is_up(secured: TestClient,
                                                     keys: Keys) -> None:
    anonymous = secured.get("/health").json()
    read = secured.get("/health", headers=keys.headers("read")).json()
    admin = secured.get("/health", headers=keys.headers("admin")).json()

    for body in (anonymous, read):
        assert body["status"] == "ok" and body["model"]["name"] == "item_knn"
        assert body["store"] is None and body["events"] is None
    assert admin["store"] is not None and admin["events"] > 0


def test_health_counts_posted_events(client: TestClient) -> None:
    client.post("/events", json={"user_id": "u", "item_id": "a0"})

    assert client.get("/health").json()["events"] == len(synthetic_events()) + 1


@pytest.mark.parametrize(("url", "secret"), [
    ("postgresql://tailored:s3cret@db:5432/tailored", "s3cret"),
    ("postgresql+psycopg://me:p%40ss@localhost/x", "p%40ss"),
])
def test_store_passwords_are_masked(url: str, secret: str) -> None:
    masked = mask_password(url)

    assert secret not in masked
    assert "***" in masked


def test_without_a_trained_model_health_is_ok_and_recommendations_are_503(
        store: Store, make_client: MakeClient) -> None:
    client = make_client()

    health = client.get("/health")
    recommendations = client.get("/recommendations/alice0")
    similar = client.get("/items/a0/similar")

    assert health.status_code == 200
    assert health.json()["model"] is None
    assert health.json()["events"] == len(synthetic_events())
    assert recommendations.status_code == 503
    assert recommendations.json() == {"detail": "no trained model; run `tailored train`"}
    assert similar.status_code == 503
    assert client.post("/events", json={"user_id": "u", "item_id": "a0"}).status_code == 201


def test_a_model_trained_while_serving_is_picked_up(
        store: Store, settings: Settings, make_client: MakeClient) -> None:
    client = make_client(registry_poll_seconds=0)
    assert client.get("/recommendations/alice0").status_code == 503

    train_model(store, settings, "item_knn", validate=False)  # as `tailored train` would

    response = client.get("/recommendations/alice0")
    assert response.status_code == 200
    assert response.json()["model"] == {"name": "item_knn", "version": 1}


def test_an_empty_store_starts(make_client: MakeClient) -> None:
    client = make_client()

    assert client.get("/health").json()["events"] == 0
    assert client.get("/recommendations/anyone").status_code == 503


def test_run_serves_the_app_on_the_configured_address(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, dict[str, object]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append((app, options)))

    run(settings.model_copy(update={"port": 8123}))

    [(app, options)] = calls
    assert isinstance(app, FastAPI)
    assert (options["host"], options["port"]) == ("127.0.0.1", 8123)


def test_creating_the_app_opens_nothing(settings: Settings) -> None:
    database = Path(settings.store_url.removeprefix("sqlite:///"))

    create_app(settings)

    assert not database.exists()


def test_docs_describe_requests_and_answers(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()

    body = spec["paths"]["/events"]["post"]["requestBody"]["content"]["application/json"]
    assert {"$ref": "#/components/schemas/Event"} in body["schema"]["oneOf"]
    assert set(body["examples"]) == {"one event", "batch", "impressions"}
    schemas = spec["components"]["schemas"]
    for name in ("Recommendations", "SimilarItems", "Health", "EventsReceipt",
                 "ModelVersionInfo"):
        assert schemas[name].get("examples"), name
    assert "tailored keys create" in spec["info"]["description"]


def test_a_store_passed_in_is_used_and_left_open(trained: TrainedModel, store: Store) -> None:
    app = create_app(Settings(store_url="sqlite:///elsewhere-never-opened.db"), store=store)

    with TestClient(app, base_url=LOCAL) as client:
        assert client.get("/recommendations/alice0").json()["model"]["version"] == 1
        assert client.post("/events", json={"user_id": "u", "item_id": "a0"}).status_code == 201

    assert store.events.count() == len(synthetic_events()) + 1  # still open after shutdown
    assert not Path("elsewhere-never-opened.db").exists()


def test_an_in_memory_store_works_or_is_refused_at_startup_with_the_reason() -> None:
    # Requests run in worker threads; an in-memory SQLite database may live in one only.
    app = create_app(Settings(store_url="sqlite://"))

    try:
        with TestClient(app, base_url=LOCAL) as client:
            assert client.post("/events", json={"user_id": "u", "item_id": "a0"}).status_code \
                == 201
            assert client.get("/health").json()["events"] == 1
    except RuntimeError as error:
        assert "sqlite:///PATH" in str(error)
