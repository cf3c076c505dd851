"""Webhook delivery: the signature a receiver checks, the backoff schedule, retries until
the last attempt, no attempt sent twice by two dispatchers, and the events fired where
things happen (drift alerts, promotions by training)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tailored.errors import InvalidDataError
from tailored.jobs.webhooks import (
    RetryPolicy,
    WebhookDispatcher,
    model_promoted,
    notify,
    recommendations_ready,
    sign,
    verify_signature,
)
from tailored.monitoring.drift import check_drift
from tailored.schema import Event
from tailored.store import ModelVersion, Store, open_store
from tailored.testing.webhooks import LoopbackReceiver, wait_until

#: Tiny waits, so that retries take milliseconds.
FAST = RetryPolicy(max_attempts=3, backoff_seconds=0.01, max_backoff_seconds=0.02,
                   timeout_seconds=1.0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield opened
    opened.close()


@pytest.fixture
def receiver() -> Iterator[LoopbackReceiver]:
    with LoopbackReceiver() as started:
        yield started


def _subscribe(store: Store, receiver: LoopbackReceiver, *events: str) -> str:
    hook, secret = store.webhooks.subscribe(receiver.url, list(events) or ["drift.alert"])
    receiver.secret = secret
    return hook.subscription_id


def _until_done(dispatcher: WebhookDispatcher, store: Store, subscription_id: str,
                timeout: float = 10.0) -> None:
    """Run the dispatcher until no delivery of the subscription is pending."""
    def done() -> bool:
        dispatcher.run_once()
        return all(d.status != "pending" for d in store.webhooks.deliveries(subscription_id))
    wait_until(done, timeout)


# ---- the signature ---------------------------------------------------------------------


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"id":"e1","kind":"drift.alert","data":{}}'
    expected = hmac.new(b"whsec_k", b"1767225600." + body, hashlib.sha256).hexdigest()

    assert sign("whsec_k", 1767225600, body) == f"sha256={expected}"
    assert sign("whsec_k", "1767225600", body.decode()) == f"sha256={expected}"


@pytest.mark.parametrize(("secret", "timestamp", "body", "now", "valid"), [
    ("whsec_k", "1767225600", b"{}", 1767225600, True),
    ("whsec_k", "1767225600", b"{}", 1767225600 + 300, True),  # at the tolerance
    ("whsec_k", "1767225600", b"{}", 1767225600 - 300, True),  # a clock behind
    ("whsec_k", "1767225600", b"{}", 1767225600 + 301, False),  # a replay, too late
    ("whsec_x", "1767225600", b"{}", 1767225600, False),  # another secret
    ("whsec_k", "1767225600", b"{ }", 1767225600, False),  # another body
    ("whsec_k", "1767225601", b"{}", 1767225601, False),  # another timestamp
    ("whsec_k", "", b"{}", 1767225600, False),
    ("whsec_k", "1.7e9", b"{}", 1767225600, False),
    ("whsec_k", "-1767225600", b"{}", 1767225600, False),
])
def test_verify_signature(secret: str, timestamp: str, body: bytes, now: float,
                          valid: bool) -> None:
    signature = sign("whsec_k", 1767225600, b"{}")

    assert verify_signature(secret, timestamp, body, signature, now=now) is valid


def test_verify_signature_refuses_a_bare_or_truncated_signature() -> None:
    signature = sign("whsec_k", 100, b"{}")

    assert verify_signature("whsec_k", 100, b"{}", signature, tolerance=None)
    assert not verify_signature("whsec_k", 100, b"{}", signature.removeprefix("sha256="),
                                tolerance=None)
    assert not verify_signature("whsec_k", 100, b"{}", signature[:-1], tolerance=None)
    assert not verify_signature("whsec_k", 100, b"{}", signature, now=1767225600)


# ---- the backoff schedule --------------------------------------------------------------


def test_the_backoff_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(max_attempts=7, backoff_seconds=1.0, max_backoff_seconds=10.0)

    assert policy.schedule() == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert RetryPolicy(max_attempts=1).schedule() == []
    assert RetryPolicy(backoff_seconds=0.5).delay(1000) == 3600.0  # no overflow
    assert RetryPolicy(timeout_seconds=5).lease >= timedelta(seconds=30)


@pytest.mark.parametrize("field", ["max_attempts", "backoff_seconds", "max_backoff_seconds",
                                   "timeout_seconds"])
def test_a_retry_policy_refuses_zero(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RetryPolicy(**{field: 0})  # type: ignore[arg-type]


def test_a_failing_receiver_is_retried_on_the_schedule(store: Store,
                                                       receiver: LoopbackReceiver) -> None:
    policy = RetryPolicy(max_attempts=4, backoff_seconds=0.2, max_backoff_seconds=0.3,
                         timeout_seconds=1.0)
    subscription = _subscribe(store, receiver)
    receiver.status = 503
    notify(store, "drift.alert", {"detector": "ctr"})
    dispatcher = WebhookDispatcher(store, policy)

    [first] = dispatcher.run_once()
    assert (first.status, first.http_status, first.attempt) == ("pending", 503, 1)
    assert first.next_attempt_at is not None
    wait = (first.next_attempt_at - datetime.now(UTC)).total_seconds()
    assert 0.1 < wait <= 0.2
    assert dispatcher.run_once() == []  # not due yet
    _until_done(dispatcher, store, subscription)

    stamps = [r.timestamp for r in receiver.received]
    assert len(stamps) == 4 and all(r.verified for r in receiver.received)
    [delivery] = store.webhooks.deliveries(subscription)
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("failed", 4, 503)


# ---- failures: after the last attempt, and what counts as one ----------------------------


def test_after_max_attempts_a_delivery_fails(store: Store, receiver: LoopbackReceiver,
                                             caplog: pytest.LogCaptureFixture) -> None:
    subscription = _subscribe(store, receiver)
    receiver.status = 500
    notify(store, "drift.alert", {"detector": "ctr", "secret-ish": "not in logs"})
    dispatcher = WebhookDispatcher(store, FAST)

    with caplog.at_level(logging.INFO, logger="tailored.webhooks"):
        _until_done(dispatcher, store, subscription)

    [delivery] = store.webhooks.deliveries(subscription)
    assert (delivery.status, delivery.attempts, delivery.last_status, delivery.next_attempt_at
            ) == ("failed", 3, 500, None)
    assert [r.delivery_id for r in receiver.received] == [delivery.delivery_id] * 3
    assert all(r.verified and r.event == "drift.alert" for r in receiver.received)
    assert "no more attempts" in caplog.text and "attempt 3 of 3" in caplog.text
    assert "not in logs" not in caplog.text and receiver.url not in caplog.text
    receiver.status = 200
    assert dispatcher.run_once() == []  # failed for good: never sent again


@pytest.mark.parametrize(("status", "delay", "error"), [
    (302, 0.0, None),  # a redirect is not followed
    (404, 0.0, None),
    (200, 1.5, "ReadTimeout"),  # an answer after the timeout is none
])
def test_a_non_2xx_or_no_answer_is_a_failed_attempt(store: Store, receiver: LoopbackReceiver,
                                                    status: int, delay: float,
                                                    error: str | None) -> None:
    subscription = _subscribe(store, receiver)
    receiver.status, receiver.delay = status, delay
    notify(store, "drift.alert", {})
    policy = RetryPolicy(max_attempts=2, backoff_seconds=60, timeout_seconds=0.5)

    [attempt] = WebhookDispatcher(store, policy).run_once()

    [delivery] = store.webhooks.deliveries(subscription)
    assert (attempt.status, delivery.status, delivery.attempts) == ("pending",) * 2 + (1,)
    assert (delivery.last_status, delivery.last_error) == (
        (None, error) if error else (status, None))


def test_a_2xx_delivers_the_signed_event_once(store: Store, receiver: LoopbackReceiver) -> None:
    subscription = _subscribe(store, receiver, "recommendations.ready", "drift.alert")
    receiver.status = 202
    [made] = recommendations_ready(store, placement="email-weekly",
                                   path="/exports/weekly.jsonl", rows=30, users=10)

    [attempt] = WebhookDispatcher(store, FAST).run_once()

    assert attempt.status == "delivered"
    [got] = receiver.received
    assert got.verified and got.event == "recommendations.ready"
    assert got.delivery_id == made.delivery_id and got.path == "/hooks"
    assert got.payload == made.payload
    assert got.payload["data"] == {"placement": "email-weekly",
                                   "path": "/exports/weekly.jsonl", "rows": 30, "users": 10}
    [delivery] = store.webhooks.deliveries(subscription)
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("delivered", 1, 202)


# ---- two dispatchers -------------------------------------------------------------------


def test_two_dispatchers_never_send_the_same_attempt(tmp_path: Path,
                                                     receiver: LoopbackReceiver) -> None:
    """Two processes' stores on one database, each with its dispatcher, started together
    on 20 due deliveries: each delivery reaches the receiver once."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first, second = open_store(url), open_store(url)
    receiver.delay = 0.01  # sends overlap
    subscriptions = [_subscribe(first, receiver) for _ in range(4)]
    for n in range(5):
        notify(first, "drift.alert", {"n": n})
    start = threading.Barrier(2)
    attempts: dict[int, list[str]] = {}

    def run(number: int, store: Store) -> None:
        start.wait()
        attempts[number] = [a.delivery_id for a in WebhookDispatcher(store, FAST).run_once()]

    threads = [threading.Thread(target=run, args=(n, s))
               for n, s in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    sent = Counter(r.delivery_id for r in receiver.received)
    assert len(sent) == 20 and set(sent.values()) == {1}
    assert sorted(attempts[0] + attempts[1]) == sorted(sent)
    assert attempts[0] and attempts[1]  # both took part
    log = [d for s in subscriptions for d in first.webhooks.deliveries(s)]
    assert {(d.status, d.attempts) for d in log} == {("delivered", 1)}
    first.close()
    second.close()


# ---- notify and the events -------------------------------------------------------------


def test_notify_records_only_for_subscribers_and_survives_a_store_failure(
        store: Store, receiver: LoopbackReceiver, caplog: pytest.LogCaptureFixture) -> None:
    assert notify(store, "drift.alert", {}) == []  # no one subscribed
    _subscribe(store, receiver, "experiment.verdict")
    assert notify(store, "drift.alert", {}) == []
    with pytest.raises(InvalidDataError, match="unknown event kind"):
        notify(store, "model.trained", {})

    class Broken:
        class webhooks:  # a store's role, by its name
            @staticmethod
            def enqueue(kind: str, data: object) -> None:
                raise OSError("disk full")

    with caplog.at_level(logging.ERROR, logger="tailored.webhooks"):
        assert notify(Broken(), "experiment.verdict", {}) == []  # type: ignore[arg-type]
    assert "experiment.verdict event was not recorded" in caplog.text


def test_model_promoted_tells_the_previous_version_and_skips_no_change(
        store: Store, receiver: LoopbackReceiver) -> None:
    subscription = _subscribe(store, receiver, "model.promoted")
    version = ModelVersion(2, "als", "/models/als-2", datetime.now(UTC),
                           {"ndcg@10": 0.31, "broken": float("nan")}, active=True)

    [made] = model_promoted(store, version, previous=1)
    assert model_promoted(store, version, previous=2) == []  # it served already

    assert made.payload["data"] == {"version": 2, "name": "als", "previous": 1,
                                    "metrics": {"ndcg@10": 0.31}}
    assert len(store.webhooks.deliveries(subscription)) == 1


def _ctr_drop(impressions: int = 4000) -> list[Event]:
    """Recommendations of 5 items whose click rate falls from 12% to 3% half way."""
    rng = np.random.default_rng(0)
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    events: list[Event] = []
    for n in range(2 * impressions // 5):
        rate = 0.12 if n < impressions // 5 else 0.03
        at = t0 + timedelta(minutes=n)
        for position in range(5):
            item, context = f"i{rng.integers(50)}", {"recommendation_id": f"r{n}",
                                                     "position": position}
            events.append(Event(event_id=f"imp{n}-{position}", user_id=f"u{n % 97}",
                                item_id=item, event_type="impression", timestamp=at,
                                context=context))
            if rng.random() < rate:
                events.append(Event(event_id=f"clk{n}-{position}", user_id=f"u{n % 97}",
                                    item_id=item, event_type="click",
                                    timestamp=at + timedelta(seconds=20), context=context))
    return events


def test_a_drift_alert_is_sent_once(store: Store, receiver: LoopbackReceiver) -> None:
    subscription = _subscribe(store, receiver, "drift.alert")
    store.events.add(_ctr_drop())

    assert check_drift(store, record=False).new_alerts == ()  # nothing recorded, none sent
    assert store.webhooks.deliveries(subscription) == []
    [alert] = check_drift(store).new_alerts
    check_drift(store)  # the same drift again: no new alert, nothing sent

    [delivery] = store.webhooks.deliveries(subscription)
    assert delivery.kind == "drift.alert"
    data = delivery.payload["data"]
    assert (data["alert_id"], data["detector"], data["message"]) == (
        alert.alert_id, "ctr", alert.message)
    assert data["detected_at"] == alert.detected_at.isoformat()
    assert set(data["details"]) >= {"before", "after"}


def test_training_and_the_cli_tell_each_promotion(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tailored.cli import app
    from tailored.jobs import train_model
    from tailored.sample import shop
    from tailored.settings import Settings

    settings = Settings(store_url=f"sqlite:///{tmp_path / 'store.db'}",
                        model_dir=tmp_path / "models")
    store = open_store(settings.store_url)
    sample = shop(n_users=60, n_items=30, n_events=1_000, seed=1)
    store.events.add(Event(event_id=row.event_id, user_id=row.user_id, item_id=row.item_id,
                           event_type=row.event_type, timestamp=row.timestamp)
                     for row in sample.events.itertuples(index=False))
    hook, _ = store.webhooks.subscribe("https://shop.example/", ["model.promoted"])
    train_model(store, settings, "popular")  # version 1, promoted
    train_model(store, settings, "popular", promote=False)  # version 2, not promoted
    runner = CliRunner()
    for args in (["models", "promote", "2"], ["models", "rollback"]):
        result = runner.invoke(app, [*args, "--store", settings.store_url],
                               catch_exceptions=False)
        assert result.exit_code == 0, result.output

    told = [(d.payload["data"]["version"], d.payload["data"]["previous"])
            for d in reversed(store.webhooks.deliveries(hook.subscription_id))]
    assert told == [(1, None), (2, 1), (1, 2)]
    store.close()
