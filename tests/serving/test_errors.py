"""Error answers: 405 with every allowed method, 422 and 413 shapes, 4xx for hostile text and
numbers, 503 with Retry-After when the store is locked."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tailored.jobs import TrainedModel
from tailored.serving import create_app
from tailored.serving.errors import document_errors
from tailored.settings import Settings
from tailored.store import open_store
from tailored.testing import LOCAL


def test_a_wrong_method_is_405_listing_every_method_of_the_path(client: TestClient) -> None:
    response = client.request("OPTIONS", "/items/a0")

    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, HEAD, PATCH, PUT"
    assert client.delete("/health").headers["allow"] == "GET, HEAD"


def test_the_spec_documents_the_errors_every_route_may_answer(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()

    put_item = spec["paths"]["/items/{item_id}"]["put"]["responses"]
    assert {"400", "404", "413", "422"} <= set(put_item)
    detail = spec["components"]["schemas"]["HTTPValidationError"]["properties"]["detail"]
    assert {"type": "string"} in detail["anyOf"]
    assert "404" not in spec["paths"]["/models"]["get"]["responses"]


def test_documenting_twice_changes_nothing(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()

    assert document_errors(spec) == client.get("/openapi.json").json()


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/events", '{"user_id": "\\ud800", "item_id": "i1"}'),
    ("POST", "/events", '[{"user_id": "u1", "item_id": "i1", "context": {"\\udfff": 1}}]'),
    ("PUT", "/items/a0", '{"title": "\\ud800"}'),
    ("PUT", "/users/u1", '{"attributes": {"city": "\\udc00"}}'),
    ("POST", "/recommendations/session", '{"items": ["\\ud800"]}'),
    ("POST", "/keys", '{"name": "\\ud800", "scopes": ["read"]}'),
])
def test_a_lone_surrogate_anywhere_in_a_body_is_a_4xx(client: TestClient, method: str,
                                                      path: str, body: str) -> None:
    response = client.request(method, path, content=body,
                              headers={"content-type": "application/json"})

    assert 400 <= response.status_code < 500, response.text
    response.json()  # valid UTF-8 JSON, the refused text escaped


@pytest.mark.parametrize("model", ["\u00b2", "99999999999999999999", "9" * 200, "-1", "1e3"])
def test_a_model_that_is_no_version_number_is_404(client: TestClient, model: str) -> None:
    response = client.get("/recommendations/alice0", params={"model": model})

    assert response.status_code == 404, response.text


def test_a_locked_sqlite_store_answers_503_stores_nothing_and_takes_the_retry(
        trained: TrainedModel, settings: Settings) -> None:
    store = open_store(settings.store_url)
    # Wait 0.2 s for a lock instead of the store's 10 s (the same failure, sooner).
    sa.event.listen(store.engine, "connect",
                    lambda connection, _: connection.execute("PRAGMA busy_timeout=200"))
    store.engine.dispose()
    event = {"user_id": "u-locked", "item_id": "a0", "timestamp": "2024-05-01T12:00:00Z"}
    locker = sqlite3.connect(settings.store_url.removeprefix("sqlite:///"),
                             isolation_level=None)
    with TestClient(create_app(settings, store=store), base_url=LOCAL) as client:
        before = store.events.count()
        locker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        refused = client.post("/events", json=event)
        locker.execute("ROLLBACK")
        stored_while_locked = store.events.count() - before
        retried = client.post("/events", json=event)

    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "1" and "u-locked" not in refused.text
    assert stored_while_locked == 0
    assert retried.status_code in (200, 201) and store.events.count() == before + 1
    locker.close()
    store.close()


def test_a_422_repeats_only_the_start_of_a_huge_input(client: TestClient) -> None:
    context = {f"k{n}": "v" * 2000 for n in range(5000)}  # ~10 MB, far over the bounds
    response = client.post("/events", json={"user_id": "u1", "item_id": "a0",
                                            "context": context})

    assert response.status_code == 422
    assert len(response.content) < 20_000
