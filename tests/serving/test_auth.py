"""API keys on every route: 401 without a valid key, 403 with too weak a scope, open mode
only while no key exists (and only on 127.0.0.1 unless allowed), revocation."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tailored.serving import OpenAccessRefusedError, create_app, refuse_open_access
from tailored.serving.auth import KeyVerifier, check_open_access, open_access_warning
from tailored.settings import Settings
from tailored.store import Store

from .conftest import Keys

MakeClient = Callable[..., TestClient]

#: The scope each route needs; a new route must be added here (the test below checks).
SCOPE_OF: dict[tuple[str, str], str | None] = {
    ("GET", "/health"): None,
    ("GET", "/metrics"): "read",
    ("GET", "/recommendations/{user_id}"): "read",
    ("POST", "/recommendations/session"): "read",
    ("GET", "/items/{item_id}/similar"): "read",
    ("POST", "/items/similar"): "read",
    ("GET", "/popular"): "read",
    ("GET", "/trending"): "read",
    ("GET", "/items/{item_id}"): "read",
    ("GET", "/items"): "read",
    ("PUT", "/items/{item_id}"): "write",
    ("PATCH", "/items/{item_id}"): "write",
    ("DELETE", "/items/{item_id}"): "write",
    ("POST", "/items"): "write",
    ("GET", "/users/{user_id}"): "write",
    ("PUT", "/users/{user_id}"): "write",
    ("PATCH", "/users/{user_id}"): "write",
    ("DELETE", "/users/{user_id}"): "write",
    ("POST", "/users"): "write",
    ("POST", "/users/{user_id}/token"): "write",
    ("GET", "/users/{user_id}/export"): "admin",
    ("POST", "/users/{user_id}/erase"): "admin",
    ("GET", "/users/{user_id}/similar"): "write",
    ("GET", "/users/{user_id}/consent"): "write",
    ("PUT", "/users/{user_id}/consent"): "write",
    ("POST", "/events"): "write",
    ("GET", "/models"): "read",
    ("POST", "/models/{version}/promote"): "admin",
    ("POST", "/models/rollback"): "admin",
    ("GET", "/keys"): "admin",
    ("POST", "/keys"): "admin",
    ("DELETE", "/keys/{key_id}"): "admin",
    ("GET", "/webhooks"): "admin",
    ("POST", "/webhooks"): "admin",
    ("DELETE", "/webhooks/{subscription_id}"): "admin",
    ("GET", "/webhooks/{subscription_id}/deliveries"): "admin",
    ("GET", "/dashboard/data"): "read",
    ("GET", "/experiments"): "read",
    ("POST", "/experiments"): "admin",
    ("GET", "/experiments/{experiment_id}"): "read",
    ("POST", "/experiments/{experiment_id}/start"): "admin",
    ("POST", "/experiments/{experiment_id}/stop"): "admin",
    ("GET", "/placements"): "read",
    ("GET", "/placements/{name}"): "read",
    ("GET", "/placements/{name}/versions"): "read",
    ("PUT", "/placements/{name}"): "admin",
    ("DELETE", "/placements/{name}"): "admin",
}
WEAKER = {"read": None, "write": "read", "admin": "write"}


def api_routes(client: TestClient) -> list[tuple[str, str]]:
    """Every documented operation (the dashboard's page and files are not an API)."""
    spec = client.get("/openapi.json").json()
    routes = sorted((method.upper(), path) for path, operations in spec["paths"].items()
                    for method in operations)
    assert ("GET", "/recommendations/{user_id}") in routes and len(routes) >= 20
    return routes


def call(client: TestClient, method: str, path: str, **kwargs: Any) -> Any:
    url = re.sub(r"\{version\}", "1", re.sub(r"\{[a-z_]+\}", "a0", path))
    return client.request(method, url, **kwargs)


def test_every_route_is_listed_with_its_scope(secured: TestClient) -> None:
    routes = set(api_routes(secured))

    unlisted = routes - set(SCOPE_OF)
    assert not unlisted, f"routes without a known scope (add them to SCOPE_OF): {unlisted}"


def test_every_route_but_health_needs_a_key(secured: TestClient) -> None:
    for method, path in api_routes(secured):
        response = call(secured, method, path)
        if SCOPE_OF[(method, path)] is None:
            assert response.status_code == 200, path
            continue
        assert response.status_code == 401, (method, path, response.text)
        assert "needs an API key" in response.json()["detail"]
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_weaker_scope_is_403_naming_both_scopes(secured: TestClient, keys: Keys) -> None:
    for method, path in api_routes(secured):
        needed = SCOPE_OF[(method, path)]
        weaker = None if needed is None else WEAKER[needed]
        if weaker is None:
            continue
        response = call(secured, method, path, headers=keys.headers(weaker))
        assert response.status_code == 403, (method, path, response.text)
        assert f"has scope {weaker}" in response.json()["detail"]
        assert f"needs {needed!r}" in response.json()["detail"]


def test_the_right_scope_or_a_stronger_one_gets_through(secured: TestClient,
                                                       keys: Keys) -> None:
    for scope in ("read", "write", "admin"):
        response = secured.get("/recommendations/alice0", headers=keys.headers(scope))
        assert response.status_code == 200, scope
    assert secured.get("/models", headers=keys.headers("admin")).status_code == 200
    posted = secured.post("/events", json={"user_id": "u", "item_id": "a0"},
                          headers=keys.headers("admin"))
    assert posted.status_code == 201


def test_the_key_may_come_as_x_api_key(secured: TestClient, keys: Keys) -> None:
    response = secured.get("/recommendations/alice0", headers={"X-API-Key": keys.read})

    assert response.status_code == 200


@pytest.mark.parametrize("header", [
    {"Authorization": "Bearer tk_000000000000_" + "A" * 43},
    {"Authorization": "Bearer not-a-key"},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"X-API-Key": "tk_"},
    {"X-API-Key": ""},
])
def test_a_wrong_key_is_401(secured: TestClient, header: dict[str, str]) -> None:
    response = secured.get("/recommendations/alice0", headers=header)

    assert response.status_code == 401


