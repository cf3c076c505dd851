"""Error answers the spec describes: 405 with every allowed method, 422 and 413 shapes."""

from __future__ import annotations

import pytest
import sqlalchemy.exc
from fastapi.testclient import TestClient

from tailored.serving.errors import document_errors
from tailored.store import Store


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


def test_a_store_that_is_locked_answers_503_and_stores_nothing(
        client: TestClient, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    event = {"user_id": "u-locked", "item_id": "a0", "timestamp": "2024-05-01T12:00:00Z"}
    before = store.events.count()
    locked = sqlalchemy.exc.OperationalError("INSERT", {"user_id": "u-locked"},
                                             Exception("database is locked"))
    state = client.app.state.service

    def refuse(*args: object, **kwargs: object) -> int:
        raise locked

    with monkeypatch.context() as patch:
        patch.setattr(state.store.events, "add", refuse)
        refused = client.post("/events", json=event)
    retried = client.post("/events", json=event)

    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "u-locked" not in refused.text
    assert retried.status_code in (200, 201) and store.events.count() == before + 1
