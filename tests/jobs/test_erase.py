"""Erasure as a job: every registered artifact rewritten, the audit, exact families
close at once, a model trained while a user was erased does not bring them back, and the
command line (several ids, a file of ids, consent)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailored.cli import app
from tailored.dataset import Dataset
from tailored.jobs import train_model
from tailored.jobs.erase import erase_users, was_erased
from tailored.jobs.train import register_model
from tailored.pipeline import Recipe
from tailored.sample import shop
from tailored.schema import Event, User
from tailored.settings import Settings
from tailored.store import Store, open_store
from tailored.testing import files_holding

A, B = "erased-user-a7", "erased-user-b3"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(store_url=f"sqlite:///{tmp_path / 'store.db'}", model_dir=tmp_path / "m")


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    sample = shop(n_users=120, n_items=60, n_events=3_000, seed=11)
    first, second = sample.events["user_id"].unique()[:2]
    events = sample.events.replace({"user_id": {first: A, second: B}})
    opened = open_store(settings.store_url)
    opened.events.add(Event(event_id=row.event_id, user_id=row.user_id, item_id=row.item_id,
                            event_type=row.event_type, timestamp=row.timestamp)
                      for row in events.itertuples(index=False))
    opened.users.upsert([User(user_id=A, attributes={"age_band": "25-34"})])
    yield opened
    opened.close()


def test_every_version_is_rewritten_and_exact_families_wait_for_nothing(
        store: Store, settings: Settings) -> None:
    train_model(store, settings, "popular", validate=False)
    report = erase_users(store, settings, [A, B], erased_by="test")

    assert report.summary()["erased"] == 2 and report.deleted["events"] > 0
    assert report.versions[1].known == 2 and report.versions[1].exact
    assert report.retrain_due is None and store.privacy.erasures(pending=True) == []
    assert files_holding(settings.model_dir, A) == []
    assert files_holding(settings.model_dir, B) == []
    assert [e.erased_by for e in was_erased(store, settings, A)] == ["test"]
    assert was_erased(store, settings, "someone-else") == []
    again = erase_users(store, settings, [A], erased_by="test")  # idempotent
    assert again.deleted == {"events": 0, "profile": 0, "served": 0, "consent_changes": 0}


def test_a_user_erased_while_a_model_trains_is_not_brought_back(
        store: Store, settings: Settings) -> None:
    seen = store.privacy.last_erasure_id()
    data = Dataset.from_store(store)  # read before the erasure
    recipe = Recipe.of("als", factors=4, iterations=2)
    pipeline = recipe.build().fit(data)
    erase_users(store, settings, [A], erased_by="test")  # nothing registered to rewrite

    version = register_model(store, settings, recipe, pipeline, data, {}, promote=True,
                             erasures_seen=seen)

    assert files_holding(Path(version.path), A) == []
    assert files_holding(Path(version.path), B)  # the others are still there
    assert store.privacy.erasures(pending=True)  # its item factors still carry A


def test_the_command_line_erases_ids_and_a_file_of_ids(store: Store, settings: Settings,
                                                       tmp_path: Path) -> None:
    train_model(store, settings, "item_knn", validate=False)
    listed = tmp_path / "erase.txt"
    listed.write_text(f"{B}\n\n")
    runner = CliRunner()

    result = runner.invoke(app, ["users", "erase", A, "--file", str(listed),
                                 "--store", settings.store_url],
                           env={"TAILORED_MODEL_DIR": str(settings.model_dir)})

    assert result.exit_code == 0, result.output
    assert '"erased": 2' in result.output
    assert store.events.frame(user_ids=[A, B]).empty
    assert files_holding(settings.model_dir, A) == []
    assert files_holding(settings.model_dir, B) == []
    nothing = runner.invoke(app, ["users", "erase", "--store", settings.store_url])
    assert nothing.exit_code != 0 and "name the users" in nothing.output


def test_the_command_line_changes_consent_and_shows_its_history(store: Store,
                                                                settings: Settings) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["users", "consent", A, "--withdraw", "analytics",
                                 "--store", settings.store_url])
    assert result.exit_code == 0, result.output
    assert "analytics: withheld" in result.output
    assert "personalization: granted (by default)" in result.output
    assert "analytics withdrawn" in result.output
    assert store.users.without_consent(purpose="analytics") == [A]
    bad = runner.invoke(app, ["users", "consent", A, "--grant", "Not A Purpose",
                              "--store", settings.store_url])
    assert bad.exit_code != 0 and "purpose" in bad.output
