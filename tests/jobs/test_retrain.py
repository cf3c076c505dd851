"""Retraining: the not-worse gate, both figures in the registry, the schedule and drift
triggers of the worker (with a fake clock and a counted number of polls)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailored.cli import app
from tailored.jobs.erase import erase_users
from tailored.jobs.retrain import parse_interval, retrain, run_worker
from tailored.pipeline import Recipe
from tailored.sample import shop
from tailored.schema import Event
from tailored.settings import Settings
from tailored.store import Store, open_store


def _recipe(name: str, **params: object) -> Recipe:
    return Recipe.of(name, **params)


@pytest.fixture(scope="module")
def events() -> list[Event]:
    sample = shop(n_users=300, n_items=80, n_events=6_000, seed=3)
    return [Event(event_id=row.event_id, user_id=row.user_id, item_id=row.item_id,
                  event_type=row.event_type, timestamp=row.timestamp)
            for row in sample.events.itertuples(index=False)]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(store_url=f"sqlite:///{tmp_path / 'store.db'}", model_dir=tmp_path / "m")


@pytest.fixture
def store(settings: Settings, events: list[Event]) -> Iterator[Store]:
    opened = open_store(settings.store_url)
    opened.events.add(events)
    yield opened
    opened.close()


def test_first_version_is_promoted_and_records_what_it_saw(store: Store,
                                                           settings: Settings) -> None:
    outcome = retrain(store, settings, _recipe("popular"))
    assert outcome.promoted and outcome.incumbent is None
    version = store.models.active()
    assert version is not None and version.version == outcome.candidate.version
    details = version.details
    assert details["trained_until"].startswith("2026-10-3")  # the sample's last day
    assert details["retrain"]["candidate"]["ndcg@10"] == pytest.approx(outcome.candidate_score)
    assert details["retrain"]["incumbent"]["version"] is None
    assert version.metrics == details["retrain"]["candidate"]


def test_a_worse_recipe_is_registered_but_not_promoted(store: Store,
                                                       settings: Settings) -> None:
    serving = retrain(store, settings, _recipe("item_knn")).candidate
    outcome = retrain(store, settings, _recipe("popular"))
    assert outcome.candidate_score is not None and outcome.incumbent_score is not None
    assert outcome.candidate_score < outcome.incumbent_score  # popular loses to item-kNN
    assert not outcome.promoted and "kept version" in outcome.decision
    active = store.models.active()
    assert active is not None and active.version == serving.version
    recorded = store.models.get(outcome.candidate.version)
    assert recorded is not None and not recorded.active
    both = recorded.details["retrain"]
    assert both["incumbent"]["version"] == serving.version
    assert both["incumbent"]["metrics"]["ndcg@10"] == pytest.approx(outcome.incumbent_score)
    assert both["candidate"]["ndcg@10"] == pytest.approx(outcome.candidate_score)
    assert both["promoted"] is False


def test_a_better_recipe_replaces_a_worse_one(store: Store, settings: Settings) -> None:
    retrain(store, settings, _recipe("popular"))
    outcome = retrain(store, settings, _recipe("item_knn"))
    assert outcome.promoted
    assert outcome.candidate_score is not None and outcome.incumbent_score is not None
    assert outcome.candidate_score >= outcome.incumbent_score


def test_the_same_recipe_on_fresh_data_is_promoted(store: Store, settings: Settings) -> None:
    first = retrain(store, settings, _recipe("item_knn", neighbors=20))
    second = retrain(store, settings)  # by default: the serving version's recipe
    assert second.promoted and second.incumbent is not None
    assert second.incumbent.version == first.candidate.version
    assert second.candidate.details["retrain"]["incumbent"]["how"] == "same recipe"


def test_tolerance_and_metric_are_checked(store: Store, settings: Settings) -> None:
    with pytest.raises(ValueError, match="tolerance"):
        retrain(store, settings, _recipe("popular"), tolerance=1.5)
    with pytest.raises(ValueError, match="not an offline metric"):
        retrain(store, settings, _recipe("popular"), metric="accuracy@10")


def test_worker_retrains_when_the_interval_has_passed(store: Store,
                                                      settings: Settings) -> None:
    first = run_worker(store, settings, _recipe("popular"), every=timedelta(hours=1),
                       on_drift=False, iterations=1, sleep=_no_sleep)
    assert [o.reason for o in first] == ["schedule"]  # nothing registered yet: due now
    soon = datetime.now(UTC) + timedelta(minutes=10)
    assert run_worker(store, settings, _recipe("popular"), every=timedelta(hours=1),
                      on_drift=False, iterations=3, clock=lambda: soon, sleep=_no_sleep) == []
    later = datetime.now(UTC) + timedelta(hours=2)
    again = run_worker(store, settings, _recipe("popular"), every=timedelta(hours=1),
                       on_drift=False, iterations=1, clock=lambda: later, sleep=_no_sleep)
    assert len(again) == 1 and len(store.models.list()) == 2


def test_worker_retrains_on_a_drift_alert_and_marks_it_handled(store: Store,
                                                              settings: Settings) -> None:
    retrain(store, settings, _recipe("popular"))
    alert = store.alerts.raise_alert("ctr", datetime(2026, 10, 30, tzinfo=UTC), "CTR fell")
    assert alert is not None
    slept: list[float] = []
    outcomes = run_worker(store, settings, every=None, on_drift=True, iterations=2,
                          poll=timedelta(seconds=5), sleep=slept.append)
    assert [o.reason for o in outcomes] == ["drift"]  # the second poll finds nothing new
    assert slept == [5.0]
    assert outcomes[0].candidate.details["retrain"]["alerts"] == [alert.alert_id]
    handled = store.alerts.list(detector="ctr")[0]
    assert handled.handled_at is not None
    assert f"version {outcomes[0].candidate.version}" in (handled.handled_by or "")


def test_worker_needs_a_trigger(store: Store, settings: Settings) -> None:
    with pytest.raises(ValueError, match="nothing would trigger"):
        run_worker(store, settings, every=None, on_drift=False, iterations=1)


@pytest.mark.parametrize("text", ["", "1", "h", "-1h", "0m", "1y", "1 hour"])
def test_bad_intervals_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="s, m, h, d or w"):
        parse_interval(text)


def test_intervals() -> None:
    assert parse_interval("90s") == timedelta(seconds=90)
    assert parse_interval("1.5d") == timedelta(hours=36)
    assert parse_interval("2w") == timedelta(days=14)


def _no_sleep(_seconds: float) -> None:
    pass


def test_train_schedule_command_runs_the_worker(store: Store, settings: Settings) -> None:
    runner = CliRunner()
    args = ["train", "--store", settings.store_url, "--model", "popular", "--schedule", "1h",
            "--poll", "1s", "--runs", "1"]
    result = runner.invoke(app, args, catch_exceptions=False,
                           env={"TAILORED_MODEL_DIR": str(settings.model_dir)})
    assert result.exit_code == 0, result.output
    assert "promoted: no version was serving" in result.output
    assert len(store.models.list()) == 1
    result = runner.invoke(app, args, catch_exceptions=False,
                           env={"TAILORED_MODEL_DIR": str(settings.model_dir)})
    assert result.exit_code == 0 and len(store.models.list()) == 1  # not due for an hour


def test_train_schedule_refuses_a_bad_interval(settings: Settings) -> None:
    result = CliRunner().invoke(app, ["train", "--store", settings.store_url,
                                      "--schedule", "hourly"])
    assert result.exit_code == 2 and "s, m, h, d or w" in result.output


def test_worker_reports_a_failed_round_and_goes_on(settings: Settings) -> None:
    class Stop(Exception):
        pass

    def stop(_seconds: float) -> None:
        raise Stop

    messages: list[str] = []
    with closing(open_store(settings.store_url)) as empty:
        with pytest.raises(Stop):  # the first round failed, the worker went to sleep
            run_worker(empty, settings, _recipe("popular"), every=timedelta(hours=1),
                       on_drift=False, sleep=stop, progress=messages.append)
        with pytest.raises(ValueError, match="no events"):  # counted rounds raise
            run_worker(empty, settings, _recipe("popular"), every=timedelta(hours=1),
                       on_drift=False, iterations=1, sleep=_no_sleep)
    assert any("this round failed" in m and "no events" in m for m in messages)


def test_worker_retrains_for_an_erasure_within_the_bound(store: Store,
                                                          settings: Settings) -> None:
    retrain(store, settings, _recipe("als", factors=8, iterations=3))
    user = store.events.frame()["user_id"].iloc[0]
    report = erase_users(store, settings, [user], erased_by="test")
    [pending] = store.privacy.erasures(pending=True)  # ALS's item factors still know them
    assert pending.retrain_due is not None and report.retrain_due == pending.retrain_due
    assert pending.retrain_due - pending.erased_at == timedelta(hours=24)

    # Erasures share a retraining: none until the oldest is half the bound old.
    soon = pending.erased_at + timedelta(hours=11)
    yearly = timedelta(days=365)  # no scheduled retraining in the way
    assert run_worker(store, settings, every=yearly, on_drift=False, iterations=1,
                      clock=lambda: soon, sleep=_no_sleep) == []
    later = pending.erased_at + timedelta(hours=12)
    [outcome] = run_worker(store, settings, every=yearly, on_drift=False, iterations=1,
                           clock=lambda: later, sleep=_no_sleep)
    assert outcome.reason == "erasure" and outcome.promoted
    assert store.privacy.erasures(pending=True) == []
    assert store.privacy.erasures()[0].retrained_at is not None
