"""/keys over REST (admin only): create shows the secret once, list never shows it,
revoke applies to the very next request."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tailored.jobs import TrainedModel
from tailored.settings import Settings
from tailored.store import Store

from .conftest import Keys


def test_create_answers_the_secret_once_and_stores_only_its_hash(
        secured: TestClient, keys: Keys, store: Store) -> None:
    response = secured.post("/keys", json={"name": "shop-backend", "scopes": ["write"]},
                            headers=keys.headers("admin"))

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "shop-backend" and body["scopes"] == ["write"] and body["active"]
    secret = body["secret"]
    assert secured.post("/events", json={"user_id": "u", "item_id": "a0"},
                        headers={"Authorization": f"Bearer {secret}"}).status_code == 201
    listed = secured.get("/keys", headers=keys.headers("admin")).json()
    assert [k["name"] for k in listed] == ["read-key", "write-key", "admin-key", "shop-backend"]
    assert all("secret" not in k for k in listed)
    assert secret not in str(store.keys.list())


def test_revoke_applies_to_the_next_request(secured: TestClient, keys: Keys,
                                            store: Store) -> None:
    [read_key] = [k for k in store.keys.list() if k.name == "read-key"]
    assert secured.get("/recommendations/alice0", headers=keys.headers("read")).status_code \
        == 200

    response = secured.delete(f"/keys/{read_key.key_id}", headers=keys.headers("admin"))

    assert response.status_code == 200
    assert response.json()["active"] is False and response.json()["revoked_at"]
    refused = secured.get("/recommendations/alice0", headers=keys.headers("read"))
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]


def test_revoke_applies_at_once_even_with_a_long_cache(
        trained: TrainedModel, keys: Keys, settings: Settings, store: Store,
        make_client: Callable[..., TestClient]) -> None:
    client = make_client(settings.model_copy(update={"key_cache_seconds": 300}))
    [read_key] = [k for k in store.keys.list() if k.name == "read-key"]
    assert client.get("/recommendations/alice0", headers=keys.headers("read")).status_code \
        == 200  # now cached for 300 s

    client.delete(f"/keys/{read_key.key_id}", headers=keys.headers("admin"))

    assert client.get("/recommendations/alice0", headers=keys.headers("read")).status_code \
        == 401


def test_revoking_an_unknown_key_is_404(secured: TestClient, keys: Keys) -> None:
    response = secured.delete("/keys/nope", headers=keys.headers("admin"))

    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


def test_malformed_key_requests_are_422(secured: TestClient, keys: Keys) -> None:
    admin = keys.headers("admin")
    for body in ({"name": "x", "scopes": ["root"]}, {"name": "x", "scopes": []},
                 {"name": "", "scopes": ["read"]}, {"name": "x" * 101, "scopes": ["read"]},
                 {"scopes": ["read"]}, {"name": "x", "scopes": ["read"], "extra": 1}):
        response = secured.post("/keys", json=body, headers=admin)
        assert response.status_code == 422, body
    assert secured.delete("/keys/" + "k" * 65, headers=admin).status_code == 422


def test_only_admin_keys_manage_keys(secured: TestClient, keys: Keys) -> None:
    for scope in ("read", "write"):
        assert secured.get("/keys", headers=keys.headers(scope)).status_code == 403
        assert secured.post("/keys", json={"name": "x", "scopes": ["admin"]},
                            headers=keys.headers(scope)).status_code == 403
