"""User profiles over REST: put, get, patch (attributes merged), delete, batches."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tailored.jobs import TrainedModel
from tailored.schema import User, by_purpose
from tailored.settings import Settings
from tailored.store import Store

from .conftest import Keys


def test_put_creates_then_replaces(client: TestClient, store: Store) -> None:
    created = client.put("/users/carol", json={"attributes": {"location": "Berlin"}})
    replaced = client.put("/users/carol", json={"attributes": {"age_band": "25-34"},
                                                "consent": False})

    assert created.status_code == 201
    assert created.json() == {"user_id": "carol", "attributes": {"location": "Berlin"},
                              "consent": {}}
    assert replaced.status_code == 200
    assert store.users.get("carol") == User(user_id="carol", consent=False,
                                            attributes={"age_band": "25-34"})
    assert client.get("/users/carol").json() == replaced.json()


def test_patch_merges_attributes_and_null_removes_one(client: TestClient,
                                                       store: Store) -> None:
    client.put("/users/dave", json={"attributes": {"location": "Berlin", "age_band": "18-24"}})

    response = client.patch("/users/dave", json={"attributes": {"age_band": None,
                                                                "device": "mobile"}})

    assert response.status_code == 200
    assert response.json()["attributes"] == {"location": "Berlin", "device": "mobile"}
    assert response.json()["consent"] == {}
    assert store.users.get("dave") == User(user_id="dave",
                                           attributes={"location": "Berlin",
                                                       "device": "mobile"})
    consent = client.patch("/users/dave", json={"consent": False})
    assert consent.json()["consent"] == {"personalization": False, "analytics": False}
    assert consent.json()["attributes"] == {"location": "Berlin", "device": "mobile"}


def test_delete_removes_the_profile_but_not_the_events(client: TestClient,
                                                       store: Store) -> None:
    client.put("/users/alice0", json={"attributes": {"location": "Paris"}})
    events_before = len(store.events.frame(user_ids=["alice0"]))

    response = client.delete("/users/alice0")

    assert response.status_code == 204 and response.content == b""
    assert store.users.get("alice0") is None
    assert len(store.events.frame(user_ids=["alice0"])) == events_before
    assert client.delete("/users/alice0").status_code == 404


@pytest.mark.parametrize(("method", "body"), [("GET", None), ("PATCH", {"consent": False}),
                                              ("DELETE", None)])
def test_an_unknown_user_is_404(client: TestClient, method: str,
                                body: dict[str, Any] | None) -> None:
    response = client.request(method, "/users/nobody", json=body)

    assert response.status_code == 404
    assert "nobody" in response.json()["detail"]


def test_a_batch_upserts_every_profile(client: TestClient, store: Store) -> None:
    response = client.post("/users", json=[
        {"user_id": f"p{j}", "attributes": {"n": j}} for j in range(3)])

    assert response.status_code == 200
    assert response.json() == {"received": 3}
    assert store.users.get("p2") == User(user_id="p2", attributes={"n": 2})


@pytest.mark.parametrize(("method", "path", "body", "location"), [
    ("PUT", "/users/u", {"attributes": {"a": [1, 2]}}, ["body", "attributes", "a"]),
    ("PUT", "/users/u", {"consent": "maybe"}, ["body", "consent"]),
    ("PUT", "/users/u", {"colour": "red"}, ["body", "colour"]),
    ("PUT", "/users/u", {"attributes": {"": 1}}, ["body", "attributes", ""]),
    ("PUT", "/users/u", {"attributes": {"a": "x" * 10_001}}, ["body", "attributes", "a"]),
    ("PUT", "/users/u", {"attributes": {f"k{j}": j for j in range(101)}},
     ["body", "attributes"]),
    ("PUT", "/users/u", {"attributes": {"big": 2**60}}, ["body", "attributes"]),
    ("PUT", "/users/u", [], ["body"]),
    ("PATCH", "/users/u", {"consent": None}, ["body"]),
    ("POST", "/users", [], ["body"]),
    ("POST", "/users", [{"attributes": {}}], ["body", 0, "user_id"]),
    ("PUT", "/users/" + "u" * 257, {}, ["path", "user_id"]),
])
def test_malformed_profiles_are_422_naming_the_field(
        client: TestClient, method: str, path: str, body: Any, location: list[Any]) -> None:
    client.put("/users/u", json={})

    response = client.request(method, path, json=body)

    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    if isinstance(detail, str):
        assert location == ["body"]
    else:
        assert any(error["loc"][:len(location)] == location for error in detail), detail


def test_profiles_need_a_write_key(secured: TestClient, keys: Keys) -> None:
    assert secured.put("/users/u", json={}).status_code == 401
    assert secured.put("/users/u", json={}, headers=keys.headers("read")).status_code == 403
    assert secured.get("/users/u", headers=keys.headers("read")).status_code == 403
    assert secured.put("/users/u", json={}, headers=keys.headers("write")).status_code == 201
    assert secured.get("/users/u", headers=keys.headers("write")).status_code == 200


def test_an_export_holds_the_user_s_events_and_answers_for_an_admin(
        secured: TestClient, keys: Keys) -> None:
    shown = secured.get("/recommendations/alice0", headers=keys.headers("read")).json()
    secured.app.state.service.served_log.flush()  # type: ignore[attr-defined]

    refused = secured.get("/users/alice0/export", headers=keys.headers("write"))
    document = secured.get("/users/alice0/export", headers=keys.headers("admin")).json()

    assert refused.status_code == 403
    assert document["user_id"] == "alice0" and document["counts"]["events"] > 0
    assert {e["item_id"] for e in document["events"]} and all(
        e["event_type"] for e in document["events"])
    [answer] = document["recommendations"]
    assert answer["recommendation_id"] == shown["recommendation_id"]
    assert [i["item_id"] for i in answer["items"]] == [i["item_id"] for i in shown["items"]]


def test_a_user_who_withdraws_consent_gets_a_newcomer_s_answer_at_once(
        client: TestClient, store: Store) -> None:
    def items(user: str, **params: Any) -> list[str]:
        answer = client.get(f"/recommendations/{user}", params={"k": 5, **params}).json()
        return [item["item_id"] for item in answer["items"]]

    personal = items("alice0")
    assert items("alice0") == personal  # cached now
    newcomer = items("nobody-at-all")
    assert personal != newcomer

    client.put("/users/alice0", json={"consent": False})
    withheld = client.get("/recommendations/alice0",
                          params={"k": 5, "explain": True}).json()["items"]
    client.patch("/users/alice0", json={"consent": True})

    assert [item["item_id"] for item in withheld] == newcomer
    seen = set(store.events.frame(user_ids=["alice0"])["item_id"])
    assert not any(title in item["reason"] for item in withheld for title in seen)
    assert items("alice0") == personal  # consent given again: personal again


def test_batch_recommendations_obey_consent(client: TestClient, store: Store) -> None:
    from tailored.pipeline import LiveRecommender

    live = LiveRecommender.active(store)
    store.users.upsert([User(user_id="alice0", consent=by_purpose(False))])

    lists = live.recommend(["alice0", "nobody-at-all"], k=5)

    by_user = lists.groupby("user_id")["item_id"].apply(list)
    assert by_user["alice0"] == by_user["nobody-at-all"]


def test_an_export_of_a_user_nothing_is_stored_about_is_404(client: TestClient) -> None:
    response = client.get("/users/nobody-at-all/export")

    assert response.status_code == 404 and "nothing is stored" in response.json()["detail"]


def test_events_of_a_user_without_consent_are_discarded_when_the_rule_says_so(
        store: Store, settings: Settings, trained: TrainedModel, make_client: Any) -> None:
    client = make_client(settings.model_copy(update={"events_without_consent": "discard"}))
    client.put("/users/carol/consent", json={"personalization": False})
    before = len(store.events.frame(user_ids=["carol"]))

    sent = client.post("/events", json=[{"user_id": "carol", "item_id": "b1"},
                                        {"user_id": "dave", "item_id": "b1"}])

    assert sent.status_code == 201
    assert sent.json() == {"received": 2, "stored": 1, "duplicates": 0, "discarded": 1}
    assert len(store.events.frame(user_ids=["carol"])) == before
    history = client.get("/users/carol/consent").json()
    assert history["consent"] == {"personalization": False, "analytics": True}
    assert [(c["purpose"], c["granted"]) for c in history["history"]] == [
        ("personalization", False)]


def test_similar_users_share_the_taste_and_consent_holds_on_both_sides(
        client: TestClient, store: Store) -> None:
    from .taste_groups import USERS_A

    def similar(user: str, k: int = 5) -> list[str]:
        response = client.get(f"/users/{user}/similar", params={"k": k})
        assert response.status_code == 200, response.text
        return [u["user_id"] for u in response.json()["users"]]

    alike = similar("alice0")
    assert len(alike) == 5 and set(alike) <= set(USERS_A) - {"alice0"}
    client.put(f"/users/{alike[0]}/consent", json={"personalization": False})
    assert alike[0] not in similar("alice0", k=len(USERS_A))
    client.put("/users/alice0/consent", json={"personalization": False})
    assert similar("alice0") == []  # no history read for them
    assert similar("nobody-at-all") == []
