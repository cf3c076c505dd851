"""The served log: every answer the service gave, for attribution and off-policy evaluation.

Each ``GET /recommendations`` or session answer carries a ``recommendation_id``; the
service records what it showed under that id: who asked, when, which model version (and
experiment variant) answered, the items in order with their scores, the probability the
serving policy had of showing each item in its slot (its *propensity*: 1.0 for a
deterministic ranking, below 1 with exploration) and the request's context. Clicks and
purchases that carry ``context.recommendation_id`` join back to it.

Examples
--------
>>> from datetime import UTC, datetime
>>> from tailored.store import open_store
>>> store = open_store("sqlite://")
>>> answer = Served("4f1c", "u42", datetime(2026, 1, 1, tzinfo=UTC), "als", 3,
...                 item_ids=["i7", "i2"], scores=[1.8, 1.4], propensities=[1.0, 1.0],
...                 context={"device": "mobile"})
>>> store.served.record([answer])
1
>>> store.served.get("4f1c").item_ids
['i7', 'i2']
>>> store.served.frame()[["user_id", "model_version", "item_ids"]].to_dict("records")
[{'user_id': 'u42', 'model_version': 3, 'item_ids': ['i7', 'i2']}]
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from tailored.store.sqlbase import (
    SqlTables,
    chunks,
    from_micros,
    metadata,
    micros,
    timestamps,
)

SERVED_COLUMNS = ("recommendation_id", "user_id", "served_at", "model_name", "model_version",
                  "experiment_id", "variant", "item_ids", "scores", "propensities", "context",
                  "placement")

served_table = sa.Table(
    "served", metadata,
    sa.Column("recommendation_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(256), nullable=True, index=True),
    sa.Column("served_us", sa.BigInteger, nullable=False, index=True),
    sa.Column("model_name", sa.String(64), nullable=False),
    sa.Column("model_version", sa.BigInteger, nullable=True),
    sa.Column("experiment_id", sa.String(256), nullable=True, index=True),
    sa.Column("variant", sa.String(256), nullable=True),
    sa.Column("item_ids", sa.Text, nullable=False),
    sa.Column("scores", sa.Text, nullable=False),
    sa.Column("propensities", sa.Text, nullable=False),
    sa.Column("context", sa.Text, nullable=True),
    sa.Column("placement", sa.String(64), nullable=True),
)


@dataclass(frozen=True)
class Served:
    """One answer of the service: what it showed, to whom, with which model and odds.

    ``user_id`` is None for an anonymous session answer. ``item_ids``, ``scores`` and
    ``propensities`` are aligned, best first.
    """

    recommendation_id: str
    user_id: str | None
    served_at: datetime
    model_name: str
    model_version: int | None
    experiment_id: str | None = None
    variant: str | None = None
    item_ids: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    propensities: list[float] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    placement: str | None = None


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class SqlServedLog(SqlTables):
    """The served log on SQL: one row per answer, lists and context as JSON text."""

    _COLUMNS = tuple(c.name for c in served_table.columns)

    def record(self, served: Iterable[Served]) -> int:
        """Store answers (one transaction); return how many were new (known ids skipped)."""
        mark = "%s" if self.engine.dialect.name == "postgresql" else "?"
        sql = (f"INSERT INTO served ({', '.join(self._COLUMNS)}) "
               f"VALUES ({', '.join([mark] * len(self._COLUMNS))}) "
               "ON CONFLICT (recommendation_id) DO NOTHING")
        added = 0
        with self.engine.begin() as conn:
            for chunk in chunks(served):
                rows = [(s.recommendation_id, s.user_id, micros(s.served_at), s.model_name,
                         s.model_version, s.experiment_id, s.variant, _dumps(s.item_ids),
                         _dumps([float(x) for x in s.scores]),
                         _dumps([float(x) for x in s.propensities]),
                         _dumps(s.context) if s.context else None, s.placement)
                        for s in chunk]
                added += self._insert_counting(conn, sql, rows)
        return added

    def get(self, recommendation_id: str) -> Served | None:
        """The answer recorded under ``recommendation_id``, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(served_table).where(
                served_table.c.recommendation_id == recommendation_id)).first()
        return None if row is None else _served(row)

    def frame(self, *, since: datetime | None = None, experiment_id: str | None = None,
              user_id: str | None = None, placement: str | None = None) -> pd.DataFrame:
        """Answers as a frame with :data:`SERVED_COLUMNS`, oldest first; ``since``
        keeps those served at or after a time, ``experiment_id`` those of one experiment,
        ``user_id`` those given to one user, ``placement`` those of one placement."""
        query = sa.select(served_table).order_by(served_table.c.served_us,
                                                 served_table.c.recommendation_id)
        if user_id is not None:
            query = query.where(served_table.c.user_id == user_id)
        if since is not None:
            query = query.where(served_table.c.served_us >= micros(since))
        if experiment_id is not None:
            query = query.where(served_table.c.experiment_id == experiment_id)
        if placement is not None:
            query = query.where(served_table.c.placement == placement)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(self._COLUMNS)
        raw = dict(zip(self._COLUMNS, columns, strict=True))
        versions = [None if v is None else int(v) for v in raw["model_version"]]
        return pd.DataFrame({
            "recommendation_id": pd.Series(raw["recommendation_id"], dtype=object),
            "user_id": pd.Series(raw["user_id"], dtype=object),
            "served_at": timestamps(pd.Series(raw["served_us"], dtype="int64")),
            "model_name": pd.Series(raw["model_name"], dtype=object),
            "model_version": pd.Series(versions, dtype="Int64"),
            "experiment_id": pd.Series(raw["experiment_id"], dtype=object),
            "variant": pd.Series(raw["variant"], dtype=object),
            "item_ids": pd.Series([json.loads(v) for v in raw["item_ids"]], dtype=object),
            "scores": pd.Series([json.loads(v) for v in raw["scores"]], dtype=object),
            "propensities": pd.Series([json.loads(v) for v in raw["propensities"]],
                                      dtype=object),
            "context": pd.Series([json.loads(v) if v else {} for v in raw["context"]],
                                 dtype=object),
            "placement": pd.Series(raw["placement"], dtype=object),
        })[list(SERVED_COLUMNS)]

    def count(self) -> int:
        return self._count(served_table)

    def delete_before(self, cutoff: datetime) -> int:
        """Delete the answers served before ``cutoff``; return how many."""
        with self.engine.begin() as conn:
            return int(conn.execute(served_table.delete().where(
                served_table.c.served_us < micros(cutoff))).rowcount)

    def count_before(self, cutoff: datetime) -> int:
        """How many answers were served before ``cutoff``."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(served_table)
                                    .where(served_table.c.served_us < micros(cutoff)))
                       .scalar_one())


def _served(row: Any) -> Served:
    return Served(
        recommendation_id=row.recommendation_id, user_id=row.user_id,
        served_at=from_micros(row.served_us), model_name=row.model_name,
        model_version=None if row.model_version is None else int(row.model_version),
        experiment_id=row.experiment_id, variant=row.variant,
        item_ids=json.loads(row.item_ids), scores=json.loads(row.scores),
        propensities=json.loads(row.propensities),
        context=json.loads(row.context) if row.context else {},
        placement=row.placement,
    )