def test_a_tampered_key_is_401(secured: TestClient, keys: Keys) -> None:
    tampered = keys.read[:-1] + ("A" if keys.read[-1] != "A" else "B")

    response = secured.get("/recommendations/alice0", headers={"X-API-Key": tampered})

    assert response.status_code == 401
    assert "unknown or revoked" in response.json()["detail"]


def test_a_key_revoked_in_the_store_is_refused(secured: TestClient, keys: Keys,
                                              store: Store) -> None:
    assert secured.get("/recommendations/alice0", headers=keys.headers("read")).status_code \
        == 200
    [read_key] = [k for k in store.keys.list() if k.name == "read-key"]

    store.keys.revoke(read_key.key_id)  # as `tailored keys revoke` would, elsewhere

    response = secured.get("/recommendations/alice0", headers=keys.headers("read"))
    assert response.status_code == 401


def test_a_verified_key_is_trusted_for_the_cache_time_only(store: Store) -> None:
    now = [0.0]
    verifier = KeyVerifier(store, ttl_seconds=5.0, clock=lambda: now[0])
    key, secret = store.keys.create("web", ["read"])
    assert verifier.verify(secret) == key

    store.keys.revoke(key.key_id)

    now[0] = 4.9
    assert verifier.verify(secret) == key  # cached: no store read
    now[0] = 5.0
    assert verifier.verify(secret) is None  # expired: read again, revoked


def test_forgetting_a_key_applies_at_once(store: Store) -> None:
    verifier = KeyVerifier(store, ttl_seconds=300)
    key, secret = store.keys.create("web", ["read"])
    assert verifier.verify(secret) == key
    store.keys.revoke(key.key_id)

    verifier.forget(key.key_id)

    assert verifier.verify(secret) is None


def test_without_any_key_the_service_is_open(client: TestClient) -> None:
    assert client.get("/recommendations/alice0").status_code == 200
    assert client.post("/events", json={"user_id": "u", "item_id": "a0"}).status_code == 201
    assert client.get("/models").status_code == 200


