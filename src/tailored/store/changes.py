"""What changed since a process last looked: a user's events, and the catalog.

A service caches per process (scored lists per user, the catalog's attributes); every
worker must still answer as of *now* (read-your-writes), so before using what it cached
it asks the store, in one indexed query (:meth:`SqlChanges.check`):

- the user's event count and latest event ``seq``: a new (or erased) event changes them;
- the catalog version: the latest entry of ``catalog_changes``, a log that database
  triggers append to on every insert, update or delete of an item, whichever code path
  (or another process) wrote it. :meth:`SqlChanges.items_since` lists the items changed
  after a version, so a cached catalog is brought up to date incrementally.

Examples
--------
>>> from tailored.schema import Event, Item
>>> from tailored.store import open_store
>>> store = open_store("sqlite://")
>>> before = store.changes.check("u1")
>>> before.user_events, before.catalog_version
(0, 0)
>>> _ = store.events.add([Event(user_id="u1", item_id="i1")])
>>> _ = store.items.upsert([Item(item_id="i1"), Item(item_id="i2", available=False)])
>>> after = store.changes.check("u1")
>>> after.user_events, after.catalog_version > before.catalog_version
(1, True)
>>> store.changes.items_since(before.catalog_version)[1]
['i1', 'i2']
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tailored.schema import PERSONALIZATION
from tailored.store.sqlbase import Serial, SqlTables, metadata

catalog_changes_table = sa.Table(
    "catalog_changes", metadata,
    sa.Column("seq", Serial, primary_key=True, autoincrement=True),
    sa.Column("item_id", sa.String(256), nullable=False),
)

_SQLITE_TRIGGERS = [
    f"CREATE TRIGGER IF NOT EXISTS items_{when.lower()}_logged AFTER {when} ON items "
    f"BEGIN INSERT INTO catalog_changes (item_id) VALUES ({row}.item_id); END"
    for when, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD"))
]
_POSTGRES_TRIGGERS = [
    """CREATE OR REPLACE FUNCTION tailored_log_item_change() RETURNS trigger
       LANGUAGE plpgsql AS $$
       BEGIN
         INSERT INTO catalog_changes (item_id)
         VALUES (CASE WHEN TG_OP = 'DELETE' THEN OLD.item_id ELSE NEW.item_id END);
         RETURN NULL;
       END $$""",
    """CREATE OR REPLACE TRIGGER items_changes_logged AFTER INSERT OR UPDATE OR DELETE
       ON items FOR EACH ROW EXECUTE FUNCTION tailored_log_item_change()""",
    # SQLite's user_id index already holds the rowid (seq); PostgreSQL needs it spelled out.
    "CREATE INDEX IF NOT EXISTS ix_events_user_seq ON events (user_id, seq)",
    # ... and serves every read by user, so the user_id index alone is only a cost on
    # each insert (a tenth of a bulk import's time).
    "DROP INDEX IF EXISTS ix_events_user_id",
]


def install_change_tracking(engine: Engine) -> None:
    """Create the triggers that log catalog changes (idempotent; after the tables)."""
    statements = (_POSTGRES_TRIGGERS if engine.dialect.name == "postgresql"
                  else _SQLITE_TRIGGERS)
    for attempt in range(3):
        try:
            with engine.begin() as conn:
                for statement in statements:
                    conn.exec_driver_sql(statement)
            return
        except sa.exc.DBAPIError:  # several processes installing at once
            if attempt == 2:
                raise
            time.sleep(0.2)


@dataclass(frozen=True)
class Freshness:
    """What a cache entry must match to still be current.

    ``user_events`` and ``user_last_seq`` change with any new or erased event of the
    user; ``catalog_version`` with any change to any item; ``withheld``: the consent
    purposes the user's profile withholds (without personalization no personal answer is
    given, without analytics the answer is not logged); ``profile``: the profile's
    attributes as stored (segments and rules read them), None without a profile.
    """

    user_events: int
    user_last_seq: int
    catalog_version: int
    withheld: frozenset[str] = frozenset()
    profile: str | None = None

    @property
    def consent_withheld(self) -> bool:
        return PERSONALIZATION in self.withheld

    @property
    def user_key(self) -> tuple[int, int, frozenset[str], str | None]:
        return self.user_events, self.user_last_seq, self.withheld, self.profile


def _withheld(consents: str | None) -> frozenset[str]:
    if not consents or "false" not in consents:  # the common case, without parsing
        return frozenset()
    return frozenset(p for p, granted in json.loads(consents).items() if not granted)


#: Connections :meth:`SqlChanges.check` keeps between checks (more are opened when more
#: requests are in flight, and closed after): anyio's default number of threads.
_CHECK_CONNECTIONS = 40


def _autocommit(dbapi_connection: Any, _: Any) -> None:
    dbapi_connection.autocommit = True


class SqlChanges(SqlTables):
    """Cheap checks of what changed, for caches in front of the store."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        mark = "%s" if engine.dialect.name == "postgresql" else "?"
        # One round trip, two index lookups: the user's events (the user_id index) and
        # the last catalog change (the primary key).
        self._check_sql = (
            "SELECT count(*), coalesce(max(seq), 0), "
            "(SELECT coalesce(max(seq), 0) FROM catalog_changes), "
            f"(SELECT consents FROM users WHERE user_id = {mark}), "
            f"(SELECT attributes FROM users WHERE user_id = {mark}) "
            f"FROM events WHERE user_id = {mark}")
        # A pool of their own, outside the engine's, which they would exhaust (one per
        # request in flight); an in-memory SQLite database has one shared connection.
        # Last used first: serving threads come and go (anyio retires one idle for 10 s),
        # and a connection is any thread's, so none outlives its thread.
        in_memory = isinstance(engine.pool, sa.pool.StaticPool)
        self._direct = engine if in_memory else sa.create_engine(
            engine.url, pool_size=_CHECK_CONNECTIONS, max_overflow=-1, pool_use_lifo=True,
            pool_reset_on_return=None)  # autocommit: nothing to roll back
        if engine.dialect.name == "postgresql":
            sa.event.listen(self._direct, "connect", _autocommit)

    def check(self, user_id: str) -> Freshness:
        """The user's event count and last event, and the catalog version, as of now."""
        # Every request asks this, so it skips the engine's pool and SQLAlchemy's
        # statement handling: a DBAPI connection in autocommit (each query sees
        # everything committed before it).
        for attempt in range(2):
            connection = self._direct.raw_connection()
            try:
                cursor = connection.cursor()
                try:
                    cursor.execute(self._check_sql, (user_id, user_id, user_id))
                    row = cursor.fetchone()
                finally:
                    cursor.close()
            except self.engine.dialect.dbapi.Error:  # type: ignore[union-attr]
                with contextlib.suppress(Exception):  # a server restart, say: reconnect once
                    connection.invalidate()
                if attempt == 1:
                    raise
                continue
            finally:
                connection.close()  # back to the pool, whatever happened
            assert row is not None  # an aggregate always has its row
            return Freshness(int(row[0]), int(row[1]), int(row[2]), _withheld(row[3]),
                             row[4])
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connections kept for :meth:`check` (when the store closes)."""
        if self._direct is not self.engine:
            self._direct.dispose()

    def catalog_version(self) -> int:
        """The catalog version: 0 until an item is first written, then growing."""
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(sa.func.max(catalog_changes_table.c.seq))).scalar()
        return int(found or 0)

    def items_since(self, version: int) -> tuple[int, list[str]]:
        """The current catalog version and the ids of items changed after ``version``
        (written or deleted), sorted."""
        table = catalog_changes_table
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(table.c.seq, table.c.item_id)
                                .where(table.c.seq > version)).all()
        latest = max((int(row.seq) for row in rows), default=version)
        return latest, sorted({row.item_id for row in rows})
