"""Import a file of events, items or users into the store: all of it, or nothing.

A file is read twice, streaming both times, so memory stays bounded by two chunks:

1. a check pass reads (and by default validates) every row, keeping only counts, the
   first few rejects and the first chunk's records, so a bad row on line 9,000,000 stops
   the import before anything is written;
2. a write pass stores the first chunk's records, then validates each further chunk again
   and writes it to the store (a file of one chunk is validated once), all chunks in one
   transaction (:meth:`~tailored.store.Store.transaction`): an import interrupted by a
   crash, Ctrl-C or a full disk leaves nothing of the file behind.

With ``skip_invalid=True`` the check pass only reads (so a file that cannot be read still
imports nothing), and the write pass stores the valid rows and writes every bad row to a
rejects CSV. Either way, nothing valid is dropped and nothing unvalidated is stored.

Events must be of a type the ``event_weights`` setting names (the six known ones and the
keys of ``event_weights.custom``); a row of another type is rejected like any bad row.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeAlias, cast

import numpy as np
import pyarrow as pa

from tailored.errors import InvalidDataError
from tailored.ingest.columnar import split_events
from tailored.ingest.readers import RecordChunk, read_records
from tailored.ingest.records import check_kind
from tailored.ingest.validate import Record, Reject, validate_records
from tailored.schema import EventWeights, Item, User
from tailored.store import Store, Transaction
from tailored.store.rows import event_rows

#: What a chunk of a file validates to: items or users, or events as columns.
Records: TypeAlias = list[Record] | pa.Table

#: From this many new events on, an import ends by vacuuming the events table (see
#: :meth:`~tailored.store.EventLog.vacuum`); its time counts in the import's.
VACUUM_AFTER = 100_000
#: How many rejects an error message lists before "... and N more".
SHOWN_REJECTS = 10
REJECT_COLUMNS = ("row", "field", "reason", "raw")


@dataclass(frozen=True)
class ImportReport:
    """What one import did.

    Attributes
    ----------
    path : Path
        The file imported.
    kind : str
        "events", "items" or "users".
    rows_read : int
        Data rows in the file (blank lines not counted);
        ``rows_read == imported + duplicates + rejected``.
    imported : int
        Records that are new in the store.
    duplicates : int
        Records already in the store: events with a known ``event_id`` (kept once),
        items and users updated in place (or repeated within the file).
    rejected : int
        Rows that failed validation (only non-zero with ``skip_invalid=True``).
    rejects_path : Path or None
        Where the rejected rows were written, if any were.
    seconds : float
        Wall time of the import, both passes included.
    """

    path: Path
    kind: str
    rows_read: int
    imported: int
    duplicates: int
    rejected: int
    rejects_path: Path | None
    seconds: float

    @property
    def rows_per_second(self) -> float:
        """Rows read per second of wall time."""
        return self.rows_read / self.seconds if self.seconds > 0 else float("inf")

    def __str__(self) -> str:
        text = (f"{self.path}: read {self.rows_read:,} rows of {self.kind}; {self.imported:,} "
                f"imported, {self.duplicates:,} already stored, {self.rejected:,} rejected")
        if self.rejects_path is not None:
            text += f" (listed in {self.rejects_path})"
        return text + f", in {self.seconds:.1f} s"


class RejectedRowsError(InvalidDataError):
    """Rows failed validation, so nothing was imported.

    ``rejects`` holds the first few (at most :data:`SHOWN_REJECTS`), ``rejected`` counts
    them all, ``rows_read`` counts every row checked.
    """

    def __init__(self, message: str, rejects: Sequence[Reject], rejected: int,
                 rows_read: int) -> None:
        super().__init__(message)
        self.rejects = list(rejects)
        self.rejected = rejected
        self.rows_read = rows_read


@dataclass(frozen=True)
class Source:
    """A re-readable stream of raw rows: the same chunks each time ``chunks()`` is called.

    ``require_timestamp`` rejects events without a time, which a file must not have: a
    time of "now" would give the event a new id on every import. ``event_weights`` names
    the event types accepted (by default the six known ones).
    """

    path: Path
    kind: str
    chunks: Callable[[], Iterator[RecordChunk]]
    require_timestamp: bool = True
    event_weights: EventWeights = field(default_factory=EventWeights)


@dataclass
class _Checked:
    rows_read: int = 0
    rejected: int = 0
    first_rejects: list[Reject] = field(default_factory=list)
    seconds: float = 0.0
    # The first chunk's records, kept so the write pass need not validate them again
    # (memory stays bounded: one chunk, and a small file is validated only once).
    first_records: Records | None = None


def _validate(source: Source, chunk: RecordChunk) -> tuple[Records, list[Reject]]:
    if source.kind != "events":
        records, rejects = validate_records(chunk, source.kind, file=str(source.path),
                                            text=chunk.text)
        return cast(list[Record], records), rejects
    # Events: the plainly valid rows a column at a time, the rest one by one, then
    # back in the file's order.
    plain, numbers, rest = split_events(chunk, source.event_weights)
    events, rejects = validate_records(
        rest, "events", file=str(source.path), text=chunk.text,
        require_timestamp=source.require_timestamp, event_weights=source.event_weights)
    if not events:
        return plain, rejects
    checked = {number for number, _ in rest} - {r.row for r in rejects}
    order = np.argsort(np.concatenate([numbers, np.fromiter(sorted(checked), np.int64)]),
                       kind="stable")
    return pa.concat_tables([plain, event_rows(events, rederive=True)]).take(order), rejects


def _check(source: Source, *, validate: bool) -> _Checked:
    started = time.perf_counter()
    checked = _Checked()
    for chunk in source.chunks():
        checked.rows_read += len(chunk)
        if validate:
            records, rejects = _validate(source, chunk)
            if checked.first_records is None:
                checked.first_records = records
            checked.rejected += len(rejects)
            room = SHOWN_REJECTS - len(checked.first_rejects)
            checked.first_rejects.extend(rejects[:max(room, 0)])
    checked.seconds = time.perf_counter() - started
    return checked


def _refuse(sources: Sequence[Source], checks: Sequence[_Checked]) -> RejectedRowsError:
    rejected = sum(c.rejected for c in checks)
    rows_read = sum(c.rows_read for c in checks)
    shown = [r for c in checks for r in c.first_rejects][:SHOWN_REJECTS]
    where = ", ".join(str(s.path) for s, c in zip(sources, checks, strict=True) if c.rejected)
    lines = [f"{where}: {rejected:,} of {rows_read:,} rows are invalid; nothing was imported; "
             "fix the rows or pass --skip-invalid (skip_invalid=True) to import the valid "
             "rows and write the invalid ones to a rejects file"]
    lines += [f"  {reject}" for reject in shown]
    if rejected > len(shown):
        lines.append(f"  ... and {rejected - len(shown):,} more")
    return RejectedRowsError("\n".join(lines), shown, rejected, rows_read)


class _RejectsFile:
    """Rejected rows as CSV (row, field, reason, raw as JSON), opened at the first one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._stream: IO[str] | None = None
        self._writer: Any = None

    def write(self, rejects: Sequence[Reject]) -> None:
        if not rejects:
            return
        if self._writer is None:
            self._stream = self.path.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._stream)
            self._writer.writerow(REJECT_COLUMNS)
        self._writer.writerows(
            (r.row, r.field, r.reason, json.dumps(r.raw, default=str, ensure_ascii=False))
            for r in rejects)
        self.count += len(rejects)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()