def test_the_first_key_closes_an_open_service(client: TestClient) -> None:
    created = client.post("/keys", json={"name": "ops", "scopes": ["admin"]})
    assert created.status_code == 201
    secret = created.json()["secret"]

    assert client.get("/recommendations/alice0").status_code == 401
    assert client.get("/recommendations/alice0",
                      headers={"Authorization": f"Bearer {secret}"}).status_code == 200


def test_revoking_the_last_key_does_not_open_the_service(secured: TestClient, store: Store,
                                                        keys: Keys) -> None:
    for key in store.keys.list():
        store.keys.revoke(key.key_id)

    assert secured.get("/recommendations/alice0").status_code == 401
    assert secured.get("/recommendations/alice0", headers=keys.headers("admin")).status_code \
        == 401


def test_open_access_is_announced_loudly_at_startup(
        make_client: MakeClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tailored.serving"):
        make_client()

    warnings = [r.getMessage() for r in caplog.records if r.name == "tailored.serving"]
    assert any("OPEN ACCESS" in w and "tailored keys create" in w for w in warnings)


def test_with_keys_startup_says_nothing_about_open_access(
        keys: Keys, make_client: MakeClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tailored.serving"):
        make_client()

    assert not any("OPEN ACCESS" in r.getMessage() for r in caplog.records)


def test_open_access_beyond_loopback_is_refused_at_startup(
        store: Store, settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"host": "0.0.0.0"}))

    with pytest.raises(OpenAccessRefusedError, match="tailored keys create"), TestClient(app):
        pass
    with pytest.raises(OpenAccessRefusedError, match="TAILORED_ALLOW_OPEN_ACCESS"):
        refuse_open_access(settings.model_copy(update={"host": "0.0.0.0"}))


def test_open_access_beyond_loopback_when_explicitly_allowed(
        store: Store, settings: Settings, make_client: MakeClient,
        caplog: pytest.LogCaptureFixture) -> None:
    allowed = settings.model_copy(update={"host": "0.0.0.0", "allow_open_access": True})

    with caplog.at_level(logging.WARNING, logger="tailored.serving"):
        client = make_client(allowed)

    assert client.get("/health").status_code == 200
    assert any("OPEN ACCESS" in r.getMessage() and "0.0.0.0" in r.getMessage()
               for r in caplog.records)


def test_with_keys_any_host_may_serve(keys: Keys, settings: Settings,
                                      make_client: MakeClient) -> None:
    client = make_client(settings.model_copy(update={"host": "0.0.0.0"}))

    assert client.get("/models").status_code == 401
    assert client.get("/models", headers=keys.headers("read")).status_code == 200


@pytest.mark.parametrize(("host", "allowed", "refused"), [
    ("127.0.0.1", False, False), ("localhost", False, False), ("::1", False, False),
    ("127.0.0.2", False, False), ("0.0.0.0", False, True), ("10.1.2.3", False, True),
    ("0.0.0.0", True, False),
])
def test_where_open_access_is_allowed(settings: Settings, host: str, allowed: bool,
                                      refused: bool) -> None:
    chosen = settings.model_copy(update={"host": host, "allow_open_access": allowed})
    if refused:
        with pytest.raises(OpenAccessRefusedError):
            check_open_access(chosen, keys_exist=False)
    else:
        assert check_open_access(chosen, keys_exist=False) == open_access_warning(
            host, settings.port)
    assert check_open_access(chosen, keys_exist=True) is None


def test_the_docs_describe_the_keys(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()

    assert {"ApiKeyHeader", "BearerKey"} <= set(spec["components"]["securitySchemes"])
    assert "tailored keys create" in spec["info"]["description"]
    recommend = spec["paths"]["/recommendations/{user_id}"]["get"]
    assert {"401", "403"} <= set(recommend["responses"])
    assert {"ApiKeyHeader": []} in recommend["security"]
    assert "security" not in spec["paths"]["/health"]["get"]
