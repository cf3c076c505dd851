"""CORS for pages on listed origins: preflights answered without a credential, answers
readable by listed origins only, nothing by default, and the open service still refusing
every origin that is neither this machine's nor listed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from tailored.jobs import TrainedModel
from tailored.settings import Settings

from .conftest import ClientFactory, Keys

SHOP = "https://shop.example"
ELSEWHERE = "https://evil.example"


def _preflight(client: TestClient, origin: str, method: str = "GET",
               headers: str = "authorization") -> dict[str, str]:
    response = client.options("/recommendations/alice0", headers={
        "origin": origin, "access-control-request-method": method,
        "access-control-request-headers": headers})
    return {"status": str(response.status_code), **response.headers}


@pytest.fixture
def shop_client(trained: TrainedModel, keys: Keys, settings: Settings,
                make_client: ClientFactory) -> TestClient:
    """An app with keys, whose settings list the shop's origin for CORS."""
    return make_client(settings.model_copy(update={"cors_allowed_origins": [SHOP]}))


def test_by_default_no_cors_headers_are_sent(secured: TestClient, keys: Keys) -> None:
    answer = secured.get("/recommendations/alice0",
                         headers={"origin": SHOP, **keys.headers("read")})
    preflight = _preflight(secured, SHOP)

    assert answer.status_code == 200
    assert not [name for name in answer.headers if name.startswith("access-control-")]
    assert preflight["status"] == "405"  # no CORS: the router knows no OPTIONS route
    assert "access-control-allow-origin" not in preflight


def test_a_preflight_from_a_listed_origin_is_answered_without_a_credential(
        shop_client: TestClient) -> None:
    for method, headers in (("GET", "authorization"),
                            ("POST", "authorization,content-type")):
        preflight = _preflight(shop_client, SHOP, method, headers)

        assert preflight["status"] == "200", preflight
        assert preflight["access-control-allow-origin"] == SHOP
        assert {"GET", "POST"} <= set(preflight["access-control-allow-methods"].split(", "))
        allowed = preflight["access-control-allow-headers"].lower().split(", ")
        assert {"authorization", "content-type"} <= set(allowed)


@pytest.mark.parametrize(("origin", "method", "headers"), [
    (ELSEWHERE, "GET", "authorization"),          # an origin not listed
    (SHOP + ":8443", "GET", "authorization"),     # another port is another origin
    (SHOP, "DELETE", "authorization"),            # a method a page does not need
    (SHOP, "GET", "x-api-key"),                   # a page sends user tokens, not keys
])
def test_other_preflights_are_refused(shop_client: TestClient, origin: str, method: str,
                                      headers: str) -> None:
    preflight = _preflight(shop_client, origin, method, headers)

    assert preflight["status"] == "400", preflight
    if origin != SHOP:
        assert "access-control-allow-origin" not in preflight


def test_answers_are_readable_by_listed_origins_only(shop_client: TestClient,
                                                     keys: Keys) -> None:
    read = keys.headers("read")
    listed = shop_client.get("/recommendations/alice0", headers={"origin": SHOP, **read})
    other = shop_client.get("/recommendations/alice0", headers={"origin": ELSEWHERE, **read})
    no_origin = shop_client.get("/recommendations/alice0", headers=read)

    assert listed.status_code == other.status_code == no_origin.status_code == 200
    assert listed.headers["access-control-allow-origin"] == SHOP
    assert "origin" in listed.headers["vary"].lower()
    assert "access-control-allow-origin" not in other.headers
    assert "access-control-allow-origin" not in no_origin.headers
    assert "access-control-allow-credentials" not in listed.headers  # no cookies, ever


def test_a_listed_page_can_read_why_it_was_refused(shop_client: TestClient) -> None:
    """The guard's 401 (before any route) carries the CORS headers, so the client can show
    the service's `detail` instead of an opaque network error."""
    refused = shop_client.post("/events", json={"user_id": "u1", "item_id": "i1"},
                               headers={"origin": SHOP})

    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == SHOP
    assert "retry-after" in refused.headers["access-control-expose-headers"].lower()
    assert "API key" in refused.json()["detail"]


def test_the_open_service_trusts_listed_origins_and_refuses_the_others(
        trained: TrainedModel, settings: Settings, make_client: ClientFactory) -> None:
    client = make_client(settings.model_copy(update={"cors_allowed_origins": [SHOP]}))

    listed = client.get("/recommendations/alice0", headers={"origin": SHOP})
    foreign = client.get("/recommendations/alice0", headers={"origin": ELSEWHERE})
    loopback = client.get("/recommendations/alice0", headers={
        "origin": "http://localhost:3000", "host": "localhost:8000"})
    foreign_post = client.post("/events", json={"user_id": "u1", "item_id": "i1"},
                               headers={"origin": ELSEWHERE})

    assert listed.status_code == 200 and listed.headers["access-control-allow-origin"] == SHOP
    assert foreign.status_code == 403 and "other origins" in foreign.json()["detail"]
    assert "access-control-allow-origin" not in foreign.headers
    assert loopback.status_code == 200
    assert foreign_post.status_code == 403


def test_the_open_service_still_refuses_foreign_origins_when_none_is_listed(
        client: TestClient) -> None:
    assert client.get("/recommendations/alice0",
                      headers={"origin": SHOP}).status_code == 403


@pytest.mark.parametrize("origins", [
    [SHOP], ["http://localhost:3000", "http://127.0.0.1:8080", "http://[::1]:3000"], []])
def test_exact_origins_are_accepted(origins: list[str]) -> None:
    assert Settings(cors_allowed_origins=origins).cors_allowed_origins == origins


@pytest.mark.parametrize(("origin", "fix"), [
    ("*", "not an origin"),
    ("https://*.example", "not an origin"),
    ("shop.example", "not an origin"),
    ("ftp://shop.example", "not an origin"),
    ("https://user@shop.example", "not an origin"),
    ("https://shop.example/", "'https://shop.example'"),
    ("https://shop.example/page", "'https://shop.example'"),
    ("https://Shop.Example", "'https://shop.example'"),
    ("https://shop.example:443", "'https://shop.example'"),
    ("https://shop.example:99999", "not an origin"),
])
def test_anything_but_an_exact_origin_is_refused_with_the_fix(origin: str, fix: str) -> None:
    with pytest.raises(ValidationError, match="cors_allowed_origins") as raised:
        Settings(cors_allowed_origins=[origin])

    assert fix in str(raised.value)


def test_origins_come_from_the_environment_as_a_json_list(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILORED_CORS_ALLOWED_ORIGINS", f'["{SHOP}", "http://localhost:3000"]')

    assert Settings().cors_allowed_origins == [SHOP, "http://localhost:3000"]
