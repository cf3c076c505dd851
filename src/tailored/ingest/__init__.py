"""Getting data in: read files, validate every row, and store what passed.

- :func:`import_file` imports a CSV, TSV, JSON Lines or Parquet file of events, items or
  users; by default one bad row means nothing is imported, and the error lists the bad
  rows with file, row, field and reason.
- :func:`import_movielens` imports the MovieLens data sets (ML-100K, ml-latest).
- :func:`read_records` streams raw rows in chunks; :func:`validate_records` turns them
  into records and :class:`Reject` reasons.
- :func:`parse_events`, :func:`parse_items` and :func:`parse_users` validate JSON-like
  objects, such as the body of an HTTP request.
- :func:`validate_json_events` validates events exactly as ``POST /events`` does;
  :mod:`tailored.ingest.streams` consumes them from Redis Streams or NATS JetStream.
"""

from tailored.ingest.importer import ImportReport, RejectedRowsError, import_file
from tailored.ingest.movielens import import_movielens
from tailored.ingest.readers import FORMATS, RecordChunk, detect_format, read_records
from tailored.ingest.records import KINDS, REQUIRED_COLUMNS
from tailored.ingest.validate import (
    Reject,
    parse_events,
    parse_items,
    parse_users,
    validate_json_events,
    validate_records,
)

__all__ = [
    "FORMATS", "KINDS", "REQUIRED_COLUMNS", "ImportReport", "RecordChunk", "Reject",
    "RejectedRowsError", "detect_format", "import_file", "import_movielens", "parse_events",
    "parse_items", "parse_users", "read_records", "validate_json_events", "validate_records",
]
