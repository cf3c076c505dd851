"""Webhooks: tell a shop's systems when something happens, signed, retried and logged.

Where an event happens, :func:`notify` (or one of the typed helpers below) records one
pending delivery per subscription to its kind: durable before anything is sent. A
:class:`WebhookDispatcher` then sends what is due: a background thread in each API worker
(``webhook_delivery``), or ``tailored webhooks send [--follow]`` where no API runs.

**The request.** ``POST <url>`` with the event as JSON::

    {"id": "<event id>", "kind": "model.promoted", "created_at": "2026-...Z", "data": {...}}

and the headers

- ``X-Tailored-Event``: the kind;
- ``X-Tailored-Delivery``: the delivery id, the same on every attempt (a receiver drops
  one it has seen: a delivery may arrive twice if its sender died before recording it);
- ``X-Tailored-Timestamp``: unix seconds, when this attempt was signed;
- ``X-Tailored-Signature``::

    sha256=<hex HMAC-SHA256(key=secret, message=f"{timestamp}.{body}")>

where ``secret`` is the subscription's whole secret (``whsec_...``) and ``body`` the raw
request body (ASCII JSON). A receiver recomputes it over the bytes it received
(:func:`verify_signature`) and refuses a timestamp far from its clock, so a request
recorded on the way cannot be replayed later.

**Retries.** A 2xx answer marks the delivery ``delivered``. Anything else (no
connection, no answer within ``webhook_timeout_seconds``, any other status; redirects are
not followed) is retried after ``webhook_backoff_seconds``, doubling each time up to
``webhook_max_backoff_seconds``, and after ``webhook_max_attempts`` attempts the delivery
is ``failed``. Every attempt is recorded in the delivery log (attempts, the last HTTP
status or error class, the next attempt); logs name the delivery and the subscription,
never the payload nor the URL (which may hold a token).

**Events** and their ``data``:

- ``model.promoted``: ``{"version", "name", "previous", "metrics"}``; ``previous`` is the
  version that served before (null for the first);
- ``drift.alert``: ``{"alert_id", "detector", "message", "detected_at", "details"}``
  when a drift detector raises an alert (``check_drift``, which records alerts);
- ``experiment.verdict``: ``{"experiment_id", "name", "placement", "started_at",
  "stopped_at", "variants": [{"name", "version"}], "analysis"}`` when an experiment is
  stopped; ``analysis`` is the path of its analysis and verdict
  (``GET /experiments/{id}``: computing it reads the served log, not done on the way);
- ``recommendations.ready``: ``{"placement", "path", "rows", "users"}`` when a batch job
  wrote recommendations (:func:`recommendations_ready`; ``tailored deliver`` adds
  ``written_at``).

Examples
--------
>>> secret = "whsec_example"
>>> body = '{"id":"e1","kind":"model.promoted","data":{"version":3}}'
>>> signature = sign(secret, 1767225600, body)
>>> signature[:7], verify_signature(secret, "1767225600", body, signature, now=1767225700)
('sha256=', True)
>>> verify_signature(secret, "1767225600", body + " ", signature, now=1767225700)
False
>>> verify_signature(secret, "1767225600", body, signature, now=1767229200)  # too late
False
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Self

import httpx

from tailored.settings import Settings
from tailored.signing import DEFAULT_TOLERANCE_SECONDS, SIGNATURE_PREFIX, sign, verify_signature
from tailored.store import Experiment, ModelVersion, Store, WebhookDelivery
from tailored.store.webhooks import (
    EVENT_KINDS,
    ClaimedDelivery,
    DeliveryStatus,
    EventKind,
    notify,
)

logger = logging.getLogger("tailored.webhooks")

@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a delivery is tried (the ``webhook_*`` settings)."""

    max_attempts: int = 15
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 3600.0
    timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        for name in ("backoff_seconds", "max_backoff_seconds", "timeout_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.webhook_max_attempts, settings.webhook_backoff_seconds,
                   settings.webhook_max_backoff_seconds, settings.webhook_timeout_seconds)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 is the first).

        >>> [RetryPolicy().delay(n) for n in (1, 2, 3, 4)]
        [1.0, 2.0, 4.0, 8.0]
        >>> RetryPolicy(max_backoff_seconds=60).delay(30)
        60.0
        """
        return float(min(self.max_backoff_seconds,
                         self.backoff_seconds * 2.0 ** min(attempt - 1, 64)))

    def schedule(self) -> list[float]:
        """The waits between the attempts of a delivery that always fails.

        >>> RetryPolicy(max_attempts=5, max_backoff_seconds=5).schedule()
        [1.0, 2.0, 4.0, 5.0]
        """
        return [self.delay(attempt) for attempt in range(1, self.max_attempts)]

    @property
    def lease(self) -> timedelta:
        """How long a claimed attempt is held: past it, another dispatcher may send the
        delivery again (the sender is taken for dead). Well over one send's time."""
        return timedelta(seconds=max(60.0, 6 * self.timeout_seconds))