def _store_count(transaction: Transaction, kind: str) -> int:
    return transaction.items.count() if kind == "items" else transaction.users.count()


def _write(transaction: Transaction, source: Source, rejects_file: _RejectsFile | None,
           first_records: Records | None) -> tuple[int, int]:
    """Validate and store each chunk in one transaction; return (rows written, rows new to
    the store)."""
    written = new = 0
    before = 0 if source.kind == "events" else _store_count(transaction, source.kind)
    for index, chunk in enumerate(source.chunks()):
        rejects: list[Reject] = []
        if index == 0 and first_records is not None:
            records = first_records
        else:
            records, rejects = _validate(source, chunk)
        if rejects:
            if rejects_file is None:
                # The check pass found none, so the file changed under us.
                raise InvalidDataError(
                    f"{source.path} changed while it was imported ({rejects[0]}); nothing "
                    "of it was stored; import the finished file again")
            rejects_file.write(rejects)
        if len(records) == 0:
            continue
        if isinstance(records, pa.Table):
            new += transaction.events.add_rows(records)
        elif source.kind == "items":
            transaction.items.upsert(cast(list[Item], records))
        else:
            transaction.users.upsert(cast(list[User], records))
        written += len(records)
    if source.kind != "events":
        new = _store_count(transaction, source.kind) - before
    return written, new


