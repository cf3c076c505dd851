"""Bad files: the error says what, where and what to do, and nothing is written."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tailored.errors import InvalidDataError
from tailored.ingest import RecordChunk, RejectedRowsError, import_file, read_records
from tailored.ingest.importer import Source, import_sources
from tailored.store import Store

REFUSAL = ("nothing was imported; fix the rows or pass --skip-invalid (skip_invalid=True) to "
           "import the valid rows and write the invalid ones to a rejects file")
TIME_HINT = "use ISO-8601 (2024-05-01T12:00:00Z) or Unix seconds (1714564800)"


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def assert_nothing_stored(store: Store) -> None:
    assert (store.events.count(), store.items.count(), store.users.count()) == (0, 0, 0)


# -- bad rows: nothing imported, every bad row named ----------------------------------------


def test_a_value_that_is_not_a_number(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", "user_id,item_id,value,timestamp\n"
                 "u1,i1,1,1714564800\nu2,i2,1.5,1714564800\nu3,i3,2,1714564800\n"
                 "u4,i4,3,1714564800\nu5,i5,4,1714564800\nu6,i6,abc,1714564800\n")

    with pytest.raises(RejectedRowsError) as caught:
        import_file(store, path, "events")

    assert str(caught.value) == (
        f"{path}: 1 of 6 rows are invalid; {REFUSAL}\n"
        f"  {path}:7: field 'value': 'abc' is not a number; write the value as a number such "
        "as 4.5, or leave it empty")
    assert (caught.value.rejected, caught.value.rows_read) == (1, 6)
    reject = caught.value.rejects[0]
    assert (reject.row, reject.field) == (7, "value")
    assert reject.raw == {"user_id": "u6", "item_id": "i6", "value": "abc",
                          "timestamp": "1714564800"}
    assert_nothing_stored(store)


def test_bad_and_missing_timestamps(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", "user_id,item_id,timestamp\n"
                 "u1,i1,1714564800\nu1,i2,yesterday\nu1,i3,1714564800000\nu1,i4,\n")

    with pytest.raises(RejectedRowsError) as caught:
        import_file(store, path, "events")

    assert str(caught.value) == "\n".join([
        f"{path}: 3 of 4 rows are invalid; {REFUSAL}",
        f"  {path}:3: field 'timestamp': 'yesterday' is not a date-time; {TIME_HINT}",
        f"  {path}:4: field 'timestamp': 1714564800000 is out of range for Unix seconds; "
        "if it is in milliseconds, divide it by 1000",
        f"  {path}:5: field 'timestamp': is missing; every event in a file needs a time: "
        f"{TIME_HINT}",
    ])
    assert_nothing_stored(store)


def test_several_bad_fields_in_one_row_are_all_named(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", "user_id,item_id,event_type,value,timestamp\n"
                 ",i1,Bad Type!,x,1714564800\n")

    with pytest.raises(RejectedRowsError) as caught:
        import_file(store, path, "events")

    reject = caught.value.rejects[0]
    assert reject.field == "user_id, event_type, value"
    assert str(reject) == (
        f"{path}:2: field 'user_id': Field required; "
        "field 'event_type': should be lower-case letters, digits and '_', starting with a "
        "letter and at most 32 long, such as 'add_to_cart'; "
        "field 'value': 'x' is not a number; write the value as a number such as 4.5, or "
        "leave it empty")


def test_only_the_first_ten_rejects_are_listed(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", "user_id,item_id,timestamp\n" + "".join(
        f"u{i},i{i},not-a-time\n" for i in range(25)))

    with pytest.raises(RejectedRowsError) as caught:
        import_file(store, path, "events")

    lines = str(caught.value).splitlines()
    assert lines[0] == f"{path}: 25 of 25 rows are invalid; {REFUSAL}"
    assert len(lines) == 1 + 10 + 1
    assert lines[1].startswith(f"  {path}:2: field 'timestamp': 'not-a-time'")
    assert lines[-1] == "  ... and 15 more"


def test_a_bad_row_in_the_last_chunk_stops_the_whole_file(store: Store, tmp_path: Path) -> None:
    # The chunks before it were written, in the transaction that the bad row rolls back.
    path = write(tmp_path / "events.csv", "user_id,item_id,timestamp\n" + "".join(
        f"u{i},i{i},{1_700_000_000 + i}\n" for i in range(300)) + "u,i,never\n")

    with pytest.raises(RejectedRowsError, match=r"events\.csv:302: field 'timestamp'"):
        import_file(store, path, "events", chunk_rows=50)

    assert_nothing_stored(store)


def test_rows_after_the_first_bad_one_are_still_checked(store: Store, tmp_path: Path
                                                        ) -> None:
    rows = [f"u{i},i{i},{1_700_000_000 + i}\n" for i in range(300)]
    rows[60] = rows[250] = "u,i,never\n"
    path = write(tmp_path / "events.csv", "user_id,item_id,timestamp\n" + "".join(rows))

    with pytest.raises(RejectedRowsError) as caught:
        import_file(store, path, "events", chunk_rows=50)

    assert (caught.value.rejected, caught.value.rows_read) == (2, 300)
    assert [r.row for r in caught.value.rejects] == [62, 252]
    assert_nothing_stored(store)


def test_bad_items_and_users_are_refused_too(store: Store, tmp_path: Path) -> None:
    items = write(tmp_path / "items.csv", "item_id,available,created_at\n"
                  "i1,maybe,2024-01-01\ni2,true,soon\n")
    users = write(tmp_path / "users.jsonl", '{"user_id": "u1", "prefs": {"a": [1]}}\n')

    with pytest.raises(RejectedRowsError) as caught_items:
        import_file(store, items, "items")
    with pytest.raises(RejectedRowsError) as caught_users:
        import_file(store, users, "users")

    assert [str(r) for r in caught_items.value.rejects] == [
        f"{items}:2: field 'available': Input should be a valid boolean, unable to interpret "
        "input",
        f"{items}:3: field 'created_at': 'soon' is not a date-time; {TIME_HINT}",
    ]
    assert [str(r) for r in caught_users.value.rejects] == [
        f"{users}:1: field 'attributes.prefs': must be text, a number, true/false or null "
        "(nested objects and lists are not allowed)",
    ]
    assert_nothing_stored(store)


# -- bounds: the same as over the API, each bad row named -----------------------------------


def test_rows_out_of_bounds_are_refused_with_their_row(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", "user_id,item_id,event_type,value,timestamp\n"
                 "u1,i1,view,,1714564800\n"
                 "u1,i2,purchse,,1714564800\n"
                 "u1,i3,rating,-1,1714564800\n"
                 "u1,i4,rating,,1714564800\n"
                 "u1,i5,purchase,1e308,1714564800\n"
                 "u1,i6,view,,9999-01-01T00:00:00Z\n"
                 "u1,i7,view,,-86400\n")

    with pytest.raises(RejectedRowsError) as caught:
        import_file(store, path, "events")

    shown = [str(reject) for reject in caught.value.rejects]
    assert shown[0].startswith(
        f"{path}:3: field 'event_type': unknown event type 'purchse' (did you mean "
        "'purchase'?); the event types are view, click, add_to_cart, purchase, rating, "
        "impression; to add one, give it a weight in event_weights.custom: "
        "purchse = 1.0 under [event_weights.custom] in tailored.toml, or "
        "TAILORED_EVENT_WEIGHTS__CUSTOM=")
    assert shown[1:4] == [
        f"{path}:4: field 'value': a rating is at least 0, got -1.0",
        f"{path}:5: field 'value': a rating needs a value, the rating itself (such as 4.5)",
        f"{path}:6: field 'value': value 1e+308 is out of range: at most 1,000,000 either "
        "side of 0 (MAX_EVENT_VALUE)",
    ]
    assert shown[4].startswith(f"{path}:7: field 'timestamp': 9999-01-01T00:00:00+00:00 is "
                               "in the future: the latest event time accepted is 1 day past "
                               "now (")
    assert shown[5] == (f"{path}:8: field 'timestamp': 1969-12-31T00:00:00+00:00 is before "
                        "1970-01-01, the earliest event time accepted")
    assert_nothing_stored(store)


def test_json_values_must_be_numbers_while_csv_text_is_read_as_one(store: Store,
                                                                   tmp_path: Path) -> None:
    jsonl = write(tmp_path / "events.jsonl",
                  '{"user_id": "u1", "item_id": "i1", "value": true, "timestamp": 1714564800}\n')
    csv_file = write(tmp_path / "events.csv", "user_id,item_id,event_type,value,timestamp\n"
                     "u1,i1,rating, 4.5 ,1714564800\nu1,i2,rating,05,1714564800\n")

    with pytest.raises(RejectedRowsError, match=r"events\.jsonl:1: field 'value': should be "
                                                r"a number such as 4\.5, not true"):
        import_file(store, jsonl, "events")
    import_file(store, csv_file, "events")

    assert store.events.frame()["value"].tolist() == [4.5, 5.0]


def test_custom_event_types_import_once_configured(store: Store, tmp_path: Path) -> None:
    from tailored.schema import EventWeights

    path = write(tmp_path / "events.csv", "user_id,item_id,event_type,timestamp\n"
                 "u1,i1,wishlist,1714564800\n")
    with pytest.raises(RejectedRowsError, match="unknown event type 'wishlist'"):
        import_file(store, path, "events")

    given = import_file(store, path, "events",
                        event_weights=EventWeights(custom={"wishlist": 3.0}))

    assert given.imported == 1


def test_oversize_context_and_attributes_from_loose_columns(store: Store,
                                                            tmp_path: Path) -> None:
    columns = [f"c{n}" for n in range(65)]
    events = write(tmp_path / "events.csv", ",".join(["user_id", "item_id", "timestamp",
                                                      *columns]) + "\n"
                   + ",".join(["u1", "i1", "1714564800", *["x"] * 65]) + "\n"
                   + "u2,i2,1714564800,note,,,," + "," * 60 + "\n")
    long_text = "y" * 1_025
    events_text = write(tmp_path / "long.csv", "user_id,item_id,timestamp,page\n"
                        f"u1,i1,1714564800,{long_text}\n")
    attributes = [f"a{n}" for n in range(101)]
    items = write(tmp_path / "items.csv", ",".join(["item_id", *attributes]) + "\n"
                  + ",".join(["i1", *["1"] * 101]) + "\n")

    with pytest.raises(RejectedRowsError) as too_many:
        import_file(store, events, "events")
    with pytest.raises(RejectedRowsError) as too_long:
        import_file(store, events_text, "events")
    with pytest.raises(RejectedRowsError) as too_many_attributes:
        import_file(store, items, "items")

    assert [str(r) for r in too_many.value.rejects] == [
        f"{events}:2: field 'context': context has 65 keys; at most 64 are allowed"]
    assert [str(r) for r in too_long.value.rejects] == [
        f"{events_text}:2: field 'context': context value of 'page' is 1,025 characters long; "
        "text values are at most 1,024"]
    assert [str(r) for r in too_many_attributes.value.rejects] == [
        f"{items}:2: field 'attributes': attributes has 101 keys; at most 100 are allowed"]
    assert_nothing_stored(store)


# -- interrupted imports: nothing of the file ------------------------------------------------


def test_an_import_interrupted_halfway_leaves_nothing_of_the_file(store: Store,
                                                                  tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", "user_id,item_id,timestamp\n" + "".join(
        f"u{i},i{i},{1_700_000_000 + i}\n" for i in range(300)))

    def chunks() -> Iterator[RecordChunk]:
        for number, chunk in enumerate(read_records(path, "events", chunk_rows=50)):
            if number == 4:  # 200 rows in: Ctrl-C
                raise KeyboardInterrupt
            yield chunk

    with pytest.raises(KeyboardInterrupt):
        import_sources(store, [Source(path, "events", chunks)])

    assert_nothing_stored(store)
    assert import_file(store, path, "events", chunk_rows=50).imported == 300


# -- bad files: one clear error -----------------------------------------------------------


def test_a_header_without_a_required_column(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", "userId,item_id,timestamp\nu1,i1,1714564800\n")

    with pytest.raises(InvalidDataError) as caught:
        import_file(store, path, "events")

    assert str(caught.value) == (
        f"{path}:1: required column 'user_id' missing from the header ('userId', 'item_id', "
        "'timestamp'); events need 'user_id', 'item_id', 'timestamp'; rename column 'userId' "
        "to 'user_id'")
    assert_nothing_stored(store)


def test_a_parquet_file_without_a_required_column(store: Store, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "items.parquet"
    pq.write_table(pa.table({"id": ["i1"], "title": ["Shoe"]}), path)

    with pytest.raises(InvalidDataError) as caught:
        import_file(store, path, "items")

    assert str(caught.value) == (
        f"{path}:1: required column 'item_id' missing from the header ('id', 'title'); "
        "items need 'item_id'")
    assert_nothing_stored(store)


def test_bytes_that_are_not_utf8(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "items.csv",
                 "item_id,title\ni1,Shoe\ni2,Caf\xe9 cr\xe8me\n".encode("latin-1"))

    with pytest.raises(InvalidDataError) as caught:
        import_file(store, path, "items")

    assert str(caught.value) == (
        f"{path}:3: byte 0xe9 at column 7 is not valid UTF-8; save the file as UTF-8 (for "
        "example `iconv -f latin1 -t utf-8 items.csv > items.utf8.csv`) and import it again")
    assert_nothing_stored(store)


def test_bad_bytes_far_into_a_large_file_still_import_nothing(store: Store,
                                                               tmp_path: Path) -> None:
    good = "".join(f"u{i},i{i},{1_700_000_000 + i}\n" for i in range(400)).encode()
    path = write(tmp_path / "events.csv",
                 b"user_id,item_id,timestamp\n" + good + b"u\xff,i,1700000000\n")

    with pytest.raises(InvalidDataError, match=r"events\.csv:402: byte 0xff at column 2"):
        import_file(store, path, "events", chunk_rows=100, skip_invalid=True)

    assert_nothing_stored(store)


def test_an_empty_file(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", "")

    with pytest.raises(InvalidDataError) as caught:
        import_file(store, path, "events")

    assert str(caught.value) == (
        f"{path}: the file is empty (0 bytes); expected a header naming the columns (at least "
        "user_id, item_id, timestamp) and one row per event")
    assert_nothing_stored(store)


def test_a_header_without_rows(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "users.csv", "user_id,age_band\n")

    with pytest.raises(InvalidDataError) as caught:
        import_file(store, path, "users")

    assert str(caught.value) == (
        f"{path}: the file has a header but no data rows; add one row per user below the "
        "header")
    assert_nothing_stored(store)


def test_a_row_with_more_fields_than_the_header(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "items.csv", "item_id,title\ni1,Shoe\ni2,Hat, blue\n")

    with pytest.raises(InvalidDataError) as caught:
        import_file(store, path, "items")

    assert str(caught.value) == (
        f"{path}:3: 3 fields where the header has 2; quote values that contain ',' or "
        "remove the extra separators")
    assert_nothing_stored(store)


def test_a_line_that_is_not_json(store: Store, tmp_path: Path) -> None:
    good = json.dumps({"user_id": "u1", "item_id": "i1", "timestamp": 1714564800})
    path = write(tmp_path / "events.jsonl", f"{good}\n{good}\n{{\"user_id\": \"u2\",\n")

    with pytest.raises(InvalidDataError) as caught:
        import_file(store, path, "events")

    assert str(caught.value) == (
        f"{path}:3: not valid JSON (Expecting property name enclosed in double quotes at "
        "column 18); each line must hold one JSON object, such as {\"user_id\": \"u1\", "
        "\"item_id\": \"i1\", \"event_type\": \"view\", \"timestamp\": \"2024-05-01T12:00:00Z\"}")
    assert_nothing_stored(store)


def test_a_json_array_instead_of_json_lines(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "users.jsonl", '[{"user_id": "u1"}, {"user_id": "u2"}]\n')

    with pytest.raises(InvalidDataError) as caught:
        import_file(store, path, "users")

    assert str(caught.value) == (
        f"{path}:1: expected a JSON object but found a JSON array; each line must hold one "
        "object, such as {\"user_id\": \"u1\", \"age_band\": \"25-34\"}")


def test_an_unknown_extension(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "events.xlsx", "user_id,item_id\n")

    with pytest.raises(InvalidDataError) as caught:
        import_file(store, path, "events")

    assert str(caught.value) == (
        f"{path}: cannot tell the format from the extension '.xlsx'; rename the file to end in "
        "one of .csv, .tsv, .jsonl, .ndjson, .parquet (text formats may add .gz)")


def test_a_file_that_is_not_parquet(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "events.parquet", "user_id,item_id\n")

    with pytest.raises(InvalidDataError, match=r"events\.parquet: not a readable Parquet file"):
        import_file(store, path, "events")


def test_an_unknown_kind_names_the_allowed_ones(store: Store, data_dir: Path) -> None:
    with pytest.raises(ValueError, match="kind must be one of 'events', 'items', 'users', "
                                         "got 'orders'"):
        import_file(store, data_dir / "events.csv", "orders")


def test_a_missing_file(store: Store, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.csv: no such file"):
        import_file(store, tmp_path / "nope.csv", "events")


# -- skip_invalid: the good rows go in, the bad ones go to a rejects file -------------------


def test_skip_invalid_imports_the_valid_rows_and_lists_the_rest(store: Store,
                                                                tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", "user_id,item_id,value,timestamp,device\n"
                 "u1,i1,1,1714564800,mobile\n"
                 "u2,i2,abc,1714564800,mobile\n"
                 "u3,i3,2,1714564800,tv\n"
                 "\n"
                 "u4,i4,3,tomorrow,tv\n"
                 "u5,i5,4,2024-05-01T00:00:00Z,tv\n")

    report = import_file(store, path, "events", skip_invalid=True)

    rejects_path = tmp_path / "events.csv.rejects.csv"
    assert (report.rows_read, report.imported, report.duplicates, report.rejected) == (
        5, 3, 0, 2)
    assert report.rejects_path == rejects_path
    assert sorted(store.events.frame()["user_id"]) == ["u1", "u3", "u5"]
    with rejects_path.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert [(r["row"], r["field"], r["reason"]) for r in rows] == [
        ("3", "value", "'abc' is not a number; write the value as a number such as 4.5, "
         "or leave it empty"),
        ("6", "timestamp", f"'tomorrow' is not a date-time; {TIME_HINT}"),
    ]
    assert json.loads(rows[0]["raw"]) == {"user_id": "u2", "item_id": "i2", "value": "abc",
                                          "timestamp": "1714564800", "device": "mobile"}


def test_skip_invalid_writes_rejects_where_asked_and_only_if_needed(
        store: Store, tmp_path: Path, data_dir: Path) -> None:
    bad = write(tmp_path / "users.jsonl", '{"user_id": "u1"}\n{"consent": true}\n')
    chosen = tmp_path / "rejected-users.csv"

    with_rejects = import_file(store, bad, "users", skip_invalid=True, rejects_path=chosen)
    clean = import_file(store, data_dir / "users.csv", "users", skip_invalid=True)

    assert (with_rejects.imported, with_rejects.rejected) == (1, 1)
    assert chosen.read_text(encoding="utf-8").splitlines() == [
        "row,field,reason,raw", '2,user_id,Field required,"{""consent"": true}"']
    assert (clean.rejected, clean.rejects_path) == (0, None)
    assert not (data_dir / "users.csv.rejects.csv").exists()


def test_rejects_cannot_overwrite_the_file_being_imported(store: Store, data_dir: Path) -> None:
    path = data_dir / "users.csv"
    with pytest.raises(ValueError, match="is the file being imported"):
        import_file(store, path, "users", skip_invalid=True, rejects_path=path)

    assert path.read_text(encoding="utf-8").startswith("user_id,consent,")
    assert_nothing_stored(store)
