"""The contract every store backend keeps. Subclass and provide a ``store`` fixture:
:class:`StoreContract` for every backend, :class:`ConcurrentUpdateContract` and
:class:`TransactionContract` for those that share a database between processes."""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from tailored.errors import InvalidDataError, ModelNotFoundError, NotFoundError
from tailored.schema import Event, Item, User, by_purpose
from tailored.store import EVENT_COLUMNS, ITEM_COLUMNS, USER_COLUMNS, Served, Store, keyed_hash
from tailored.store.rows import event_rows

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _event(n: int, user: str = "u1", item: str = "i1", **fields: object) -> Event:
    return Event(event_id=f"e{n}", user_id=user, item_id=item,
                 timestamp=T0.replace(minute=n % 60), **fields)  # type: ignore[arg-type]


class StoreContract:
    """Shared tests for :class:`~tailored.store.Store` backends.

    :meth:`stored_id` is how the store under test names a user in reads of everyone
    (``events.frame()``, ``users.without_consent()`` without ``among``, ``served.get``,
    ``served.frame()``) and in an erasure's audit hash: the id as written by default; a
    store that keeps other names (a pseudonymous one) overrides it. A read that names its
    users answers in the ids asked, whatever the store.
    """

    def stored_id(self, user_id: str) -> str:
        """How the store under test names ``user_id`` in reads of everyone."""
        return user_id

    def test_events_round_trip(self, store: Store) -> None:
        event = _event(1, event_type="purchase", value=12.5, session_id="s1",
                       context={"device": "mobile", "hour": 9})
        assert store.events.add([event]) == 1
        frame = store.events.frame()
        assert tuple(frame.columns) == EVENT_COLUMNS
        row = frame.iloc[0]
        assert (row.event_id, row.user_id, row.item_id, row.event_type, row.value,
                row.session_id) == ("e1", self.stored_id("u1"), "i1", "purchase", 12.5, "s1")
        assert row.timestamp == event.timestamp
        assert row.context == {"device": "mobile", "hour": 9}

    def test_same_event_id_is_stored_once(self, store: Store) -> None:
        assert store.events.add([_event(1), _event(2)]) == 2
        assert store.events.add([_event(2), _event(3)]) == 1
        assert store.events.count() == 3

    def test_events_added_as_rows_are_stored_as_one_by_one(self, store: Store) -> None:
        # More than a bulk write's threshold (PostgreSQL's COPY), with every kind of cell:
        # derived ids, values, sessions, context, and an id seen twice.
        events = [Event(user_id=f"u{n % 7}", item_id=f"i{n % 11}", event_type="rating",
                        value=n % 5, timestamp=T0 + timedelta(seconds=n),
                        session_id=f"s{n}" if n % 3 else None,
                        context={"device": "mobile"} if n % 4 == 0 else {})
                  for n in range(2_500)]
        rows = event_rows(events, rederive=True)
        assert rows.column("event_id").null_count == len(events)
        assert store.events.add_rows(pa.concat_tables([rows, rows.slice(0, 10)])) == 2_500
        assert store.events.add(events[:10]) == 0  # the ids derived are the events' own
        frame = store.events.frame()
        assert frame["event_id"].tolist() == [
            self.stored_event_id(event) for event in events]
        assert frame["value"].tolist() == [float(n % 5) for n in range(2_500)]
        assert frame["context"].tolist()[:2] == [{"device": "mobile"}, {}]
        assert frame["session_id"].tolist()[:2] == [None, "s1"]
        assert frame["timestamp"].tolist()[-1] == events[-1].timestamp

    def test_a_bulk_load_stores_each_event_once_and_reads_by_user_after(self, store: Store
                                                                        ) -> None:
        events = [_event(n, user=f"u{n % 3}") for n in range(1_200)]
        with store.transaction() as transaction, transaction.events.loading() as load:
            added = sum(transaction.events.add_rows(event_rows(events[start:start + 600]))
                        for start in (0, 600, 500))  # the last chunk repeats 100 events
        assert added - load.repeated == 1_200  # what is new, on every backend
        assert store.events.count() == 1_200
        assert sorted(store.events.frame(user_ids=["u1"])["event_id"]) == sorted(
            f"e{n}" for n in range(1, 1_200, 3))
        with store.transaction() as transaction, transaction.events.loading():
            transaction.events.add_rows(event_rows([_event(5_000)]))  # into a full table
        assert store.events.count() == 1_201

    def test_a_bulk_load_keeps_the_first_event_of_an_id(self, store: Store) -> None:
        first = [_event(n, item="first") for n in range(600)]
        with store.transaction() as transaction, transaction.events.loading() as load:
            added = transaction.events.add_rows(event_rows(first))
            added += transaction.events.add_rows(event_rows([_event(7, item="later")]))
        assert added - load.repeated == 600
        assert set(store.events.frame()["item_id"]) == {"first"}

    def test_a_failed_bulk_load_leaves_nothing(self, store: Store) -> None:
        with pytest.raises(RuntimeError, match="stopped"), store.transaction() as transaction, \
                transaction.events.loading():
            transaction.events.add_rows(event_rows([_event(n) for n in range(600)]))
            raise RuntimeError("stopped")
        assert store.events.count() == 0
        store.events.add([_event(1)])
        assert store.events.frame(user_ids=["u1"])["event_id"].tolist() == ["e1"]

    def test_events_of_consenting_users_only(self, store: Store) -> None:
        store.users.upsert([User(user_id="no", consent=by_purpose(False)),
                            User(user_id="yes")])
        store.events.add([_event(1, user="no"), _event(2, user="yes"), _event(3, user="new")])
        frame = store.events.frame(consenting=True)
        assert frame["event_id"].tolist() == ["e2", "e3"]
        assert store.events.frame(user_ids=["no", "new"], consenting=True)[
            "event_id"].tolist() == ["e3"]

    def test_vacuum_after_a_bulk_write_keeps_every_event(self, store: Store) -> None:
        store.events.add([_event(1), _event(2)])
        store.events.vacuum()
        assert store.events.count() == 2

    def stored_event_id(self, event: Event) -> str:
        """The id the store keeps for an event sent without one."""
        return event.content_id()

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

    def test_titles_of_many_items_in_one_read(self, store: Store) -> None:
        store.items.upsert([Item(item_id=f"i{n}", title=f"Item {n}" if n % 2 else "")
                            for n in range(1200)])
        titles = store.items.titles([f"i{n}" for n in range(1200)] + ["nope", "i1"])
        assert titles == {f"i{n}": f"Item {n}" for n in range(1, 1200, 2)}

    def test_users_without_consent_are_listed(self, store: Store) -> None:
        store.users.upsert([User(user_id="yes"), User(user_id="no", consent=by_purpose(False)),
                            User(user_id="later")])
        store.users.update("later", {"consent": False})
        assert sorted(store.users.without_consent()) == sorted(
            [self.stored_id("later"), self.stored_id("no")])

    def test_consent_is_kept_per_purpose_with_its_history(self, store: Store) -> None:
        store.users.upsert([User(user_id="u1", consent={"analytics": False}),
                            User(user_id="u2", consent={"newsletter": False})])
        assert store.users.without_consent() == []
        assert store.users.without_consent(purpose="analytics") == [self.stored_id("u1")]
        assert store.users.without_consent(["u2"], purpose="newsletter") == ["u2"]
        # A write changes only the purposes it names; a profile without consent keeps it.
        store.users.upsert([User(user_id="u1", attributes={"age": 30})])
        store.users.update("u1", {"consent": {"personalization": False}})
        user = store.users.get("u1")
        assert user is not None and user.attributes == {"age": 30}
        assert user.consent == {"analytics": False, "personalization": False}
        store.users.upsert([User(user_id="u1", consent=by_purpose(True))])
        history = store.users.consent_history("u1")
        assert [(c.purpose, c.granted) for c in history] == [
            ("analytics", False), ("personalization", False),
            ("analytics", True), ("personalization", True)]
        assert all(a.changed_at <= b.changed_at for a, b in itertools.pairwise(history))
        assert store.users.delete("u1") and len(store.users.consent_history("u1")) == 4

    def test_an_erasure_deletes_every_row_of_the_user_and_audits_a_hash(
            self, store: Store) -> None:
        store.events.add([_event(1), _event(2, user="u2")])
        store.users.upsert([User(user_id="u1", consent={"analytics": False}),
                            User(user_id="u2")])
        store.served.record([Served("r1", "u1", T0, "als", 1, item_ids=["i1"], scores=[1.0],
                                    propensities=[1.0]),
                             Served("r2", "u2", T0, "als", 1)])
        [erasure] = store.privacy.erase(["u1"], key="k" * 32, erased_by="key:admin",
                                        retrain_within=timedelta(hours=24))
        assert erasure.deleted == {"events": 1, "profile": 1, "served": 1,
                                   "consent_changes": 1}
        assert erasure.user_hash == keyed_hash("k" * 32, self.stored_id("u1")) != "u1"
        assert erasure.pending
        assert store.events.frame()["user_id"].tolist() == [self.stored_id("u2")]
        assert store.users.get("u1") is None and store.users.consent_history("u1") == []
        assert store.served.frame()["user_id"].tolist() == [self.stored_id("u2")]
        assert store.changes.check("u1").user_key == (0, 0, frozenset(), None)
        assert store.privacy.erasures(pending=True) == [erasure]
        assert store.privacy.erasures_of("u1", key="k" * 32) == [erasure]
        assert store.privacy.erasures(after=erasure.erasure_id) == []
        assert store.privacy.mark_retrained(erasure.erased_at) == 1
        assert store.privacy.erasures(pending=True) == []
        assert store.privacy.audit_key() == store.privacy.audit_key()  # made once

    def test_events_are_counted_per_item_in_a_window(self, store: Store) -> None:
        store.events.add([_event(1, item="i1"), _event(2, item="i1"), _event(3, item="i2"),
                          _event(4, item="i2", event_type="impression"),
                          _event(40, item="i3")])
        assert store.events.item_counts(T0) == {"i1": 2, "i2": 2, "i3": 1}
        assert store.events.item_counts(T0.replace(minute=2), T0.replace(minute=30)) == {
            "i1": 1, "i2": 2}
        assert store.events.item_counts(T0, event_types=["view"]) == {
            "i1": 2, "i2": 1, "i3": 1}
        assert store.events.item_counts(T0.replace(hour=1)) == {}

    def test_items_bought_together_share_a_session_or_a_buyers_window(
            self, store: Store) -> None:
        def bought(user: str, item: str, after: timedelta, session: str | None = None,
                   event_type: str = "purchase") -> Event:
            return Event(user_id=user, item_id=item, event_type=event_type,
                         timestamp=T0 + after, session_id=session)

        minute, hour, day = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
        store.events.add([
            # Session s1: a (twice) and b bought, c only viewed.
            bought("u1", "a", minute, "s1"), bought("u1", "b", 2 * minute, "s1"),
            bought("u1", "c", 2 * minute, "s1", "view"), bought("u1", "a", 3 * minute, "s1"),
            # Session s2: a and c; d in another session of the same buyer, an hour on.
            bought("u2", "a", 2 * hour, "s2"), bought("u2", "c", 2 * hour, "s2"),
            bought("u2", "d", 3 * hour, "s3"),
            # Without a session: a, then b 12 hours on; e 3 days on; f in a session.
            bought("u3", "a", timedelta(0)), bought("u3", "b", 12 * hour),
            bought("u3", "e", 3 * day), bought("u3", "f", hour, "s4"),
            # b bought alone; a viewed in a session with a purchase of g.
            bought("u4", "b", 5 * day), bought("u5", "a", hour, "s5", "view"),
            bought("u5", "g", hour, "s5")])

        # Three baskets hold a: s1 {a, b}, s2 {a, c} and u3's day around 00:00 {a, b}.
        assert store.events.bought_together(["a"]) == pytest.approx({"b": 2 / 3, "c": 1 / 3})
        assert store.events.bought_together(["a"], window=4 * day) == pytest.approx(
            {"b": 2 / 3, "c": 1 / 3, "e": 1 / 3})
        # Five hold a or b: s1, s2, u3's days around a and around b, u4's around b.
        assert store.events.bought_together(["a", "b"]) == pytest.approx({"c": 1 / 5})
        assert store.events.bought_together(["a"], limit=1) == {"c": 1.0}  # s2's, newest
        assert store.events.bought_together(["a"], event_types=["view"]) == {}
        assert store.events.bought_together(["g"]) == {}
        assert store.events.bought_together(["nobody-bought-this"]) == {}
        assert store.events.bought_together([]) == {}
        with pytest.raises(ValueError, match="window"):
            store.events.bought_together(["a"], window=-day)

    def test_the_events_of_some_users_are_deleted(self, store: Store) -> None:
        store.events.add([_event(1), _event(2), _event(3, user="u2"), _event(4, user="u3")])
        assert store.events.delete_users(["u1", "u3", "nobody"]) == 3
        left = store.events.frame(user_ids=["u1", "u2", "u3"])
        assert left["user_id"].tolist() == ["u2"] and store.events.count() == 1
        assert store.changes.check("u1").user_events == 0

    def test_users_upsert_and_get(self, store: Store) -> None:
        store.users.upsert([User(user_id="u1", attributes={"location": "Berlin"})])
        user = store.users.get("u1")
        assert user is not None and user.attributes == {"location": "Berlin"}
        assert user.consent == {} and user.allows("personalization")  # granted by default
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

    def test_rollback_goes_back_one_promotion_at_a_time(self, store: Store) -> None:
        v1, v2, v3 = (store.models.register("als", f"/models/{n}") for n in (1, 2, 3))
        assert store.models.previous() is None
        for version in (v1, v2, v3):
            store.models.promote(version.version)
        previous = store.models.previous()
        assert previous is not None and previous.version == v2.version
        store.models.promote(v2.version)  # the rollback
        previous = store.models.previous()
        assert previous is not None and previous.version == v1.version
        store.models.promote(v1.version)
        assert store.models.previous() is None  # nothing before the first
        store.models.promote(v3.version)
        store.models.promote(v3.version)  # promoting the active version changes nothing
        previous = store.models.previous()
        assert previous is not None and previous.version == v1.version

    # ---- retention (tailored.jobs.retention) ----

    def test_events_deleted_before_a_cutoff_newer_kept(self, store: Store) -> None:
        store.events.add([_event(1), _event(2, event_type="impression"),
                          _event(3, user="u2"), _event(4, event_type="impression"),
                          _event(5)])
        cutoff = T0.replace(minute=4)  # e1..e3 are older; e4 is exactly at the cutoff
        assert store.events.count_before(cutoff) == 3
        assert store.events.count_before(cutoff, event_types=["impression"]) == 1
        assert store.events.delete_before(cutoff, event_types=["impression"]) == 1
        assert store.events.frame()["event_id"].tolist() == ["e1", "e3", "e4", "e5"]
        assert store.events.delete_before(cutoff) == 2
        assert store.events.frame()["event_id"].tolist() == ["e4", "e5"]
        assert store.events.delete_before(cutoff) == 0
        assert store.events.count_before(cutoff) == 0

    def test_deleting_old_events_changes_the_users_freshness(self, store: Store) -> None:
        store.events.add([_event(1), _event(2), _event(3, user="u2")])
        before, other = store.changes.check("u1"), store.changes.check("u2")
        assert store.events.delete_before(T0.replace(minute=2)) == 1  # u1's oldest
        after = store.changes.check("u1")
        assert after.user_key != before.user_key and after.user_events == 1
        assert store.changes.check("u2").user_key == other.user_key
        store.events.delete_before(T0.replace(minute=59))  # every event, the newest too
        assert store.changes.check("u1").user_key == (0, 0, frozenset(), None)

    def test_served_answers_deleted_before_a_cutoff_newer_kept(self, store: Store) -> None:
        from tailored.store import Served

        store.served.record([Served(f"r{n}", "u1", T0.replace(minute=n), "als", 1,
                                    item_ids=["i1", "i2"], scores=[1.0, 0.5],
                                    propensities=[1.0, 1.0]) for n in range(4)])
        cutoff = T0.replace(minute=2)
        assert store.served.count_before(cutoff) == 2
        assert store.served.delete_before(cutoff) == 2
        assert store.served.frame()["recommendation_id"].tolist() == ["r2", "r3"]
        assert store.served.get("r0") is None and store.served.get("r2") is not None
        assert store.served.delete_before(cutoff) == 0

    def test_forgetting_versions_keeps_those_still_needed(self, store: Store) -> None:
        v1, v2, v3, v4, v5 = (store.models.register("als", f"/models/{n}")
                              for n in range(1, 6))
        for version in (v2, v3, v4):
            store.models.promote(version.version)  # v4 active, v3 the rollback target
        experiment = store.experiments.create("test", [("A", v4.version, 1.0),
                                                       ("B", v2.version, 1.0)])
        for kept, reason in ((v4, "is active"), (v3, "rollback returns to"),
                             (v5, "is the newest"), (v2, "used by the experiment")):
            with pytest.raises(InvalidDataError, match=reason):
                store.models.forget(kept.version)
        with pytest.raises(ModelNotFoundError, match="version 99"):
            store.models.forget(99)
        assert store.models.forget(v1.version) == v1
        assert store.models.get(v1.version) is None
        store.experiments.start(experiment.experiment_id)
        with pytest.raises(InvalidDataError, match="used by the experiment"):
            store.models.forget(v2.version)
        store.experiments.stop(experiment.experiment_id)  # its records keep the number
        assert store.models.forget(v2.version).version == v2.version
        assert [v.version for v in store.models.list()] == [v3.version, v4.version,
                                                            v5.version]
        previous = store.models.previous()
        assert previous is not None and previous.version == v3.version
        active = store.models.active()
        assert active is not None and active.version == v4.version
        assert store.models.register("als", "/models/6").version > v5.version

    def test_items_update_merges_attributes(self, store: Store) -> None:
        store.items.upsert([Item(item_id="i1", title="Shoe", categories=["shoes"],
                                 attributes={"price": 50.0, "brand": "acme"})])
        updated = store.items.update("i1", {"title": "Red shoe", "available": False,
                                            "attributes": {"price": 40.0, "brand": None,
                                                           "colour": "red"}})
        assert updated is not None
        assert store.items.get("i1") == updated == Item(
            item_id="i1", title="Red shoe", categories=["shoes"], available=False,
            attributes={"price": 40.0, "colour": "red"})
        assert store.items.update("nope", {"title": "x"}) is None
        with pytest.raises(InvalidDataError, match="available"):
            store.items.update("i1", {"available": "perhaps"})

    def test_a_deleted_item_stays_unavailable_until_upserted_again(self, store: Store) -> None:
        store.items.upsert([Item(item_id="i1"), Item(item_id="i2")])
        assert store.items.delete("i1") is True
        assert store.items.delete("i1") is False
        assert store.items.get("i1") is None
        assert store.items.count() == 1
        assert store.items.unavailable() == ["i1"]  # a model trained before still knows it
        store.items.upsert([Item(item_id="i1")])
        assert store.items.unavailable() == []

    def test_users_update_and_delete(self, store: Store) -> None:
        store.users.upsert([User(user_id="u1", attributes={"location": "Berlin", "age": 30})])
        updated = store.users.update("u1", {"consent": False,
                                            "attributes": {"age": None, "device": "mobile"}})
        assert updated == User(user_id="u1", consent=by_purpose(False),
                               attributes={"location": "Berlin", "device": "mobile"})
        assert updated.consent == {"personalization": False, "analytics": False}
        assert store.users.get("u1") == updated
        assert store.users.update("nope", {"consent": False}) is None
        assert store.users.delete("u1") is True
        assert store.users.delete("u1") is False
        assert store.users.get("u1") is None and store.users.count() == 0

    def test_keys_are_stored_hashed_and_verified(self, store: Store) -> None:
        key, secret = store.keys.create("backend", ["write", "read"])
        assert key.scopes == ("read", "write") and key.active
        assert store.keys.verify(secret) == key
        assert store.keys.get(key.key_id) == key
        other, other_secret = store.keys.create("ops", ["admin"])
        changed_last = other_secret[:-1] + ("A" if other_secret[-1] != "A" else "B")
        for wrong in ("", "tk_", secret[:-1], secret + "x", changed_last,
                      secret.replace(key.key_id, other.key_id)):
            assert store.keys.verify(wrong) is None
        assert [k.key_id for k in store.keys.list()] == [key.key_id, other.key_id]
        assert store.keys.count() == 2

    def test_a_revoked_key_no_longer_verifies_but_still_counts(self, store: Store) -> None:
        key, secret = store.keys.create("backend", ["read"])
        revoked = store.keys.revoke(key.key_id)
        assert revoked.revoked_at is not None and not revoked.active
        assert store.keys.verify(secret) is None
        assert store.keys.revoke(key.key_id).revoked_at == revoked.revoked_at
        assert store.keys.count() == 1  # revoking the last key must not open the service
        with pytest.raises(NotFoundError, match="nope"):
            store.keys.revoke("nope")

    @pytest.mark.parametrize(("name", "scopes"), [("", ["read"]), ("x", []), ("x", ["root"]),
                                                  ("x" * 101, ["read"])])
    def test_keys_need_a_name_and_known_scopes(self, store: Store, name: str,
                                               scopes: list[str]) -> None:
        with pytest.raises(InvalidDataError):
            store.keys.create(name, scopes)
        assert store.keys.count() == 0

    def test_alerts_raised_once_per_detector_and_moment(self, store: Store) -> None:
        first = store.alerts.raise_alert("ctr", T0, "CTR fell", {"before": 0.1, "after": 0.05})
        assert first is not None and first.details == {"before": 0.1, "after": 0.05}
        assert first.detected_at == T0 and first.handled_at is None
        assert store.alerts.raise_alert("ctr", T0, "CTR fell again") is None
        later = store.alerts.raise_alert("ctr", T0.replace(hour=5), "CTR rose")
        other = store.alerts.raise_alert("event_mix", T0, "mix changed")
        assert later is not None and other is not None
        assert store.alerts.count() == 3
        assert [a.message for a in store.alerts.list(detector="ctr")] == ["CTR rose", "CTR fell"]
        latest = store.alerts.latest("ctr")
        assert latest is not None and latest.alert_id == later.alert_id
        assert store.alerts.latest("nothing") is None

    def test_alerts_marked_handled(self, store: Store) -> None:
        first = store.alerts.raise_alert("ctr", T0, "CTR fell")
        second = store.alerts.raise_alert("ctr", T0.replace(hour=1), "CTR fell more")
        assert first is not None and second is not None
        assert store.alerts.mark_handled([first.alert_id], "version 3") == 1
        assert store.alerts.mark_handled([first.alert_id], "version 4") == 0  # already handled
        assert store.alerts.mark_handled([], "nothing") == 0
        assert [a.alert_id for a in store.alerts.list(unhandled=True)] == [second.alert_id]
        handled = store.alerts.list(limit=2)[-1]
        assert handled.handled_by == "version 3" and handled.handled_at is not None

    # ---- served log and change tracking (the serving layer's caches and attribution) ----

    def test_served_answers_round_trip(self, store: Store) -> None:
        from tailored.store import SERVED_COLUMNS, Served

        answer = Served("r1", "u1", T0, "als", 3, "exp-1", "B", ["i7", "i2"], [1.5, 0.25],
                        [1.0, 0.5], {"device": "mobile", "hour": 9})
        anonymous = Served("r2", None, T0.replace(minute=5), "popular", None)
        assert store.served.record([answer, anonymous]) == 2
        assert store.served.record([answer]) == 0  # idempotent by recommendation id
        assert store.served.count() == 2
        assert store.served.get("r1") == dataclasses.replace(answer,
                                                            user_id=self.stored_id("u1"))
        assert store.served.get("r2") == anonymous
        assert store.served.get("nope") is None
        frame = store.served.frame()
        assert tuple(frame.columns) == SERVED_COLUMNS
        assert frame["recommendation_id"].tolist() == ["r1", "r2"]
        row = frame.iloc[0]
        assert (row.user_id, row.model_name, row.model_version, row.variant) == (
            self.stored_id("u1"), "als", 3, "B")
        assert row.item_ids == ["i7", "i2"] and row.propensities == [1.0, 0.5]
        assert row.served_at == T0 and row.context == {"device": "mobile", "hour": 9}

    def test_served_frame_filters_by_time_experiment_and_user(self, store: Store) -> None:
        from tailored.store import Served

        store.served.record([
            Served(f"r{n}", "u1", T0.replace(minute=n), "als", 1,
                   experiment_id="exp-1" if n % 2 else None, item_ids=["i1"], scores=[1.0],
                   propensities=[1.0])
            for n in range(4)])
        since = store.served.frame(since=T0.replace(minute=2))
        assert since["recommendation_id"].tolist() == ["r2", "r3"]
        assert store.served.frame(experiment_id="exp-1")["recommendation_id"].tolist() == [
            "r1", "r3"]
        assert store.served.frame(experiment_id="other").empty
        store.served.record([Served("r9", "u2", T0, "als", 1, item_ids=["i1"], scores=[1.0],
                                    propensities=[1.0])])
        assert store.served.frame(user_id="u2")["recommendation_id"].tolist() == ["r9"]

    def test_changes_follow_a_users_events(self, store: Store) -> None:
        empty = store.changes.check("u1")
        assert empty.user_key == (0, 0, frozenset(), None)
        store.events.add([_event(1), _event(2, user="u2")])
        first = store.changes.check("u1")
        assert first.user_events == 1 and first.user_last_seq > 0
        store.events.add([_event(3, user="u2")])
        assert store.changes.check("u1").user_key == first.user_key  # another user's event
        store.events.add([_event(4)])
        later = store.changes.check("u1")
        assert later.user_events == 2 and later.user_last_seq > first.user_last_seq
        store.users.upsert([User(user_id="u1", consent=by_purpose(False))])  # none personal now
        withheld = store.changes.check("u1")
        assert withheld.user_key == (2, later.user_last_seq,
                                     frozenset({"personalization", "analytics"}), "{}")
        assert withheld.consent_withheld
        store.users.update("u1", {"consent": {"personalization": True}})
        assert store.changes.check("u1").withheld == {"analytics"}
        # A profile change counts from the next request (segments and rules read it).
        before = store.changes.check("u1").user_key
        store.users.update("u1", {"attributes": {"age_band": "25-34"}})
        after = store.changes.check("u1")
        assert after.user_key != before and after.profile == '{"age_band": "25-34"}'

    def test_every_catalog_write_moves_the_catalog_version(self, store: Store) -> None:
        assert store.changes.catalog_version() == 0
        store.items.upsert([Item(item_id="i1"), Item(item_id="i2")])
        written = store.changes.catalog_version()
        assert written > 0 and store.changes.check("anyone").catalog_version == written
        assert store.changes.items_since(0) == (written, ["i1", "i2"])
        store.items.upsert([Item(item_id="i2", available=False)])  # an update
        updated, changed = store.changes.items_since(written)
        assert updated > written and changed == ["i2"]
        assert store.changes.items_since(updated) == (updated, [])

    def test_experiments_life_cycle(self, store: Store) -> None:
        draft = store.experiments.create(
            "als-vs-popular", [("A", 1, 1.0), ("B", 2, 3.0)], holdout_share=0.1,
            holdout_version=1, planned_sample_size=5000, description="first test")
        assert draft.status == "draft" and draft.started_at is None
        assert [(v.name, v.version, v.share) for v in draft.variants] == [
            ("A", 1, 0.25), ("B", 2, 0.75)]
        assert store.experiments.get(draft.experiment_id) == draft
        assert store.experiments.get("nope") is None
        assert store.experiments.running() is None
        running = store.experiments.start(draft.experiment_id)
        assert running.status == "running" and running.started_at is not None
        assert store.experiments.running() == running
        stopped = store.experiments.stop(draft.experiment_id)
        assert stopped.status == "stopped" and stopped.stopped_at is not None
        assert store.experiments.running() is None
        assert [e.experiment_id for e in store.experiments.list()] == [draft.experiment_id]
        assert store.experiments.list("running") == []

    def test_one_experiment_runs_at_a_time(self, store: Store) -> None:
        first = store.experiments.create("one", [("A", 1, 1.0), ("B", 2, 1.0)])
        second = store.experiments.create("two", [("A", 1, 1.0), ("B", 3, 1.0)])
        store.experiments.start(first.experiment_id)
        with pytest.raises(InvalidDataError, match="is running on lists without a placement"):
            store.experiments.start(second.experiment_id)
        with pytest.raises(InvalidDataError, match="only a draft can start"):
            store.experiments.start(first.experiment_id)
        with pytest.raises(InvalidDataError, match="not running"):
            store.experiments.stop(second.experiment_id)
        with pytest.raises(NotFoundError, match="no experiment 'missing'"):
            store.experiments.stop("missing")

    def test_one_experiment_runs_per_placement(self, store: Store) -> None:
        everywhere = store.experiments.create("one", [("A", 1, 1.0), ("B", 2, 1.0)])
        home = store.experiments.create("two", [("A", 1, 1.0), ("B", 3, 1.0)],
                                        placement="home")
        again = store.experiments.create("three", [("A", 1, 1.0), ("B", 3, 1.0)],
                                         placement="home")
        for experiment in (everywhere, home):
            store.experiments.start(experiment.experiment_id)
        assert store.experiments.running() == store.experiments.get(everywhere.experiment_id)
        assert store.experiments.running("home") == store.experiments.get(home.experiment_id)
        assert store.experiments.running("product") is None
        with pytest.raises(InvalidDataError, match="running on placement 'home'"):
            store.experiments.start(again.experiment_id)

    def test_placements_are_versioned(self, store: Store) -> None:
        assert store.placements.get("home") is None and store.placements.list() == []
        first = store.placements.put("home", {"k": 12}, by="ops")
        assert (first.name, first.version, first.spec, first.created_by) == (
            "home", 1, {"k": 12}, "ops")
        assert store.placements.put("home", {"k": 12}) == first  # unchanged: no version
        second = store.placements.put("home", {"k": 8, "filter": "price < 10"})
        store.placements.put("product", {})
        assert second.version == 2 and store.placements.get("home") == second
        assert [p.name for p in store.placements.list()] == ["home", "product"]
        assert store.placements.delete("home", by="ops")
        assert not store.placements.delete("home") and not store.placements.delete("nope")
        assert store.placements.get("home") is None
        assert [p.name for p in store.placements.list()] == ["product"]
        history = store.placements.history("home")
        assert [(p.version, p.spec) for p in history] == [
            (1, {"k": 12}), (2, {"k": 8, "filter": "price < 10"}), (3, None)]
        assert store.placements.put("home", {"k": 5}).version == 4  # back, as a new version

    # ---- webhooks: subscriptions and the delivery log ------------------------------------

    def test_webhooks_are_subscribed_listed_and_removed(self, store: Store) -> None:
        hook, secret = store.webhooks.subscribe(
            " https://shop.example/hooks ", ["drift.alert", "model.promoted", "drift.alert"])
        assert (hook.url, hook.events, hook.active) == (
            "https://shop.example/hooks", ("model.promoted", "drift.alert"), True)
        assert secret.startswith("whsec_") and len(secret) > 40
        other, other_secret = store.webhooks.subscribe("http://127.0.0.1:9/x",
                                                       ["experiment.verdict"])
        assert other_secret != secret
        assert store.webhooks.get(hook.subscription_id) == hook
        assert store.webhooks.get("nope") is None
        assert [w.subscription_id for w in store.webhooks.list()] == [
            hook.subscription_id, other.subscription_id]
        removed = store.webhooks.remove(hook.subscription_id)
        assert not removed.active and removed.removed_at is not None
        assert store.webhooks.remove(hook.subscription_id) == removed  # the first time kept
        assert [w.active for w in store.webhooks.list()] == [False, True]
        with pytest.raises(NotFoundError, match="no webhook 'nope'"):
            store.webhooks.remove("nope")

    @pytest.mark.parametrize(("url", "events", "message"), [
        ("ftp://shop.example/x", ["drift.alert"], "http:// or https://"),
        ("https://shop.example/a b", ["drift.alert"], "printable ASCII"),
        ("https://bücher.example/", ["drift.alert"], "punycode"),
        ("https://:80/x", ["drift.alert"], "names no host"),
        ("https://shop.example:99999/x", ["drift.alert"], "cannot be parsed"),
        ("https://shop.example/" + "x" * 2048, ["drift.alert"], "at most 2048"),
        ("https://shop.example/x", [], "at least one event kind"),
        ("https://shop.example/x", ["model.trained"], "unknown event kind"),
    ])
    def test_webhooks_refuse_bad_urls_and_kinds(self, store: Store, url: str,
                                                events: list[str], message: str) -> None:
        with pytest.raises(InvalidDataError, match=message):
            store.webhooks.subscribe(url, events)
        assert store.webhooks.list() == []

    def test_webhook_deliveries_are_claimed_retried_and_finished(self, store: Store) -> None:
        hook, _ = store.webhooks.subscribe("https://a.example/", ["model.promoted"])
        other, _ = store.webhooks.subscribe("https://b.example/", ["model.promoted",
                                                                    "drift.alert"])
        gone, _ = store.webhooks.subscribe("https://c.example/", ["model.promoted"])
        store.webhooks.remove(gone.subscription_id)
        [first, second] = store.webhooks.enqueue("model.promoted",
                                                 {"version": 3, "auc": float("nan")})
        assert {first.subscription_id, second.subscription_id} == {
            hook.subscription_id, other.subscription_id}
        assert first.event_id == second.event_id and first.delivery_id != second.delivery_id
        assert first.payload["kind"] == "model.promoted" and first.payload["id"] == \
            first.event_id
        assert first.payload["data"] == {"version": 3, "auc": None}  # NaN is not JSON
        assert (first.status, first.attempts) == ("pending", 0)
        with pytest.raises(InvalidDataError, match="unknown event kind"):
            store.webhooks.enqueue("model.trained", {})
        with pytest.raises(InvalidDataError, match="must be JSON"):
            store.webhooks.enqueue("drift.alert", {"at": object()})

        lease, later = timedelta(minutes=1), datetime.now(UTC) + timedelta(seconds=1)
        claimed = store.webhooks.claim(lease=lease, max_attempts=3, limit=10, now=later)
        assert sorted(c.delivery.delivery_id for c in claimed) == sorted(
            [first.delivery_id, second.delivery_id])
        assert all(c.delivery.attempts == 1 and c.secret.startswith("whsec_")
                   for c in claimed)
        assert json.loads(claimed[0].body) == claimed[0].delivery.payload
        # Claimed: no one else gets them until the lease runs out.
        assert store.webhooks.claim(lease=lease, max_attempts=3, now=later) == []
        mine = {c.delivery.subscription_id: c for c in claimed}
        done, retried = mine[hook.subscription_id], mine[other.subscription_id]
        assert not store.webhooks.finish(done.delivery.delivery_id, "not-my-claim",
                                         "delivered", http_status=200)
        assert store.webhooks.finish(done.delivery.delivery_id, done.claim, "delivered",
                                     http_status=204)
        again = later + timedelta(seconds=5)
        assert store.webhooks.finish(retried.delivery.delivery_id, retried.claim, "pending",
                                     next_attempt_at=again, error="ConnectError")
        assert store.webhooks.claim(lease=lease, max_attempts=3, now=later) == []
        [retry] = store.webhooks.claim(lease=lease, max_attempts=3, now=again)
        assert (retry.delivery.delivery_id, retry.delivery.attempts) == (
            retried.delivery.delivery_id, 2)
        assert not store.webhooks.finish(retried.delivery.delivery_id, retried.claim,
                                         "delivered")  # an old claim records nothing
        assert store.webhooks.finish(retry.delivery.delivery_id, retry.claim, "failed",
                                     http_status=500)

        [delivered] = store.webhooks.deliveries(hook.subscription_id)
        assert (delivered.status, delivered.attempts, delivered.last_status,
                delivered.next_attempt_at) == ("delivered", 1, 204, None)
        [failed] = store.webhooks.deliveries(other.subscription_id)
        assert (failed.status, failed.attempts, failed.last_status, failed.last_error) == (
            "failed", 2, 500, None)
        assert store.webhooks.deliveries(gone.subscription_id) == []

    def test_webhook_log_is_newest_first_and_bounded(self, store: Store) -> None:
        hook, _ = store.webhooks.subscribe("https://a.example/", ["drift.alert"])
        made = [store.webhooks.enqueue("drift.alert", {"n": n})[0] for n in range(5)]
        log = store.webhooks.deliveries(hook.subscription_id, limit=3)
        assert [d.payload["data"]["n"] for d in log] == [4, 3, 2]
        assert {d.delivery_id for d in store.webhooks.deliveries(hook.subscription_id)} == {
            d.delivery_id for d in made}

    def test_removing_a_webhook_fails_its_pending_deliveries(self, store: Store) -> None:
        hook, _ = store.webhooks.subscribe("https://a.example/", ["drift.alert"])
        store.webhooks.enqueue("drift.alert", {})
        store.webhooks.remove(hook.subscription_id)
        [delivery] = store.webhooks.deliveries(hook.subscription_id)
        assert (delivery.status, delivery.last_error) == ("failed", "SubscriptionRemoved")
        assert store.webhooks.claim(lease=timedelta(minutes=1), max_attempts=3,
                                    now=datetime.now(UTC) + timedelta(seconds=1)) == []

    def test_a_last_attempt_whose_outcome_was_lost_fails(self, store: Store) -> None:
        hook, _ = store.webhooks.subscribe("https://a.example/", ["drift.alert"])
        store.webhooks.enqueue("drift.alert", {})
        now = datetime.now(UTC) + timedelta(seconds=1)
        [claimed] = store.webhooks.claim(lease=timedelta(seconds=10), max_attempts=1, now=now)
        # Its sender died: once the lease runs out, no attempt is left to make.
        assert store.webhooks.claim(lease=timedelta(seconds=10), max_attempts=1,
                                    now=now + timedelta(seconds=11)) == []
        [delivery] = store.webhooks.deliveries(hook.subscription_id)
        assert (delivery.status, delivery.attempts, delivery.last_error) == (
            "failed", 1, "AttemptOutcomeLost")
        assert not store.webhooks.finish(claimed.delivery.delivery_id, claimed.claim,
                                         "delivered")

    def test_experiments_refuse_bad_variants(self, store: Store) -> None:
        with pytest.raises(InvalidDataError, match="at least two variants"):
            store.experiments.create("x", [("A", 1, 1.0)])
        with pytest.raises(InvalidDataError, match="unique"):
            store.experiments.create("x", [("A", 1, 1.0), ("A", 2, 1.0)])
        with pytest.raises(InvalidDataError, match="share must be > 0"):
            store.experiments.create("x", [("A", 1, 1.0), ("B", 2, 0.0)])
        with pytest.raises(InvalidDataError, match="holdout share"):
            store.experiments.create("x", [("A", 1, 1.0), ("B", 2, 1.0)], holdout_share=1.0)
        with pytest.raises(InvalidDataError, match="reserved"):
            store.experiments.create("x", [("A", 1, 1.0), ("holdout", 2, 1.0)])
        assert store.experiments.list() == []


