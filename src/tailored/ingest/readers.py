"""Stream raw rows out of CSV, TSV, JSON Lines and Parquet files, a chunk at a time.

A chunk holds at most ``chunk_rows`` rows, so a file of ten million events never needs
memory in proportion to its size. Rows keep the number a person finds them at: the line
number in text files (the header is line 1) and the 1-based row number in Parquet.
Problems with the file as a whole (unknown format, no header, a missing required column,
bytes that are not UTF-8, a line that is not JSON) raise
:class:`~tailored.errors.InvalidDataError` saying where and what to do.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tailored.errors import InvalidDataError
from tailored.ingest.records import REQUIRED_COLUMNS, check_kind

#: File name endings tailored reads, and the format each one means.
FORMATS: dict[str, str] = {
    ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".parquet": "parquet",
}
_TEXT_FORMATS = ("csv", "tsv", "jsonl")
_SEPARATORS = {"csv": ",", "tsv": "\t"}
_EXAMPLES = {
    "events": '{"user_id": "u1", "item_id": "i1", "event_type": "view", '
              '"timestamp": "2024-05-01T12:00:00Z"}',
    "items": '{"item_id": "i1", "title": "Red shoe", "categories": ["shoes"]}',
    "users": '{"user_id": "u1", "age_band": "25-34"}',
}
_FIELD_COUNT = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


@dataclass(frozen=True)
class RecordChunk:
    """Up to ``chunk_rows`` raw rows of one file; iterating yields ``(row, raw)`` pairs.

    ``text`` says every value was read as text (CSV, TSV), so numeric-looking extra
    columns may be turned into numbers; JSON and Parquet values keep their own types.
    A chunk read as columns (CSV, TSV, Parquet) also has them as ``table``, its rows
    numbered by ``row_numbers``, for checks that take whole columns at a time; its
    ``(row, raw)`` pairs are made only when asked for.
    """

    path: Path
    format: str
    given_rows: list[tuple[int, dict[str, Any]]] | None = field(default=None, repr=False)
    text: bool = False
    table: pa.Table | None = field(default=None, repr=False)
    row_numbers: np.ndarray | None = field(default=None, repr=False)

    @cached_property
    def rows(self) -> list[tuple[int, dict[str, Any]]]:
        if self.given_rows is not None:
            return self.given_rows
        assert self.table is not None and self.row_numbers is not None
        return list(zip(self.row_numbers.tolist(), self.table.to_pylist(), strict=True))

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any]]]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows) if self.table is None else self.table.num_rows


def detect_format(path: str | Path) -> str:
    """The format of ``path`` from its extension (a trailing ``.gz`` is allowed for text).

    Examples
    --------
    >>> detect_format("events.csv"), detect_format("events.jsonl.gz")
    ('csv', 'jsonl')
    """
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    suffix = suffixes[-2] if compressed and len(suffixes) > 1 else (
        suffixes[-1] if suffixes else "")
    found = FORMATS.get(suffix)
    if found is None or (compressed and found not in _TEXT_FORMATS):
        allowed = ", ".join(FORMATS)
        raise InvalidDataError(
            f"{path}: cannot tell the format from the extension "
            f"{''.join(path.suffixes[-2 if compressed else -1:]) or '(none)'!r}; "
            f"rename the file to end in one of {allowed} (text formats may add .gz)")
    return found


def read_records(path: str | Path, kind: str, *, chunk_rows: int = 50_000,
                 ) -> Iterator[RecordChunk]:
    """Stream the rows of a CSV, TSV, JSON Lines or Parquet file in chunks.

    The format comes from the extension, and the header (CSV, TSV, Parquet) must name
    the columns ``kind`` requires. Those checks run at once; problems found further into
    the file (bad bytes, a bad JSON line) raise while iterating.

    Parameters
    ----------
    path : str or Path
        The file.
    kind : {"events", "items", "users"}
        What the rows describe; decides the required columns.
    chunk_rows : int, default 50_000
        Most rows per chunk.

    Returns
    -------
    Iterator of RecordChunk
        Chunks whose ``(row, raw)`` pairs map column names to values, ``None`` where a
        value is missing (an empty cell, a JSON ``null``).

    Raises
    ------
    InvalidDataError
        The file is empty, has no data rows, lacks a required column, is not UTF-8, holds
        a line that is not a JSON object or has an unknown extension.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "events.csv"
    >>> _ = path.write_text("user_id,item_id,timestamp,device\\nu1,007,1714564800,\\n")
    >>> [list(chunk) for chunk in read_records(path, "events")]
    [[(2, {'user_id': 'u1', 'item_id': '007', 'timestamp': '1714564800', 'device': None})]]
    """
    kind = check_kind(kind)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    path = Path(path)
    file_format = detect_format(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InvalidDataError(
            f"{path}: the file is empty (0 bytes); {_expected(file_format, kind)}")
    if file_format == "parquet":
        return _read_parquet(path, kind, chunk_rows)
    if file_format == "jsonl":
        return _read_jsonl(path, kind, chunk_rows)
    columns = _read_header(path, file_format, kind)
    return _read_delimited(path, file_format, kind, columns, chunk_rows)


def _expected(file_format: str, kind: str) -> str:
    required = ", ".join(REQUIRED_COLUMNS[kind])
    if file_format == "jsonl":
        return f"expected one JSON object per line, such as {_EXAMPLES[kind]}"
    return (f"expected a header naming the columns (at least {required}) and one row "
            f"per {kind[:-1]}")


def _open_binary(path: Path) -> IO[bytes]:
    if path.suffix.lower() == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _not_utf8(path: Path, line: int, raw_line: bytes, error: UnicodeDecodeError,
              ) -> InvalidDataError:
    byte = raw_line[error.start]
    return InvalidDataError(
        f"{path}:{line}: byte 0x{byte:02x} at column {error.start + 1} is not valid UTF-8; "
        f"save the file as UTF-8 (for example `iconv -f latin1 -t utf-8 {path.name} > "
        f"{path.stem}.utf8{path.suffix}`) and import it again")


def _locate_bad_utf8(path: Path) -> InvalidDataError | None:
    """Find the first line that is not UTF-8 (only run once decoding has failed)."""
    with _open_binary(path) as stream:
        for number, raw_line in enumerate(stream, 1):
            try:
                raw_line.decode("utf-8")
            except UnicodeDecodeError as error:
                return _not_utf8(path, number, raw_line, error)
    return None


def check_columns(path: Path, columns: Sequence[str], kind: str) -> None:
    """Raise ``InvalidDataError`` if the header lacks a column ``kind`` requires."""
    missing = [name for name in REQUIRED_COLUMNS[kind] if name not in columns]
    if not missing:
        return
    hints = []
    for name in missing:
        # "userId" or "User ID" for "user_id": suggest the rename instead of a bare refusal.
        def squash(text: str) -> str:
            return re.sub(r"[^a-z0-9]", "", text.lower())
        same = [c for c in columns if squash(c) == squash(name)]
        close = same or difflib.get_close_matches(name, list(columns), n=1, cutoff=0.75)
        if close:
            hints.append(f"rename column {close[0]!r} to {name!r}")
    plural = "s" if len(missing) > 1 else ""
    message = (
        f"{path}:1: required column{plural} {', '.join(map(repr, missing))} missing from the "
        f"header ({', '.join(map(repr, columns)) or 'no columns'}); "
        f"{kind} need {', '.join(map(repr, REQUIRED_COLUMNS[kind]))}")
    raise InvalidDataError(message + (f"; {', '.join(hints)}" if hints else ""))


def _read_header(path: Path, file_format: str, kind: str) -> list[str]:
    with _open_binary(path) as stream:
        first = stream.readline()
    try:
        text = first.decode("utf-8-sig")  # Excel writes a byte-order mark
    except UnicodeDecodeError as error:
        raise _not_utf8(path, 1, first, error) from None
    if not text.strip():
        raise InvalidDataError(f"{path}:1: the first line is empty; "
                               f"{_expected(file_format, kind)}")
    columns = [name.strip() for name in next(csv.reader([text],
                                                        delimiter=_SEPARATORS[file_format]))]
    for position, name in enumerate(columns, 1):
        if not name:
            raise InvalidDataError(f"{path}:1: column {position} of the header has no name; "
                                   "name every column or remove the empty one")
        if columns.index(name) != position - 1:
            raise InvalidDataError(f"{path}:1: column {name!r} appears twice in the header; "
                                   "keep one of them")
    check_columns(path, columns, kind)
    return columns


def _read_delimited(path: Path, file_format: str, kind: str, columns: list[str],
                    chunk_rows: int) -> Iterator[RecordChunk]:
    line = 1
    read_any = False
    try:
        with pd.read_csv(
            path, sep=_SEPARATORS[file_format], header=0, names=columns, dtype=object,
            keep_default_na=False, na_values=[""],  # only an empty cell is missing, not "NA"
            skip_blank_lines=False,  # blank lines still count: row numbers stay line numbers
            encoding="utf-8-sig", chunksize=chunk_rows, compression="infer",
        ) as reader:
            for frame in reader:
                numbers = np.arange(line + 1, line + 1 + len(frame))
                line += len(frame)
                filled = frame.notna().any(axis=1).to_numpy()  # a blank line is not a row
                if filled.any():
                    read_any = True
                    table = pa.Table.from_pandas(frame[filled], preserve_index=False,
                                                 schema=pa.schema([(c, pa.string())
                                                                   for c in columns]))
                    yield RecordChunk(path, file_format, text=True, table=table,
                                      row_numbers=numbers[filled])
    except UnicodeDecodeError as error:
        raise (_locate_bad_utf8(path) or InvalidDataError(f"{path}: {error}")) from None
    except pd.errors.ParserError as error:
        found = _FIELD_COUNT.search(str(error))
        if found:
            expected, at_line, saw = found.groups()
            raise InvalidDataError(
                f"{path}:{at_line}: {saw} fields where the header has {expected}; quote "
                f"values that contain {_SEPARATORS[file_format]!r} or remove the extra "
                "separators") from None
        raise InvalidDataError(f"{path}: cannot be read as {file_format.upper()} "
                               f"({error})") from None
    if not read_any:
        raise InvalidDataError(f"{path}: the file has a header but no data rows; add one row "
                               f"per {kind[:-1]} below the header")


def _read_jsonl(path: Path, kind: str, chunk_rows: int) -> Iterator[RecordChunk]:
    rows: list[tuple[int, dict[str, Any]]] = []
    read_any = False
    with _open_binary(path) as stream:
        for number, raw_line in enumerate(stream, 1):
            if not raw_line.strip():
                continue
            try:
                text = raw_line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                raise _not_utf8(path, number, raw_line, error) from None
            text = text.rstrip("\r\n")
            try:
                record = json.loads(text)
            except json.JSONDecodeError as error:
                raise InvalidDataError(
                    f"{path}:{number}: not valid JSON ({error.msg} at column {error.colno}); "
                    f"each line must hold one JSON object, such as {_EXAMPLES[kind]}"
                ) from None
            if not isinstance(record, dict):
                raise InvalidDataError(
                    f"{path}:{number}: expected a JSON object but found a JSON "
                    f"{_json_type(record)}; each line must hold one object, such as "
                    f"{_EXAMPLES[kind]}")
            rows.append((number, record))
            if len(rows) >= chunk_rows:
                read_any = True
                yield RecordChunk(path, "jsonl", rows)
                rows = []
    if rows:
        yield RecordChunk(path, "jsonl", rows)
    elif not read_any:
        raise InvalidDataError(f"{path}: the file has only blank lines; "
                               f"{_expected('jsonl', kind)}")


def _json_type(value: Any) -> str:
    names = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _read_parquet(path: Path, kind: str, chunk_rows: int) -> Iterator[RecordChunk]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise InvalidDataError(f"{path}: not a readable Parquet file ({error}); write it "
                               "again with pandas.DataFrame.to_parquet or pyarrow") from None
    check_columns(path, parquet.schema_arrow.names, kind)
    if parquet.metadata.num_rows == 0:
        raise InvalidDataError(f"{path}: the file has columns but no rows; "
                               f"add one row per {kind[:-1]}")
    return _parquet_chunks(path, parquet, chunk_rows)


def _parquet_chunks(path: Path, parquet: pq.ParquetFile, chunk_rows: int,
                    ) -> Iterator[RecordChunk]:
    row = 0
    with parquet:
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            yield RecordChunk(path, "parquet", table=pa.Table.from_batches([batch]),
                              row_numbers=np.arange(row + 1, row + 1 + batch.num_rows))
            row += batch.num_rows