@dataclass(frozen=True)
class Attempt:
    """What one send came to."""

    delivery_id: str
    subscription_id: str
    kind: EventKind
    attempt: int
    status: DeliveryStatus
    http_status: int | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    recorded: bool = True  # False: the claim had run out, another dispatcher took it


def signed_headers(claimed: ClaimedDelivery, timestamp: int) -> dict[str, str]:
    """The headers of one attempt (the signature is new on every attempt)."""
    from tailored import __version__

    delivery = claimed.delivery
    return {"Content-Type": "application/json",
            "User-Agent": f"tailored-webhooks/{__version__}",
            "X-Tailored-Event": delivery.kind,
            "X-Tailored-Delivery": delivery.delivery_id,
            "X-Tailored-Timestamp": str(timestamp),
            "X-Tailored-Signature": sign(claimed.secret, timestamp, claimed.body)}


class WebhookDispatcher:
    """Sends due deliveries, one claimed attempt at a time, and records each outcome.

    :meth:`run_once` sends everything due now (the CLI, a worker, tests); :meth:`start`
    runs it in a background thread every ``poll_seconds`` (the API). Any number of
    dispatchers may share a store: each attempt is claimed in a write transaction first
    (:meth:`~tailored.store.webhooks.SqlWebhooks.claim`), so none is sent twice. One at a
    time keeps a shutdown short (it waits for one send at most) at the cost of a slow
    receiver delaying the others: webhooks are few.
    """

    def __init__(self, store: Store, policy: RetryPolicy | None = None, *,
                 poll_seconds: float = 1.0, client: httpx.Client | None = None) -> None:
        self.store = store
        self.policy = policy or RetryPolicy()
        self.poll_seconds = poll_seconds
        self._client = client
        self._owns_client = client is None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, store: Store, settings: Settings, *,
                      client: httpx.Client | None = None) -> WebhookDispatcher:
        return cls(store, RetryPolicy.from_settings(settings),
                   poll_seconds=settings.webhook_poll_seconds, client=client)

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            # No redirects: a receiver that moved answers 3xx, a failed attempt to see.
            self._client = httpx.Client(timeout=self.policy.timeout_seconds,
                                        follow_redirects=False)
        return self._client

    # ---- one pass ---------------------------------------------------------------------

    def run_once(self, *, limit: int = 1_000) -> list[Attempt]:
        """Send what is due now, one claimed attempt after the other, until nothing is
        due (a failure is due again only after its backoff) or ``limit`` attempts."""
        attempts: list[Attempt] = []
        while len(attempts) < limit and not self._stopping.is_set():
            claimed = self.store.webhooks.claim(lease=self.policy.lease,
                                                max_attempts=self.policy.max_attempts,
                                                limit=1)
            if not claimed:
                break
            attempts.append(self.send(claimed[0]))
        return attempts

    def send(self, claimed: ClaimedDelivery) -> Attempt:
        """One attempt of a claimed delivery, and its outcome recorded under the claim."""
        delivery = claimed.delivery
        http_status: int | None = None
        error: str | None = None
        try:
            with self.client.stream("POST", claimed.url, content=claimed.body.encode(),
                                    headers=signed_headers(claimed, int(time.time())),
                                    timeout=self.policy.timeout_seconds) as response:
                http_status = response.status_code  # the body is never read
        except Exception as failure:  # one receiver's failure never stops the others
            error = type(failure).__name__
        ok = http_status is not None and 200 <= http_status < 300
        next_attempt_at = None
        status: DeliveryStatus
        if ok:
            status = "delivered"
        elif delivery.attempts >= self.policy.max_attempts:
            status = "failed"
        else:
            status = "pending"
            next_attempt_at = datetime.now(UTC) + timedelta(
                seconds=self.policy.delay(delivery.attempts))
        recorded = self.store.webhooks.finish(
            delivery.delivery_id, claimed.claim, status, next_attempt_at=next_attempt_at,
            http_status=http_status, error=error)
        outcome = Attempt(delivery.delivery_id, delivery.subscription_id, delivery.kind,
                          delivery.attempts, status, http_status, error, next_attempt_at,
                          recorded)
        _log(outcome, self.policy.max_attempts)
        return outcome

    # ---- in the background ------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="webhook-dispatcher",
                                            daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll."""
        self._wake.set()

    def close(self, timeout: float | None = None) -> None:
        """Stop the thread (after the send in flight, if any) and close the client."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.policy.timeout_seconds + 1.0 if timeout is None
                              else timeout)
            self._thread = None
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_once()
            except Exception as error:  # the store is busy or down: try again later
                logger.warning("webhooks: cannot read or record deliveries (%s); trying "
                               "again in %.1f s", type(error).__name__, self.poll_seconds)
            self._wake.wait(self.poll_seconds)
            self._wake.clear()


