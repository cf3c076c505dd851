"""ServiceState: several model versions at once, and the served log at shutdown."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy.exc

from tailored.errors import ModelNotFoundError
from tailored.jobs import TrainedModel
from tailored.serving.served_log import ServedLogWriter
from tailored.serving.state import ModelLoadError, ServiceState
from tailored.settings import Settings
from tailored.store import Served, Store


def _register_copies(store: Store, trained: TrainedModel, n: int) -> list[int]:
    version = trained.version
    return [store.models.register(version.name, version.path, {}, version.details).version
            for _ in range(n)]


def test_any_registered_version_is_served_loaded_once_and_bounded(
        store: Store, trained: TrainedModel, settings: Settings) -> None:
    state = ServiceState(store, settings.model_copy(update={"loaded_models": 2}))
    state.load_active()
    versions = _register_copies(store, trained, 3)

    active = state.live_for_version(trained.version.version)
    first = state.live_for_version(versions[0])

    assert active is state.live  # the active version is the one serving
    assert first.version is not None and first.version.version == versions[0]
    assert state.live_for_version(versions[0]) is first  # cached, not loaded again
    state.live_for_version(versions[1])
    state.live_for_version(versions[2])
    assert state.loaded_versions == versions[1:]  # the least recently used went
    state.close()


def test_an_unknown_or_broken_version_fails_clearly(store: Store, trained: TrainedModel,
                                                    settings: Settings,
                                                    tmp_path: Path) -> None:
    state = ServiceState(store, settings)
    broken = store.models.register("als", str(tmp_path / "missing"), {}, {}).version

    with pytest.raises(ModelNotFoundError, match="version 99"):
        state.live_for_version(99)
    with pytest.raises(ModelLoadError, match="cannot be loaded"):
        state.live_for_version(broken)
    state.close()


def test_a_version_by_name_prefers_the_active_one(store: Store, trained: TrainedModel,
                                                   settings: Settings) -> None:
    state = ServiceState(store, settings)
    state.load_active()
    _register_copies(store, trained, 1)

    live = state.live_for("item_knn")

    assert live is not None and live.version is not None
    assert live.version.version == trained.version.version
    state.close()


def test_the_served_log_writer_writes_in_batches_and_flushes_at_close(store: Store) -> None:
    writer = ServedLogWriter(store, flush_seconds=30).start()
    for n in range(5):
        writer.submit(Served(f"r{n}", "u1", datetime.now(UTC), "als", 1, item_ids=["i1"],
                             scores=[1.0], propensities=[1.0]))
    assert store.served.count() == 0  # still gathering the batch

    writer.close()

    assert store.served.count() == 5 and writer.written == 5


def test_the_served_log_writer_survives_a_failing_store(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(_records: object) -> int:
        raise ConnectionError("the store is down")

    monkeypatch.setattr(store.served, "record", down)
    writer = ServedLogWriter(store, flush_seconds=0.01, retries=2,
                             backoff_seconds=0.01).start()
    writer.submit(Served("r1", "u1", datetime.now(UTC), "als", 1))

    assert writer.flush(5)  # nothing pending: counted as failed after its tries, not stuck
    assert (writer.written, writer.failed) == (0, 1)
    writer.close()


def test_a_failed_served_log_batch_is_retried_and_never_logs_its_records(
        store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    record = store.served.record
    failures = iter([True, True])

    def flaky(records: list[Served]) -> int:
        if next(failures, False):
            raise sqlalchemy.exc.OperationalError(
                "INSERT INTO served", {"user_id": "secret-user", "items": "secret-item"},
                Exception("database is locked"))
        return record(records)

    monkeypatch.setattr(store.served, "record", flaky)
    writer = ServedLogWriter(store, flush_seconds=0.01, backoff_seconds=0.01).start()
    writer.submit(Served("r1", "secret-user", datetime.now(UTC), "als", 1,
                         item_ids=["secret-item"], scores=[1.0], propensities=[1.0]))

    assert writer.flush(5)
    writer.close()

    assert (writer.written, writer.failed) == (1, 0) and store.served.count() == 1
    assert "database is locked" in caplog.text
    assert "secret-user" not in caplog.text and "secret-item" not in caplog.text


def test_an_erasure_elsewhere_is_picked_up_and_a_failed_reload_is_retried(
        store: Store, trained: TrainedModel, settings: Settings) -> None:
    from tailored.jobs.erase import erase_users

    state = ServiceState(store, settings, registry_poll_seconds=0)
    state.load_active()
    live = state.current()
    assert live is not None and "alice0" in live.model.user_vocab_
    path = Path(trained.version.path)  # the test's own copy (conftest)

    erase_users(store, settings, ["alice0"], erased_by="another process")
    hidden = path.with_name(path.name + ".away")
    path.rename(hidden)  # as if caught mid-swap by a second erasure
    assert state.current() is None and "cannot be loaded" in (state.load_error or "")
    hidden.rename(path)

    again = state.current()  # the next check loads it
    assert again is not None and "alice0" not in again.model.user_vocab_
    state.close()
