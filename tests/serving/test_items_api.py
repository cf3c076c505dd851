"""GET /items/{item_id}/similar."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from .taste_groups import GROUP_A, GROUP_B


@pytest.mark.parametrize(("item", "group"), [("a0", GROUP_A), ("b3", GROUP_B)])
def test_similar_items_come_from_the_same_group(client: TestClient, item: str,
                                                group: tuple[str, ...]) -> None:
    response = client.get(f"/items/{item}/similar", params={"k": 5})

    assert response.status_code == 200
    body = response.json()
    assert body["item_id"] == item
    assert [i["item_id"] for i in body["items"]] != []
    assert {i["item_id"] for i in body["items"]} == set(group) - {item}
    assert [i["rank"] for i in body["items"]] == list(range(1, len(body["items"]) + 1))
    assert all(i["score"] > 0 for i in body["items"])


def test_k_limits_the_answer(client: TestClient) -> None:
    body = client.get("/items/a0/similar", params={"k": 2}).json()

    assert len(body["items"]) == 2


def test_an_item_the_model_does_not_know_is_404_with_a_reason(client: TestClient) -> None:
    response = client.get("/items/brand-new-item/similar")

    assert response.status_code == 404
    assert "brand-new-item" in response.json()["detail"]
    assert "unknown to the serving model" in response.json()["detail"]


def test_k_zero_is_refused(client: TestClient) -> None:
    response = client.get("/items/a0/similar", params={"k": 0})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "k"]