def _log(outcome: Attempt, max_attempts: int) -> None:
    what = (f"webhook delivery {outcome.delivery_id} ({outcome.kind}) to subscription "
            f"{outcome.subscription_id}, attempt {outcome.attempt} of {max_attempts}")
    why = (f"HTTP {outcome.http_status}" if outcome.http_status is not None
           else outcome.error or "no answer")
    if not outcome.recorded:
        logger.warning("%s: %s, not recorded: its claim ran out and another dispatcher "
                       "took it (raise webhook_timeout_seconds?)", what, why)
    elif outcome.status == "delivered":
        logger.info("%s: delivered (%s)", what, why)
    elif outcome.status == "failed":
        logger.error("%s failed (%s): no more attempts; `tailored webhooks deliveries %s` "
                     "shows its log", what, why, outcome.subscription_id)
    else:
        assert outcome.next_attempt_at is not None
        logger.warning("%s failed (%s); next attempt at %s", what, why,
                       f"{outcome.next_attempt_at:%H:%M:%S} UTC")


def deliver_due(store: Store, settings: Settings, *, limit: int = 1_000) -> list[Attempt]:
    """Send every delivery due now (at most ``limit`` attempts) and return what came of
    each: ``tailored webhooks send``, or a worker's round."""
    dispatcher = WebhookDispatcher.from_settings(store, settings)
    try:
        return dispatcher.run_once(limit=limit)
    finally:
        dispatcher.close()


# ---- the events ------------------------------------------------------------------------


def model_promoted(store: Store, promoted: ModelVersion,
                   previous: int | None) -> list[WebhookDelivery]:
    """``model.promoted``: ``promoted`` serves now, ``previous`` served before. Nothing
    is sent when the version was active already (a promotion that changed nothing)."""
    if previous == promoted.version:
        return []
    return notify(store, "model.promoted", {
        "version": promoted.version, "name": promoted.name, "previous": previous,
        "metrics": {name: value for name, value in promoted.metrics.items()
                    if isinstance(value, int | float) and value == value}})


def experiment_stopped(store: Store, experiment: Experiment) -> list[WebhookDelivery]:
    """``experiment.verdict``: ``experiment`` stopped; its verdict is one GET away."""
    return notify(store, "experiment.verdict", {
        "experiment_id": experiment.experiment_id, "name": experiment.name,
        "placement": experiment.placement,
        "started_at": None if experiment.started_at is None
        else experiment.started_at.isoformat(),
        "stopped_at": None if experiment.stopped_at is None
        else experiment.stopped_at.isoformat(),
        "variants": [{"name": v.name, "version": v.version} for v in experiment.variants],
        "analysis": f"/experiments/{experiment.experiment_id}"})


def recommendations_ready(store: Store, *, placement: str | None, path: str, rows: int,
                          users: int) -> list[WebhookDelivery]:
    """``recommendations.ready``: a batch job wrote ``rows`` recommendations for ``users``
    users of ``placement`` (None: lists without one) to ``path`` (a file path or URL the
    receiver can read)."""
    return notify(store, "recommendations.ready", {
        "placement": placement, "path": path, "rows": int(rows), "users": int(users)})


__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "EVENT_KINDS",
    "SIGNATURE_PREFIX",
    "Attempt",
    "RetryPolicy",
    "WebhookDispatcher",
    "deliver_due",
    "experiment_stopped",
    "model_promoted",
    "notify",
    "recommendations_ready",
    "sign",
    "signed_headers",
    "verify_signature",
]
