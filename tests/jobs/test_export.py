"""A user's export holds everything the store keeps about them, and nothing of others."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tailored.jobs.export import FORMAT, export_user
from tailored.schema import Event, User
from tailored.store import Served, open_store

T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)


def _shop() -> object:
    store = open_store("sqlite://")
    store.users.upsert([User(user_id="alice", attributes={"city": "Berlin"}, consent=True),
                        User(user_id="bob")])
    store.events.add([
        Event(event_id="e1", user_id="alice", item_id="i1", event_type="rating", value=4,
              timestamp=T0, context={"device": "mobile"}),
        Event(event_id="e2", user_id="alice", item_id="i2", event_type="click",
              timestamp=T0.replace(hour=13), session_id="s1"),
        Event(event_id="e3", user_id="bob", item_id="i1", timestamp=T0),
    ])
    store.served.record([
        Served("r1", "alice", T0, "als", 3, "exp1", "b", ["i3", "i4"], [0.9, 0.5],
               [1.0, 0.25], {"device": "mobile"}),
        Served("r2", "bob", T0, "als", 3, item_ids=["i5"], scores=[0.7], propensities=[1.0]),
        Served("r3", None, T0, "als", 3, item_ids=["i6"], scores=[0.1], propensities=[1.0]),
    ])
    return store


def test_the_export_holds_the_profile_events_and_answers_of_the_user() -> None:
    store = _shop()

    document = export_user(store, "alice", now=T0)  # type: ignore[arg-type]

    assert document["format"] == FORMAT and document["user_id"] == "alice"
    assert document["profile"] == {"attributes": {"city": "Berlin"},
                                   "consent": {"personalization": True, "analytics": True}}
    assert [(c["purpose"], c["granted"]) for c in document["consent_history"]] == [
        ("analytics", True), ("personalization", True)]
    assert [e["event_id"] for e in document["events"]] == ["e1", "e2"]
    assert document["events"][0]["value"] == 4 and document["events"][0]["context"] == {
        "device": "mobile"}
    assert document["events"][1]["session_id"] == "s1"
    [answer] = document["recommendations"]
    assert answer["recommendation_id"] == "r1"
    assert answer["model"] == {"name": "als", "version": 3}
    assert answer["experiment"] == {"experiment_id": "exp1", "variant": "b"}
    assert answer["items"] == [
        {"item_id": "i3", "rank": 1, "score": 0.9, "propensity": 1.0},
        {"item_id": "i4", "rank": 2, "score": 0.5, "propensity": 0.25}]
    assert document["counts"] == {"events": 2, "recommendations": 1}
    assert "bob" not in json.dumps(document)  # JSON-ready, and nothing of anyone else


def test_a_user_the_store_does_not_know_gets_an_empty_document() -> None:
    document = export_user(_shop(), "nobody")  # type: ignore[arg-type]

    assert document["profile"] is None and document["events"] == []
    assert document["counts"] == {"events": 0, "recommendations": 0}
