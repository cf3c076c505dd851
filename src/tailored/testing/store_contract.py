"""The contract every store backend keeps. Subclass and provide a ``store`` fixture."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tailored.errors import ModelNotFoundError
from tailored.schema import Event, Item, User
from tailored.store import EVENT_COLUMNS, ITEM_COLUMNS, USER_COLUMNS, Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _event(n: int, user: str = "u1", item: str = "i1", **fields: object) -> Event:
    return Event(event_id=f"e{n}", user_id=user, item_id=item,
                 timestamp=T0.replace(minute=n % 60), **fields)  # type: ignore[arg-type]


class StoreContract:
    """Shared tests for :class:`~tailored.store.Store` backends."""

    def test_events_round_trip(self, store: Store) -> None:
        event = _event(1, event_type="purchase", value=12.5, session_id="s1",
                       context={"device": "mobile", "hour": 9})
        assert store.events.add([event]) == 1
        frame = store.events.frame()
        assert tuple(frame.columns) == EVENT_COLUMNS
        row = frame.iloc[0]
        assert (row.event_id, row.user_id, row.item_id, row.event_type, row.value,
                row.session_id) == ("e1", "u1", "i1", "purchase", 12.5, "s1")
        assert row.timestamp == event.timestamp
        assert row.context == {"device": "mobile", "hour": 9}

    def test_same_event_id_is_stored_once(self, store: Store) -> None:
        assert store.events.add([_event(1), _event(2)]) == 2
        assert store.events.add([_event(2), _event(3)]) == 1
        assert store.events.count() == 3

    def test_events_with_and_without_context_or_session(self, store: Store) -> None:
        store.events.add([_event(1, context={"device": "mobile"}), _event(2),
                          _event(3, session_id="s")])
        frame = store.events.frame()
        assert frame["context"].tolist() == [{"device": "mobile"}, {}, {}]
        assert frame["session_id"].tolist() == [None, None, "s"]

    def test_events_of_some_users_oldest_first(self, store: Store) -> None:
        store.events.add([_event(5, user="u1"), _event(3, user="u2"), _event(1, user="u1")])
        frame = store.events.frame(user_ids=["u1"])
        assert frame["event_id"].tolist() == ["e1", "e5"]

    def test_items_upsert_and_get(self, store: Store) -> None:
        store.items.upsert([Item(item_id="i1", title="Shoe", categories=["shoes"],
                                 attributes={"price": 50.0}, created_at=T0)])
        store.items.upsert([Item(item_id="i1", title="Shoe v2", available=False)])
        item = store.items.get("i1")
        assert item is not None and item.title == "Shoe v2" and not item.available
        assert store.items.get("nope") is None
        assert tuple(store.items.frame().columns) == ITEM_COLUMNS
        assert store.items.count() == 1
        assert store.items.unavailable() == ["i1"]

    def test_users_upsert_and_get(self, store: Store) -> None:
        store.users.upsert([User(user_id="u1", attributes={"location": "Berlin"})])
        user = store.users.get("u1")
        assert user is not None and user.attributes == {"location": "Berlin"} and user.consent
        assert tuple(store.users.frame().columns) == USER_COLUMNS

    def test_registry_promotes_one_version_at_a_time(self, store: Store) -> None:
        first = store.models.register("als", "/models/1", {"ndcg@10": 0.1})
        second = store.models.register("als", "/models/2", {"ndcg@10": 0.2})
        assert store.models.active() is None
        store.models.promote(first.version)
        store.models.promote(second.version)
        active = store.models.active()
        assert active is not None and active.version == second.version
        assert active.metrics == {"ndcg@10": 0.2}
        assert [v.active for v in store.models.list()] == [False, True]
        store.models.promote(first.version)  # rollback
        rolled_back = store.models.active()
        assert rolled_back is not None and rolled_back.version == first.version

    def test_promoting_an_unknown_version_fails_clearly(self, store: Store) -> None:
        with pytest.raises(ModelNotFoundError, match="version 99"):
            store.models.promote(99)
