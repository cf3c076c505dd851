"""Drift detectors: ADWIN finds a CTR drop and shifts in what users do, alerts are raised
once, stable streams stay quiet."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tailored.cli import app
from tailored.monitoring.drift import (
    DriftConfig,
    check_drift,
    ctr_detector,
    detect,
    divergence,
    impression_outcomes,
)
from tailored.schema import Event
from tailored.store import Store, open_store

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _impressions(rates: list[tuple[int, float]], seed: int = 0) -> list[Event]:
    """Recommendations of 5 items each; each shown item is clicked with the given rate."""
    rng = np.random.default_rng(seed)
    events: list[Event] = []
    n = 0
    for count, rate in rates:
        for _ in range(count // 5):
            at = T0 + timedelta(minutes=n)
            rec = f"r{n}"
            for position in range(5):
                item = f"i{rng.integers(50)}"
                context = {"recommendation_id": rec, "position": position}
                events.append(Event(event_id=f"imp{n}-{position}", user_id=f"u{n % 97}",
                                    item_id=item, event_type="impression", timestamp=at,
                                    context=context))
                if rng.random() < rate:
                    events.append(Event(event_id=f"clk{n}-{position}", user_id=f"u{n % 97}",
                                        item_id=item, event_type="click",
                                        timestamp=at + timedelta(seconds=20), context=context))
            n += 1
    return events


def _behaviour(parts: list[tuple[int, dict[str, float], list[str]]],
               seed: int = 0) -> list[Event]:
    """Events with a given event-type mix, over a given set of items, part after part."""
    rng = np.random.default_rng(seed)
    events: list[Event] = []
    for count, mix, items in parts:
        types = rng.choice(list(mix), size=count, p=list(mix.values()))
        chosen = rng.choice(items, size=count)
        for event_type, item in zip(types, chosen, strict=True):
            n = len(events)
            events.append(Event(event_id=f"b{n}", user_id=f"u{n % 101}", item_id=str(item),
                                event_type=str(event_type),
                                timestamp=T0 + timedelta(minutes=n)))
    return events


STEADY = {"view": 0.6, "click": 0.3, "purchase": 0.1}
ITEMS_A = [f"a{i}" for i in range(30)]
ITEMS_B = [f"b{i}" for i in range(30)]


@pytest.fixture
def store() -> Iterator[Store]:
    opened = open_store("sqlite://")
    yield opened
    opened.close()


def _frame(events: list[Event]) -> pd.DataFrame:
    store = open_store("sqlite://")
    store.events.add(events)
    return store.events.frame()


def test_outcomes_join_clicks_to_their_impressions() -> None:
    outcomes = impression_outcomes(_frame(_impressions([(1000, 0.2)])))
    assert len(outcomes) == 1000
    assert outcomes["clicked"].mean() == pytest.approx(0.2, abs=0.04)
    assert outcomes["timestamp"].is_monotonic_increasing


def test_a_click_on_another_item_or_recommendation_does_not_count() -> None:
    at = pd.Timestamp(T0)
    events = pd.DataFrame({
        "item_id": ["a", "a", "b", "a"],
        "event_type": ["impression", "impression", "click", "click"],
        "timestamp": [at] * 4,
        "context": [{"recommendation_id": "r1"}, {"recommendation_id": "r2"},
                    {"recommendation_id": "r1"}, {}]})
    assert impression_outcomes(events)["clicked"].tolist() == [0, 0]


def test_ctr_drop_is_detected_where_it_happened() -> None:
    state = ctr_detector(_frame(_impressions([(4000, 0.12), (4000, 0.03)])))
    assert state.status == "ok" and state.observations == 8000
    drops = [p for p in state.drifts if p.direction == "down"]
    assert drops, "ADWIN should see the CTR fall from 12% to 3%"
    switch = T0 + timedelta(minutes=800)  # 800 recommendations of 5 in the first part
    assert switch < drops[0].detected_at < switch + timedelta(minutes=300)
    assert drops[0].before == pytest.approx(0.12, abs=0.03)
    assert drops[0].after < drops[0].before  # ADWIN keeps some of the old part at first
    assert state.estimate == pytest.approx(0.03, abs=0.02)
    assert state.series["impressions"].sum() == 8000


def test_steady_ctr_stays_quiet() -> None:
    state = ctr_detector(_frame(_impressions([(8000, 0.08)], seed=1)))
    assert state.drifts == ()


def test_event_mix_shift_is_detected() -> None:
    shifted = {"view": 0.3, "click": 0.5, "purchase": 0.2}
    frame = _frame(_behaviour([(6000, STEADY, ITEMS_A), (6000, shifted, ITEMS_A)]))
    mix, popularity = detect(frame, DriftConfig(window_events=200))[1:]
    ups = [p for p in mix.drifts if p.direction == "up"]
    assert ups and ups[0].detected_at > T0 + timedelta(minutes=6000)
    assert mix.latest["psi"] > 0.1
    assert popularity.drifts == ()  # the items did not change


def test_item_popularity_shift_is_detected() -> None:
    frame = _frame(_behaviour([(6000, STEADY, ITEMS_A), (6000, STEADY, ITEMS_A[:10] + ITEMS_B)]))
    mix, popularity = detect(frame, DriftConfig(window_events=200))[1:]
    assert any(p.direction == "up" for p in popularity.drifts)
    assert mix.drifts == ()


def test_steady_behaviour_stays_quiet() -> None:
    frame = _frame(_behaviour([(12_000, STEADY, ITEMS_A)], seed=2))
    assert all(state.drifts == () for state in detect(frame, DriftConfig(window_events=200)))


def test_divergence_is_zero_for_the_same_distribution_and_bounded() -> None:
    same = pd.Series({"a": 3, "b": 1})
    assert divergence(same * 10, same) == (0.0, 0.0)
    js, psi = divergence(pd.Series({"c": 5}), same)
    assert js == pytest.approx(1.0) and psi > 1


def test_check_raises_each_alert_once(store: Store) -> None:
    store.events.add(_impressions([(4000, 0.12), (4000, 0.03)]))
    first = check_drift(store)
    assert [a.detector for a in first.new_alerts] == ["ctr"]
    assert "CTR fell from" in first.new_alerts[0].message
    assert first.detector("ctr").status == "alert"
    assert check_drift(store).new_alerts == ()  # replayed: the same drift, no new alert
    store.alerts.mark_handled([first.new_alerts[0].alert_id], "test")
    assert check_drift(store).detector("ctr").status == "ok"


def test_check_without_record_writes_nothing(store: Store) -> None:
    store.events.add(_impressions([(4000, 0.12), (4000, 0.03)]))
    assert check_drift(store, record=False).new_alerts == ()
    assert store.alerts.count() == 0


def test_no_alert_for_drift_inside_what_the_model_was_trained_on(store: Store) -> None:
    store.events.add(_behaviour([(6000, STEADY, ITEMS_A), (6000, STEADY, ITEMS_B)]))
    version = store.models.register("popular", "/nowhere", details={
        "trained_until": str(T0 + timedelta(minutes=12_000))})
    store.models.promote(version.version)
    report = check_drift(store, DriftConfig(window_events=200))
    assert report.reference_until == T0 + timedelta(minutes=12_000)
    assert report.new_alerts == ()


def test_unknown_detector_is_named() -> None:
    report = check_drift(open_store("sqlite://"))
    with pytest.raises(KeyError, match="event_mix"):
        report.detector("nope")


def test_monitor_command_shows_the_detectors_and_records_alerts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with closing(open_store(url)) as store:
        store.events.add(_impressions([(4000, 0.12), (4000, 0.03)]))
    runner = CliRunner()
    result = runner.invoke(app, ["monitor", "--store", url, "--no-record"],
                           catch_exceptions=False, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "ctr" in result.output and "event_mix" in result.output
    with closing(open_store(url)) as store:
        assert store.alerts.count() == 0
    result = runner.invoke(app, ["monitor", "--store", url, "--watch", "1", "--rounds", "1"],
                           catch_exceptions=False, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "CTR fell from" in result.output and "open" in result.output
    with closing(open_store(url)) as store:
        (alert,) = store.alerts.list()
        assert alert.detector == "ctr"
