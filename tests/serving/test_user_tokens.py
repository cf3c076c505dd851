"""User tokens: a page's credential, bound to one user, that reads only that user's
recommendations (reasons included), while a frontend's ``read`` key reads no one's
history and cannot make the service load versions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tailored.jobs import TrainedModel
from tailored.serving import create_app, user_tokens
from tailored.settings import Settings
from tailored.testing import LOCAL

from .conftest import Keys

SECRET = "a-test-secret-of-at-least-32-characters"


@pytest.fixture
def shop(trained: TrainedModel, keys: Keys, settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"key_cache_seconds": 0.0,
                                                 "user_token_secret": SecretStr(SECRET)}))
    with TestClient(app, base_url=LOCAL) as client:
        yield client


def _token(shop: TestClient, keys: Keys, user_id: str) -> dict[str, str]:
    answer = shop.post(f"/users/{user_id}/token", json={"ttl_seconds": 600},
                       headers=keys.headers("write"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["user_id"] == user_id
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def test_a_user_token_reads_its_own_recommendations_with_reasons(shop: TestClient,
                                                                 keys: Keys) -> None:
    alice = _token(shop, keys, "alice0")

    mine = shop.get("/recommendations/alice0", params={"explain": True}, headers=alice)

    assert mine.status_code == 200
    assert all(item["reason"] for item in mine.json()["items"])


def test_a_user_token_reads_no_one_else(shop: TestClient, keys: Keys) -> None:
    alice = _token(shop, keys, "alice0")

    theirs = shop.get("/recommendations/bob0", headers=alice)

    assert theirs.status_code == 403 and "alice0" in theirs.json()["detail"]


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/metrics"), ("GET", "/models"), ("GET", "/users/alice0"),
    ("GET", "/dashboard/data"), ("POST", "/models/rollback"), ("GET", "/keys"),
])
def test_a_user_token_opens_no_other_route(shop: TestClient, keys: Keys, method: str,
                                           path: str) -> None:
    alice = _token(shop, keys, "alice0")

    assert shop.request(method, path, headers=alice).status_code == 403


def test_a_user_token_may_ask_for_sessions_and_similar_items(shop: TestClient,
                                                              keys: Keys) -> None:
    alice = _token(shop, keys, "alice0")

    session = shop.post("/recommendations/session", json={"items": ["a0"]}, headers=alice)

    assert session.status_code == 200


def test_forged_expired_and_foreign_tokens_are_401(shop: TestClient) -> None:
    expired = user_tokens.issue(SECRET, "alice0", ttl_seconds=1, now=1_000_000)
    foreign = user_tokens.issue("another-secret-of-at-least-32-chars!", "alice0")
    forged = foreign.rsplit(".", 1)[0] + ".AAAA"

    for token in (expired, foreign, forged, "tu1.garbage"):
        answer = shop.get("/recommendations/alice0",
                          headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, token


def test_a_read_key_may_not_ask_for_reasons_or_a_version(shop: TestClient,
                                                         keys: Keys) -> None:
    read = keys.headers("read")

    explained = shop.get("/recommendations/alice0", params={"explain": True}, headers=read)
    versioned = shop.get("/recommendations/alice0", params={"model": "1"}, headers=read)
    plain = shop.get("/recommendations/alice0", headers=read)

    assert explained.status_code == 403 and "write" in explained.json()["detail"]
    assert versioned.status_code == 403 and "admin" in versioned.json()["detail"]
    assert plain.status_code == 200


def test_a_backend_key_may_ask_for_reasons_and_an_operator_for_versions(
        shop: TestClient, keys: Keys) -> None:
    explained = shop.get("/recommendations/alice0", params={"explain": True},
                         headers=keys.headers("write"))
    versioned = shop.get("/recommendations/alice0", params={"model": "1"},
                         headers=keys.headers("admin"))

    assert explained.status_code == 200 and versioned.status_code == 200


def test_without_a_secret_tokens_are_neither_issued_nor_taken(secured: TestClient,
                                                              keys: Keys) -> None:
    issued = secured.post("/users/alice0/token", headers=keys.headers("write"))
    token = user_tokens.issue(SECRET, "alice0")
    used = secured.get("/recommendations/alice0", headers={"Authorization": f"Bearer {token}"})

    assert issued.status_code == 409 and "user_token_secret" in issued.json()["detail"]
    assert used.status_code == 401 and "user_token_secret" in used.json()["detail"]


def test_a_token_is_valid_until_it_expires() -> None:
    token = user_tokens.issue(SECRET, "alice0", ttl_seconds=60, now=1_000)

    assert user_tokens.verify(SECRET, token, now=1_059) == "alice0"
    assert user_tokens.verify(SECRET, token, now=1_060) is None
    assert user_tokens.expires_at(token) == 1_060


def test_a_user_token_reads_items_and_similar_items(shop: TestClient, keys: Keys) -> None:
    alice = _token(shop, keys, "alice0")

    assert shop.get("/items/a0/similar", headers=alice).status_code == 200
    assert shop.get("/items/a0", headers=alice).status_code in (200, 404)  # no catalog here
    assert shop.put("/items/a0", json={"title": "x"}, headers=alice).status_code == 403


def test_a_user_token_sends_its_own_user_s_events_only(shop: TestClient, keys: Keys) -> None:
    alice = _token(shop, keys, "alice0")
    event = {"item_id": "a1", "event_type": "click", "timestamp": "2024-05-01T12:00:00Z"}

    own = shop.post("/events", json={**event, "user_id": "alice0"}, headers=alice)
    theirs = shop.post("/events", json=[{**event, "user_id": "alice0"},
                                        {**event, "user_id": "bob0"}], headers=alice)

    assert own.status_code == 201
    assert theirs.status_code == 403 and "alice0" in theirs.json()["detail"]


def test_a_user_token_has_a_page_s_rate_limit_and_a_key_a_backend_s(
        trained: TrainedModel, keys: Keys, settings: Settings) -> None:
    app = create_app(settings.model_copy(update={
        "key_cache_seconds": 0.0, "user_token_secret": SecretStr(SECRET),
        "rate_limit_per_user_per_second": 0.5, "rate_limit_burst_seconds": 4.0}))
    with TestClient(app, base_url=LOCAL) as client:
        alice = _token(client, keys, "alice0")
        page = [client.get("/recommendations/alice0", headers=alice).status_code
                for _ in range(3)]
        backend = [client.get("/recommendations/alice0",
                              headers=keys.headers("read")).status_code for _ in range(3)]

    assert page == [200, 200, 429] and backend == [200, 200, 200]