def import_sources(store: Store, sources: Sequence[Source], *, skip_invalid: bool = False,
                   rejects_paths: Sequence[Path | None] | None = None,
                   ) -> list[ImportReport]:
    """Check every source, then write them in order: the engine of :func:`import_file`.

    In the default mode a bad row in any source means nothing from any source is written.
    Each source is written in one transaction: an import stopped halfway through a
    source leaves nothing of that source (the sources before it stay imported).

    Parameters
    ----------
    store : Store
        Where the records go.
    sources : sequence of Source
        Re-readable streams of raw rows, e.g. the files of one MovieLens data set.
    skip_invalid : bool, default False
        Import the valid rows and write the invalid ones to a rejects file per source.
    rejects_paths : sequence of Path or None, optional
        The rejects file of each source; ``None`` means ``<source path>.rejects.csv``.

    Returns
    -------
    list of ImportReport
        One per source, in order.
    """
    chosen = list(rejects_paths or [None] * len(sources))
    targets = [path or Path(f"{source.path}.rejects.csv")
               for source, path in zip(sources, chosen, strict=True)]
    for source, target in zip(sources, targets, strict=True):
        if skip_invalid and target.resolve() == source.path.resolve():
            raise ValueError(f"rejects_path {target} is the file being imported; choose "
                             "another path for the rejected rows")
    checks = [_check(source, validate=not skip_invalid) for source in sources]
    if any(c.rejected for c in checks):
        raise _refuse(sources, checks)
    reports = []
    for source, checked, target in zip(sources, checks, targets, strict=True):
        started = time.perf_counter()
        rejects_file = _RejectsFile(target) if skip_invalid else None
        try:
            with store.transaction() as transaction, (
                    transaction.events.loading() if source.kind == "events" else nullcontext()):
                written, new = _write(transaction, source, rejects_file,
                                      checked.first_records)
            checked.first_records = None
            if source.kind == "events" and new >= VACUUM_AFTER:
                store.events.vacuum()
        finally:
            if rejects_file is not None:
                rejects_file.close()
        rejected = 0 if rejects_file is None else rejects_file.count
        reports.append(ImportReport(
            path=source.path, kind=source.kind, rows_read=checked.rows_read, imported=new,
            duplicates=written - new, rejected=rejected,
            rejects_path=rejects_file.path if rejects_file and rejected else None,
            seconds=checked.seconds + time.perf_counter() - started,
        ))
    return reports


def import_file(store: Store, path: str | Path, kind: str, *, skip_invalid: bool = False,
                rejects_path: str | Path | None = None, chunk_rows: int = 50_000,
                event_weights: EventWeights | None = None) -> ImportReport:
    """Import a CSV, TSV, JSON Lines or Parquet file of events, items or users.

    Columns tailored does not know are kept: an event's go into its ``context``, an
    item's or user's into its ``attributes``. Events are stored once per ``event_id``
    (derived from the content when the file has none), so importing a file again adds
    nothing new.

    The file is stored in one transaction: all of it, or (when the import fails or is
    interrupted) none of it. On SQLite that transaction holds the database's write lock
    while the rows are written (the second half of an import: some 20 s for a million
    events on two cores), so other writers wait: an event sent to the API meanwhile waits
    up to 10 s (``busy_timeout``), then is answered 503 with ``Retry-After``. Import
    large files when few events arrive, or use PostgreSQL, where writers do not wait.

    Parameters
    ----------
    store : Store
        Where the records go, e.g. ``open_store("sqlite:///tailored.db")``.
    path : str or Path
        The file; the extension decides the format (.csv, .tsv, .jsonl, .ndjson,
        .parquet; text formats may end in .gz).
    kind : {"events", "items", "users"}
        What the rows describe.
    skip_invalid : bool, default False
        Import the valid rows and write the invalid ones to ``rejects_path``. By default
        a single invalid row means nothing is imported.
    rejects_path : str or Path, optional
        Where rejected rows go with ``skip_invalid``; defaults to
        ``<path>.rejects.csv``. Written only if some row was rejected.
    chunk_rows : int, default 50_000
        Rows read, validated and written at a time; bounds the memory used.
    event_weights : EventWeights, optional
        Names the event types accepted (the six known ones and the keys of ``custom``);
        rows of other types are rejected. Default: the six known types only; ``tailored
        import`` passes the ``event_weights`` setting (``tailored.toml``,
        ``TAILORED_EVENT_WEIGHTS__CUSTOM``), as training reads it.

    Returns
    -------
    ImportReport
        Rows read, imported, already stored and rejected, and the time taken.

    Raises
    ------
    RejectedRowsError
        Some rows are invalid (and ``skip_invalid`` is False); the message lists the
        first ones with file, row, field and reason. Nothing was imported.
    InvalidDataError
        The file as a whole cannot be read (see :func:`read_records`). Nothing was
        imported.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from tailored.store import open_store
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "events.csv"
    >>> _ = path.write_text("user_id,item_id,timestamp,device\\n"
    ...                     "u1,i1,2024-05-01T12:00:00Z,mobile\\nu1,i2,1714564900,tv\\n")
    >>> store = open_store("sqlite://")
    >>> report = import_file(store, path, "events")
    >>> report.imported, report.duplicates, import_file(store, path, "events").duplicates
    (2, 0, 2)
    >>> store.events.frame()["context"].tolist()
    [{'device': 'mobile'}, {'device': 'tv'}]
    """
    kind = check_kind(kind)
    path = Path(path)
    source = Source(path, kind, lambda: read_records(path, kind, chunk_rows=chunk_rows),
                    event_weights=event_weights or EventWeights())
    return import_sources(
        store, [source], skip_invalid=skip_invalid,
        rejects_paths=[None if rejects_path is None else Path(rejects_path)])[0]
