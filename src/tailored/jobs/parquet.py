"""The store's events as one Parquet file (``tailored export events``): what Spark, or any
other engine outside the process, reads.

The file has one row per event, oldest first, with the columns ``event_id``,
``user_id``, ``item_id``, ``event_type``, ``value`` (a rating's stars, else null),
``timestamp`` (UTC, microseconds), ``session_id`` and ``context`` (a JSON object, as
text). Events of users who withhold consent to personalization are left out, as every
training snapshot leaves them out (:meth:`tailored.dataset.Dataset.from_store`);
impressions stay in (their type weighs 0, which a reader applies with the weights).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tailored.store import Store

EVENT_COLUMNS = ("event_id", "user_id", "item_id", "event_type", "value", "timestamp",
                 "session_id", "context")

_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("user_id", pa.string()), ("item_id", pa.string()),
    ("event_type", pa.string()), ("value", pa.float64()),
    ("timestamp", pa.timestamp("us", tz="UTC")), ("session_id", pa.string()),
    ("context", pa.string()),
])


@dataclass(frozen=True)
class ExportedEvents:
    path: Path
    events: int
    users: int
    items: int
    withheld_users: int


def write_events(events: pd.DataFrame, path: str | Path) -> Path:
    """Write an events frame (``user_id`` and ``item_id`` at least; the other columns
    of :data:`EVENT_COLUMNS` are filled with nulls when absent) as Parquet.

    Timestamps are written in microseconds, which every Parquet reader (Spark included)
    takes; ``context`` dicts become JSON text.

    Examples
    --------
    >>> import tempfile
    >>> frame = pd.DataFrame({"user_id": ["u1"], "item_id": ["a"]})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     written = write_events(frame, Path(tmp) / "events.parquet")
    ...     pq.read_table(written).column_names == list(EVENT_COLUMNS)
    True
    """
    target = Path(path)
    frame = pd.DataFrame(index=events.index)
    for column in EVENT_COLUMNS:
        frame[column] = events[column] if column in events.columns else None
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame["value"] = pd.to_numeric(frame["value"]).astype("float64")
    frame["context"] = [None if c is None or (isinstance(c, float) and pd.isna(c))
                        else c if isinstance(c, str) else json.dumps(c, sort_keys=True)
                        for c in frame["context"]]
    for column in ("event_id", "user_id", "item_id", "event_type", "session_id"):
        frame[column] = [None if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)
                         for v in frame[column]]
    table = pa.Table.from_pandas(frame.reset_index(drop=True), schema=_SCHEMA,
                                 preserve_index=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, target, coerce_timestamps="us", allow_truncated_timestamps=True)
    return target


def export_events(store: Store, path: str | Path) -> ExportedEvents:
    """Write every event of the store (but those of users who withhold consent) to
    ``path`` as Parquet; see the module's docstring for the columns.

    Examples
    --------
    >>> import tempfile
    >>> from datetime import UTC, datetime
    >>> from tailored.schema import Event
    >>> from tailored.store import open_store
    >>> store = open_store("sqlite://")
    >>> _ = store.events.add([Event(user_id="u1", item_id="a", event_type="purchase",
    ...                             timestamp=datetime(2024, 1, 1, tzinfo=UTC))])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     exported = export_events(store, Path(tmp) / "events.parquet")
    ...     pq.read_table(exported.path).to_pandas()[["user_id", "event_type"]].values.tolist()
    [['u1', 'purchase']]
    """
    events = store.events.frame()
    withheld = store.users.without_consent()
    if withheld:
        events = events[~events["user_id"].isin(withheld)].reset_index(drop=True)
    written = write_events(events, path)
    return ExportedEvents(written, len(events), int(events["user_id"].nunique()),
                          int(events["item_id"].nunique()), len(withheld))
