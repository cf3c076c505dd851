"""What runs before every route: strangers are refused before their body is read, the
open service answers only this machine, and rate limits hold per caller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient

from tailored.jobs import TrainedModel
from tailored.serving import create_app
from tailored.serving.rate_limit import FileBuckets, MemoryBuckets
from tailored.settings import Settings

from .conftest import ClientFactory, Keys

EVENT = {"user_id": "u1", "item_id": "i1", "timestamp": "2024-05-01T12:00:00Z"}


def _request(app: Any, method: str, path: str, headers: dict[str, str],
             body_size: int) -> tuple[int, bool]:
    """Call the app as a server would, with a body of ``body_size`` bytes declared; the
    status and whether any of the body was read."""
    read = False
    answered: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        read = True
        return {"type": "http.request", "body": b"x" * body_size, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answered.append(message["status"])

    raw = [(k.lower().encode(), v.encode()) for k, v in
           {**headers, "content-length": str(body_size), "host": "127.0.0.1"}.items()]
    scope = {"type": "http", "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode(), "query_string": b"", "headers": raw,
             "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5000), "scheme": "http",
             "root_path": "", "state": {}}
    anyio.run(app, scope, receive, send)
    return answered[0], read


def test_with_keys_a_body_without_a_key_is_refused_unread(secured: TestClient,
                                                          keys: Keys) -> None:
    app = secured.app

    status, read = _request(app, "POST", "/events", {"content-type": "application/json"},
                            30 * 1024 * 1024)
    forged, forged_read = _request(app, "POST", "/events", {
        "content-type": "application/json", "authorization": "Bearer tk_000000000000_x"},
        30 * 1024 * 1024)
    with_key, key_read = _request(app, "POST", "/events", {
        "content-type": "application/json", **keys.headers("write")}, 10)

    assert (status, read) == (401, False)
    assert (forged, forged_read) == (401, False)
    assert key_read and with_key == 422  # read, and refused for what it holds


def test_the_open_service_answers_this_machine(client: TestClient) -> None:
    assert client.get("/recommendations/alice0").status_code == 200

    elsewhere = TestClient(client.app)  # host "testserver": not an address of this machine
    refused = elsewhere.get("/recommendations/alice0")

    assert refused.status_code == 403 and "tailored keys create" in refused.json()["detail"]


@pytest.mark.parametrize("headers", [
    {"host": "evil.example"},                       # DNS rebinding: the page's own name
    {"host": "evil.example:8000"},
    {"origin": "http://evil.example"},              # a page elsewhere, in a local browser
    {"origin": "null"},                             # a sandboxed page or a file
])
def test_the_open_service_refuses_other_hosts_and_origins(client: TestClient,
                                                          headers: dict[str, str]) -> None:
    response = client.get("/recommendations/alice0", headers=headers)

    assert response.status_code == 403, response.text


def test_a_page_on_this_machine_may_use_the_open_service(client: TestClient) -> None:
    response = client.get("/recommendations/alice0",
                          headers={"origin": "http://localhost:3000", "host": "localhost:8000"})

    assert response.status_code == 200


def test_the_open_service_takes_changes_only_as_json(client: TestClient) -> None:
    form = client.post("/models/1/promote", content="a=1",
                       headers={"content-type": "application/x-www-form-urlencoded"})
    text = client.post("/events", content='{"user_id": "u1"}',
                       headers={"content-type": "text/plain"})
    bare = client.post("/models/1/promote")  # no body, no type: a script on this machine

    assert form.status_code == 415 and text.status_code == 415
    assert bare.status_code == 200


def test_allowed_open_access_serves_other_hosts_but_not_other_origins(
        trained: TrainedModel, settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"allow_open_access": True}))
    with TestClient(app) as proxied:  # behind a proxy: host "testserver"
        assert proxied.get("/recommendations/alice0").status_code == 200
        cross = proxied.get("/recommendations/alice0",
                            headers={"origin": "http://evil.example"})
        same = proxied.get("/recommendations/alice0", headers={"origin": "http://testserver"})

    assert cross.status_code == 403 and same.status_code == 200


def test_rate_limits_answer_429_with_retry_after_per_caller(
        trained: TrainedModel, keys: Keys, settings: Settings,
        make_client: ClientFactory) -> None:
    client = make_client(settings.model_copy(update={
        "rate_limit_per_second": 0.5, "rate_limit_burst_seconds": 6.0,
        "key_cache_seconds": 0.0}))

    statuses = [client.get("/recommendations/alice0", headers=keys.headers("read")).status_code
                for _ in range(4)]
    limited = client.get("/recommendations/alice0", headers=keys.headers("read"))
    other_key = client.get("/recommendations/alice0", headers=keys.headers("write"))

    assert statuses == [200, 200, 200, 429]
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert other_key.status_code == 200


def test_rate_limits_count_unidentified_callers_by_address(
        trained: TrainedModel, keys: Keys, settings: Settings,
        make_client: ClientFactory) -> None:
    client = make_client(settings.model_copy(update={
        "rate_limit_per_user_per_second": 0.5, "rate_limit_burst_seconds": 4.0}))
    bad = {"Authorization": "Bearer tk_000000000000_guess"}

    statuses = [client.get("/recommendations/alice0", headers=bad).status_code
                for _ in range(3)]

    assert statuses == [401, 401, 429]  # guessing keys is rate limited too


def test_memory_buckets_refill_at_the_rate() -> None:
    buckets = MemoryBuckets(rate=2.0, burst=2)

    assert [buckets.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert buckets.take("a", now=0.5) == 0.0  # one token back after half a second
    assert buckets.take("a", now=0.5) == 0.5


def test_file_buckets_are_shared_by_the_workers_of_a_host(tmp_path: Path) -> None:
    one = FileBuckets(tmp_path / "buckets.sqlite3", rate=1.0, burst=3)
    two = FileBuckets(tmp_path / "buckets.sqlite3", rate=1.0, burst=3)

    taken = [one.take("key", now=100.0), two.take("key", now=100.0),
             one.take("key", now=100.0), two.take("key", now=100.0)]

    assert taken == [0.0, 0.0, 0.0, 1.0]
    assert one.take("other", now=100.0) == 0.0
    assert two.take("key", now=101.0) == 0.0


def test_workers_lease_tokens_and_never_exceed_the_bucket_by_more_than_a_lease_each(
        tmp_path: Path) -> None:
    one = FileBuckets(tmp_path / "buckets.sqlite3", rate=100.0, burst=200)
    two = FileBuckets(tmp_path / "buckets.sqlite3", rate=100.0, burst=200)
    assert one.lease == 5  # a twentieth of a second's worth

    allowed = sum(worker.take("key", now=100.0) == 0.0
                  for _ in range(200) for worker in (one, two))

    assert 200 <= allowed <= 200 + 2 * one.lease
    assert one.take_cached("other") is None  # nothing leased for a caller not yet seen
