"""A/B tests over HTTP: create, start, assignment in recommendations, analysis, stop."""

from __future__ import annotations

from collections import Counter

from fastapi.testclient import TestClient

from tailored.jobs import TrainedModel
from tailored.monitoring.experiments import assign
from tailored.settings import Settings
from tailored.store import Store, open_store

from .conftest import ClientFactory, Keys
from .taste_groups import USERS_A, USERS_B

USERS = USERS_A + USERS_B


def _second_version(store: Store, trained: TrainedModel) -> int:
    """The same artifact registered again: a second version to split traffic with."""
    return store.models.register("item_knn", trained.version.path).version


def _create(client: TestClient, versions: tuple[int, int], **extra: object) -> dict:
    body = {"name": "knn-vs-knn", "variants": [{"name": "A", "version": versions[0]},
                                               {"name": "B", "version": versions[1]}],
            **extra}
    response = client.post("/experiments", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_experiment_life_cycle_and_assignment(store: Store, trained: TrainedModel,
                                              settings: Settings,
                                              make_client: ClientFactory) -> None:
    second = _second_version(store, trained)
    client = make_client()
    created = _create(client, (trained.version.version, second), baseline_ctr=0.05,
                      minimum_detectable_lift=0.2)
    experiment_id = created["experiment_id"]
    assert created["status"] == "draft" and created["planned_sample_size"] == 8158
    plain = client.get(f"/recommendations/{USERS[0]}").json()
    assert plain["experiment"] is None  # a draft changes nothing

    started = client.post(f"/experiments/{experiment_id}/start")
    assert started.status_code == 200 and started.json()["status"] == "running"
    experiment = store.experiments.get(experiment_id)
    assert experiment is not None
    seen: Counter[str] = Counter()
    for user in USERS:
        answer = client.get(f"/recommendations/{user}", params={"k": 3}).json()
        expected = assign(experiment, user)
        assert answer["experiment"] == {"experiment_id": experiment_id,
                                        "variant": expected.variant}
        assert answer["model"]["version"] == expected.version
        again = client.get(f"/recommendations/{user}", params={"k": 3}).json()
        assert again["experiment"]["variant"] == expected.variant  # sticky
        seen[expected.variant] += 1
    assert set(seen) == {"A", "B"}
    # Naming a model leaves the request out of the experiment.
    named = client.get(f"/recommendations/{USERS[0]}", params={"model": "1"}).json()
    assert named["experiment"] is None

    listed = client.get("/experiments").json()
    assert [e["experiment_id"] for e in listed] == [experiment_id]
    assert client.get("/experiments", params={"status": "stopped"}).json() == []
    analysis = client.get(f"/experiments/{experiment_id}")
    assert analysis.status_code == 200
    report = analysis.json()["report"]
    assert [v["variant"] for v in report["variants"]] == ["A", "B"]
    assert report["verdict"].startswith("no data yet")

    stopped = client.post(f"/experiments/{experiment_id}/stop").json()
    assert stopped["status"] == "stopped" and stopped["stopped_at"] is not None
    after = client.get(f"/recommendations/{USERS[0]}").json()
    assert after["experiment"] is None

    client.__exit__(None, None, None)  # shutdown writes the rest of the served log
    reader = open_store(settings.store_url)
    served = reader.served.frame(experiment_id=experiment_id)
    reader.close()
    assert len(served) == 2 * len(USERS)
    assert set(served["variant"]) == {"A", "B"}
    for user, variant in zip(served["user_id"], served["variant"], strict=True):
        assert variant == assign(experiment, user).variant


def test_holdout_without_a_version_gets_an_empty_list(store: Store, trained: TrainedModel,
                                                      make_client: ClientFactory) -> None:
    second = _second_version(store, trained)
    client = make_client()
    created = _create(client, (trained.version.version, second), holdout_share=0.5,
                      start=True)
    assert created["status"] == "running"
    variants: Counter[str] = Counter()
    for user in USERS:
        answer = client.get(f"/recommendations/{user}").json()
        variants[answer["experiment"]["variant"]] += 1
        if answer["experiment"]["variant"] == "holdout":
            assert answer["items"] == []
        else:
            assert answer["items"]
    assert variants["holdout"] > 0


def test_bad_requests_get_clear_answers(store: Store, trained: TrainedModel,
                                        make_client: ClientFactory) -> None:
    second = _second_version(store, trained)
    client = make_client()
    unknown = client.post("/experiments", json={
        "name": "x", "variants": [{"name": "A", "version": 1}, {"name": "B", "version": 42}]})
    assert unknown.status_code == 422 and "version 42 is not in the registry" in unknown.text
    one = client.post("/experiments", json={"name": "x",
                                            "variants": [{"name": "A", "version": 1}]})
    assert one.status_code == 422
    half_sized = client.post("/experiments", json={
        "name": "x", "variants": [{"name": "A", "version": 1}, {"name": "B", "version": 2}],
        "baseline_ctr": 0.05})
    assert half_sized.status_code == 422 and "minimum_detectable_lift" in half_sized.text
    tiny = client.post("/experiments", json={
        "name": "x", "variants": [{"name": "A", "version": 1}, {"name": "B", "version": 2}],
        "baseline_ctr": 0.72, "minimum_detectable_lift": 1e-308})
    assert tiny.status_code == 422 and "larger lift" in tiny.text
    assert client.get("/experiments/nope").status_code == 404
    assert client.post("/experiments/nope/start").status_code == 404
    first = _create(client, (1, second), start=True)
    other = _create(client, (second, 1))
    conflict = client.post(f"/experiments/{other['experiment_id']}/start")
    assert conflict.status_code == 409 and "stop it first" in conflict.json()["detail"]
    assert client.post(f"/experiments/{other['experiment_id']}/stop").status_code == 409
    assert client.post(f"/experiments/{first['experiment_id']}/stop").status_code == 200


def test_changes_need_an_admin_key(store: Store, trained: TrainedModel, keys: Keys,
                                   secured: TestClient) -> None:
    second = _second_version(store, trained)
    body = {"name": "x", "variants": [{"name": "A", "version": 1},
                                      {"name": "B", "version": second}]}
    assert secured.post("/experiments", json=body).status_code == 401
    assert secured.post("/experiments", json=body,
                        headers=keys.headers("write")).status_code == 403
    created = secured.post("/experiments", json=body, headers=keys.headers("admin"))
    assert created.status_code == 201
    experiment_id = created.json()["experiment_id"]
    assert secured.get("/experiments").status_code == 401
    assert secured.get("/experiments", headers=keys.headers("read")).status_code == 200
    assert secured.get(f"/experiments/{experiment_id}",
                       headers=keys.headers("read")).status_code == 200
    assert secured.post(f"/experiments/{experiment_id}/start",
                        headers=keys.headers("read")).status_code == 403
