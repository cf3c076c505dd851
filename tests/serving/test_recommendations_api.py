"""GET /recommendations/{user_id}: shape, exclusions, fallback, and read-your-writes."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from .taste_groups import GROUP_A, GROUP_B, USERS_A, USERS_B, popularity_order, seen_by


def item_ids(response_json: dict) -> list[str]:
    return [item["item_id"] for item in response_json["items"]]


def test_answer_has_the_documented_shape(client: TestClient) -> None:
    response = client.get("/recommendations/alice0", params={"k": 3})

    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == "alice0"
    assert body["model"] == {"name": "item_knn", "version": 1}
    assert [item["rank"] for item in body["items"]] == [1, 2, 3]
    assert all(set(item) == {"item_id", "score", "rank"} for item in body["items"])
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("user", [USERS_A[0], USERS_A[7], USERS_B[2]])
def test_group_members_get_the_rest_of_their_group_and_nothing_seen(
        client: TestClient, user: str) -> None:
    group = GROUP_A if user in USERS_A else GROUP_B

    items = item_ids(client.get(f"/recommendations/{user}", params={"k": 12}).json())

    assert not set(items) & seen_by(user)
    assert set(items[:2]) == set(group) - seen_by(user)
    assert len(items) == 12 - len(seen_by(user))


def test_an_unknown_user_gets_the_most_popular_items(client: TestClient) -> None:
    response = client.get("/recommendations/never-seen-before", params={"k": 5})

    assert response.status_code == 200
    assert item_ids(response.json()) == popularity_order()[:5]


def test_excluded_items_are_left_out(client: TestClient) -> None:
    wanted = sorted(set(GROUP_A) - seen_by("alice0"))

    response = client.get("/recommendations/alice0",
                          params={"k": 3, "exclude": [wanted[0], "not-an-item"]})

    items = item_ids(response.json())
    assert wanted[0] not in items
    assert wanted[1] == items[0]


@pytest.mark.parametrize("k", [0, -1, 1001, "ten"])
def test_k_out_of_bounds_is_refused_with_the_parameter_named(client: TestClient,
                                                            k: int | str) -> None:
    response = client.get("/recommendations/alice0", params={"k": k})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "k"]


def test_k_bounds_are_inclusive(client: TestClient) -> None:
    assert len(client.get("/recommendations/alice0", params={"k": 1}).json()["items"]) == 1
    assert client.get("/recommendations/alice0", params={"k": 1000}).status_code == 200


def test_a_new_user_is_recommended_from_events_posted_a_moment_ago(client: TestClient) -> None:
    before = item_ids(client.get("/recommendations/newcomer", params={"k": 4}).json())
    assert set(before) <= set(GROUP_A)  # the popular fallback

    posted = client.post("/events", json=[{"user_id": "newcomer", "item_id": "b0"},
                                          {"user_id": "newcomer", "item_id": "b1"}])
    assert posted.status_code == 201

    after = item_ids(client.get("/recommendations/newcomer", params={"k": 4}).json())
    assert set(after) == {"b2", "b3", "b4", "b5"}


def test_an_item_seen_a_moment_ago_is_no_longer_recommended(client: TestClient) -> None:
    first = item_ids(client.get("/recommendations/bob0", params={"k": 1}).json())[0]

    client.post("/events", json={"user_id": "bob0", "item_id": first, "event_type": "click"})

    assert first not in item_ids(client.get("/recommendations/bob0", params={"k": 12}).json())


def test_a_too_long_user_id_is_refused(client: TestClient) -> None:
    response = client.get("/recommendations/" + "u" * 300)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "user_id"]