class ConcurrentUpdateContract:
    """Read-merge-write is one transaction: concurrent updates of one record all land."""

    WRITERS = 16

    def _all_at_once(self, work: Callable[[int], object]) -> None:
        start = threading.Barrier(self.WRITERS)

        def run(n: int) -> object:
            start.wait()
            return work(n)

        with ThreadPoolExecutor(self.WRITERS) as pool:
            assert all(result is not None for result in pool.map(run, range(self.WRITERS)))

    def test_concurrent_item_updates_keep_every_attribute(self, store: Store) -> None:
        store.items.upsert([Item(item_id="i1", attributes={"kept": True})])

        self._all_at_once(lambda n: store.items.update("i1", {"attributes": {f"a{n}": n}}))

        item = store.items.get("i1")
        assert item is not None
        assert item.attributes == {"kept": True} | {f"a{n}": n for n in range(self.WRITERS)}

    def test_concurrent_user_updates_keep_every_attribute(self, store: Store) -> None:
        store.users.upsert([User(user_id="u1")])

        self._all_at_once(lambda n: store.users.update("u1", {"attributes": {f"a{n}": n}}))

        user = store.users.get("u1")
        assert user is not None
        assert user.attributes == {f"a{n}": n for n in range(self.WRITERS)}


    def test_concurrent_dispatchers_claim_each_delivery_once(self, store: Store) -> None:
        for n in range(self.WRITERS):
            store.webhooks.subscribe(f"https://hook{n}.example/", ["drift.alert"])
        store.webhooks.enqueue("drift.alert", {"n": 1})
        store.webhooks.enqueue("drift.alert", {"n": 2})
        later = datetime.now(UTC) + timedelta(seconds=1)
        start = threading.Barrier(self.WRITERS)

        def dispatcher(_: int) -> list[str]:
            start.wait()
            taken: list[str] = []
            while claimed := store.webhooks.claim(lease=timedelta(minutes=1),
                                                  max_attempts=3, limit=3, now=later):
                taken += [c.delivery.delivery_id for c in claimed]
            return taken

        with ThreadPoolExecutor(self.WRITERS) as pool:
            taken = [d for found in pool.map(dispatcher, range(self.WRITERS)) for d in found]

        assert len(taken) == len(set(taken)) == 2 * self.WRITERS


