"""Tests for :mod:`tailored.sample.shop`."""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tailored.sample import SampleShop, shop

# `tailored.sample.shop` is shadowed by the function of the same name.
shop_module = importlib.import_module("tailored.sample.shop")

EVENT_COLUMNS = [
    "event_id", "user_id", "item_id", "event_type", "value", "timestamp",
    "session_id", "device", "location",
]  # fmt: skip
ITEM_COLUMNS = ["item_id", "title", "text", "categories", "price", "available", "created_at"]
USER_COLUMNS = ["user_id", "age_band", "gender", "location", "consent"]
CITIES = {"Berlin", "Paris", "London", "Madrid", "Rome", "Vienna", "Warsaw", "Amsterdam"}


@pytest.fixture(scope="module")
def s() -> SampleShop:
    return shop(n_users=600, n_items=200, n_events=40_000, seed=7)


@pytest.fixture(scope="module")
def ev(s: SampleShop) -> pd.DataFrame:
    """Events with the hidden cluster and positional user index attached."""
    user_pos = pd.Series(np.arange(len(s.users)), index=s.users["user_id"])
    item_pos = pd.Series(np.arange(len(s.items)), index=s.items["item_id"])
    e = s.events.copy()
    e["u"] = user_pos.loc[e["user_id"]].to_numpy()
    e["cluster"] = s.item_cluster[item_pos.loc[e["item_id"]].to_numpy()]
    e["hour"] = e["timestamp"].dt.hour
    return e


def _is_str_column(col: pd.Series) -> bool:
    return (
        bool(pd.api.types.is_string_dtype(col))
        and bool(col.notna().all())
        and isinstance(col.iloc[0], str)
    )


# --- contract ----------------------------------------------------------------


def test_columns_and_dtypes(s: SampleShop) -> None:
    assert list(s.events.columns) == EVENT_COLUMNS
    assert list(s.items.columns) == ITEM_COLUMNS
    assert list(s.users.columns) == USER_COLUMNS

    e = s.events
    for col in ["event_id", "user_id", "item_id", "event_type", "session_id", "device", "location"]:
        assert _is_str_column(e[col]), col
    assert e["value"].dtype == np.float64
    assert isinstance(e["timestamp"].dtype, pd.DatetimeTZDtype)
    assert str(e["timestamp"].dt.tz) == "UTC"
    assert set(e["event_type"]) == {"view", "click", "add_to_cart", "purchase"}
    assert set(e["device"]) == {"mobile", "desktop", "tablet"}
    assert e["event_id"].is_unique
    assert e["event_id"].str.fullmatch(r"e\d{7}").all()
    assert e["event_id"].iloc[0] == "e0000001"
    assert e["user_id"].str.fullmatch(r"u\d{5}").all()
    assert e["item_id"].str.fullmatch(r"i\d{5}").all()
    assert e["timestamp"].is_monotonic_increasing
    assert e.index.equals(pd.RangeIndex(len(e)))

    it = s.items
    assert it["item_id"].is_unique
    for col in ["item_id", "title", "text"]:
        assert _is_str_column(it[col]), col
    assert it["categories"].map(lambda c: isinstance(c, list) and 1 <= len(c) <= 2).all()
    assert it["categories"].map(lambda c: all(isinstance(x, str) for x in c)).all()
    assert it["price"].dtype == np.float64 and (it["price"] > 0).all()
    assert it["available"].dtype == bool
    assert 0.85 < it["available"].mean() < 1.0
    assert str(it["created_at"].dt.tz) == "UTC"

    u = s.users
    assert u["user_id"].is_unique
    assert set(u["age_band"]) <= {"18-24", "25-34", "35-44", "45-54", "55-64", "65+"}
    assert set(u["gender"]) == {"f", "m", "x"}
    assert set(u["location"]) == CITIES
    assert u["consent"].dtype == bool and 0.8 < u["consent"].mean() < 1.0


