"""Webhooks through the service: subscribed over REST, fired by promotions and stopped
experiments, sent by the API's background dispatcher to a receiver on loopback that
checks every signature; while the receiver is down the deliveries fail and are retried,
and when it is back on the same port they arrive, each once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tailored.jobs import TrainedModel
from tailored.jobs.webhooks import notify
from tailored.settings import Settings
from tailored.store import Store
from tailored.testing.webhooks import LoopbackReceiver, wait_until

MakeClient = Callable[..., TestClient]

#: Retries within milliseconds, and as many as the test needs.
FAST = {"webhook_poll_seconds": 0.02, "webhook_backoff_seconds": 0.05,
        "webhook_max_backoff_seconds": 0.2, "webhook_max_attempts": 100,
        "webhook_timeout_seconds": 1.0}


@pytest.fixture
def receiver() -> Iterator[LoopbackReceiver]:
    with LoopbackReceiver() as started:
        yield started


def _log(client: TestClient, subscription_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/webhooks/{subscription_id}/deliveries")
    assert response.status_code == 200, response.text
    log: list[dict[str, Any]] = response.json()
    return log


def test_deliveries_wait_for_a_receiver_that_is_down_and_arrive_when_it_is_back(
        trained: TrainedModel, store: Store, settings: Settings, make_client: MakeClient,
        receiver: LoopbackReceiver) -> None:
    client = make_client(settings.model_copy(update=FAST))
    created = client.post("/webhooks", json={
        "url": receiver.url, "events": ["model.promoted", "experiment.verdict"]})
    assert created.status_code == 201, created.text
    receiver.secret, subscription = created.json()["secret"], created.json()["subscription_id"]
    version = trained.version
    second = store.models.register(version.name, version.path, version.metrics,
                                   version.details).version

    # Up: the promotion arrives, signed, and is marked delivered.
    assert client.post(f"/models/{second}/promote").status_code == 200
    wait_until(lambda: [d["status"] for d in _log(client, subscription)] == ["delivered"])
    [first] = receiver.received
    assert first.verified and first.event == "model.promoted"
    assert first.payload["data"]["version"] == second
    assert first.payload["data"]["previous"] == version.version

    # Down: what happens meanwhile is kept and retried.
    receiver.stop()
    assert client.post(f"/models/{version.version}/promote").status_code == 200
    experiment = client.post("/experiments", json={
        "name": "a-vs-b", "start": True,
        "variants": [{"name": "A", "version": version.version},
                     {"name": "B", "version": second}]}).json()
    assert client.post(f"/experiments/{experiment['experiment_id']}/stop").status_code == 200

    def retried() -> bool:
        waiting = [d for d in _log(client, subscription) if d["status"] == "pending"]
        return len(waiting) == 2 and all(d["attempts"] >= 3 and d["last_error"]
                                         for d in waiting)
    wait_until(retried)
    assert len(receiver.received) == 1

    # Back on the same port: everything arrives, once, and the log says so.
    receiver.start()
    wait_until(lambda: all(d["status"] == "delivered" for d in _log(client, subscription)))

    log = _log(client, subscription)
    assert len(log) == 3 and [d["attempts"] > 1 for d in log] == [True, True, False]
    assert all(d["last_status"] == 200 and d["last_error"] is None for d in log)
    got = receiver.received
    assert all(r.verified for r in got)
    assert Counter(r.delivery_id for r in got) == Counter(d["delivery_id"] for d in log)
    by_kind = {r.event: r.payload["data"] for r in got[1:]}
    assert by_kind["model.promoted"]["version"] == version.version
    assert by_kind["model.promoted"]["previous"] == second
    assert by_kind["experiment.verdict"]["experiment_id"] == experiment["experiment_id"]
    assert by_kind["experiment.verdict"]["analysis"] == \
        f"/experiments/{experiment['experiment_id']}"
    assert client.get(by_kind["experiment.verdict"]["analysis"]).status_code == 200


def test_webhooks_are_added_listed_and_removed_over_rest(
        trained: TrainedModel, store: Store, settings: Settings,
        make_client: MakeClient) -> None:
    client = make_client(settings.model_copy(update={"webhook_delivery": False}))

    created = client.post("/webhooks", json={"url": "https://shop.example/hooks",
                                             "events": ["drift.alert", "drift.alert"]})

    assert created.status_code == 201
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["events"] == ["drift.alert"]
    assert body["active"] is True and body["removed_at"] is None
    listed = client.get("/webhooks").json()
    assert [w["subscription_id"] for w in listed] == [body["subscription_id"]]
    assert "secret" not in listed[0]
    subscription = body["subscription_id"]
    for n in range(3):
        notify(store, "drift.alert", {"n": n})
    log = _log(client, subscription)
    assert [d["payload"]["data"]["n"] for d in log] == [2, 1, 0]  # newest first
    assert {(d["status"], d["attempts"], d["kind"]) for d in log} == {
        ("pending", 0, "drift.alert")}
    limited = client.get(f"/webhooks/{subscription}/deliveries", params={"limit": 2})
    assert [d["payload"]["data"]["n"] for d in limited.json()] == [2, 1]

    removed = client.delete(f"/webhooks/{subscription}")

    assert removed.status_code == 200 and removed.json()["active"] is False
    store = client.app.state.service.store  # type: ignore[attr-defined]
    assert {d.status for d in store.webhooks.deliveries(subscription)} == {"failed"}
    assert client.get("/webhooks").json()[0]["active"] is False
    for gone in (client.delete(f"/webhooks/{subscription}"),  # removed: like an unknown one
                 client.get(f"/webhooks/{subscription}/deliveries")):
        assert gone.status_code == 404 and "was removed" in gone.json()["detail"]


@pytest.mark.parametrize("body", [
    {"url": "ftp://shop.example/hooks", "events": ["drift.alert"]},
    {"url": "https://shop.example/a b", "events": ["drift.alert"]},
    {"url": "https://bücher.example/", "events": ["drift.alert"]},
    {"url": "https://shop.example/" + "x" * 2048, "events": ["drift.alert"]},
    {"url": "https://:80/hooks", "events": ["drift.alert"]},
    {"url": "https://shop.example:99999/hooks", "events": ["drift.alert"]},
    {"url": "https://shop.example/hooks", "events": []},
    {"url": "https://shop.example/hooks", "events": ["model.trained"]},
    {"url": "https://shop.example/hooks", "events": ["drift.alert"], "secret": "mine"},
    {"events": ["drift.alert"]},
])
def test_a_bad_subscription_is_422(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post("/webhooks", json=body)

    assert response.status_code == 422, response.text
    assert client.get("/webhooks").json() == []


def test_an_unknown_webhook_is_404(client: TestClient) -> None:
    assert client.delete("/webhooks/nope").status_code == 404
    response = client.get("/webhooks/nope/deliveries")
    assert response.status_code == 404 and "GET /webhooks lists them" in response.text
    for limit in (0, 1001):
        assert client.get("/webhooks/nope/deliveries",
                          params={"limit": limit}).status_code == 422


def test_promoting_the_serving_version_again_tells_no_one(
        trained: TrainedModel, store: Store, settings: Settings,
        make_client: MakeClient) -> None:
    client = make_client(settings.model_copy(update={"webhook_delivery": False}))
    subscription, _ = store.webhooks.subscribe("https://shop.example/", ["model.promoted"])

    assert client.post(f"/models/{trained.version.version}/promote").status_code == 200

    assert store.webhooks.deliveries(subscription.subscription_id) == []
