"""Error answers the spec describes: 405 with every allowed method, 422 and 413 shapes."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tailored.serving.errors import document_errors


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
