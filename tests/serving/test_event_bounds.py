"""POST /events refuses what would poison training: huge, negative or text values, unknown
event types, impossible times and oversize contexts, each with the field named."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tailored.settings import Settings
from tailored.store import Store

from .conftest import ClientFactory

EVENT = {"user_id": "hana", "item_id": "a0", "timestamp": "2026-05-01T12:00:00Z"}


def refused(client: TestClient, store: Store, body: Any) -> list[dict[str, Any]]:
    """The 422's errors, once checked that nothing was stored."""
    before = store.events.count()
    response = client.post("/events", json=body)
    assert response.status_code == 422, response.text
    assert store.events.count() == before
    return list(response.json()["detail"])


def only_error(errors: list[dict[str, Any]]) -> tuple[list[Any], str]:
    [error] = errors
    return error["loc"], error["msg"]


@pytest.mark.parametrize(("fields", "said"), [
    ({"value": 1e308}, "value 1e+308 is out of range: at most 1,000,000 either side of 0"),
    ({"value": -1e7}, "value -10000000.0 is out of range"),
    ({"value": True}, "should be a number such as 4.5, not true"),
    ({"value": "4.5"}, "should be a number such as 4.5, not the text '4.5' (send numbers "
                       "without quotes)"),
    ({"event_type": "rating", "value": -1}, "a rating is at least 0, got -1.0"),
    ({"event_type": "rating"}, "a rating needs a value, the rating itself (such as 4.5)"),
])
def test_bad_values_are_refused_naming_the_value(client: TestClient, store: Store,
                                                 fields: dict[str, Any], said: str) -> None:
    location, message = only_error(refused(client, store, EVENT | fields))

    assert location == ["body", "event", "value"]
    assert message.startswith(said)


@pytest.mark.parametrize(("timestamp", "bound"), [
    ("9999-01-01T00:00:00Z", "the latest event time accepted is 1 day past now"),
    ("0001-01-01T00:00:00Z", "before 1970-01-01, the earliest event time accepted"),
])
def test_timestamps_out_of_bounds_are_refused_naming_the_bound(
        client: TestClient, store: Store, timestamp: str, bound: str) -> None:
    location, message = only_error(refused(client, store, EVENT | {"timestamp": timestamp}))

    assert location == ["body", "event", "timestamp"]
    assert bound in message


@pytest.mark.parametrize(("context", "said"), [
    ({f"k{n}": n for n in range(200_000)}, "context has 200000 keys; at most 64 are allowed"),
    ({"k" * 65: 1}, "must be 1 to 64 characters"),
    ({"page": "x" * 20_000_000}, "context value of 'page' is 20,000,000 characters long; "
                                 "text values are at most 1,024"),
])
def test_oversize_contexts_are_refused(client: TestClient, store: Store, settings: Settings,
                                       context: dict[str, Any], said: str) -> None:
    assert len(json.dumps(context)) < settings.max_body_bytes  # the body limit lets it in

    location, message = only_error(refused(client, store, EVENT | {"context": context}))

    assert location == ["body", "event", "context"]
    assert said in message


def test_an_unknown_event_type_is_refused_listing_the_known_ones(client: TestClient,
                                                                 store: Store) -> None:
    location, message = only_error(refused(client, store, EVENT | {"event_type": "purchse"}))

    assert location == ["body", "event", "event_type"]
    assert message.startswith("unknown event type 'purchse' (did you mean 'purchase'?); the "
                              "event types are view, click, add_to_cart, purchase, rating, "
                              "impression; to add one, give it a weight in "
                              "event_weights.custom")
    assert "TAILORED_EVENT_WEIGHTS__CUSTOM" in message


def test_each_unknown_type_in_a_batch_is_located_and_nothing_stored(
        client: TestClient, store: Store) -> None:
    batch = [EVENT | {"event_type": "view"}, EVENT | {"event_type": "wishlist"},
             EVENT | {"event_type": "click"}, EVENT | {"event_type": "like"}]

    errors = refused(client, store, batch)

    assert [error["loc"] for error in errors] == [["body", "batch", 1, "event_type"],
                                                  ["body", "batch", 3, "event_type"]]


def test_a_custom_event_type_in_the_settings_is_accepted(
        settings: Settings, store: Store, make_client: ClientFactory) -> None:
    weights = settings.event_weights.model_copy(update={"custom": {"wishlist": 3.0}})
    client = make_client(settings.model_copy(update={"event_weights": weights}))

    response = client.post("/events", json=EVENT | {"event_type": "wishlist"})

    assert response.status_code == 201
    assert store.events.frame(user_ids=["hana"])["event_type"].tolist() == ["wishlist"]


def test_events_at_the_bounds_are_stored(client: TestClient, store: Store) -> None:
    batch = [EVENT | {"event_type": "rating", "value": 0, "item_id": "a1"},
             EVENT | {"event_type": "purchase", "value": 1_000_000, "item_id": "a2"},
             EVENT | {"timestamp": "1970-01-01T00:00:00Z", "item_id": "a3"},
             EVENT | {"context": {f"k{n}": "x" * 1_024 for n in range(64)}, "item_id": "a4"}]

    response = client.post("/events", json=batch)

    assert response.status_code == 201, response.text
    assert response.json()["stored"] == 4
