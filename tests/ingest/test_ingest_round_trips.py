"""Files of every format and kind go into the store and come back as they were meant."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tailored.ingest import import_file
from tailored.store import Store


def stored_events(store: Store) -> dict[str, dict]:
    frame = store.events.frame()
    return {row["event_id"]: row for row in frame.to_dict("records")}


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


# -- events -----------------------------------------------------------------------------


def test_csv_events_keep_types_context_and_times(store: Store, data_dir: Path) -> None:
    report = import_file(store, data_dir / "events.csv", "events")

    assert (report.rows_read, report.imported, report.duplicates, report.rejected) == (
        4, 4, 0, 0)
    assert report.rejects_path is None
    events = stored_events(store)
    first = events["e1"]
    assert first["user_id"] == "007"  # an id stays text, leading zeros and all
    assert first["event_type"] == "view"
    assert pd.isna(first["value"])  # an empty cell is missing, not ""
    assert first["timestamp"] == utc("2024-05-01T12:00:00")
    assert first["session_id"] == "s1"
    assert first["context"] == {"device": "mobile", "hour": 14}  # extra columns, typed
    assert events["e2"]["value"] == pytest.approx(19.99)
    assert events["e2"]["timestamp"] == utc("2024-05-01T12:00:00")  # from Unix seconds
    third = events["e3"]
    assert third["item_id"] == "007"
    assert third["timestamp"] == utc("2024-05-01T12:30:00")  # ISO with +02:00, in UTC
    assert pd.isna(third["session_id"])
    assert third["context"] == {"hour": 23}  # the empty device cell is left out
    assert events["e4"]["timestamp"] == utc("2024-05-01T12:00:00.250")  # fractional seconds


def test_jsonl_events_merge_context_and_read_numeric_ids(store: Store, data_dir: Path) -> None:
    report = import_file(store, data_dir / "events.jsonl", "events")

    assert (report.rows_read, report.imported) == (3, 3)
    events = stored_events(store)
    assert events["e1"]["context"] == {"hour": 14, "device": "mobile"}
    assert events["e2"]["user_id"] == "42"  # a JSON number id becomes text
    assert events["e2"]["timestamp"] == utc("2024-05-01T12:00:00")
    assert events["e3"]["context"] == {"in_stock": True}
    assert events["e3"]["value"] == 4.0
    assert events["e3"]["timestamp"] == utc("2024-05-01T12:30:00")


def test_parquet_events_with_native_types(store: Store, tmp_path: Path) -> None:
    table = pa.table({
        "user_id": pa.array([1, 2, 2], pa.int64()),
        "item_id": ["i1", "i2", "i3"],
        "event_type": ["view", "purchase", "click"],
        "value": [None, 9.5, None],
        "timestamp": pa.array(
            [datetime(2024, 5, 1, 12, tzinfo=UTC), datetime(2024, 5, 1, 13, tzinfo=UTC),
             datetime(2024, 5, 2, tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
        "device": ["mobile", "desktop", "mobile"],
        "hour": pa.array([12, 13, 0], pa.int32()),
    })
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)

    report = import_file(store, path, "events")

    assert (report.rows_read, report.imported) == (3, 3)
    frame = store.events.frame()
    assert frame["user_id"].tolist() == ["1", "2", "2"]
    assert frame["timestamp"].tolist() == [
        utc("2024-05-01T12:00"), utc("2024-05-01T13:00"), utc("2024-05-02T00:00")]
    assert frame["context"].tolist()[1] == {"device": "desktop", "hour": 13}
    assert frame["value"].tolist()[1] == 9.5


def test_tsv_and_gzip_are_read_like_csv(store: Store, tmp_path: Path) -> None:
    import gzip

    tsv = tmp_path / "events.tsv.gz"
    with gzip.open(tsv, "wt", encoding="utf-8") as stream:
        stream.write("user_id\titem_id\ttimestamp\tdevice\nu1\ti1\t1714564800\tmobile\n")

    report = import_file(store, tsv, "events")

    assert report.imported == 1
    assert store.events.frame()["context"].tolist() == [{"device": "mobile"}]


# -- items and users ------------------------------------------------------------------


def test_csv_items_split_categories_and_type_attributes(store: Store, data_dir: Path) -> None:
    report = import_file(store, data_dir / "items.csv", "items")

    assert (report.rows_read, report.imported, report.duplicates) == (3, 3, 0)
    shoe = store.items.get("i1")
    assert shoe is not None
    assert shoe.title == "Red shoe"
    assert shoe.text == "A red shoe, size 42"
    assert shoe.categories == ["shoes", "sale"]
    assert shoe.available is True
    assert shoe.created_at == datetime(2024, 1, 15, tzinfo=UTC)
    # price is a number; sku, zero-padded in every row, stays text.
    assert shoe.attributes == {"price": 12.5, "brand": "Acme", "sku": "007"}
    hat = store.items.get("i2")
    assert hat is not None
    assert hat.available is False
    assert hat.created_at == datetime(2024, 1, 1, tzinfo=UTC)  # from Unix seconds
    assert hat.attributes == {"price": 30, "sku": "0042"}
    bag = store.items.get("i3")
    assert bag is not None
    assert bag.title == 'Green "eco" bag'
    assert (bag.categories, bag.available, bag.created_at) == ([], True, None)
    assert bag.attributes == {"brand": "Leafy"}


def test_jsonl_items_take_lists_and_attribute_objects(store: Store, data_dir: Path) -> None:
    import_file(store, data_dir / "items.jsonl", "items")

    shoe, hat = store.items.get("i1"), store.items.get("2")
    assert shoe is not None and hat is not None
    assert shoe.categories == ["shoes", "sale"]
    assert shoe.attributes == {"brand": "Acme", "price": 12.5}
    assert hat.categories == ["hats"]
    assert hat.available is False


def test_parquet_items_take_list_columns(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "items.parquet"
    pq.write_table(pa.table({
        "item_id": ["i1", "i2"],
        "title": ["Red shoe", "Blue hat"],
        "categories": pa.array([["shoes", "sale"], []], pa.list_(pa.string())),
        "price": [12.5, 30.0],
        "in_stock": [True, False],
    }), path)

    report = import_file(store, path, "items")

    assert report.imported == 2
    shoe = store.items.get("i1")
    assert shoe is not None
    assert shoe.categories == ["shoes", "sale"]
    assert shoe.attributes == {"price": 12.5, "in_stock": True}


def test_csv_users_read_consent_and_keep_codes_as_text(store: Store, data_dir: Path) -> None:
    report = import_file(store, data_dir / "users.csv", "users")

    assert (report.rows_read, report.imported) == (3, 3)
    first, second, third = (store.users.get(u) for u in ("u1", "u2", "u3"))
    assert first is not None and second is not None and third is not None
    assert first.allows("personalization") and first.consent["analytics"]
    assert first.attributes == {"age_band": "25-34", "gender": "F", "location": "Berlin",
                                "zip": "02139"}
    assert second.consent == {"personalization": False, "analytics": False}  # "no"
    assert second.attributes == {"age_band": "56+", "location": "Paris"}
    assert third.consent == {} and third.allows("analytics")  # empty: the default
    assert third.attributes["zip"] == "75001"  # the column holds a code, so text throughout


def test_jsonl_and_parquet_users(store: Store, data_dir: Path, tmp_path: Path) -> None:
    import_file(store, data_dir / "users.jsonl", "users")
    path = tmp_path / "users.parquet"
    pq.write_table(pa.table({"user_id": ["p1"], "consent": [False], "segment": ["vip"]}), path)
    import_file(store, path, "users")

    jsonl_user, numeric_id_user, parquet_user = (
        store.users.get(u) for u in ("u1", "2", "p1"))
    assert jsonl_user is not None and numeric_id_user is not None and parquet_user is not None
    assert jsonl_user.attributes == {"age_band": "25-34", "location": "Berlin"}
    withheld = {"personalization": False, "analytics": False}
    assert (numeric_id_user.consent, numeric_id_user.attributes) == (withheld, {"vip": True})
    assert (parquet_user.consent, parquet_user.attributes) == (withheld, {"segment": "vip"})


# -- idempotency and chunking ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["events.csv", "events.jsonl"])
def test_importing_twice_stores_each_event_once(store: Store, data_dir: Path,
                                                name: str) -> None:
    first = import_file(store, data_dir / name, "events")
    second = import_file(store, data_dir / name, "events")

    assert first.imported == first.rows_read
    assert (second.imported, second.duplicates) == (0, first.rows_read)
    assert store.events.count() == first.rows_read


def test_events_without_ids_are_still_stored_once(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,timestamp,device\n"
                    "u1,i1,1714564800,mobile\nu1,i2,1714564801,mobile\n"
                    "u1,i1,1714564800,mobile\n")  # the same event twice in one file

    first = import_file(store, path, "events")
    second = import_file(store, path, "events")

    assert (first.imported, first.duplicates) == (2, 1)
    assert (second.imported, second.duplicates) == (0, 3)
    assert store.events.count() == 2


def test_items_imported_again_are_updated_not_added(store: Store, data_dir: Path,
                                                    tmp_path: Path) -> None:
    import_file(store, data_dir / "items.csv", "items")
    changed = tmp_path / "items.csv"
    changed.write_text("item_id,title\ni1,Red shoe (new)\ni9,Scarf\n")

    report = import_file(store, changed, "items")

    assert (report.imported, report.duplicates) == (1, 1)
    assert store.items.count() == 4
    shoe = store.items.get("i1")
    assert shoe is not None and shoe.title == "Red shoe (new)"


def test_a_file_larger_than_a_chunk_imports_completely(store: Store, tmp_path: Path) -> None:
    rows = 1_234
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,timestamp,slot\n" + "".join(
        f"u{i % 97},i{i % 131},{1_700_000_000 + i},{i}\n" for i in range(rows)))

    report = import_file(store, path, "events", chunk_rows=300)

    assert (report.rows_read, report.imported) == (rows, rows)
    assert store.events.count() == rows
    assert sorted(c["slot"] for c in store.events.frame()["context"]) == list(range(rows))


def test_a_large_jsonl_file_is_read_in_chunks(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(
        json.dumps({"user_id": f"u{i}", "item_id": "i", "timestamp": i, "context": {"n": i}})
        + "\n" for i in range(1_001)))

    report = import_file(store, path, "events", chunk_rows=100)

    assert report.imported == 1_001
    assert store.events.count() == 1_001


def test_the_report_reads_as_a_sentence(store: Store, data_dir: Path) -> None:
    report = import_file(store, data_dir / "users.csv", "users")

    assert str(report).startswith(
        f"{data_dir / 'users.csv'}: read 3 rows of users; 3 imported, 0 already stored, "
        "0 rejected, in ")
    assert report.seconds > 0
    assert report.rows_per_second == pytest.approx(3 / report.seconds)
