"""GET /models, POST /models/{version}/promote and /models/rollback, and following the
registry."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tailored.jobs import TrainedModel, train_model
from tailored.serving import state as state_module
from tailored.serving.state import load_version
from tailored.settings import Settings
from tailored.store import ModelVersion, Store

from .conftest import Keys

MakeClient = Callable[..., TestClient]


def serving(client: TestClient) -> dict[str, object]:
    response = client.get("/recommendations/alice0", params={"k": 3})
    assert response.status_code == 200
    model: dict[str, object] = response.json()["model"]
    return model


def test_models_lists_versions_with_metrics(client: TestClient, store: Store,
                                            settings: Settings) -> None:
    train_model(store, settings, "popular", promote=False)

    body = client.get("/models").json()

    assert body["active"] == 1
    assert body["serving"] == 1
    assert [(v["version"], v["name"], v["active"]) for v in body["versions"]] == [
        (1, "item_knn", True), (2, "popular", False)]
    metrics = body["versions"][0]["metrics"]
    assert {"ndcg@10", "recall@10"} <= set(metrics)
    assert all(math.isfinite(value) for value in metrics.values())
    assert body["versions"][0]["details"]["events"] > 0
    assert "path" not in body["versions"][0]


def test_promote_swaps_the_served_model(trained: TrainedModel, store: Store,
                                        settings: Settings, make_client: MakeClient) -> None:
    train_model(store, settings, "popular")  # version 2, promoted
    client = make_client()
    assert serving(client) == {"name": "popular", "version": 2}

    response = client.post("/models/1/promote")

    assert response.status_code == 200
    assert response.json()["serving"]["version"] == 1
    assert response.json()["serving"]["active"] is True
    assert response.json()["previous"] == 2
    assert serving(client) == {"name": "item_knn", "version": 1}
    assert store.models.active().version == 1  # type: ignore[union-attr]
    assert client.get("/models").json()["active"] == 1


def test_promoting_an_unknown_version_is_404(client: TestClient) -> None:
    response = client.post("/models/99/promote")

    assert response.status_code == 404
    assert "99" in response.json()["detail"]
    assert serving(client)["version"] == 1


@pytest.mark.parametrize("version", ["0", "-1", "two", str(2**64)])
def test_promoting_a_malformed_version_is_422(client: TestClient, version: str) -> None:
    response = client.post(f"/models/{version}/promote")

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "version"]


def test_promote_refuses_a_version_it_cannot_load_and_changes_nothing(
        client: TestClient, store: Store, tmp_path: Path) -> None:
    broken = store.models.register("item_knn", str(tmp_path / "deleted-artifact"))

    response = client.post(f"/models/{broken.version}/promote")

    assert response.status_code == 409
    assert "deleted-artifact" in response.json()["detail"]
    assert store.models.active().version == 1  # type: ignore[union-attr]
    assert serving(client)["version"] == 1


def test_a_version_promoted_by_another_process_is_picked_up(
        trained: TrainedModel, store: Store, settings: Settings,
        make_client: MakeClient) -> None:
    second = train_model(store, settings, "popular", promote=False).version
    client = make_client(registry_poll_seconds=0)
    assert serving(client)["version"] == 1

    store.models.promote(second.version)  # another process, through its own connection

    assert serving(client) == {"name": "popular", "version": second.version}
    assert client.get("/health").json()["model"]["version"] == second.version


def test_the_registry_is_checked_at_most_every_interval(
        trained: TrainedModel, store: Store, settings: Settings,
        make_client: MakeClient) -> None:
    second = train_model(store, settings, "popular", promote=False).version
    client = make_client(registry_poll_seconds=3600)

    store.models.promote(second.version)

    assert serving(client)["version"] == 1  # not checked again yet
    assert client.get("/models").json() | {"versions": None} == {
        "active": second.version, "serving": 1, "versions": None, "erasures_pending": 0,
        "erasure_retrain_due": None}


def test_a_broken_active_version_keeps_the_old_model_serving(
        client: TestClient, store: Store, tmp_path: Path, make_client: MakeClient) -> None:
    broken = store.models.register("item_knn", str(tmp_path / "deleted-artifact"))
    watcher = make_client(registry_poll_seconds=0)

    store.models.promote(broken.version)

    assert serving(watcher)["version"] == 1
    health = watcher.get("/health").json()
    assert health["status"] == "degraded"
    assert "deleted-artifact" in health["detail"]


def test_a_broken_active_version_at_startup_is_503_with_the_reason(
        trained: TrainedModel, store: Store, tmp_path: Path, make_client: MakeClient) -> None:
    broken = store.models.register("item_knn", str(tmp_path / "deleted-artifact"))
    store.models.promote(broken.version)

    client = make_client()

    response = client.get("/recommendations/alice0")
    assert response.status_code == 503
    assert "deleted-artifact" in response.json()["detail"]
    assert client.get("/health").json()["status"] == "degraded"


def test_requests_during_a_swap_are_answered_by_the_old_model(
        trained: TrainedModel, store: Store, settings: Settings, make_client: MakeClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    train_model(store, settings, "popular", validate=False)  # version 2, serving
    client = make_client()
    during_load: list[dict[str, object]] = []

    def load_and_meanwhile_ask(*args: object) -> object:
        live = load_version(*args)  # type: ignore[arg-type]
        response = client.get("/recommendations/alice0", params={"k": 3})  # mid-swap
        during_load.append({"status": response.status_code, **response.json()})
        return live

    monkeypatch.setattr(state_module, "load_version", load_and_meanwhile_ask)

    assert client.post("/models/1/promote").status_code == 200

    [answer] = during_load
    assert answer["status"] == 200
    assert answer["model"] == {"name": "popular", "version": 2}
    assert serving(client) == {"name": "item_knn", "version": 1}


def test_a_broken_version_is_tried_once_and_a_good_one_still_picked_up(
        trained: TrainedModel, store: Store, settings: Settings, tmp_path: Path,
        make_client: MakeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    watcher = make_client(registry_poll_seconds=0)
    attempts: list[int] = []

    def counting_load(store: Store, version: ModelVersion) -> object:
        attempts.append(version.version)
        return load_version(store, version)

    monkeypatch.setattr(state_module, "load_version", counting_load)
    broken = store.models.register("item_knn", str(tmp_path / "deleted-artifact"))
    store.models.promote(broken.version)
    for _ in range(3):
        assert serving(watcher)["version"] == 1

    good = train_model(store, settings, "popular", validate=False).version

    assert serving(watcher)["version"] == good.version
    assert attempts == [broken.version, good.version]
    assert watcher.get("/health").json()["status"] == "ok"


# ---- rollback ----------------------------------------------------------------------------

def test_rollback_serves_the_previously_active_version(
        trained: TrainedModel, store: Store, settings: Settings,
        make_client: MakeClient) -> None:
    train_model(store, settings, "popular", validate=False)  # version 2, promoted
    client = make_client()
    assert serving(client)["version"] == 2

    response = client.post("/models/rollback")

    assert response.status_code == 200
    assert response.json()["serving"]["version"] == 1
    assert response.json()["rolled_back"] == 2
    assert serving(client) == {"name": "item_knn", "version": 1}
    assert store.models.active().version == 1  # type: ignore[union-attr]


def test_rolling_back_twice_goes_two_versions_back(
        trained: TrainedModel, store: Store, settings: Settings,
        make_client: MakeClient) -> None:
    train_model(store, settings, "popular", validate=False)  # 2
    train_model(store, settings, "popular", validate=False)  # 3
    client = make_client()

    assert client.post("/models/rollback").json()["serving"]["version"] == 2
    assert client.post("/models/rollback").json()["serving"]["version"] == 1
    again = client.post("/models/rollback")
    assert again.status_code == 409
    assert "no earlier version" in again.json()["detail"]
    assert serving(client)["version"] == 1


def test_rollback_refuses_a_version_it_cannot_load(
        trained: TrainedModel, store: Store, tmp_path: Path, settings: Settings,
        make_client: MakeClient) -> None:
    broken = store.models.register("item_knn", str(tmp_path / "deleted-artifact"))
    store.models.promote(broken.version)
    train_model(store, settings, "popular", validate=False)  # promoted over the broken one
    client = make_client()

    response = client.post("/models/rollback")

    assert response.status_code == 409
    assert "deleted-artifact" in response.json()["detail"]
    assert serving(client)["name"] == "popular"


def test_models_need_admin_to_change_and_read_to_list(secured: TestClient,
                                                      keys: Keys) -> None:
    for scope in ("read", "write"):
        assert secured.post("/models/1/promote", headers=keys.headers(scope)).status_code \
            == 403
        assert secured.post("/models/rollback", headers=keys.headers(scope)).status_code \
            == 403
    assert secured.get("/models", headers=keys.headers("read")).status_code == 200
    assert secured.post("/models/1/promote", headers=keys.headers("admin")).status_code == 200
    assert secured.post("/models/rollback").status_code == 401
