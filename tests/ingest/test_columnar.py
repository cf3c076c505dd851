"""The bulk path of an event import takes only rows the row-by-row validator accepts, and
stores them exactly as it would."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tailored.ingest import import_file, importer
from tailored.ingest.columnar import split_events
from tailored.ingest.readers import read_records
from tailored.schema import EventWeights
from tailored.store import Store, open_store

# Plain rows, and rows only the validator may judge (with the reason they are not plain).
CSV = """event_id,user_id,item_id,event_type,value,timestamp,session_id
e1,u1,i1,view,,1714564800,
e2,u1,i2,rating,4.5,1714564801,s1
,u2,i1,purchase,12,1714564802,s2
e4,caf\u00e9,i3,view,,1714564803,
e5, u3 ,i3,view,,1714564804,
e6,u3,i3,VIEW,,1714564805,
e7,u3,i3,view,,2024-05-01T12:00:06Z,
e8,u3,i3,rating,,1714564807,
e9,u3,i3,view,-2.5,1714564808,
e10,u3,i3,view,1e3,1714564809,
e11,u4,i4,rating,-1,1714564810,
e12,u4,i4,unknown,,1714564811,
e13,u4,i4,view,,99999999999,
"""
PLAIN = [2, 3, 4]  # line numbers of the plain rows
INVALID = {"e8", "e11", "e12", "e13"}  # a rating without a value or below 0, a type
# no setting names, a time far in the future


def _split(path: Path) -> tuple[list[int], list[int]]:
    (chunk,) = read_records(path, "events")
    rows, numbers, rest = split_events(chunk, EventWeights())
    assert rows.num_rows == len(numbers)
    return numbers.tolist(), [number for number, _ in rest]


def test_only_plain_rows_take_the_bulk_path(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(CSV)
    plain, rest = _split(path)
    assert plain == PLAIN
    assert rest == list(range(5, 15))


def test_a_file_with_context_columns_is_checked_row_by_row(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,timestamp,device\nu1,i1,1714564800,mobile\n")
    assert _split(path) == ([], [2])


def test_both_paths_store_what_the_validator_alone_would(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(CSV)
    bulk = open_store(f"sqlite:///{tmp_path / 'bulk.db'}")
    import_file(bulk, path, "events", skip_invalid=True)
    # The same rows as JSON lines: every one of them validated row by row.
    one_by_one = open_store(f"sqlite:///{tmp_path / 'rows.db'}")
    (chunk,) = read_records(path, "events")
    lines = tmp_path / "events.jsonl"
    lines.write_text("\n".join(_json(raw) for _, raw in chunk) + "\n")
    import_file(one_by_one, lines, "events", skip_invalid=True)
    stored = _stored(bulk)
    assert stored == _stored(one_by_one)
    assert len(stored) == 13 - len(INVALID)
    assert not INVALID & {event_id for event_id, *_ in stored}
    bulk.close()
    one_by_one.close()


def test_typed_parquet_columns_take_the_bulk_path(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"user_id": ["u1", "u2"], "item_id": ["i1", "i2"],
                             "value": [1.5, None], "timestamp": [1714564800, 1714564801]}),
                   path)
    assert _split(path) == ([1, 2], [])


def _json(raw: dict[str, object]) -> str:
    # JSON lines carry numbers as numbers; a CSV's text is the same value.
    typed = {key: value for key, value in raw.items() if value is not None}
    for key in ("value", "timestamp"):
        text = typed.get(key)
        if isinstance(text, str) and text.lstrip("-").replace(".", "", 1).isdigit():
            typed[key] = float(text) if "." in text else int(text)
    return json.dumps(typed)


def _stored(store: Store) -> list[tuple[object, ...]]:
    frame = store.events.frame()
    return sorted(
        (row.event_id, row.user_id, row.item_id, row.event_type,
         None if row.value != row.value else row.value, row.timestamp, row.session_id)
        for row in frame.itertuples())


def test_a_large_import_ends_by_vacuuming_the_events(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "events.csv"
    path.write_text(CSV)
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    vacuumed: list[bool] = []
    monkeypatch.setattr(type(store.events), "vacuum", lambda self: vacuumed.append(True))
    monkeypatch.setattr(importer, "VACUUM_AFTER", 9)
    import_file(store, path, "events", skip_invalid=True)
    assert vacuumed == [True]  # 9 events new
    import_file(store, path, "events", skip_invalid=True)
    assert vacuumed == [True]  # none new the second time
    store.close()