class TransactionContract:
    """``store.transaction()``: several writes committed together, or not at all."""

    def test_writes_in_a_transaction_are_seen_by_it_then_by_all(self, store: Store) -> None:
        with store.transaction() as transaction:
            assert transaction.events.add([Event(event_id="e1", user_id="u", item_id="i"),
                                           Event(event_id="e2", user_id="u", item_id="i")]) == 2
            transaction.items.upsert([Item(item_id="i")])
            transaction.users.upsert([User(user_id="u")])
            assert transaction.events.add([Event(event_id="e2", user_id="u",
                                                 item_id="i")]) == 0
            seen = (transaction.events.count(), transaction.items.count(),
                    transaction.users.count())
            outside = (store.events.count(), store.items.count(), store.users.count())

        assert (seen, outside) == ((2, 1, 1), (0, 0, 0))
        assert (store.events.count(), store.items.count(), store.users.count()) == (2, 1, 1)

    def test_a_transaction_that_raises_writes_nothing(self, store: Store) -> None:
        with pytest.raises(RuntimeError, match="interrupted"), store.transaction() as transaction:
            transaction.events.add([Event(user_id="u", item_id="i")])
            transaction.items.upsert([Item(item_id="i")])
            raise RuntimeError("interrupted")

        assert (store.events.count(), store.items.count(), store.users.count()) == (0, 0, 0)
        store.events.add([Event(user_id="u", item_id="i")])  # the store still writes
        assert store.events.count() == 1
