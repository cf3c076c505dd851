"""Online metrics attributed through recommendation ids, against hand counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from tailored.monitoring.online import attribute, cumulative_ctr, variant_metrics

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)


def _served(rows: list[tuple[str, str, str, datetime]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["recommendation_id", "user_id", "variant",
                                        "served_at"])
    frame["served_at"] = pd.to_datetime(frame["served_at"], utc=True)
    return frame


def _events(rows: list[tuple]) -> pd.DataFrame:
    records = []
    for user, item, kind, rid, at, *rest in rows:
        context = {} if rid is None else {"recommendation_id": rid}
        if kind == "impression":
            context["position"] = rest[1] if len(rest) > 1 else 1
        records.append({"user_id": user, "item_id": item, "event_type": kind,
                        "value": rest[0] if rest else None, "timestamp": at,
                        "session_id": None, "context": context})
    frame = pd.DataFrame(records)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


def test_metrics_by_hand() -> None:
    served = _served([("r1", "u1", "A", T0), ("r2", "u2", "A", T0), ("r3", "u3", "B", T0),
                      ("r4", "u1", "A", T0 + timedelta(days=1))])
    minute = timedelta(minutes=1)
    events = _events([
        ("u1", "i1", "impression", "r1", T0), ("u1", "i2", "impression", "r1", T0),
        ("u1", "i1", "impression", "r1", T0),          # a repeated impression counts once
        ("u1", "i1", "click", "r1", T0 + minute),
        ("u1", "i1", "click", "r1", T0 + minute),      # a double click counts once
        ("u1", "i9", "click", "r1", T0 + minute),      # not shown in r1: no CTR credit
        ("u1", "i1", "purchase", "r1", T0 + 2 * minute, 30.0),
        ("u2", "i3", "impression", "r2", T0), ("u2", "i4", "impression", "r2", T0),
        ("u2", "i4", "click", None, T0 + minute),      # not attributed
        ("u3", "i5", "impression", "r3", T0), ("u3", "i5", "click", "r3", T0 + minute),
        ("u3", "i5", "purchase", "r3", T0 + minute, 12.5),
        ("u3", "i6", "purchase", "r3", T0 + minute, 7.5),
        ("u1", "i7", "view", None, T0 + timedelta(days=1)),  # u1 back the next day
        ("u1", "i8", "impression", "r4", T0 + timedelta(days=1)),
        ("u9", "i1", "click", "elsewhere", T0),        # another answer entirely
    ])
    metrics = variant_metrics(served, events)
    a, b = metrics.loc["A"], metrics.loc["B"]
    assert (a.users, a.recommendations, a.impressions, a.clicks) == (2, 3, 5, 1)
    assert a.ctr == pytest.approx(1 / 5)
    assert (a.conversions, a.revenue) == (1, 30.0)
    assert a.conversion == pytest.approx(1 / 2) and a.revenue_per_user == pytest.approx(15.0)
    assert (b.users, b.impressions, b.clicks, b.conversions) == (1, 1, 1, 1)
    assert b.revenue_per_user == pytest.approx(20.0)
    # u1 is back on day 1 (A), u2 is not; day-1 retention needs a day of data after.
    assert a.retention_d1 == pytest.approx(1 / 2)
    # Events per session (no session ids: one per user-day), impressions left out:
    # A: u1 day 0 has 4 events (2 clicks, a click, a purchase), u1 day 1 has 1, u2 has 1.
    assert a.engagement == pytest.approx((4 + 1 + 1) / 3)


def test_cumulative_ctr_fills_every_bucket() -> None:
    served = _served([("r1", "u1", "A", T0), ("r2", "u2", "B", T0 + timedelta(hours=2))])
    events = _events([("u1", "i1", "impression", "r1", T0),
                      ("u1", "i1", "click", "r1", T0),
                      ("u2", "i2", "impression", "r2", T0 + timedelta(hours=2))])
    curve = cumulative_ctr(attribute(served, events).impressions, "h")
    a = curve[curve["variant"] == "A"]
    assert a["impressions"].tolist() == [1, 1, 1] and a["clicks"].tolist() == [1, 1, 1]
    assert curve[curve["variant"] == "B"]["impressions"].tolist() == [0, 0, 1]
