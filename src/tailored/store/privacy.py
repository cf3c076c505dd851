"""What the store keeps for data rights: consent changes over time, and erasures.

A user's consent changes are kept with their time, so what was allowed when can be
shown. An erasure deletes every row that names the user (events, profile, consent
history, served answers, which are also the experiment exposures) in one transaction,
and leaves an audit record that names the user only by a keyed hash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from tailored.store.sqlbase import Serial, SqlTables, from_micros, metadata, micros

consent_changes_table = sa.Table(
    "consent_changes", metadata,
    sa.Column("seq", Serial, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.String(256), nullable=False, index=True),
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("granted", sa.Boolean, nullable=False),
    sa.Column("changed_us", sa.BigInteger, nullable=False),
)

erasures_table = sa.Table(
    "erasures", metadata,
    sa.Column("erasure_id", Serial, primary_key=True, autoincrement=True),
    sa.Column("user_hash", sa.String(64), nullable=False, index=True),
    sa.Column("erased_us", sa.BigInteger, nullable=False),
    sa.Column("erased_by", sa.Text, nullable=False),
    sa.Column("deleted", sa.Text, nullable=False, default="{}"),
    # Set while a model trained before the erasure still carries the user's influence at
    # item level: a retraining must replace it by then.
    sa.Column("retrain_due_us", sa.BigInteger, nullable=True),
    sa.Column("retrained_us", sa.BigInteger, nullable=True),
)

#: What each applied retention deleted, by kind (events, served answers, versions, ...).
retention_runs_table = sa.Table(
    "retention_runs", metadata,
    sa.Column("run_id", Serial, primary_key=True, autoincrement=True),
    sa.Column("ran_us", sa.BigInteger, nullable=False),
    sa.Column("deleted", sa.Text, nullable=False),
)

#: Secrets the store makes for itself (the audit hash key when none is configured).
store_secrets_table = sa.Table(
    "store_secrets", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(128), nullable=False),
)


@dataclass(frozen=True)
class ConsentChange:
    """A purpose granted or withdrawn, and when."""

    purpose: str
    granted: bool
    changed_at: datetime


@dataclass(frozen=True)
class Erasure:
    """The audit record of one erasure: never the user's id, only its keyed hash."""

    erasure_id: int
    user_hash: str
    erased_at: datetime
    erased_by: str
    deleted: dict[str, int] = field(default_factory=dict)
    retrain_due: datetime | None = None
    retrained_at: datetime | None = None

    @property
    def pending(self) -> bool:
        """Whether a model still waits to be retrained without the user."""
        return self.retrain_due is not None and self.retrained_at is None


