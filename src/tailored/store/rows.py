"""Events as columns: the shape a batch of validated events has on its way into the store.

A file import validates whole columns at a time (``tailored.ingest.columnar``) and the
store writes them in bulk (``COPY`` on PostgreSQL), so no per-event object is made on
that path. Events that came one by one (the API, a stream) are turned into the same
columns by :func:`event_rows`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from tailored.schema import Event, content_id
from tailored.store.sqlbase import from_micros, json_or_none, micros

#: The stored columns of an event. A null ``event_id`` is derived from the event's content
#: when it is stored (:func:`with_event_ids`), after any change to its user id.
EVENT_ROWS = pa.schema([
    ("event_id", pa.string()), ("user_id", pa.string()), ("item_id", pa.string()),
    ("event_type", pa.string()), ("value", pa.float64()), ("ts_us", pa.int64()),
    ("session_id", pa.string()), ("context", pa.string()),  # context as JSON text
])


def event_rows(events: Sequence[Event], *, rederive: bool = False) -> pa.Table:
    """Validated events as :data:`EVENT_ROWS`. With ``rederive``, an id the event derived
    from its content is left null, to be derived again when stored: a pseudonymous store
    derives it from the stored user id, as it does for events added one by one."""
    return pa.table({
        "event_id": [None if rederive and e.event_id == e.content_id() else e.event_id
                     for e in events],
        "user_id": [e.user_id for e in events],
        "item_id": [e.item_id for e in events],
        "event_type": [e.event_type for e in events],
        "value": [e.value for e in events],
        "ts_us": [micros(e.timestamp) for e in events],
        "session_id": [e.session_id for e in events],
        "context": [json_or_none(e.context) for e in events],
    }, schema=EVENT_ROWS)


def with_event_ids(rows: pa.Table) -> pa.Table:
    """``rows`` with every null ``event_id`` derived from the content, as
    :meth:`Event.content_id` derives it."""
    ids = rows.column("event_id")
    if ids.null_count == 0:
        return rows
    columns = {name: rows.column(name).to_pylist()
               for name in ("user_id", "item_id", "event_type", "value", "ts_us",
                            "session_id")}
    derived = [
        given if given is not None else content_id(
            columns["user_id"][i], columns["item_id"][i], columns["event_type"][i],
            columns["value"][i], from_micros(columns["ts_us"][i]), columns["session_id"][i])
        for i, given in enumerate(ids.to_pylist())]
    return rows.set_column(0, "event_id", pa.array(derived, pa.string()))
