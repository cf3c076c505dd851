"""Import a file of events, items or users into the store: all of it, or nothing.

A file is read once, streaming, so memory stays bounded by a few chunks. Each chunk is
validated and stored (a writer thread stores one chunk while the next is validated), all
chunks in one transaction (:meth:`~tailored.store.Store.transaction`): an import
interrupted by a crash, Ctrl-C or a full disk leaves nothing of the file behind. A bad
row stops the writing; the rest of the file is only validated, to count the bad rows,
and the transaction is rolled back, so nothing of the file is kept.

Several files imported together (the files of a MovieLens data set) are first all read
in a check pass that validates and writes nothing, so a bad row in any of them means
none is written; the write pass then validates each chunk again (a file of one chunk is
validated once).

With ``skip_invalid=True`` the valid rows are stored and every bad row is written to a
rejects CSV. Either way, nothing valid is dropped and nothing unvalidated is stored.

Events must be of a type the ``event_weights`` setting names (the six known ones and the
keys of ``event_weights.custom``); a row of another type is rejected like any bad row.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
from tailored.store import BulkLoad, Store, Transaction
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
        Wall time of the import (its check pass included, when several files had one).
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

    def note(self, rejects: Sequence[Reject]) -> None:
        """Count ``rejects``, keeping the first few for the error message."""
        self.rejected += len(rejects)
        room = SHOWN_REJECTS - len(self.first_rejects)
        self.first_rejects.extend(rejects[:max(room, 0)])


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
            checked.note(rejects)
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


def _store(transaction: Transaction, kind: str, records: Records) -> int:
    """Write one chunk; return how many events were new (items and users are counted
    in the store)."""
    if isinstance(records, pa.Table):
        return transaction.events.add_rows(records)
    if kind == "items":
        transaction.items.upsert(cast(list[Item], records))
    else:
        transaction.users.upsert(cast(list[User], records))
    return 0


def _write(transaction: Transaction, source: Source, checked: _Checked,
           rejects_file: _RejectsFile | None, *, checking: bool) -> tuple[int, int]:
    """Validate and store each chunk in one transaction; return (rows written, rows new to
    the store). A chunk is stored by a writer thread, mostly waiting on the store, while
    the next one is read and validated here.

    With ``checking`` (no check pass came first) the rows are counted into ``checked``,
    and once a row is rejected (without a ``rejects_file``) nothing more is written: the
    rest is only validated, for the count, and the caller refuses the whole source."""
    written = new = 0
    before = 0 if source.kind == "events" else _store_count(transaction, source.kind)
    with ThreadPoolExecutor(1, thread_name_prefix="tailored-import-store") as writer:
        storing: Future[int] | None = None
        for index, chunk in enumerate(source.chunks()):
            rejects: list[Reject] = []
            if checking:
                checked.rows_read += len(chunk)
            if index == 0 and checked.first_records is not None:
                records, checked.first_records = checked.first_records, None
            else:
                records, rejects = _validate(source, chunk)
            if rejects and rejects_file is not None:
                rejects_file.write(rejects)
            elif rejects and checking:
                checked.note(rejects)
            elif rejects:  # the check pass found none, so the file changed under us
                raise InvalidDataError(
                    f"{source.path} changed while it was imported ({rejects[0]}); "
                    "nothing of it was stored; import the finished file again")
            if checked.rejected or len(records) == 0:
                continue
            if storing is not None:  # one chunk at a time: the store keeps the file's order
                new += storing.result()
            storing = writer.submit(_store, transaction, source.kind, records)
            written += len(records)
        if storing is not None:
            new += storing.result()
    if source.kind != "events":
        new = _store_count(transaction, source.kind) - before
    return written, new


def import_sources(store: Store, sources: Sequence[Source], *, skip_invalid: bool = False,
                   rejects_paths: Sequence[Path | None] | None = None,
                   ) -> list[ImportReport]:
    """Check every source, then write them in order: the engine of :func:`import_file`.

    In the default mode a bad row in any source means nothing from any source is written.
    Each source is written in one transaction: an import stopped halfway through a
    source leaves nothing of that source (the sources before it stay imported). A single
    source is checked as it is written, in that transaction, so it is read only once.

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
    # Several sources are all checked before the first is written; a single one is
    # checked while it is written, and a bad row rolls its transaction back.
    checking = len(sources) == 1
    checks = ([_Checked()] if checking else
              [_check(source, validate=not skip_invalid) for source in sources])
    if any(c.rejected for c in checks):
        raise _refuse(sources, checks)
    reports = []
    for source, checked, target in zip(sources, checks, targets, strict=True):
        started = time.perf_counter()
        rejects_file = _RejectsFile(target) if skip_invalid else None
        try:
            with store.transaction() as transaction, (
                    transaction.events.loading() if source.kind == "events"
                    else nullcontext(BulkLoad())) as load:
                written, new = _write(transaction, source, checked, rejects_file,
                                      checking=checking)
                if checked.rejected:
                    raise _refuse([source], [checked])
            new -= load.repeated  # known once the load has ended
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
    while the file is imported (some 20 s for a million events on two cores), so other
    writers wait: an event sent to the API meanwhile waits up to 10 s (``busy_timeout``),
    then is answered 503 with ``Retry-After``. Import large files when few events arrive,
    or use PostgreSQL, where writers do not wait.

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
