"""POST /events: one event or a batch, durable on acknowledgement, idempotent, validated."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tailored.settings import Settings
from tailored.store import Store

from .conftest import Keys


def stored_events(store: Store, user_id: str) -> list[dict[str, Any]]:
    frame = store.events.frame(user_ids=[user_id])
    return [{str(key): value for key, value in row.items()} for row in frame.to_dict("records")]


def test_one_event_is_stored_before_the_answer(client: TestClient, store: Store) -> None:
    response = client.post("/events", json={
        "event_id": "e-1", "user_id": "carol", "item_id": "a1", "event_type": "purchase",
        "timestamp": "2024-05-01T12:00:00Z", "context": {"device": "mobile"}})

    assert response.status_code == 201
    assert response.json() == {"received": 1, "stored": 1, "duplicates": 0, "discarded": 0}
    [event] = stored_events(store, "carol")  # read through another connection
    assert (event["event_id"], event["item_id"], event["event_type"]) == ("e-1", "a1", "purchase")
    assert event["context"] == {"device": "mobile"}


def test_a_batch_is_stored_whole(client: TestClient, store: Store) -> None:
    batch = [{"user_id": "dave", "item_id": f"b{j}", "event_type": "rating", "value": j}
             for j in range(5)]

    response = client.post("/events", json=batch)

    assert response.status_code == 201
    assert response.json() == {"received": 5, "stored": 5, "duplicates": 0, "discarded": 0}
    assert sorted(e["item_id"] for e in stored_events(store, "dave")) == [f"b{j}" for j in
                                                                         range(5)]


def test_reposting_is_idempotent_and_counts_duplicates(client: TestClient, store: Store) -> None:
    first = [{"event_id": f"e-{j}", "user_id": "erin", "item_id": "a0"} for j in range(3)]
    client.post("/events", json=first)

    again = client.post("/events", json=first)
    overlapping = client.post("/events", json=[*first[1:], {"event_id": "e-3",
                                                            "user_id": "erin", "item_id": "a1"}])

    assert again.status_code == 200
    assert again.json() == {"received": 3, "stored": 0, "duplicates": 3, "discarded": 0}
    assert overlapping.status_code == 201
    assert overlapping.json() == {"received": 3, "stored": 1, "duplicates": 2, "discarded": 0}
    assert len(stored_events(store, "erin")) == 4


def test_events_without_ids_are_deduplicated_by_content(client: TestClient) -> None:
    event = {"user_id": "frank", "item_id": "a2", "timestamp": "2024-05-01T12:00:00Z"}

    response = client.post("/events", json=[event, event])

    assert response.json() == {"received": 2, "stored": 1, "duplicates": 1, "discarded": 0}


@pytest.mark.parametrize(("body", "location"), [
    ({"item_id": "a0"}, ["body", "event", "user_id"]),
    ({"user_id": "u", "item_id": "a0", "value": "lots"}, ["body", "event", "value"]),
    ([{"user_id": "u", "item_id": "a0"}, {"user_id": "u"}], ["body", "batch", 1, "item_id"]),
    ({"user_id": "u", "item_id": "a0", "colour": "red"}, ["body", "event", "colour"]),
    ({"user_id": "u", "item_id": "a0", "event_type": "no spaces"},
     ["body", "event", "event_type"]),
    ({"user_id": "u", "item_id": "a0", "timestamp": "yesterday"},
     ["body", "event", "timestamp"]),
    ([], ["body", "batch"]),
    ("just a string", ["body", "event"]),
])
def test_malformed_events_are_refused_with_the_field_named(
        client: TestClient, store: Store, body: Any, location: list[Any]) -> None:
    before = store.events.count()

    response = client.post("/events", json=body)

    assert response.status_code == 422
    assert location in [error["loc"] for error in response.json()["detail"]]
    assert store.events.count() == before


def test_a_batch_with_one_bad_event_stores_nothing(client: TestClient, store: Store) -> None:
    before = store.events.count()

    response = client.post("/events", json=[{"user_id": "u", "item_id": "a0"},
                                            {"user_id": "u", "item_id": "a1", "value": "x"}])

    assert response.status_code == 422
    assert store.events.count() == before


def test_a_body_that_is_not_json_is_refused(client: TestClient) -> None:
    response = client.post("/events", content=b'{"user_id": "u", "item_id": ',
                           headers={"content-type": "application/json"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity"])
def test_a_non_finite_value_is_refused_not_crashed_on(client: TestClient, number: bytes) -> None:
    # Python's JSON parser accepts these tokens; JSON (and the 422 answer) cannot hold them.
    response = client.post("/events", content=b'{"user_id": "u", "item_id": "a0", "value": '
                           + number + b"}", headers={"content-type": "application/json"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "event", "value"]
    assert "finite" in response.json()["detail"][0]["msg"]


def test_a_body_not_sent_as_json_is_refused_with_a_hint(client: TestClient) -> None:
    response = client.post("/events", content=b'{"user_id": "u", "item_id": "a0"}',
                           headers={"content-type": "text/plain"})

    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]


def test_a_missing_body_is_refused(client: TestClient) -> None:
    response = client.post("/events")

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]


def test_an_oversize_batch_is_refused_whole(
        trained: object, settings: Settings, store: Store,
        make_client: Callable[..., TestClient]) -> None:
    small = make_client(settings.model_copy(update={"max_batch_events": 3}))
    before = store.events.count()
    batch = [{"user_id": "gina", "item_id": f"a{j}"} for j in range(4)]

    refused = small.post("/events", json=batch)
    accepted = small.post("/events", json=batch[:3])

    assert refused.status_code == 413
    assert "at most 3 events" in refused.json()["detail"]
    assert accepted.status_code == 201
    assert store.events.count() == before + 3


def test_events_need_a_write_key(secured: TestClient, keys: Keys, store: Store) -> None:
    before = store.events.count()
    event = {"user_id": "u", "item_id": "a0"}

    assert secured.post("/events", json=event).status_code == 401
    assert secured.post("/events", json=event, headers=keys.headers("read")).status_code == 403
    assert secured.post("/events", json=event, headers=keys.headers("write")).status_code == 201
    assert store.events.count() == before + 1


def test_a_body_over_the_byte_limit_is_413(trained: object, settings: Settings,
                                           make_client: Callable[..., TestClient]) -> None:
    small = make_client(settings.model_copy(update={"max_body_bytes": 2048}))
    batch = [{"user_id": "u", "item_id": f"a{j}"} for j in range(100)]

    declared = small.post("/events", json=batch)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        body = json.dumps(batch).encode()
        for start in range(0, len(body), 500):
            yield body[start:start + 500]

    streamed = small.post("/events", content=chunks(),
                          headers={"content-type": "application/json"})

    for response in (declared, streamed):
        assert response.status_code == 413
        assert "larger than 2,048 bytes" in response.json()["detail"]
    assert small.post("/events", json=batch[:5]).status_code == 201