def keyed_hash(key: str, user_id: str) -> str:
    """HMAC-SHA256 of ``user_id`` under ``key``, hex: the same id always gives the same
    hash, and without the key a hash cannot be tested against guessed ids."""
    return hmac.new(key.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def consent_changes(user_id: str, before: Mapping[str, bool], after: Mapping[str, bool],
                    at: datetime) -> list[dict[str, Any]]:
    """History rows for the purposes whose grant ``after`` records anew or differently."""
    return [{"user_id": user_id, "purpose": purpose, "granted": granted,
             "changed_us": micros(at)}
            for purpose, granted in sorted(after.items()) if before.get(purpose) != granted]


class SqlPrivacy(SqlTables):
    """Erasures and their audit. ``user_tables``: every other table
    with a ``user_id`` column, by the name an erasure reports its deletions under."""

    def __init__(self, engine: sa.Engine, user_tables: Mapping[str, sa.Table]) -> None:
        super().__init__(engine)
        self.user_tables = {**user_tables, "consent_changes": consent_changes_table}

    def audit_key(self) -> str:
        """The key of audit hashes when no ``privacy_secret`` is configured: made once,
        kept in the store."""
        with self._begin() as conn:
            statement = (self._insert(store_secrets_table)
                         .values(name="audit_key", value=secrets.token_hex(32))
                         .on_conflict_do_nothing(index_elements=["name"]))
            conn.execute(statement)
            return str(conn.execute(sa.select(store_secrets_table.c.value).where(
                store_secrets_table.c.name == "audit_key")).scalar_one())

    def erase(self, user_ids: Iterable[str], *, key: str, erased_by: str,
              retrain_within: timedelta | None) -> list[Erasure]:
        """Delete every row naming each user, in one transaction, and audit each under
        the keyed hash of their id."""
        erased_at = datetime.now(UTC)
        now = micros(erased_at)
        due = None if retrain_within is None else micros(erased_at + retrain_within)
        rows = []
        with self._begin() as conn:
            for user_id in dict.fromkeys(user_ids):
                deleted = {name: int(conn.execute(
                    table.delete().where(table.c.user_id == user_id)).rowcount)
                    for name, table in self.user_tables.items()}
                rows.append({"user_hash": keyed_hash(key, user_id), "erased_us": now,
                             "erased_by": erased_by, "deleted": json.dumps(deleted),
                             "retrain_due_us": due, "retrained_us": None})
            ids = [conn.execute(erasures_table.insert().values(**row)
                                .returning(erasures_table.c.erasure_id)).scalar_one()
                   for row in rows]
        return [self._erasure(dict(row, erasure_id=i)) for i, row in zip(ids, rows, strict=True)]

    def erasures(self, *, pending: bool = False, after: int = 0) -> list[Erasure]:
        """Audit records, newest first (only those waiting for a retraining, only those
        after the record ``after``)."""
        query = (sa.select(erasures_table).where(erasures_table.c.erasure_id > after)
                 .order_by(erasures_table.c.erasure_id.desc()))
        if pending:
            query = query.where(erasures_table.c.retrain_due_us.is_not(None),
                                erasures_table.c.retrained_us.is_(None))
        with self._connect() as conn:
            return [self._erasure(row._asdict()) for row in conn.execute(query).all()]

    def erasures_of(self, user_id: str, *, key: str) -> list[Erasure]:
        """The audit records of ``user_id`` (found by its keyed hash), newest first."""
        query = (sa.select(erasures_table)
                 .where(erasures_table.c.user_hash == keyed_hash(key, user_id))
                 .order_by(erasures_table.c.erasure_id.desc()))
        with self._connect() as conn:
            return [self._erasure(row._asdict()) for row in conn.execute(query).all()]

    def record_retention(self, deleted: Mapping[str, int]) -> None:
        """Keep what one retention run deleted, by kind (for the metrics)."""
        with self._begin() as conn:
            conn.execute(retention_runs_table.insert().values(
                ran_us=micros(datetime.now(UTC)), deleted=json.dumps(dict(deleted))))

    def deletions(self) -> dict[str, int]:
        """Everything deleted for data rights so far: per kind over every retention run,
        ``erasures`` (users erased) and ``erasures_pending`` (waiting for a retraining)."""
        totals: dict[str, int] = {}
        with self._connect() as conn:
            for (deleted,) in conn.execute(sa.select(retention_runs_table.c.deleted)).all():
                for kind, count in json.loads(deleted).items():
                    totals[kind] = totals.get(kind, 0) + int(count)
            totals["erasures"] = int(conn.execute(
                sa.select(sa.func.count()).select_from(erasures_table)).scalar_one())
            totals["erasures_pending"] = int(conn.execute(
                sa.select(sa.func.count()).select_from(erasures_table).where(
                    erasures_table.c.retrain_due_us.is_not(None),
                    erasures_table.c.retrained_us.is_(None))).scalar_one())
        return totals

    def last_erasure_id(self) -> int:
        """The newest audit record's id, 0 before any: a cheap check for new erasures."""
        with self._connect() as conn:
            found = conn.execute(sa.select(sa.func.max(erasures_table.c.erasure_id))).scalar()
        return int(found or 0)

    def mark_pending(self, erasure_ids: Iterable[int], retrain_within: timedelta) -> int:
        """Set a retraining due on erasures that had none (a model trained while they
        were made carries their users at item level); return how many changed."""
        due = micros(datetime.now(UTC) + retrain_within)
        with self._begin() as conn:
            return int(conn.execute(
                erasures_table.update()
                .where(erasures_table.c.erasure_id.in_(list(erasure_ids)),
                       erasures_table.c.retrain_due_us.is_(None))
                .values(retrain_due_us=due, retrained_us=None)).rowcount)

    def mark_retrained(self, trained_before: datetime) -> int:
        """Close the pending erasures made before a model now serving was trained
        (``trained_before``: when its data was read); return how many."""
        with self._begin() as conn:
            return int(conn.execute(
                erasures_table.update()
                .where(erasures_table.c.retrain_due_us.is_not(None),
                       erasures_table.c.retrained_us.is_(None),
                       erasures_table.c.erased_us <= micros(trained_before))
                .values(retrained_us=micros(datetime.now(UTC)))).rowcount)

    @staticmethod
    def _erasure(row: Mapping[str, Any]) -> Erasure:
        return Erasure(
            erasure_id=int(row["erasure_id"]), user_hash=row["user_hash"],
            erased_at=from_micros(row["erased_us"]), erased_by=row["erased_by"],
            deleted=json.loads(row["deleted"]),
            retrain_due=(None if row["retrain_due_us"] is None
                         else from_micros(row["retrain_due_us"])),
            retrained_at=(None if row["retrained_us"] is None
                          else from_micros(row["retrained_us"])))


__all__ = ["ConsentChange", "Erasure", "SqlPrivacy", "consent_changes", "keyed_hash"]
