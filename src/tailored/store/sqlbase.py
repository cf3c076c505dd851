"""What every SQL table of the store shares: one metadata, time and JSON helpers, and the
dialect-specific upsert. A role of the store is a :class:`SqlTables` over one engine."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

CHUNK = 5_000
Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite rowid alias

#: Every table of the store, created together by :class:`~tailored.store.sql.SqlStore`.
metadata = sa.MetaData()


def micros(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000)


def from_micros(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC)


def timestamps(micros: pd.Series) -> pd.Series:
    return pd.to_datetime(micros.astype("int64"), unit="us", utc=True)


def chunks(rows: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def total_changes(conn: sa.Connection) -> int:
    return int(conn.exec_driver_sql("SELECT total_changes()").scalar_one())


def json_or_none(value: dict[str, Any]) -> str | None:
    return json.dumps(value, separators=(",", ":")) if value else None


class SqlTables:
    """Shared engine access and the dialect-specific upsert every role needs."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _insert(self, table: sa.Table) -> Any:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)

    def _upsert(self, table: sa.Table, key: str, rows: Iterable[dict[str, Any]]) -> int:
        written = 0
        with self.engine.begin() as conn:
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
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
