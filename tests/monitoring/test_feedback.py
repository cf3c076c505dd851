"""Labelled impressions for the ranker's next training."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tailored.monitoring.feedback import FEEDBACK_COLUMNS, feedback_from_store
from tailored.schema import Event, User
from tailored.store import Served, open_store

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_impressions_become_labels(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    store.served.record([
        Served("r1", "u1", T0, "als", 2, "exp1", "B", ["i1", "i2", "i3"], [0.9, 0.5, 0.1],
               [1.0, 1.0, 1.0], {"device": "mobile"}),
        Served("r2", "u2", T0 + timedelta(minutes=1), "popular", 1, None, None, ["i1"],
               [3.0], [1.0], {})])

    def event(user: str, item: str, kind: str, rid: str, position: int,
              value: float | None = None) -> Event:
        return Event(user_id=user, item_id=item, event_type=kind, value=value,
                     timestamp=T0 + timedelta(minutes=2),
                     context={"recommendation_id": rid, "position": position})

    store.events.add([
        event("u1", "i1", "impression", "r1", 1), event("u1", "i2", "impression", "r1", 2),
        event("u1", "i3", "impression", "r1", 3), event("u1", "i2", "click", "r1", 2),
        event("u1", "i2", "purchase", "r1", 2, 19.99),
        event("u2", "i1", "impression", "r2", 1),
        Event(user_id="u2", item_id="i1", event_type="click", timestamp=T0),  # no id
    ])
    labels = feedback_from_store(store)
    assert tuple(labels.columns) == FEEDBACK_COLUMNS
    assert labels[["recommendation_id", "item_id", "label", "purchased"]].values.tolist() == [
        ["r1", "i1", 0, 0], ["r1", "i2", 1, 1], ["r1", "i3", 0, 0], ["r2", "i1", 0, 0]]
    first = labels.iloc[1]
    assert (first.user_id, first.position, first.score, first.model_version,
            first.experiment_id, first.variant) == ("u1", 2.0, 0.5, 2, "exp1", "B")
    assert first.context == {"device": "mobile"}
    assert feedback_from_store(store, since=T0 + timedelta(minutes=1))[
        "recommendation_id"].tolist() == ["r2"]
    store.users.upsert([User(user_id="u1", consent=False)])  # u1 withdraws consent
    assert set(feedback_from_store(store)["user_id"]) == {"u2"}
    store.close()


def test_no_impressions_no_labels(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    labels = feedback_from_store(store)
    assert labels.empty and tuple(labels.columns) == FEEDBACK_COLUMNS
    store.close()
