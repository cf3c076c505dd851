"""Retention: events, served answers and old model versions past their limits are deleted,
what is newer (or still needed) is kept, nothing outside the model directory is touched,
and a dry run deletes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailored.cli import app
from tailored.jobs.retention import apply_retention
from tailored.jobs.retrain import run_worker
from tailored.schema import Event, User
from tailored.settings import Settings
from tailored.store import ModelVersion, Served, Store, open_store

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(store_url=f"sqlite:///{tmp_path / 'store.db'}", model_dir=tmp_path / "m")


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    opened = open_store(settings.store_url)
    # u1: a view 100 days ago, an impression 40 days ago, a click 10 days ago;
    # u2: a purchase 5 days ago and an impression 1 day ago.
    opened.events.add([
        Event(event_id="old-view", user_id="u1", item_id="i1", timestamp=_days_ago(100)),
        Event(event_id="old-impression", user_id="u1", item_id="i2",
              event_type="impression", timestamp=_days_ago(40)),
        Event(event_id="click", user_id="u1", item_id="i2", event_type="click",
              timestamp=_days_ago(10)),
        Event(event_id="purchase", user_id="u2", item_id="i3", event_type="purchase",
              timestamp=_days_ago(5)),
        Event(event_id="impression", user_id="u2", item_id="i1", event_type="impression",
              timestamp=_days_ago(1)),
    ])
    opened.served.record([
        Served(f"r{days}", "u1", _days_ago(days), "als", 1, item_ids=["i1"], scores=[1.0],
               propensities=[1.0]) for days in (60, 31, 29, 1)])
    yield opened
    opened.close()


def _event_ids(store: Store) -> list[str]:
    return sorted(store.events.frame()["event_id"])


def test_events_and_served_answers_past_the_cutoff_are_deleted_newer_kept(
        store: Store, settings: Settings) -> None:
    limits = settings.model_copy(update={"retention_days": 30, "served_retention_days": 30})
    report = apply_retention(store, limits, now=NOW)
    assert _event_ids(store) == ["click", "impression", "purchase"]
    assert sorted(store.served.frame()["recommendation_id"]) == ["r1", "r29"]
    assert (report.events, report.impressions, report.served) == (2, 1, 2)
    assert report.events_cutoff == report.served_cutoff == _days_ago(30)
    assert apply_retention(store, limits, now=NOW).counts == dict.fromkeys(
        ("events", "impressions", "served", "without_consent", "versions", "artifacts"), 0)


def test_impressions_follow_the_served_log_not_the_event_retention(
        store: Store, settings: Settings) -> None:
    limits = settings.model_copy(update={"retention_days": 365, "served_retention_days": 20})
    report = apply_retention(store, limits, now=NOW)
    # Every event is younger than a year; the impression 40 days old goes with the log.
    assert _event_ids(store) == ["click", "impression", "old-view", "purchase"]
    assert (report.events, report.impressions, report.served) == (1, 1, 3)


def test_without_limits_everything_is_kept(store: Store, settings: Settings) -> None:
    report = apply_retention(store, settings, now=NOW)
    assert store.events.count() == 5 and store.served.count() == 4
    assert not any(report.counts.values())


def test_a_dry_run_deletes_nothing_and_counts_what_a_run_deletes(
        store: Store, settings: Settings) -> None:
    limits = settings.model_copy(update={"retention_days": 30, "served_retention_days": 20,
                                         "keep_versions": 1})
    versions = _versions(store, settings, 3)
    dry = apply_retention(store, limits, now=NOW, dry_run=True)
    assert store.events.count() == 5 and store.served.count() == 4
    assert len(store.models.list()) == 3
    assert all(Path(v.path).exists() for v in versions)
    real = apply_retention(store, limits, now=NOW)
    assert dry.dry_run and not real.dry_run
    assert dry.counts == real.counts == {"events": 2, "impressions": 1, "served": 3,
                                         "without_consent": 0, "versions": 1,
                                         "artifacts": 1}
    assert "would delete" in dry.summary() and "deleted" in real.summary()


def _versions(store: Store, settings: Settings, n: int,
              outside: Path | None = None) -> list[ModelVersion]:
    """``n`` registered versions whose artifacts are directories under the model
    directory (or all under ``outside``); the last two promoted in turn."""
    versions = []
    for number in range(1, n + 1):
        path = (outside or settings.model_dir) / f"als-{number}"
        path.mkdir(parents=True)
        (path / "config.json").write_text("{}")
        versions.append(store.models.register("als", str(path)))
    for version in versions[-2:]:
        store.models.promote(version.version)
    return versions


def test_keep_versions_keeps_the_newest_the_active_and_the_rollback_target(
        store: Store, settings: Settings) -> None:
    v1, v2, v3, v4, v5 = _versions(store, settings, 5)
    store.models.promote(v2.version)  # active v2; a rollback returns to v5
    report = apply_retention(store, settings.model_copy(update={"keep_versions": 1}),
                             now=NOW)
    assert [v.version for v in store.models.list()] == [v2.version, v5.version]
    assert report.versions == [v1.version, v3.version, v4.version]
    assert report.kept_versions == {v2.version: "active"}
    assert not any(Path(v.path).exists() for v in (v1, v3, v4))
    assert all(Path(v.path).exists() for v in (v2, v5))
    previous = store.models.previous()
    assert previous is not None and previous.version == v5.version


def test_versions_of_a_running_experiment_are_kept(store: Store, settings: Settings) -> None:
    v1, v2, _v3, v4 = _versions(store, settings, 4)
    experiment = store.experiments.create("ab", [("A", v4.version, 1.0),
                                                 ("B", v1.version, 1.0)])
    store.experiments.start(experiment.experiment_id)
    report = apply_retention(store, settings.model_copy(update={"keep_versions": 2}),
                             now=NOW)
    assert report.versions == [v2.version]
    assert report.kept_versions == {v1.version: "in a draft or running experiment"}
    assert Path(v1.path).exists() and not Path(v2.path).exists()


def test_artifacts_outside_the_model_directory_are_never_removed(
        store: Store, settings: Settings, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    old, *_ = _versions(store, settings, 3, outside=elsewhere)
    # A version inside the model directory that is a link to a directory outside it.
    target = elsewhere / "linked"
    target.mkdir()
    (target / "config.json").write_text("{}")
    settings.model_dir.mkdir(parents=True, exist_ok=True)
    link = settings.model_dir / "linked"
    link.symlink_to(target)
    linked = store.models.register("als", str(link))
    # And one registered at the model directory itself.
    whole = store.models.register("als", str(settings.model_dir))
    newest = store.models.register("als", str(settings.model_dir / "newest"))
    store.models.promote(newest.version)
    report = apply_retention(store, settings.model_copy(update={"keep_versions": 1}),
                             now=NOW)
    assert old.version in report.versions and linked.version in report.versions
    assert whole.version in report.versions
    assert report.artifacts == []
    assert (elsewhere / "als-1" / "config.json").exists()
    assert (target / "config.json").exists() and link.exists()
    assert settings.model_dir.is_dir()
    assert str(elsewhere / "als-1") in report.kept_artifacts


def test_the_worker_applies_retention_every_round(store: Store, settings: Settings) -> None:
    store.models.register("popular", str(settings.model_dir / "p"))  # not due to retrain
    said: list[str] = []
    limits = settings.model_copy(update={"retention_days": 30})
    outcomes = run_worker(store, limits, every=timedelta(days=1), on_drift=False,
                          iterations=1, clock=lambda: datetime.now(UTC),
                          sleep=lambda _s: None, progress=said.append)
    assert outcomes == []  # nothing retrained: the version is newer than a day
    assert store.events.count() == 0 and store.served.count() == 4
    assert said == ["retention deleted: 5 events, 0 impressions, 0 served, 0 without_consent, "
                    "0 versions, 0 artifacts"]


def test_retain_command_dry_run_then_run(store: Store, settings: Settings) -> None:
    runner = CliRunner()
    env = {"TAILORED_MODEL_DIR": str(settings.model_dir),
           "TAILORED_SERVED_RETENTION_DAYS": "1"}
    args = ["retain", "--store", settings.store_url, "--retention-days", "30"]
    dry = runner.invoke(app, [*args, "--dry-run"], catch_exceptions=False, env=env)
    assert dry.exit_code == 0, dry.output
    assert "would delete:" in dry.output and "served" in dry.output
    assert store.events.count() == 5 and store.served.count() == 4
    done = runner.invoke(app, args, catch_exceptions=False, env=env)
    assert done.exit_code == 0, done.output
    assert "retention deleted: 5 events, 2 impressions, 4 served" in done.output
    assert store.events.count() == 0 and store.served.count() == 0


def test_retain_command_without_limits_keeps_everything(store: Store,
                                                        settings: Settings) -> None:
    result = CliRunner().invoke(app, ["retain", "--store", settings.store_url],
                                catch_exceptions=False,
                                env={"TAILORED_MODEL_DIR": str(settings.model_dir)})
    assert result.exit_code == 0 and "everything is kept" in result.output
    assert store.events.count() == 5


def test_events_of_users_without_consent_are_kept_or_discarded_by_the_rule(
        store: Store, settings: Settings) -> None:
    store.users.upsert([User(user_id="u1", consent={"personalization": False})])
    assert apply_retention(store, settings).without_consent == 0  # "keep", the default
    assert len(_event_ids(store)) == 5

    discard = settings.model_copy(update={"events_without_consent": "discard"})
    assert apply_retention(store, discard, dry_run=True).without_consent == 3
    report = apply_retention(store, discard)

    assert report.without_consent == 3 and report.counts["without_consent"] == 3
    assert _event_ids(store) == ["impression", "purchase"]  # u2's only
    assert store.privacy.deletions()["without_consent"] == 3
