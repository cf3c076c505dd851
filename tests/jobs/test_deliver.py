"""Batch delivery: a placement's lists for every user, written as CSV, Parquet or JSON
lines, once or on a schedule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from tailored.errors import InvalidDataError, NotFoundError
from tailored.jobs import train_model
from tailored.jobs.deliver import deliver, deliver_every
from tailored.pipeline import Placement, save_placement
from tailored.schema import Event
from tailored.settings import Settings
from tailored.store import Store, open_store

T0 = datetime(2026, 12, 6, 8, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = open_store(f"sqlite:///{tmp_path / 'shop.db'}")
    store.events.add([Event(user_id=f"u{u}", item_id=f"i{(u + j) % 8}", event_type="click",
                            timestamp=T0 - timedelta(hours=u + j))
                      for u in range(12) for j in range(3)])
    settings = Settings(store_url=store.url, model_dir=tmp_path / "models")
    train_model(store, settings, "item_knn", validate=False)
    save_placement(store, "email-weekly", Placement(k=2, filter="item_id != 'i0'"))
    return store


def test_a_placements_lists_are_written_as_json_lines(store: Store, tmp_path: Path) -> None:
    delivery = deliver(store, "email-weekly", tmp_path / "weekly.jsonl", notify=False,
                       now=lambda: T0)

    lines = [json.loads(line) for line in (tmp_path / "weekly.jsonl").read_text().splitlines()]
    assert len(lines) == 12 == delivery.users and delivery.rows == 24
    assert all(len(line["items"]) == 2 for line in lines)  # the placement's k
    assert all(item["item_id"] != "i0" for line in lines for item in line["items"])
    assert [item["rank"] for item in lines[0]["items"]] == [1, 2]
    assert delivery.payload()["placement"] == "email-weekly"


def test_csv_and_parquet_hold_one_row_per_item(store: Store, tmp_path: Path) -> None:
    deliver(store, None, tmp_path / "all.csv", users=["u1", "u2"], notify=False)
    deliver(store, None, tmp_path / "all.parquet", users=["u1", "u2"], notify=False)
    csv, parquet = pd.read_csv(tmp_path / "all.csv"), pd.read_parquet(tmp_path / "all.parquet")
    assert len(csv) == len(parquet) == 10  # every unseen item of the 8: 5 each
    assert list(csv.columns[:4]) == ["user_id", "item_id", "score", "rank"]


def test_bad_outputs_and_placements_are_refused(store: Store, tmp_path: Path) -> None:
    with pytest.raises(InvalidDataError, match=r"\.csv, \.parquet, \.jsonl"):
        deliver(store, None, tmp_path / "weekly.xlsx", notify=False)
    with pytest.raises(NotFoundError, match="no placement named 'nope'"):
        deliver(store, "nope", tmp_path / "weekly.csv", notify=False)


def test_a_schedule_writes_a_file_per_run_named_by_its_time(store: Store,
                                                            tmp_path: Path) -> None:
    clock = [T0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += timedelta(seconds=seconds)

    made = deliver_every(store, "email-weekly", tmp_path / "out" / "weekly.jsonl",
                         timedelta(days=7), runs=3, sleep=sleep, now=lambda: clock[0],
                         notify=False)

    assert [d.path.name for d in made] == [
        "weekly-20261206T080000.jsonl", "weekly-20261213T080000.jsonl",
        "weekly-20261220T080000.jsonl"]
    assert all(d.path.exists() for d in made) and slept == [7 * 86400.0] * 2
    with pytest.raises(InvalidDataError, match="positive"):
        deliver_every(store, None, tmp_path / "x.csv", timedelta(0), runs=1)


def test_a_delivery_tells_the_webhooks_where_the_file_is(store: Store, tmp_path: Path) -> None:
    store.webhooks.subscribe("http://127.0.0.1:9/hook", ["recommendations.ready"])

    delivery = deliver(store, "email-weekly", tmp_path / "weekly.csv", now=lambda: T0)

    [subscription] = store.webhooks.list()
    [pending] = store.webhooks.deliveries(subscription.subscription_id)
    assert pending.kind == "recommendations.ready" and pending.status == "pending"
    assert pending.payload["data"]["path"] == str((tmp_path / "weekly.csv").resolve())
    assert pending.payload["data"]["rows"] == delivery.rows == 24
