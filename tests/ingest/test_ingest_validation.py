"""Row-level validation and the readers' view of files, without a store."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tailored.errors import InvalidDataError
from tailored.ingest import (
    detect_format,
    parse_events,
    parse_items,
    parse_users,
    read_records,
    validate_records,
)
from tailored.ingest.records import numeric_columns, scalar_from_text, to_datetime

# -- parse_events: what serving uses for request bodies ---------------------------------------


def test_parse_events_keeps_good_rows_and_explains_bad_ones() -> None:
    events, rejects = parse_events([
        {"user_id": "u1", "item_id": "i1", "event_type": "Click", "timestamp": 1714564800,
         "device": "mobile"},
        {"user_id": "u2", "item_id": "i2", "value": "abc"},
        "not an object",
        {"user_id": "u3", "item_id": "i3", "context": {"cart": ["i1", "i2"]}},
        {"user_id": "u4", "item_id": "i4", "timestamp": "2024-05-01T14:00:00+02:00",
         "value": float("nan")},
    ])

    assert len(events) == 1
    event = events[0]
    assert (event.user_id, event.event_type, event.context) == ("u1", "click",
                                                               {"device": "mobile"})
    assert event.timestamp == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert event.event_id is not None and event.event_id.startswith("h")  # from the content
    assert [(r.file, r.row, r.field) for r in rejects] == [
        (None, 2, "value"), (None, 3, "(row)"), (None, 4, "context.cart"), (None, 5, "value")]
    assert rejects[1].reason == "should be an object of fields, got str"
    assert rejects[3].reason == "Value error, value must be a finite number"


def test_parse_events_without_a_time_means_now() -> None:
    before = datetime.now(UTC)
    events, rejects = parse_events([{"user_id": "u1", "item_id": "i1"}])

    assert rejects == []
    assert before <= events[0].timestamp <= datetime.now(UTC)


def test_ids_with_control_characters_are_refused_in_words() -> None:
    _, rejects = parse_events([{"user_id": "u\x001", "item_id": "i1"}])

    assert str(rejects[0]) == (
        "row 1: field 'user_id': must not contain control characters (tabs, line breaks, NUL)")


def test_parse_items_and_users_put_unknown_fields_in_attributes() -> None:
    items, item_rejects = parse_items([
        {"item_id": "i1", "categories": ["a", "b"], "price": 9.5, "attributes": {"color": "red"}},
        {"item_id": "i2", "categories": [1, 2]},
    ])
    users, user_rejects = parse_users([{"user_id": 5, "consent": "no", "segment": "vip"}])

    assert items[0].attributes == {"price": 9.5, "color": "red"}
    assert [(r.row, r.field) for r in item_rejects] == [(2, "categories.0, categories.1")]
    assert (users[0].user_id, users[0].consent, users[0].attributes) == (
        "5", {"personalization": False, "analytics": False}, {"segment": "vip"})
    assert user_rejects == []


def test_validate_records_names_the_file_and_needs_times_in_files() -> None:
    events, rejects = validate_records(
        [(2, {"user_id": "u1", "item_id": "i1", "timestamp": None})], "events",
        file="events.csv", require_timestamp=True)

    assert events == []
    assert str(rejects[0]) == (
        "events.csv:2: field 'timestamp': is missing; every event in a file needs a time: "
        "use ISO-8601 (2024-05-01T12:00:00Z) or Unix seconds (1714564800)")


def test_an_explicit_context_wins_over_loose_columns() -> None:
    events, _ = validate_records(
        [(2, {"user_id": "u", "item_id": "i", "timestamp": "1", "device": "tv",
              "context": '{"device": "mobile", "page": 2}'})], "events", text=True)

    assert events[0].context == {"device": "mobile", "page": 2}


# -- text values ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("12.5", 12.5), ("3", 3), ("-4", -4), ("0", 0), ("0.25", 0.25), ("1e3", 1000.0),
    ("007", "007"), ("02139", "02139"), ("abc", "abc"), ("", ""), ("1e999", "1e999"),
    ("12 500", "12 500"), ("+49 30 1234", "+49 30 1234"),
])
def test_scalar_from_text(text: str, expected: object) -> None:
    result = scalar_from_text(text)
    assert result == expected
    assert type(result) is type(expected)


def test_a_column_with_any_code_in_it_stays_text() -> None:
    rows = [{"user_id": "u1", "zip": "75001", "age": "31", "note": None},
            {"user_id": "u2", "zip": "02139", "age": "45", "note": "x"}]

    assert numeric_columns(rows, "users") == {"age"}


@pytest.mark.parametrize(("value", "expected"), [
    (1714564800, datetime(2024, 5, 1, 12, tzinfo=UTC)),
    ("1714564800", datetime(2024, 5, 1, 12, tzinfo=UTC)),
    (1714564800.5, datetime(2024, 5, 1, 12, 0, 0, 500_000, tzinfo=UTC)),
    ("-86400", datetime(1969, 12, 31, tzinfo=UTC)),
    ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
    ("2024-05-01", datetime(2024, 5, 1)),  # naive: the record takes it as UTC
])
def test_to_datetime_reads_unix_seconds_and_iso(value: object, expected: datetime) -> None:
    assert to_datetime(value) == expected


# -- readers --------------------------------------------------------------------------------


def test_csv_rows_keep_their_line_numbers_across_blank_lines_and_chunks(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("\ufeffitem_id,title,price\ni1,,1\n\ni2,Hat,\ni3,Bag,3\n",
                    encoding="utf-8")  # with the byte-order mark Excel writes

    chunks = list(read_records(path, "items", chunk_rows=2))

    assert [len(chunk) for chunk in chunks] == [1, 2]  # the blank line is no row
    assert [pair for chunk in chunks for pair in chunk] == [
        (2, {"item_id": "i1", "title": None, "price": "1"}),
        (4, {"item_id": "i2", "title": "Hat", "price": None}),
        (5, {"item_id": "i3", "title": "Bag", "price": "3"}),
    ]
    assert all(chunk.text for chunk in chunks)


def test_na_and_null_in_csv_are_text_not_missing(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text("user_id,region\nNA,NULL\n")

    (chunk,) = read_records(path, "users")

    assert list(chunk) == [(2, {"user_id": "NA", "region": "NULL"})]


def test_jsonl_rows_are_numbered_by_line(tmp_path: Path) -> None:
    path = tmp_path / "users.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as stream:
        stream.write('{"user_id": "u1"}\n\n{"user_id": "u2", "tier": 2}\n')

    (chunk,) = read_records(path, "users")

    assert list(chunk) == [(1, {"user_id": "u1"}), (3, {"user_id": "u2", "tier": 2})]
    assert chunk.text is False


def test_a_header_with_a_duplicate_or_empty_column(tmp_path: Path) -> None:
    duplicate = tmp_path / "a.csv"
    duplicate.write_text("item_id,title,title\ni1,a,b\n")
    empty = tmp_path / "b.csv"
    empty.write_text("item_id,,title\ni1,a,b\n")

    with pytest.raises(InvalidDataError) as caught_duplicate:
        read_records(duplicate, "items")
    with pytest.raises(InvalidDataError) as caught_empty:
        read_records(empty, "items")

    assert str(caught_duplicate.value) == (
        f"{duplicate}:1: column 'title' appears twice in the header; keep one of them")
    assert str(caught_empty.value) == (
        f"{empty}:1: column 2 of the header has no name; name every column or remove the "
        "empty one")


@pytest.mark.parametrize(("name", "expected"), [
    ("a.csv", "csv"), ("a.TSV", "tsv"), ("a.ndjson", "jsonl"), ("a.jsonl.gz", "jsonl"),
    ("a.parquet", "parquet"), ("dir.v2/a.csv", "csv"),
])
def test_detect_format(name: str, expected: str) -> None:
    assert detect_format(name) == expected


def test_a_compressed_parquet_name_is_refused() -> None:
    with pytest.raises(InvalidDataError, match=r"extension '\.parquet\.gz'"):
        detect_format("a.parquet.gz")


def test_chunk_rows_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="chunk_rows must be at least 1, got 0"):
        read_records(tmp_path / "a.csv", "events", chunk_rows=0)