def test_hidden_truth_shapes(s: SampleShop) -> None:
    assert s.user_taste.shape == (len(s.users), len(s.cluster_names))
    np.testing.assert_allclose(s.user_taste.sum(axis=1), 1.0)
    assert s.item_cluster.shape == (len(s.items),)
    assert np.issubdtype(s.item_cluster.dtype, np.integer)
    assert set(np.unique(s.item_cluster)) == set(range(len(s.cluster_names)))
    # Tastes sit on one or two clusters.
    top2 = np.sort(s.user_taste, axis=1)[:, -2:].sum(axis=1)
    assert np.median(top2) > 0.8
    per_cluster = np.bincount(s.item_cluster, weights=s.item_popularity)
    np.testing.assert_allclose(per_cluster, 1.0)
    # Hidden truth cannot be modified by accident.
    with pytest.raises(ValueError):
        s.user_taste[0, 0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.events = s.events  # type: ignore[misc]


@pytest.mark.parametrize(
    ("n_users", "n_items", "n_events"),
    [(50, 20, 500), (1, 10, 1), (30, 10, 30), (30, 10, 31), (200, 37, 1234)],
)
def test_exact_sizes_and_every_user_active(n_users: int, n_items: int, n_events: int) -> None:
    out = shop(n_users=n_users, n_items=n_items, n_events=n_events, seed=3)
    assert len(out.events) == n_events
    assert len(out.items) == n_items
    assert len(out.users) == n_users
    assert out.events["event_id"].is_unique
    assert set(out.events["user_id"]) == set(out.users["user_id"])
    assert set(out.events["item_id"]) <= set(out.items["item_id"])


def test_location_is_the_users_city(s: SampleShop) -> None:
    city = s.users.set_index("user_id")["location"]
    assert (s.events["location"].to_numpy() == city.loc[s.events["user_id"]].to_numpy()).all()


def test_time_range(s: SampleShop) -> None:
    ts = s.events["timestamp"]
    assert ts.min() >= pd.Timestamp("2026-05-05", tz="UTC")
    assert ts.max() < pd.Timestamp("2026-11-01", tz="UTC")
    assert ts.max() >= pd.Timestamp("2026-10-30", tz="UTC")
    assert ts.min() < pd.Timestamp("2026-05-08", tz="UTC")


# --- determinism ---------------------------------------------------------------


def test_deterministic_per_seed() -> None:
    a = shop(n_users=80, n_items=30, n_events=3000, seed=11)
    b = shop(n_users=80, n_items=30, n_events=3000, seed=11)
    c = shop(n_users=80, n_items=30, n_events=3000, seed=12)
    for name in ("events", "items", "users"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.user_taste, b.user_taste)
    np.testing.assert_array_equal(a.item_cluster, b.item_cluster)
    assert not a.events[["user_id", "item_id"]].equals(c.events[["user_id", "item_id"]])
    assert not np.array_equal(a.user_taste, c.user_taste)


# --- sessions and funnel ----------------------------------------------------------


def test_funnel_ratios(s: SampleShop) -> None:
    share = s.events["event_type"].value_counts(normalize=True)
    assert share["view"] > share["click"] > share["add_to_cart"] > share["purchase"] > 0
    assert 0.50 < share["view"] < 0.70
    assert 0.18 < share["click"] < 0.32
    assert 0.06 < share["add_to_cart"] < 0.14
    assert 0.025 < share["purchase"] < 0.08


def test_funnel_order_within_sessions(s: SampleShop) -> None:
    e = s.events
    # A session belongs to one user and one device.
    per_session = e.groupby("session_id")[["user_id", "device"]].nunique()
    assert (per_session == 1).all().all()
    # Per (session, item): views >= clicks >= carts >= purchases, and the
    # first step of each kind happens after the first step before it.
    steps = ["view", "click", "add_to_cart", "purchase"]
    grouped = e.groupby(["session_id", "item_id", "event_type"])["timestamp"]
    counts = grouped.size().unstack(fill_value=0).reindex(columns=steps, fill_value=0)
    first = grouped.min().unstack().reindex(columns=steps)
    for before, after in itertools.pairwise(steps):
        assert (counts[before] >= counts[after]).all(), (before, after)
        both = first[[before, after]].dropna()
        assert len(both) > 0
        assert (both[before] < both[after]).all(), (before, after)


def test_purchase_values(s: SampleShop) -> None:
    e = s.events
    is_purchase = e["event_type"] == "purchase"
    assert e.loc[~is_purchase, "value"].isna().all()
    paid = e.loc[is_purchase]
    assert paid["value"].notna().all() and (paid["value"] > 0).all()
    price = s.items.set_index("item_id")["price"].loc[paid["item_id"]].to_numpy()
    assert (paid["value"].to_numpy() <= price + 1e-9).all()
    assert (paid["value"].to_numpy() == price).mean() > 0.7


def test_sessions_have_several_events(s: SampleShop) -> None:
    # Session ids are numbered in order of first appearance.
    first_seen = pd.unique(s.events["session_id"])
    assert list(first_seen) == sorted(first_seen)
    assert first_seen[0] == "s000001"
    size = s.events.groupby("session_id").size()
    assert 3 < size.mean() < 15
    assert size.max() > 10


# --- realism ----------------------------------------------------------------------


def test_long_tail_popularity(s: SampleShop) -> None:
    counts = s.events["item_id"].value_counts()
    top = counts.iloc[: len(s.items) // 10].sum()
    assert top / len(s.events) > 0.35  # uniform would give 0.10


def test_skewed_user_activity(s: SampleShop) -> None:
    counts = s.events["user_id"].value_counts()
    assert counts.min() >= 1
    assert counts.iloc[: len(counts) // 10].sum() / len(s.events) > 0.3
    assert counts.max() > 5 * counts.median()


def test_users_concentrate_on_their_clusters(s: SampleShop, ev: pd.DataFrame) -> None:
    n_clusters = len(s.cluster_names)
    per_user = pd.crosstab(ev["u"], ev["cluster"])
    active = per_user[per_user.sum(axis=1) >= 20]
    top_share = active.max(axis=1) / active.sum(axis=1)
    assert top_share.mean() > 4 / n_clusters
    # The observed favourite cluster is usually the hidden favourite one.
    hidden_top = s.user_taste[active.index.to_numpy()].argmax(axis=1)
    assert (active.idxmax(axis=1).to_numpy() == hidden_top).mean() > 0.6


def test_clusters_align_with_categories(s: SampleShop) -> None:
    primary = s.items["categories"].str[0]
    for k in range(len(s.cluster_names)):
        assert primary[s.item_cluster == k].nunique() == 1
    assert primary.nunique() == len(s.cluster_names)
    mentions = [
        all(c in text for c in cats)
        for text, cats in zip(s.items["text"], s.items["categories"], strict=True)
    ]
    assert all(mentions)
    assert s.items["title"].str.fullmatch(r"[A-Z][\w\- ]+ \d+").all()


def test_demographics_predict_taste() -> None:
    big = shop(n_users=4000, n_items=50, n_events=4000, seed=5)
    names = list(big.cluster_names)
    taste = pd.DataFrame(big.user_taste, columns=names)
    by_age = taste.groupby(big.users["age_band"].to_numpy()).mean()
    assert by_age["kids"]["35-44"] > 2 * by_age["kids"]["18-24"]
    assert by_age["books"]["65+"] > 2 * by_age["books"]["18-24"]
    by_city = taste.groupby(big.users["location"].to_numpy()).mean()
    assert by_city["fashion"]["Paris"] > by_city["fashion"]["Warsaw"]


def test_taste_drifts_in_last_third(s: SampleShop, ev: pd.DataFrame) -> None:
    t = ev["timestamp"]
    frac = (t - t.min()) / (t.max() - t.min())
    third = np.minimum((frac * 3).astype(int), 2)
    share = pd.crosstab(third, ev["cluster"], normalize="index").to_numpy()
    home, outdoor = s.cluster_names.index("home"), s.cluster_names.index("outdoor")
    assert share[2, home] > 1.4 * share[0, home]
    assert share[2, outdoor] < 0.9 * (share[0, outdoor] + share[1, outdoor]) / 2
    # The shift happens late: the first two thirds look much more alike.
    assert share[2, home] - share[1, home] > 2 * abs(share[1, home] - share[0, home])


def test_device_and_taste_depend_on_hour(s: SampleShop, ev: pd.DataFrame) -> None:
    evening = ev[ev["hour"].between(19, 23)]
    office = ev[ev["hour"].between(9, 16)]
    mobile_evening = (evening["device"] == "mobile").mean()
    mobile_office = (office["device"] == "mobile").mean()
    assert mobile_evening > mobile_office + 0.15
    assert (office["device"] == "desktop").mean() > (evening["device"] == "desktop").mean() + 0.2
    fashion = s.cluster_names.index("fashion")
    assert (evening["cluster"] == fashion).mean() > 1.2 * (office["cluster"] == fashion).mean()


def test_context_shifts_what_users_shop_for(s: SampleShop, ev: pd.DataFrame) -> None:
    names = list(s.cluster_names)
    tech, outdoor, fashion = (names.index(n) for n in ("tech", "outdoor", "fashion"))
    by_device = pd.crosstab(ev["device"], ev["cluster"], normalize="index")
    assert by_device.loc["desktop", tech] > 1.5 * by_device.loc["mobile", tech]
    weekend = ev["timestamp"].dt.day_of_week >= 5
    assert (ev.loc[weekend, "cluster"] == outdoor).mean() > 1.15 * (
        ev.loc[~weekend, "cluster"] == outdoor).mean()
    # Within the same users: the moment reorders the clusters they like.
    users = np.arange(len(s.users))
    phone = s.taste_in_context(users, pd.Timestamp("2026-06-03 21:00", tz="UTC"), "mobile")
    desk = s.taste_in_context(users, pd.Timestamp("2026-06-03 10:00", tz="UTC"), "desktop")
    assert phone[:, fashion].mean() > 2 * desk[:, fashion].mean()
    assert desk[:, tech].mean() > 2 * phone[:, tech].mean()
    assert (phone.argmax(axis=1) != desk.argmax(axis=1)).mean() > 0.1


def test_no_event_before_item_creation(s: SampleShop) -> None:
    merged = s.events[["item_id", "timestamp"]].merge(s.items[["item_id", "created_at"]])
    assert len(merged) == len(s.events)
    assert (merged["timestamp"] >= merged["created_at"]).all()
    start = pd.Timestamp("2026-05-05", tz="UTC")
    launched = s.items["created_at"] >= start
    assert 0.03 < launched.mean() < 0.3  # some items launch during the period
    assert s.events["item_id"].isin(s.items.loc[launched, "item_id"]).any()


def test_taste_in_context(s: SampleShop) -> None:
    fashion = s.cluster_names.index("fashion")
    home = s.cluster_names.index("home")
    users = np.arange(len(s.users))
    early = pd.Timestamp("2026-06-01 10:00", tz="UTC")
    night = pd.Timestamp("2026-06-01 21:00", tz="UTC")
    late = pd.Timestamp("2026-10-30 10:00", tz="UTC")
    base = s.taste_in_context(users, early, "mobile")
    np.testing.assert_allclose(base.sum(axis=1), 1.0)
    assert (
        s.taste_in_context(users, night, "mobile")[:, fashion] >= base[:, fashion] - 1e-12
    ).all()
    assert s.taste_in_context(users, late, "mobile")[:, home].mean() > base[:, home].mean()
    with pytest.raises(ValueError, match="device"):
        s.taste_in_context(users, early, "watch")


# --- write ------------------------------------------------------------------------


def _read(path: Path, fmt: str) -> pd.DataFrame:
    if fmt == "csv":
        return pd.read_csv(path)
    if fmt == "jsonl":
        return pd.read_json(path, lines=True)
    return pd.read_parquet(path)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_write_round_trip(tmp_path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    small = shop(n_users=40, n_items=15, n_events=600, seed=2)
    paths = small.write(tmp_path / "out", format=fmt)  # type: ignore[arg-type]
    assert [p.name for p in paths] == [f"events.{fmt}", f"items.{fmt}", f"users.{fmt}"]
    assert all(p.exists() for p in paths)
    events, items, users = (_read(p, fmt) for p in paths)
    for got, want in ((events, small.events), (items, small.items), (users, small.users)):
        assert len(got) == len(want)
        assert list(got.columns) == list(want.columns)
    assert events["event_id"].tolist() == small.events["event_id"].tolist()
    assert items["item_id"].tolist() == small.items["item_id"].tolist()
    assert users["user_id"].tolist() == small.users["user_id"].tolist()
    stamps = pd.to_datetime(events["timestamp"], utc=True)
    assert (stamps.to_numpy() == small.events["timestamp"].to_numpy()).all()
    cats = items["categories"]
    if fmt == "csv":
        cats = cats.str.split("|")
    assert [list(c) for c in cats] == small.items["categories"].tolist()
    assert events["value"].isna().sum() == small.events["value"].isna().sum()


def test_write_jsonl_is_one_object_per_line(tmp_path: Path) -> None:
    small = shop(n_users=20, n_items=10, n_events=100, seed=4)
    events_path = small.write(tmp_path, format="jsonl")[0]
    lines = events_path.read_text().splitlines()
    assert len(lines) == 100
    first = json.loads(lines[0])
    assert set(first) == set(EVENT_COLUMNS)
    assert isinstance(first["timestamp"], str)
    pd.Timestamp(first["timestamp"])  # ISO-8601
    assert first["timestamp"].startswith("2026-")


def test_write_rejects_unknown_format(tmp_path: Path) -> None:
    small = shop(n_users=10, n_items=10, n_events=20)
    with pytest.raises(ValueError, match="format"):
        small.write(tmp_path, format="xlsx")  # type: ignore[arg-type]


# --- validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_items": 9}, "n_items"),
        ({"n_users": 0}, "n_users"),
        ({"n_events": 0}, "n_events"),
        ({"n_users": 100, "n_events": 99}, "n_events"),
        ({"seed": -1}, "seed"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, int], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        shop(**kwargs)


@pytest.mark.parametrize("kwargs", [{"n_users": 10.0}, {"n_items": "50"}, {"n_events": True}])
def test_non_integer_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(TypeError, match=next(iter(kwargs))):
        shop(**kwargs)  # type: ignore[arg-type]


def test_docstring_examples() -> None:
    result = doctest.testmod(shop_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
