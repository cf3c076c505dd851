"""The store contract on SQLite (always) and PostgreSQL (when the server is there)."""

from __future__ import annotations

import os
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from tailored.schema import Event, Item, User
from tailored.store import Store, open_store
from tailored.store.sqlbase import metadata
from tailored.testing.store_contract import StoreContract

POSTGRES_URL = os.environ.get("TAILORED_TEST_POSTGRES", "postgresql://postgres@127.0.0.1/test")


class ConcurrentUpdates:
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


class Transactions:
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


class TestSQLiteStore(StoreContract, ConcurrentUpdates, Transactions):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
        yield store
        store.close()

    def test_uses_write_ahead_logging(self, tmp_path: Path) -> None:
        store = open_store(f"sqlite:///{tmp_path / 'wal.db'}")
        store.events.add([Event(user_id="u", item_id="i")])
        assert (tmp_path / "wal.db-wal").exists()
        store.close()

    def test_events_survive_reopening(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'durable.db'}"
        first = open_store(url)
        first.events.add([Event(user_id="u", item_id="i")])
        first.close()
        assert open_store(url).events.count() == 1


class TestInMemorySQLiteStore(ConcurrentUpdates):
    """One connection shared by every thread: updates are serialized in the process."""

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        store = open_store("sqlite://")
        yield store
        store.close()


def _postgres_database() -> Iterator[str]:
    admin_url = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            name = f"tailored_test_{uuid.uuid4().hex[:10]}"
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # the server is not there: say so loudly
        warnings.warn(f"PostgreSQL store tests SKIPPED: cannot reach {POSTGRES_URL}: {error}",
                      stacklevel=1)
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_URL}: {error}")
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    yield url
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    yield from _postgres_database()


class TestPostgresStore(StoreContract, ConcurrentUpdates, Transactions):
    @pytest.fixture
    def store(self, postgres_url: str) -> Iterator[Store]:
        store = open_store(postgres_url)
        yield store
        with store.engine.begin() as conn:  # type: ignore[attr-defined]
            for table in metadata.sorted_tables:  # every role's tables, new ones too
                conn.execute(sa.text(f"TRUNCATE {table.name} RESTART IDENTITY CASCADE"))
        store.close()

