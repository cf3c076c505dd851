"""Events checked a whole column at a time: the bulk path of a file import.

Checking rows one by one (:mod:`tailored.ingest.validate`) costs some 30 microseconds
a row, which caps an import far below what the store can take. Most rows of a real file
are plainly valid, though: printable ASCII ids, a known event type, a Unix time, a plain
number or no value. :func:`split_events` takes those a column at a time (Arrow's compute
kernels) straight to :data:`~tailored.store.rows.EVENT_ROWS`, and leaves every other row
(anything unusual, and every row of a file with context columns) to the row-by-row
validator, which accepts or rejects it with its reasons. So the bulk path accepts only
what the validator would accept, stored the same way; it never rejects anything.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tailored.ingest.readers import RecordChunk
from tailored.schema import MAX_CLOCK_SKEW, MAX_EVENT_VALUE, EventWeights
from tailored.store.rows import EVENT_ROWS

#: The columns the bulk path knows; a file with others (context) is checked row by row.
_COLUMNS = frozenset({"event_id", "user_id", "item_id", "event_type", "value", "timestamp",
                      "session_id"})
# Printable ASCII, 1 to 256 characters, no space at either end: an id as stored, with
# nothing for Unicode normalisation or stripping to change.
_PLAIN_ID = r"^[!-~]([ -~]{0,254}[!-~])?$"
_PLAIN_NUMBER = r"^[0-9]{1,7}(\.[0-9]{1,12})?$"  # no sign, no exponent, no padding spaces
_UNIX_SECONDS = r"^[0-9]{1,11}$"

Raw = list[tuple[int, dict[str, object]]]


def split_events(chunk: RecordChunk, event_weights: EventWeights
                 ) -> tuple[pa.Table, np.ndarray, Raw]:
    """The rows of ``chunk`` that are plainly valid, as :data:`EVENT_ROWS` (an event
    without an id has a null ``event_id``, derived when stored), with their row numbers;
    and the other rows, raw, for the validator."""
    table, numbers = chunk.table, chunk.row_numbers
    if table is None or numbers is None or not set(table.column_names) <= _COLUMNS \
            or "timestamp" not in table.column_names:
        return EVENT_ROWS.empty_table(), np.empty(0, np.int64), chunk.rows
    n = table.num_rows
    column = {name: table.column(name) for name in table.column_names}
    missing = pa.nulls(n, pa.string())
    event_type = column.get("event_type", pa.array(["view"] * n, pa.string()))
    if not _strings(event_type):
        return EVENT_ROWS.empty_table(), np.empty(0, np.int64), chunk.rows
    value, value_ok = _values(column.get("value", pa.nulls(n, pa.float64())))
    seconds, time_ok = _seconds(column["timestamp"])
    ok = _all(
        _plain_ids(column.get("user_id", missing), required=True),
        _plain_ids(column.get("item_id", missing), required=True),
        _plain_ids(column.get("event_id", missing), required=False),
        _plain_ids(column.get("session_id", missing), required=False),
        pc.is_in(event_type, value_set=pa.array(event_weights.event_types())),
        value_ok, time_ok,
        # A rating has a value (the validator says so when it has not).
        pc.or_(pc.not_equal(event_type, "rating"), pc.is_valid(value)),
    )
    rows = pa.table({
        "event_id": column.get("event_id", missing), "user_id": column.get("user_id"),
        "item_id": column.get("item_id"), "event_type": event_type, "value": value,
        "ts_us": pc.multiply(seconds, 1_000_000), "session_id": column.get("session_id", missing),
        "context": missing,
    }).filter(ok).cast(EVENT_ROWS)
    mask = np.asarray(ok)
    rest = table.filter(pc.invert(ok)).to_pylist()
    return rows, numbers[mask], list(zip(numbers[~mask].tolist(), rest, strict=True))


def _all(*checks: pa.ChunkedArray | pa.Array) -> pa.Array:
    ok = checks[0]
    for check in checks[1:]:
        ok = pc.and_(ok, check)
    return pc.fill_null(ok, False)


def _strings(column: pa.ChunkedArray | pa.Array) -> bool:
    return pa.types.is_string(column.type) or pa.types.is_large_string(column.type)


def _plain_ids(column: pa.ChunkedArray | pa.Array, *, required: bool
               ) -> pa.ChunkedArray | pa.Array:
    if not _strings(column):  # numbers as ids: the validator writes them as text
        return pc.is_null(column) if not required else pa.nulls(len(column), pa.bool_())
    plain = pc.match_substring_regex(column, _PLAIN_ID)
    return plain if required else pc.or_kleene(pc.is_null(column), plain)


def _values(column: pa.ChunkedArray | pa.Array
            ) -> tuple[pa.ChunkedArray | pa.Array, pa.ChunkedArray | pa.Array]:
    """The values as float64, and where they are plainly valid (missing counts)."""
    if _strings(column):
        plain = pc.match_substring_regex(column, _PLAIN_NUMBER)
        numbers = pc.cast(pc.if_else(plain, column, None), pa.float64())
    elif pa.types.is_integer(column.type) or pa.types.is_floating(column.type) \
            or pa.types.is_null(column.type):
        numbers = pc.cast(column, pa.float64())
    else:  # booleans and the rest: the validator names the problem
        return pa.nulls(len(column), pa.float64()), pa.nulls(len(column), pa.bool_())
    finite = pc.less_equal(pc.abs(numbers), MAX_EVENT_VALUE)  # NaN compares false
    ok = pc.or_kleene(pc.is_null(column), finite)
    return numbers, ok


def _seconds(column: pa.ChunkedArray | pa.Array
             ) -> tuple[pa.ChunkedArray | pa.Array, pa.ChunkedArray | pa.Array]:
    """Whole Unix seconds as int64, and where they lie between 1970 and now plus the clock
    skew allowed; ISO text and other forms of time go to the validator."""
    latest = int((datetime.now(UTC) + MAX_CLOCK_SKEW).timestamp())
    if _strings(column):
        digits = pc.match_substring_regex(column, _UNIX_SECONDS)
        seconds = pc.cast(pc.if_else(digits, column, None), pa.int64())
    elif pa.types.is_integer(column.type) and column.type != pa.uint64():
        seconds = pc.cast(column, pa.int64())
    else:
        return pa.nulls(len(column), pa.int64()), pa.nulls(len(column), pa.bool_())
    return seconds, pc.and_(pc.greater_equal(seconds, 0), pc.less_equal(seconds, latest))
