"""The alerts role: what the drift detectors found, and whether a retraining handled it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from tailored.store.base import Alert
from tailored.store.sqlbase import Serial, SqlTables, from_micros, metadata, micros

alerts_table = sa.Table(
    "alerts", metadata,
    sa.Column("alert_id", Serial, primary_key=True, autoincrement=True),
    sa.Column("detector", sa.String(64), nullable=False, index=True),
    sa.Column("detected_us", sa.BigInteger, nullable=False),
    sa.Column("raised_us", sa.BigInteger, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=False, default="{}"),
    sa.Column("handled_us", sa.BigInteger, nullable=True),
    sa.Column("handled_by", sa.Text, nullable=True),
    # One alert per detector and moment: re-running a detector over the same events
    # (another process, a restart) does not raise the same alert twice.
    sa.UniqueConstraint("detector", "detected_us", name="uq_alerts_detector_detected"),
)


class SqlAlerts(SqlTables):
    def raise_alert(self, detector: str, detected_at: datetime, message: str,
                    details: dict[str, Any] | None = None) -> Alert | None:
        row = {"detector": detector, "detected_us": micros(detected_at),
               "raised_us": micros(datetime.now(UTC)), "message": message,
               "details": json.dumps(details or {}), "handled_us": None, "handled_by": None}
        with self.engine.begin() as conn:
            statement = (self._insert(alerts_table).values(**row)
                         .on_conflict_do_nothing(index_elements=["detector", "detected_us"])
                         .returning(alerts_table.c.alert_id))
            alert_id = conn.execute(statement).scalar_one_or_none()
        return None if alert_id is None else self._one(alerts_table.c.alert_id == alert_id)

    def list(self, *, detector: str | None = None, unhandled: bool = False,
             limit: int | None = None) -> list[Alert]:
        query = sa.select(alerts_table).order_by(alerts_table.c.detected_us.desc(),
                                                 alerts_table.c.alert_id.desc())
        if detector is not None:
            query = query.where(alerts_table.c.detector == detector)
        if unhandled:
            query = query.where(alerts_table.c.handled_us.is_(None))
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [self._alert(row) for row in conn.execute(query).all()]

    def latest(self, detector: str) -> Alert | None:
        found = self.list(detector=detector, limit=1)
        return found[0] if found else None

    def mark_handled(self, alert_ids: Sequence[int], handled_by: str) -> int:
        if not alert_ids:
            return 0
        with self.engine.begin() as conn:
            result = conn.execute(
                alerts_table.update()
                .where(alerts_table.c.alert_id.in_(list(alert_ids)),
                       alerts_table.c.handled_us.is_(None))
                .values(handled_us=micros(datetime.now(UTC)), handled_by=handled_by))
        return max(result.rowcount, 0)

    def count(self) -> int:
        return self._count(alerts_table)

    def _one(self, condition: Any) -> Alert | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(alerts_table).where(condition)).first()
        return None if row is None else self._alert(row)

    @staticmethod
    def _alert(row: Any) -> Alert:
        return Alert(
            alert_id=int(row.alert_id), detector=row.detector,
            detected_at=from_micros(row.detected_us), raised_at=from_micros(row.raised_us),
            message=row.message, details=json.loads(row.details),
            handled_at=None if row.handled_us is None else from_micros(row.handled_us),
            handled_by=row.handled_by,
        )
