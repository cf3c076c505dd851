"""What every SQL table of the store shares: one metadata, time and JSON helpers, and the
dialect-specific upsert. A role of the store is a :class:`SqlTables` over one engine."""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

CHUNK = 5_000


def _driver_errors() -> tuple[type[Exception], ...]:
    """The drivers' own errors for a store that cannot answer: the change feed reads
    with raw driver connections, whose errors SQLAlchemy does not wrap."""
    errors: list[type[Exception]] = [sqlite3.OperationalError]
    try:
        import psycopg
    except ImportError:  # PostgreSQL support is an extra
        pass
    else:
        errors += [psycopg.OperationalError, psycopg.InterfaceError]
    return tuple(errors)


#: What the store raises when it cannot answer now (locked, restarting, unreachable, no
#: connection free in the pool) rather than because what was asked is wrong: the REST
#: API answers 503 to these, the stream consumer waits and reads again.
STORE_UNAVAILABLE: tuple[type[Exception], ...] = (
    sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError,
    sa.exc.TimeoutError, *_driver_errors())
Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite rowid alias

#: Every table of the store, created together by :class:`~tailored.store.sql.SqlStore`.
metadata = sa.MetaData()


def micros(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000)


def from_micros(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC)


def timestamps(micros: pd.Series | np.ndarray) -> pd.Series:
    """Microseconds since the epoch as UTC times (by numpy's units: pandas' parser costs
    0.3 ms even for one row, and a request reads a history)."""
    stamps = np.asarray(micros, dtype=np.int64).astype("datetime64[us]")
    return pd.Series(pd.DatetimeIndex(stamps, tz="UTC"),
                     index=micros.index if isinstance(micros, pd.Series) else None)


def chunks(rows: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def total_changes(conn: sa.Connection) -> int:
    return int(conn.exec_driver_sql("SELECT total_changes()").scalar_one())


def json_or_none(value: dict[str, Any]) -> str | None:
    # orjson (a tenth of json's 3 us, on every event with a context) takes what the schema
    # lets into a context: scalars, integers within 2**53, finite floats, valid Unicode.
    return orjson.dumps(value).decode() if value else None


# An in-memory SQLite database is one connection shared by every thread, so its
# transactions cannot be told apart: writers that read first take this lock instead.
_SHARED_CONNECTION_LOCKS: weakref.WeakKeyDictionary[Engine, threading.RLock] = \
    weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


def _shared_connection_lock(engine: Engine) -> threading.RLock:
    with _LOCKS_LOCK:
        lock = _SHARED_CONNECTION_LOCKS.get(engine)
        if lock is None:
            lock = _SHARED_CONNECTION_LOCKS[engine] = threading.RLock()
        return lock


@contextmanager
def write_transaction(engine: Engine) -> Iterator[sa.Connection]:
    """A transaction for read-then-write: what it reads stays as read until it commits.

    - SQLite (a file): ``BEGIN IMMEDIATE`` takes the database's write lock before the
      first read (pysqlite itself begins a transaction only at the first write, so a read
      before it would see data another writer is about to change); other writers wait
      for it, up to ``busy_timeout``.
    - SQLite in memory: one connection shared by every thread, so a process lock.
    - PostgreSQL: a plain transaction; read rows with ``SELECT ... FOR UPDATE`` to lock
      them until it commits.

    Commits when the block ends, rolls back if it raises.
    """
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
    elif isinstance(engine.pool, sa.pool.StaticPool):
        with _shared_connection_lock(engine), engine.begin() as conn:
            yield conn
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn  # an error rolls back as the connection closes
            conn.commit()


class SqlTables:
    """Shared engine access and the dialect-specific upsert every role needs.

    Given a ``connection`` (a transaction that :meth:`SqlStore.transaction` owns), every
    read and write goes through it and is committed with it; otherwise each call opens
    its own transaction.
    """

    def __init__(self, engine: Engine, connection: sa.Connection | None = None) -> None:
        self.engine = engine
        self._bound = connection
        # PostgreSQL reads in autocommit: each statement sees what was committed before it
        # (as in a READ COMMITTED transaction), without the BEGIN and ROLLBACK around it,
        # a round trip that was a third of reading one user's history.
        self._reader = (engine.execution_options(isolation_level="AUTOCOMMIT")
                        if engine.dialect.name == "postgresql" else engine)

    @contextmanager
    def _on(self, open_new: Callable[[], AbstractContextManager[sa.Connection]]
            ) -> Iterator[sa.Connection]:
        """The bound connection (its transaction sees its own writes), else the one
        ``open_new`` opens for this call and closes after it."""
        if self._bound is not None:
            yield self._bound
        else:
            with open_new() as conn:
                yield conn

    def _begin(self) -> AbstractContextManager[sa.Connection]:
        """A transaction to write in, committed on exit unless bound."""
        return self._on(self.engine.begin)

    def _read_then_write(self) -> AbstractContextManager[sa.Connection]:
        """A transaction to read and then write in (see :func:`write_transaction`)."""
        return self._on(lambda: write_transaction(self.engine))

    def _connect(self) -> AbstractContextManager[sa.Connection]:
        """A connection to read with."""
        return self._on(self._reader.connect)

    def _insert(self, table: sa.Table) -> Any:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)

    def _upsert(self, table: sa.Table, key: str, rows: Iterable[dict[str, Any]]) -> int:
        written = 0
        with self._begin() as conn:
            for chunk in chunks(rows):
                statement = self._insert(table)
                updates = {c: statement.excluded[c] for c in chunk[0] if c != key}
                conn.execute(statement.on_conflict_do_update(index_elements=[key], set_=updates),
                             chunk)
                written += len(chunk)
        return written

    def _insert_counting(self, conn: sa.Connection, sql: str, rows: list[Any]) -> int:
        """Run an insert that skips known keys over ``rows``; return how many were new."""
        if self.engine.dialect.name == "sqlite":
            # sqlite3's executemany rowcount is unreliable across versions.
            before = total_changes(conn)
            conn.exec_driver_sql(sql, rows)
            return total_changes(conn) - before
        return max(conn.exec_driver_sql(sql, rows).rowcount, 0)

    def _count(self, table: sa.Table) -> int:
        with self._connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
