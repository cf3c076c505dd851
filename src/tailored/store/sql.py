"""The store on SQLAlchemy Core: SQLite (embedded default, WAL) and PostgreSQL."""

from __future__ import annotations

import bisect
import functools
import io
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tailored.schema import PERSONALIZATION, Event, Item, User
from tailored.store.alerts import SqlAlerts
from tailored.store.base import (
    BASKET_LIMIT,
    ITEM_COLUMNS,
    USER_COLUMNS,
    BulkLoad,
    ModelVersion,
)
from tailored.store.changes import SqlChanges, install_change_tracking
from tailored.store.experiments import SqlExperiments, experiments_table
from tailored.store.keys import SqlKeyStore
from tailored.store.placements import SqlPlacements
from tailored.store.privacy import (
    ConsentChange,
    SqlPrivacy,
    consent_changes,
    consent_changes_table,
)
from tailored.store.rows import EVENT_ROWS, event_rows, with_event_ids
from tailored.store.served import SqlServedLog, served_table
from tailored.store.sqlbase import (
    CHUNK,
    Serial,
    SqlTables,
    chunks,
    from_micros,
    metadata,
    micros,
    timestamps,
    write_transaction,
)
from tailored.store.webhooks import SqlWebhooks

events_table = sa.Table(
    "events", metadata,
    sa.Column("seq", Serial, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(256), nullable=False, unique=True),
    sa.Column("user_id", sa.String(256), nullable=False, index=True),
    sa.Column("item_id", sa.String(256), nullable=False),
    sa.Column("event_type", sa.String(32), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    # Indexed for retention, which deletes by time.
    sa.Column("ts_us", sa.BigInteger, nullable=False, index=True),
    # Indexed for the baskets of bought_together: the purchases of a session.
    sa.Column("session_id", sa.String(256), nullable=True, index=True),
    sa.Column("context", sa.Text, nullable=True),
    # The newest purchases of an item, for bought_together, without reading its views.
    sa.Index("ix_events_item_type_ts", "item_id", "event_type", "ts_us"),
)

items_table = sa.Table(
    "items", metadata,
    sa.Column("item_id", sa.String(256), primary_key=True),
    sa.Column("title", sa.Text, nullable=False, default=""),
    sa.Column("text", sa.Text, nullable=False, default=""),
    sa.Column("categories", sa.Text, nullable=False, default="[]"),
    sa.Column("attributes", sa.Text, nullable=False, default="{}"),
    sa.Column("available", sa.Boolean, nullable=False, default=True),
    sa.Column("created_us", sa.BigInteger, nullable=True),
)

#: Items deleted from the catalog: a model trained before the deletion still knows them,
#: so they stay excluded from recommendations until the item is upserted again.
item_tombstones_table = sa.Table(
    "item_tombstones", metadata,
    sa.Column("item_id", sa.String(256), primary_key=True),
    sa.Column("deleted_us", sa.BigInteger, nullable=False),
)

users_table = sa.Table(
    "users", metadata,
    sa.Column("user_id", sa.String(256), primary_key=True),
    sa.Column("attributes", sa.Text, nullable=False, default="{}"),
    # Whether personalization is granted: what every request reads (SqlChanges.check).
    sa.Column("consent", sa.Boolean, nullable=False, default=True),
    # Every purpose recorded, as JSON ({"personalization": true, "analytics": false}).
    sa.Column("consents", sa.Text, nullable=False, server_default="{}"),
)

#: From this many events on, PostgreSQL takes them by ``COPY`` (35 against 53 us an event
#: at 2,000, even at 500); fewer go faster as inserts, without the scratch table's setup.
COPY_ROWS = 500

#: The memory PostgreSQL may sort in when it builds the indexes of a bulk load (the
#: server's default, 64MB, spills a 10M-event index to disk).
BUILD_MEMORY = "512MB"

#: The columns of :data:`~tailored.store.rows.EVENT_ROWS` in PostgreSQL's words.
_ROW_TYPES = ("event_id TEXT, user_id TEXT, item_id TEXT, event_type TEXT, "
              "value DOUBLE PRECISION, ts_us BIGINT, session_id TEXT, context TEXT")

#: Columns and indexes added after their table was first created: added to an older
#: store when it is opened.
_ADDED_COLUMNS = (("users", "consents", "TEXT NOT NULL DEFAULT '{}'"),
                  ("served", "placement", "VARCHAR(64)"),
                  ("experiments", "placement", "VARCHAR(64)"))
_ADDED_INDEXES = (("ix_events_ts_us", "events", "ts_us"),
                  ("ix_events_session_id", "events", "session_id"),
                  ("ix_events_item_type_ts", "events", "item_id, event_type, ts_us"))

models_table = sa.Table(
    "model_versions", metadata,
    sa.Column("version", Serial, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("metrics", sa.Text, nullable=False, default="{}"),
    sa.Column("details", sa.Text, nullable=False, default="{}"),
    sa.Column("active", sa.Boolean, nullable=False, default=False),
)


#: Every promotion, in order: what a rollback goes back to.
promotions_table = sa.Table(
    "model_promotions", metadata,
    sa.Column("seq", Serial, primary_key=True, autoincrement=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("promoted_us", sa.BigInteger, nullable=False),
)


def _copy(cursor: Any, table: str, rows: pa.Table) -> None:
    """``rows`` into ``table`` by ``COPY`` (far faster than inserts)."""
    text = io.BytesIO()
    pa_csv.write_csv(rows, text, pa_csv.WriteOptions(include_header=False))
    with cursor.copy(f"COPY {table} ({', '.join(rows.column_names)}) FROM STDIN "
                     "(FORMAT csv)") as copy:
        copy.write(text.getbuffer())


def _copy_events(conn: sa.Connection, rows: pa.Table) -> int:
    """``rows`` into PostgreSQL's events by ``COPY``, through a scratch table so a known
    ``event_id`` is skipped: return how many were new."""
    names = ", ".join(EVENT_ROWS.names)
    with _cursor(conn) as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS events_in (n BIGINT, "
                       f"{_ROW_TYPES})")
        cursor.execute("TRUNCATE events_in")
        _copy(cursor, "events_in", rows.select(EVENT_ROWS.names).add_column(
            0, "n", pa.array(np.arange(len(rows)), pa.int64())))
        # In the batch's order, so ``seq`` keeps it (ties in time are read back in it).
        cursor.execute(f"INSERT INTO events ({names}) SELECT {names} FROM events_in "
                       "ORDER BY n ON CONFLICT (event_id) DO NOTHING")
        return max(cursor.rowcount, 0)


def _cursor(conn: sa.Connection) -> Any:
    """The psycopg cursor under ``conn``, for ``COPY``."""
    driver = conn.connection.driver_connection
    assert driver is not None
    return driver.cursor()


def _add_unique_event_ids(conn: sa.Connection, name: str, definition: str) -> int:
    """Put the unique event id constraint back after a bulk load; rows repeating an
    earlier row's event id are deleted first (the earliest is kept): how many."""
    add = f'ALTER TABLE events ADD CONSTRAINT "{name}" {definition}'
    try:
        with conn.begin_nested():  # the usual case, a file without repeats: one pass
            conn.exec_driver_sql(add)
        return 0
    except sa.exc.IntegrityError:
        pass
    repeated = conn.exec_driver_sql(
        "DELETE FROM events later USING events earlier "
        "WHERE later.event_id = earlier.event_id AND later.seq > earlier.seq").rowcount
    conn.exec_driver_sql(add)
    return max(repeated, 0)


def _merge(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``current`` with ``changes`` applied; ``attributes`` merge, a null attribute removes it."""
    merged = {**current, **{k: v for k, v in changes.items() if k != "attributes"}}
    if "attributes" in changes:
        attributes = {**current.get("attributes", {}), **(changes["attributes"] or {})}
        merged["attributes"] = {k: v for k, v in attributes.items() if v is not None}
    return merged


def _validated(model: Any, values: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from tailored.errors import InvalidDataError

    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise InvalidDataError(f"invalid {model.__name__.lower()} update: {error}") from None


@functools.cache
def _events_query(by_user: bool, consenting: bool) -> sa.Select[Any]:
    """The read of :meth:`SqlEventLog.frame`, built once: building it is a third of
    reading one user's history on the request path. ``by_user`` binds ``user_ids``."""
    events = events_table.c
    query = sa.select(
        events.event_id, events.user_id, events.item_id, events.event_type, events.value,
        events.ts_us, events.session_id, events.context,
    ).order_by(events.ts_us, events.seq)
    if by_user:
        query = query.where(events.user_id.in_(sa.bindparam("user_ids", expanding=True)))
    if consenting:  # in the same query: one round trip on the request path
        query = query.where(~sa.exists().where(users_table.c.user_id == events.user_id,
                                               users_table.c.consent.is_(False)))
    return query


class SqlEventLog(SqlTables):
    _bulk = False  # inside loading(), into an empty table: rows are copied straight in

    def add(self, events: Iterable[Event]) -> int:
        return self.add_rows(event_rows(list(events)))

    def add_rows(self, rows: pa.Table) -> int:
        rows = with_event_ids(rows)
        # One transaction: on return, every event is durable (or none is, on error).
        postgres = self.engine.dialect.name == "postgresql"
        with self._begin() as conn:
            if self._bulk:  # no unique index to check yet: loading() dedupes at its end
                with _cursor(conn) as cursor:
                    _copy(cursor, "events", rows.select(EVENT_ROWS.names))
                return len(rows)
            if postgres and len(rows) >= COPY_ROWS:
                return _copy_events(conn, rows)
            added = 0
            mark = "%s" if postgres else "?"
            sql = (f"INSERT INTO events ({', '.join(EVENT_ROWS.names)}) "
                   f"VALUES ({', '.join([mark] * len(EVENT_ROWS.names))}) "
                   "ON CONFLICT (event_id) DO NOTHING")
            for batch in rows.to_batches(CHUNK):
                # Plain driver executemany: building SQLAlchemy parameters row by row
                # costs more than the insert itself on large imports.
                columns = [batch.column(name).to_pylist() for name in EVENT_ROWS.names]
                added += self._insert_counting(conn, sql, list(zip(*columns, strict=True)))
            return added

    @contextmanager
    def loading(self) -> Iterator[BulkLoad]:
        load = BulkLoad()
        conn = self._bound
        if self.engine.dialect.name != "postgresql" or conn is None or \
                conn.exec_driver_sql("SELECT EXISTS (SELECT 1 FROM events)").scalar():
            yield load
            return
        # Everything but the primary key goes, the unique event id too (the table's one
        # unique constraint): the rows are copied straight in, their ids made unique once
        # at the end.
        unique = conn.exec_driver_sql(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'events'::regclass AND contype = 'u'").all()
        for name, _ in unique:
            conn.exec_driver_sql(f'ALTER TABLE events DROP CONSTRAINT "{name}"')
        indexes = conn.exec_driver_sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = 'events' AND indexdef NOT LIKE 'CREATE UNIQUE %%'").all()
        for name, _ in indexes:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
        self._bulk = True
        try:
            yield load
        finally:
            self._bulk = False
        conn.exec_driver_sql(f"SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'")
        for name, definition in unique:  # sorted once: far cheaper than row by row
            load.repeated += _add_unique_event_ids(conn, name, definition)
        for _, definition in indexes:
            conn.exec_driver_sql(definition)

    def vacuum(self) -> None:
        # PostgreSQL only: a freshly loaded table has no visibility map, so counting a
        # user's events reads every one of them from the heap (3 ms for a heavy user,
        # on each request) until autovacuum comes by. SQLite needs nothing.
        if self.engine.dialect.name == "postgresql" and self._bound is None:
            with self.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM (ANALYZE) events")

    def frame(self, *, user_ids: Sequence[str] | None = None,
              consenting: bool = False) -> pd.DataFrame:
        query = _events_query(user_ids is not None, consenting)
        with self._connect() as conn:
            rows = conn.execute(query, {} if user_ids is None else
                                {"user_ids": list(user_ids)}).all()
        # Column by column: far cheaper than letting pandas infer from row tuples, which
        # matters on the request path (one user's history per recommendation).
        # Every column on one shared index: pandas then aligns nothing (half the time).
        columns = list(zip(*rows, strict=True)) if rows else [()] * 8
        (event_ids, users, items, types, values, micros, sessions, contexts) = columns
        index = pd.RangeIndex(len(rows))

        def column(values: Any, dtype: Any = object) -> pd.Series:
            return pd.Series(values, index=index, dtype=dtype, copy=False)

        return pd.DataFrame({
            "event_id": column(event_ids), "user_id": column(users), "item_id": column(items),
            "event_type": column(types),
            "value": column([np.nan if v is None else v for v in values], "float64"),
            "timestamp": timestamps(column(micros, "int64")),
            "session_id": column(sessions),
            "context": column([json.loads(c) if c else {} for c in contexts]),
        }, index=index, copy=False)

    def count(self) -> int:
        return self._count(events_table)

    @staticmethod
    def _before(cutoff: datetime, event_types: Sequence[str] | None) -> Any:
        condition = events_table.c.ts_us < micros(cutoff)
        if event_types is not None:
            condition = condition & events_table.c.event_type.in_(list(event_types))
        return condition

    def delete_before(self, cutoff: datetime, *,
                      event_types: Sequence[str] | None = None) -> int:
        # A user's (count, last seq) in SqlChanges.check drops with any of their events
        # deleted, so a cache entry made before no longer matches. (On SQLite a deleted
        # newest row's seq may be given again; the same key recurs only if exactly as many
        # new events follow and the last one gets that very seq, unseen in between.)
        with self._begin() as conn:
            return int(conn.execute(events_table.delete()
                                    .where(self._before(cutoff, event_types))).rowcount)

    def count_before(self, cutoff: datetime, *,
                     event_types: Sequence[str] | None = None) -> int:
        with self._connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(events_table)
                                    .where(self._before(cutoff, event_types))).scalar_one())

    def item_counts(self, since: datetime, until: datetime | None = None, *,
                    event_types: Sequence[str] | None = None) -> dict[str, int]:
        # The time index bounds the scan to the window.
        query = (sa.select(events_table.c.item_id, sa.func.count())
                 .where(events_table.c.ts_us >= micros(since))
                 .group_by(events_table.c.item_id))
        if until is not None:
            query = query.where(events_table.c.ts_us < micros(until))
        if event_types is not None:
            query = query.where(events_table.c.event_type.in_(list(event_types)))
        with self._connect() as conn:
            return {row[0]: int(row[1]) for row in conn.execute(query).all()}

    def bought_together(self, item_ids: Sequence[str], *,
                        event_types: Sequence[str] = ("purchase",),
                        window: timedelta = timedelta(days=1),
                        limit: int = BASKET_LIMIT) -> dict[str, float]:
        if window < timedelta(0) or limit < 1:
            raise ValueError(f"bought_together needs a window of 0 or more and a limit of 1 "
                             f"or more, got window={window} and limit={limit}")
        asked, types = set(item_ids), list(event_types)
        if not asked or not types:
            return {}
        events = events_table.c
        purchase = events.event_type.in_(types)
        reach = window // timedelta(microseconds=1)
        # A basket's items by its key: ("session", session id, 0) or ("user", user id,
        # the moment of a purchase of an asked item without a session).
        baskets: dict[tuple[str, str, int], set[str]] = defaultdict(set)
        # Three reads, each on an index: the newest purchases of the items asked
        # (ix_events_item_type_ts), the purchases of their sessions (ix_events_session_id)
        # and the purchases without a session of their buyers (ix_events_user_id).
        with self._connect() as conn:
            anchors = conn.execute(
                sa.select(events.user_id, events.session_id, events.ts_us)
                .where(events.item_id.in_(sorted(asked)), purchase)
                .order_by(events.ts_us.desc(), events.seq.desc()).limit(limit)).all()
            sessions = sorted({session for _, session, _ in anchors if session is not None})
            for part in chunks(sessions, 500):
                for session, item in conn.execute(
                        sa.select(events.session_id, events.item_id).distinct()
                        .where(events.session_id.in_(part), purchase)):
                    baskets[("session", session, 0)].add(item)
            moments: dict[str, set[int]] = defaultdict(set)  # user -> asked purchases
            for user, session, at in anchors:
                if session is None:
                    moments[user].add(at)
            for part in chunks(sorted(moments), 500):
                times = [at for user in part for at in moments[user]]
                bought: dict[str, list[tuple[int, str]]] = defaultdict(list)
                # The session is tested here: "IS NULL" in the query can steer SQLite to
                # the session index, through every purchase without a session.
                for user, item, at, session in conn.execute(
                        sa.select(events.user_id, events.item_id, events.ts_us,
                                  events.session_id)
                        .where(events.user_id.in_(part), purchase,
                               events.ts_us >= min(times) - reach,
                               events.ts_us <= max(times) + reach)):
                    if session is None:
                        bought[user].append((at, item))
                for user in part:
                    purchases = sorted(bought[user])
                    stamps = [at for at, _ in purchases]
                    for at in moments[user]:
                        near = purchases[bisect.bisect_left(stamps, at - reach):
                                         bisect.bisect_right(stamps, at + reach)]
                        baskets[("user", user, at)].update(item for _, item in near)
        together = Counter(item for basket in baskets.values() for item in basket
                           if item not in asked)
        return {item: count / len(baskets) for item, count in together.items()}

    def delete_users(self, user_ids: Sequence[str]) -> int:
        deleted = 0
        with self._begin() as conn:
            for part in chunks(user_ids, 500):
                deleted += int(conn.execute(events_table.delete().where(
                    events_table.c.user_id.in_(part))).rowcount)
        return deleted


class SqlCatalog(SqlTables):
    def upsert(self, items: Iterable[Item]) -> int:
        items = list(items)
        ids = [i.item_id for i in items]
        rows = (
            {
                "item_id": i.item_id, "title": i.title, "text": i.text,
                "categories": json.dumps(i.categories), "attributes": json.dumps(i.attributes),
                "available": i.available,
                "created_us": None if i.created_at is None else micros(i.created_at),
            }
            for i in items
        )
        written = self._upsert(items_table, "item_id", rows)
        self._forget_tombstones(ids)
        return written

    def _forget_tombstones(self, ids: list[str]) -> None:
        if not ids or self._count(item_tombstones_table) == 0:
            return
        with self._begin() as conn:
            for chunk in chunks(ids):
                conn.execute(item_tombstones_table.delete()
                             .where(item_tombstones_table.c.item_id.in_(chunk)))

    def update(self, item_id: str, changes: dict[str, Any]) -> Item | None:
        # Read, merge and write in one transaction that holds the row (the database on
        # SQLite) from the read on: two concurrent updates both land.
        with self._read_then_write() as conn:
            current = self._get(conn, item_id, lock=True)
            if current is None:
                return None
            item: Item = _validated(Item, _merge(current.model_dump(), changes)
                                    | {"item_id": item_id})
            conn.execute(items_table.update().where(items_table.c.item_id == item_id).values(
                title=item.title, text=item.text, categories=json.dumps(item.categories),
                attributes=json.dumps(item.attributes), available=item.available,
                created_us=None if item.created_at is None else micros(item.created_at)))
        return item

    def delete(self, item_id: str) -> bool:
        with self._begin() as conn:
            deleted = conn.execute(items_table.delete()
                                   .where(items_table.c.item_id == item_id)).rowcount > 0
            if deleted:
                conn.execute(self._insert(item_tombstones_table)
                             .values(item_id=item_id, deleted_us=micros(datetime.now(UTC)))
                             .on_conflict_do_nothing(index_elements=["item_id"]))
        return deleted

    def get(self, item_id: str) -> Item | None:
        with self._connect() as conn:
            return self._get(conn, item_id)

    @staticmethod
    def _get(conn: sa.Connection, item_id: str, lock: bool = False) -> Item | None:
        query = sa.select(items_table).where(items_table.c.item_id == item_id)
        row = conn.execute(query.with_for_update() if lock else query).first()
        if row is None:
            return None
        return Item(
            item_id=row.item_id, title=row.title, text=row.text,
            categories=json.loads(row.categories), attributes=json.loads(row.attributes),
            available=row.available,
            created_at=None if row.created_us is None else from_micros(row.created_us),
        )

    def frame(self) -> pd.DataFrame:
        with self._connect() as conn:
            rows = conn.execute(sa.select(items_table).order_by(items_table.c.item_id)).all()
        frame = pd.DataFrame(rows, columns=[c.name for c in items_table.columns])
        frame["categories"] = [json.loads(c) for c in frame["categories"]]
        frame["attributes"] = [json.loads(a) for a in frame["attributes"]]
        frame["available"] = frame["available"].astype(bool)
        created = frame.pop("created_us")
        frame["created_at"] = pd.to_datetime(created, unit="us", utc=True)
        return frame[list(ITEM_COLUMNS)]

    def titles(self, item_ids: Sequence[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(item_ids))
        found: dict[str, str] = {}
        with self._connect() as conn:
            for start in range(0, len(wanted), 500):  # within every backend's bind limit
                rows = conn.execute(
                    sa.select(items_table.c.item_id, items_table.c.title)
                    .where(items_table.c.item_id.in_(wanted[start:start + 500]))
                    .where(items_table.c.title != "")).all()
                found.update((row.item_id, row.title) for row in rows)
        return found

    def unavailable(self) -> list[str]:
        with self._connect() as conn:
            rows = conn.execute(sa.union_all(
                sa.select(items_table.c.item_id).where(items_table.c.available.is_(False)),
                sa.select(item_tombstones_table.c.item_id))).all()
        return [row.item_id for row in rows]

    def count(self) -> int:
        return self._count(items_table)


class SqlUserDirectory(SqlTables):
    def upsert(self, users: Iterable[User]) -> int:
        now = datetime.now(UTC)
        written = 0
        # Read then write in one transaction: consent merges into what is recorded, and
        # each change is recorded with its time.
        with self._read_then_write() as conn:
            for chunk in chunks(users):
                latest = {u.user_id: u for u in chunk}  # the last write of an id wins
                recorded = self._consents(conn, list(latest))
                rows, history = [], []
                for user in latest.values():
                    before = recorded.get(user.user_id, {})
                    consent = {**before, **user.consent}
                    rows.append(self._row(user.user_id, user.attributes, consent))
                    history += consent_changes(user.user_id, before, user.consent, now)
                statement = self._insert(users_table)
                conn.execute(statement.on_conflict_do_update(
                    index_elements=["user_id"],
                    set_={c: statement.excluded[c] for c in rows[0] if c != "user_id"}), rows)
                if history:
                    conn.execute(consent_changes_table.insert(), history)
                written += len(chunk)
        return written

    @staticmethod
    def _row(user_id: str, attributes: dict[str, Any], consent: dict[str, bool]
             ) -> dict[str, Any]:
        return {"user_id": user_id, "attributes": json.dumps(attributes),
                "consent": consent.get(PERSONALIZATION, True),
                "consents": json.dumps(consent, sort_keys=True)}

    @staticmethod
    def _consents(conn: sa.Connection, user_ids: list[str]) -> dict[str, dict[str, bool]]:
        rows = conn.execute(sa.select(users_table.c.user_id, users_table.c.consents)
                            .where(users_table.c.user_id.in_(user_ids))).all()
        return {row.user_id: json.loads(row.consents) for row in rows}

    def update(self, user_id: str, changes: dict[str, Any]) -> User | None:
        with self._read_then_write() as conn:  # as SqlCatalog.update
            current = self._get(conn, user_id, lock=True)
            if current is None:
                return None
            asked: User = _validated(User, {"user_id": user_id,
                                            "consent": changes.get("consent", {})})
            merged = _merge(current.model_dump(), changes) | {
                "user_id": user_id, "consent": {**current.consent, **asked.consent}}
            user: User = _validated(User, merged)
            values = self._row(user_id, user.attributes, user.consent)
            del values["user_id"]
            conn.execute(users_table.update().where(users_table.c.user_id == user_id)
                         .values(**values))
            history = consent_changes(user_id, current.consent, asked.consent,
                                      datetime.now(UTC))
            if history:
                conn.execute(consent_changes_table.insert(), history)
        return user

    def delete(self, user_id: str) -> bool:
        with self._begin() as conn:
            return conn.execute(users_table.delete()
                                .where(users_table.c.user_id == user_id)).rowcount > 0

    def get(self, user_id: str) -> User | None:
        with self._connect() as conn:
            return self._get(conn, user_id)

    @staticmethod
    def _get(conn: sa.Connection, user_id: str, lock: bool = False) -> User | None:
        query = sa.select(users_table).where(users_table.c.user_id == user_id)
        row = conn.execute(query.with_for_update() if lock else query).first()
        if row is None:
            return None
        return User(user_id=row.user_id, attributes=json.loads(row.attributes),
                    consent=json.loads(row.consents))

    def without_consent(self, among: Sequence[str] | None = None, *,
                        purpose: str = PERSONALIZATION) -> list[str]:
        if purpose == PERSONALIZATION:
            query = sa.select(users_table.c.user_id).where(users_table.c.consent.is_(False))
        else:  # other purposes: only rows withholding something can withhold this one
            query = sa.select(users_table.c.user_id, users_table.c.consents).where(
                users_table.c.consents.like("%false%"))
        found: list[str] = []
        with self._connect() as conn:
            for part in ([None] if among is None else list(chunks(among, 500))):
                where = query if part is None else query.where(
                    users_table.c.user_id.in_(part))
                rows = conn.execute(where).all()
                found += [row.user_id for row in rows if purpose == PERSONALIZATION
                          or json.loads(row.consents).get(purpose) is False]
        return found

    def consent_history(self, user_id: str) -> list[ConsentChange]:
        query = (sa.select(consent_changes_table)
                 .where(consent_changes_table.c.user_id == user_id)
                 .order_by(consent_changes_table.c.seq))
        with self._connect() as conn:
            return [ConsentChange(row.purpose, bool(row.granted), from_micros(row.changed_us))
                    for row in conn.execute(query).all()]

    def frame(self) -> pd.DataFrame:
        query = sa.select(users_table.c.user_id, users_table.c.attributes,
                          users_table.c.consents).order_by(users_table.c.user_id)
        with self._connect() as conn:
            rows = conn.execute(query).all()
        frame = pd.DataFrame(rows, columns=list(USER_COLUMNS))
        frame["attributes"] = [json.loads(a) for a in frame["attributes"]]
        frame["consent"] = [json.loads(c) for c in frame["consent"]]
        return frame

    def count(self) -> int:
        return self._count(users_table)


class SqlModelRegistry(SqlTables):
    def register(self, name: str, path: str, metrics: dict[str, float] | None = None,
                 details: dict[str, Any] | None = None) -> ModelVersion:
        with self.engine.begin() as conn:
            version = conn.execute(
                models_table.insert().values(
                    name=name, path=path, created_us=micros(datetime.now(UTC)),
                    metrics=json.dumps(metrics or {}), details=json.dumps(details or {}),
                    active=False,
                ).returning(models_table.c.version)
            ).scalar_one()
        found = self.get(int(version))
        assert found is not None
        return found

    def promote(self, version: int) -> ModelVersion:
        with self.engine.begin() as conn:
            exists = conn.execute(
                sa.select(models_table.c.version).where(models_table.c.version == version)
            ).first()
            if exists is None:
                from tailored.errors import ModelNotFoundError

                raise ModelNotFoundError(
                    f"model version {version} is not in the registry; "
                    "`tailored models list` shows the versions there are")
            conn.execute(models_table.update().values(active=False))
            conn.execute(models_table.update().where(models_table.c.version == version)
                         .values(active=True))
            conn.execute(promotions_table.insert().values(
                version=version, promoted_us=micros(datetime.now(UTC))))
        promoted = self.get(version)
        assert promoted is not None
        return promoted

    def active(self) -> ModelVersion | None:
        return self._one(models_table.c.active.is_(True))

    def previous(self) -> ModelVersion | None:
        with self.engine.connect() as conn:
            promoted = conn.execute(sa.select(promotions_table.c.version)
                                    .order_by(promotions_table.c.seq)).scalars().all()
        # Replay: a promotion pushes; promoting the version just below the top (what a
        # rollback does) pops, so rolling back twice goes two versions back.
        stack: list[int] = []
        for version in promoted:
            if stack and stack[-1] == version:
                continue
            if len(stack) >= 2 and stack[-2] == version:
                stack.pop()
            else:
                stack.append(version)
        active = self.active()
        if active is None or not stack or stack[-1] != active.version or len(stack) < 2:
            return None
        return self.get(stack[-2])

    def forget(self, version: int) -> ModelVersion:
        from tailored.errors import InvalidDataError, ModelNotFoundError

        found = self.get(version)
        if found is None:
            raise ModelNotFoundError(f"model version {version} is not in the registry; "
                                     "`tailored models list` shows the versions there are")
        previous = self.previous()
        kept = ("active" if found.active
                else "the one a rollback returns to" if previous is not None
                and previous.version == version
                else "the newest (a number is never given twice)"
                if version == max(v.version for v in self.list()) else None)
        if kept is not None:
            raise InvalidDataError(f"model version {version} is {kept}; it is kept")
        with self.engine.begin() as conn:
            table = experiments_table
            rows = conn.execute(sa.select(table.c.experiment_id, table.c.variants,
                                          table.c.holdout_version)
                                .where(table.c.status.in_(["draft", "running"]))).all()
            used = sorted(row.experiment_id for row in rows
                          if row.holdout_version == version
                          or any(v["version"] == version for v in json.loads(row.variants)))
            if used:
                raise InvalidDataError(
                    f"model version {version} is used by the experiment(s) "
                    f"{', '.join(used)} (draft or running); stop them first")
            deleted = conn.execute(models_table.delete().where(
                (models_table.c.version == version) & models_table.c.active.is_(False)))
            if deleted.rowcount == 0:  # promoted meanwhile
                raise InvalidDataError(f"model version {version} is active; it is kept")
        return found

    def get(self, version: int) -> ModelVersion | None:
        return self._one(models_table.c.version == version)

    def list(self) -> list[ModelVersion]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(models_table).order_by(models_table.c.version)).all()
        return [self._version(row) for row in rows]

    def _one(self, condition: Any) -> ModelVersion | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(models_table).where(condition)).first()
        return None if row is None else self._version(row)

    @staticmethod
    def _version(row: Any) -> ModelVersion:
        return ModelVersion(
            version=int(row.version), name=row.name, path=row.path,
            created_at=from_micros(row.created_us), metrics=json.loads(row.metrics),
            active=bool(row.active), details=json.loads(row.details),
        )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged event survives a power cut
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def masked_url(url: str) -> str:
    """The URL with any password replaced by ***, safe for messages and logs."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def _engine(url: str) -> Engine:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    in_memory = url in ("sqlite://", "sqlite:///:memory:")
    # One shared connection keeps an in-memory database visible to every thread.
    engine = (sa.create_engine(url, poolclass=sa.pool.StaticPool,
                               connect_args={"check_same_thread": False})
              if in_memory else sa.create_engine(url))
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    elif engine.dialect.name != "postgresql":
        raise ValueError(
            f"unsupported store URL {url!r}: use sqlite:///PATH or postgresql://HOST/DB")
    return engine


def _migrate(engine: Engine) -> None:
    """Bring a store made by an older version up to date (columns, indexes it lacks)."""
    inspector = sa.inspect(engine)
    with engine.begin() as conn:
        for table, column, definition in _ADDED_COLUMNS:
            if column not in {c["name"] for c in inspector.get_columns(table)}:
                conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        for index, table, columns in _ADDED_INDEXES:
            conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {index} ON {table} ({columns})")


@dataclass(frozen=True)
class SqlTransaction:
    """The record roles bound to one open transaction (:meth:`SqlStore.transaction`)."""

    events: SqlEventLog
    items: SqlCatalog
    users: SqlUserDirectory


class SqlStore:
    """All roles of the store over one SQLAlchemy engine; tables are created if missing."""

    def __init__(self, url: str) -> None:
        self.url = masked_url(url)
        self.engine = _engine(url)
        for attempt in range(3):
            try:
                metadata.create_all(self.engine)
                _migrate(self.engine)
                break
            except (sa.exc.OperationalError, sa.exc.IntegrityError):  # several processes at once
                if attempt == 2:
                    raise
                time.sleep(0.2)
        self.events = SqlEventLog(self.engine)
        self.items = SqlCatalog(self.engine)
        self.users = SqlUserDirectory(self.engine)
        self.models = SqlModelRegistry(self.engine)
        self.keys = SqlKeyStore(self.engine)
        self.experiments = SqlExperiments(self.engine)
        self.alerts = SqlAlerts(self.engine)
        self.placements = SqlPlacements(self.engine)
        self.webhooks = SqlWebhooks(self.engine)
        install_change_tracking(self.engine)
        self.served = SqlServedLog(self.engine)
        self.changes = SqlChanges(self.engine)
        self.privacy = SqlPrivacy(self.engine, {"events": events_table,
                                                "profile": users_table, "served": served_table})

    @contextmanager
    def transaction(self) -> Iterator[SqlTransaction]:
        """Events, items and users written in one transaction (see ``Store.transaction``).

        It takes the write lock at once on SQLite (``BEGIN IMMEDIATE``), so reading the
        counts before writing cannot fail on a writer that slipped in between.
        """
        with write_transaction(self.engine) as conn:
            yield SqlTransaction(SqlEventLog(self.engine, conn), SqlCatalog(self.engine, conn),
                                 SqlUserDirectory(self.engine, conn))

    def close(self) -> None:
        self.changes.close()
        self.engine.dispose()
