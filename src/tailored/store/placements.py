"""The placements role: named, versioned configurations of where lists are shown.

A placement (``home``, ``product-page``, ``email-weekly``) is stored as a JSON spec that
the pipeline layer checks (:class:`tailored.pipeline.Placement`); the store only keeps
its versions. Every change writes a new version, so an answer recorded with a placement
and its version can always be traced to the configuration that made it; a deletion is a
version without a spec.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa

from tailored.store.sqlbase import SqlTables, from_micros, metadata, micros, write_transaction

T = TypeVar("T")

placements_table = sa.Table(
    "placements", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("spec", sa.Text, nullable=True),  # None: deleted at this version
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False, default=""),
)


@dataclass(frozen=True)
class PlacementVersion:
    """One version of a placement: its ``spec`` (None once deleted), when and by whom."""

    name: str
    version: int
    spec: dict[str, Any] | None
    created_at: datetime
    created_by: str = ""

    @property
    def deleted(self) -> bool:
        return self.spec is None


class SqlPlacements(SqlTables):
    """Placements on SQL: every version a row, the newest one current."""

    def put(self, name: str, spec: dict[str, Any], *, by: str = "") -> PlacementVersion:
        """Make ``spec`` the current version of ``name``; an unchanged spec writes
        nothing and returns the current version."""
        def change(conn: sa.Connection) -> PlacementVersion:
            current = self._current(conn, name)
            if current is not None and current.spec == spec:
                return current
            return self._write(conn, name, spec, current, by)
        return self._retried(change)

    def delete(self, name: str, *, by: str = "") -> bool:
        """Delete ``name`` (a version without a spec); False when there is none."""
        def change(conn: sa.Connection) -> bool:
            current = self._current(conn, name)
            if current is None or current.deleted:
                return False
            self._write(conn, name, None, current, by)
            return True
        return self._retried(change)

    def _retried(self, change: Callable[[sa.Connection], T]) -> T:
        """``change`` in a write transaction, again when a concurrent writer took the
        same version number first (PostgreSQL's transactions do not lock a new name)."""
        for attempt in range(3):
            try:
                with write_transaction(self.engine) as conn:
                    return change(conn)
            except sa.exc.IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def get(self, name: str) -> PlacementVersion | None:
        """The current version of ``name``; None when unknown or deleted."""
        with self.engine.connect() as conn:
            current = self._current(conn, name)
        return None if current is None or current.deleted else current

    def list(self) -> list[PlacementVersion]:
        """The current version of every placement not deleted, by name."""
        newest = (sa.select(placements_table.c.name,
                            sa.func.max(placements_table.c.version).label("version"))
                  .group_by(placements_table.c.name).subquery())
        query = (sa.select(placements_table).join(newest, sa.and_(
            placements_table.c.name == newest.c.name,
            placements_table.c.version == newest.c.version))
            .where(placements_table.c.spec.is_not(None)).order_by(placements_table.c.name))
        with self.engine.connect() as conn:
            return [_version(row) for row in conn.execute(query).all()]

    def history(self, name: str) -> builtins.list[PlacementVersion]:
        """Every version of ``name``, oldest first (deletions included)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(placements_table)
                                .where(placements_table.c.name == name)
                                .order_by(placements_table.c.version)).all()
        return [_version(row) for row in rows]

    def _current(self, conn: sa.Connection, name: str) -> PlacementVersion | None:
        row = conn.execute(sa.select(placements_table)
                           .where(placements_table.c.name == name)
                           .order_by(placements_table.c.version.desc()).limit(1)).first()
        return None if row is None else _version(row)

    @staticmethod
    def _write(conn: sa.Connection, name: str, spec: dict[str, Any] | None,
               current: PlacementVersion | None, by: str) -> PlacementVersion:
        written = PlacementVersion(name, 1 if current is None else current.version + 1, spec,
                                   datetime.now(UTC), by)
        conn.execute(placements_table.insert().values(
            name=name, version=written.version,
            spec=None if spec is None else json.dumps(spec, sort_keys=True),
            created_us=micros(written.created_at), created_by=by))
        return written


def _version(row: Any) -> PlacementVersion:
    return PlacementVersion(row.name, int(row.version),
                            None if row.spec is None else json.loads(row.spec),
                            from_micros(row.created_us), row.created_by or "")
