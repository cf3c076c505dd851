"""The webhooks role: who wants to be told what, and the log of every delivery.

A *subscription* is a URL, the event kinds it wants (:data:`EVENT_KINDS`) and a secret
that signs what is sent to it. The secret is shown once, at creation, like an API key's;
unlike a key's it is stored as it is, because every delivery is signed with it (anyone
who can read the store's database can read it: keep the database private, and rotate a
subscription by adding a new one and removing the old). Removing a subscription keeps
its row and its deliveries (the log stays readable), wipes its secret and fails its
pending deliveries.

A *delivery* is one event for one subscription: the JSON body to send, as sent, and the
outcome of its attempts. It is written ``pending`` when the event happens (durable
first), then a dispatcher (:mod:`tailored.jobs.webhooks`) *claims* it in a write
transaction (its attempt counted, its next attempt moved a lease ahead, a claim token
set), sends it and records the outcome under that token: ``delivered``, ``pending``
again with the time of the next attempt, or ``failed``. Two dispatchers never claim the
same attempt; a dispatcher that dies mid-send loses its claim when the lease runs out,
and the delivery is sent again (deliveries are at least once: receivers deduplicate by
the delivery id).

Examples
--------
>>> from tailored.store import open_store
>>> store = open_store("sqlite://")
>>> hook, secret = store.webhooks.subscribe("https://shop.example/hooks", ["model.promoted"])
>>> hook.events, secret.startswith("whsec_")
(('model.promoted',), True)
>>> [d.status for d in store.webhooks.enqueue("model.promoted", {"version": 3})]
['pending']
>>> store.webhooks.enqueue("drift.alert", {"detector": "ctr"})  # not subscribed
[]
"""

from __future__ import annotations

import builtins
import json
import logging
import math
import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import urlsplit

import sqlalchemy as sa

from tailored.errors import InvalidDataError, NotFoundError
from tailored.store.sqlbase import SqlTables, from_micros, metadata, micros, write_transaction

if TYPE_CHECKING:
    from tailored.store.base import Store

logger = logging.getLogger("tailored.webhooks")

EventKind = Literal["model.promoted", "drift.alert", "experiment.verdict",
                    "recommendations.ready"]
#: What a subscription may ask to be told (the payloads are in tailored.jobs.webhooks).
EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)
DeliveryStatus = Literal["pending", "delivered", "failed"]
DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = get_args(DeliveryStatus)

SECRET_PREFIX = "whsec_"
MAX_URL_LENGTH = 2048
#: Printable ASCII only: an international domain name is written in punycode.
URL_PATTERN = r"^https?://[!-~]+$"
_URL = re.compile(URL_PATTERN)
#: How many deliveries the log of one subscription answers at most per read.
MAX_DELIVERIES_LISTED = 1_000
_ERROR_LENGTH = 256

webhooks_table = sa.Table(
    "webhooks", metadata,
    sa.Column("subscription_id", sa.String(12), primary_key=True),
    sa.Column("url", sa.String(MAX_URL_LENGTH), nullable=False),
    sa.Column("events", sa.String(256), nullable=False),  # comma-separated kinds
    sa.Column("secret", sa.String(64), nullable=False),  # "" once removed
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("removed_us", sa.BigInteger, nullable=True),
)

deliveries_table = sa.Table(
    "webhook_deliveries", metadata,
    sa.Column("delivery_id", sa.String(32), primary_key=True),
    sa.Column("subscription_id", sa.String(12), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("event_id", sa.String(32), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # the body, exactly as sent
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    # Pending: when it is due (while claimed: when the claim runs out); None once done.
    sa.Column("next_attempt_us", sa.BigInteger, nullable=True),
    sa.Column("last_status", sa.Integer, nullable=True),  # the last HTTP status
    sa.Column("last_error", sa.String(_ERROR_LENGTH), nullable=True),  # an error class
    sa.Column("claim", sa.String(32), nullable=True),  # the dispatcher sending it
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
    # What dispatchers look for, and the log of one subscription, newest first.
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_us"),
    sa.Index("ix_webhook_deliveries_subscription", "subscription_id", "created_us"),
)


@dataclass(frozen=True)
class WebhookSubscription:
    """A subscription as listed: everything but its secret."""

    subscription_id: str
    url: str
    events: tuple[EventKind, ...]
    created_at: datetime
    removed_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.removed_at is None


@dataclass(frozen=True)
class WebhookDelivery:
    """One event for one subscription, and what came of sending it."""

    delivery_id: str
    subscription_id: str
    kind: EventKind
    event_id: str
    payload: dict[str, Any]
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery a dispatcher holds for one attempt: what to send, where, signed with
    which secret, and the ``claim`` under which to record the outcome."""

    delivery: WebhookDelivery
    url: str
    secret: str = field(repr=False)
    claim: str
    body: str = field(repr=False)  # the payload's JSON text, as stored and signed


def notify(store: Store, kind: str, data: Mapping[str, Any]) -> builtins.list[WebhookDelivery]:
    """Tell the subscribers to ``kind``: one pending delivery each, durable when this
    returns (:meth:`SqlWebhooks.enqueue`); a dispatcher sends them
    (:mod:`tailored.jobs.webhooks`, the API's background thread).

    What it reports has happened already (a version serves, an experiment stopped), so a
    store that cannot record the event is logged, not raised: the caller's change stands
    and answers as such. An unknown ``kind`` or ``data`` that is not JSON is the caller's
    bug and raises :class:`~tailored.errors.InvalidDataError`.
    """
    check_events([kind])
    try:
        return store.webhooks.enqueue(kind, data)
    except InvalidDataError:
        raise
    except Exception as error:
        logger.error("webhooks: the %s event was not recorded, no subscriber will be told "
                     "(%s)", kind, type(error).__name__)
        return []


def check_url(url: str) -> str:
    """``url`` stripped, if a subscription may use it: ``http`` or ``https`` with a host,
    printable ASCII, at most :data:`MAX_URL_LENGTH` characters; else
    :class:`~tailored.errors.InvalidDataError` saying why.

    >>> check_url(" https://shop.example/hooks?from=tailored ")
    'https://shop.example/hooks?from=tailored'
    >>> check_url("ftp://shop.example/hooks")
    Traceback (most recent call last):
    ...
    tailored.errors.InvalidDataError: a webhook URL starts with http:// or https:// ...
    """
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise InvalidDataError(f"a webhook URL is at most {MAX_URL_LENGTH} characters, "
                               f"got {len(url)}")
    if not _URL.match(url):
        raise InvalidDataError(
            "a webhook URL starts with http:// or https:// and holds printable ASCII only "
            f"(write an international domain name in punycode), got {url[:100]!r}")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError as error:
        raise InvalidDataError(f"the webhook URL {url[:100]!r} cannot be parsed: {error}"
                               ) from None
    if not parts.hostname:
        raise InvalidDataError(f"the webhook URL {url[:100]!r} names no host")
    return url


def check_events(events: Sequence[str]) -> tuple[EventKind, ...]:
    """``events`` validated and deduplicated, in :data:`EVENT_KINDS` order."""
    unknown = sorted(set(events) - set(EVENT_KINDS))
    if unknown:
        raise InvalidDataError(f"unknown event kind(s) {unknown}; the kinds are "
                               f"{', '.join(EVENT_KINDS)}")
    if not events:
        raise InvalidDataError(f"a webhook needs at least one event kind: "
                               f"{', '.join(EVENT_KINDS)}")
    return tuple(kind for kind in EVENT_KINDS if kind in events)


class SqlWebhooks(SqlTables):
    """The ``webhooks`` and ``webhook_deliveries`` tables."""

    # ---- subscriptions ----------------------------------------------------------------

    def subscribe(self, url: str, events: Sequence[str]) -> tuple[WebhookSubscription, str]:
        """A new subscription and its secret (shown this once; every delivery to it is
        signed with it)."""
        url, kinds = check_url(url), check_events(events)
        subscription_id = secrets.token_hex(6)
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        created = micros(datetime.now(UTC))
        with self.engine.begin() as conn:
            conn.execute(webhooks_table.insert().values(
                subscription_id=subscription_id, url=url, events=",".join(kinds),
                secret=secret, created_us=created))
        return WebhookSubscription(subscription_id, url, kinds, from_micros(created)), secret

    def get(self, subscription_id: str) -> WebhookSubscription | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(webhooks_table).where(
                webhooks_table.c.subscription_id == subscription_id)).first()
        return None if row is None else _subscription(row)

    def list(self) -> list[WebhookSubscription]:
        """Every subscription, removed ones included, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(webhooks_table).order_by(
                webhooks_table.c.created_us, webhooks_table.c.subscription_id)).all()
        return [_subscription(row) for row in rows]

    def remove(self, subscription_id: str) -> WebhookSubscription:
        """Stop a subscription for good: nothing more is sent to it, its secret is wiped
        and its pending deliveries fail; its log stays. Removing twice keeps the first
        time."""
        now = micros(datetime.now(UTC))
        with self.engine.begin() as conn:
            removed = conn.execute(
                webhooks_table.update()
                .where(webhooks_table.c.subscription_id == subscription_id,
                       webhooks_table.c.removed_us.is_(None))
                .values(removed_us=now, secret="")).rowcount
            if removed:
                conn.execute(
                    deliveries_table.update()
                    .where(deliveries_table.c.subscription_id == subscription_id,
                           deliveries_table.c.status == "pending")
                    .values(status="failed", next_attempt_us=None, claim=None,
                            last_error="SubscriptionRemoved", updated_us=now))
        found = self.get(subscription_id)
        if found is None:
            raise NotFoundError(f"no webhook {subscription_id!r}; `tailored webhooks list` "
                                "shows the webhooks")
        return found

    # ---- deliveries -------------------------------------------------------------------

    def enqueue(self, kind: str, data: Mapping[str, Any]) -> builtins.list[WebhookDelivery]:
        """Record one pending delivery of a new event per active subscription to ``kind``
        (none when no one subscribed), in one transaction, and return them.

        The body is ``{"id": event id, "kind": kind, "created_at": ISO time, "data":
        data}``, the same for every subscription; ``data`` must be JSON (a NaN or an
        infinity, which JSON cannot hold, is sent as null).
        """
        [checked] = check_events([kind])
        now = datetime.now(UTC)
        event_id = uuid.uuid4().hex
        try:
            body = json.dumps({"id": event_id, "kind": checked,
                               "created_at": now.isoformat().replace("+00:00", "Z"),
                               "data": _finite(dict(data))}, allow_nan=False,
                              separators=(",", ":"))
        except (TypeError, ValueError) as error:
            raise InvalidDataError(f"the data of a {checked} webhook must be JSON: {error}"
                                   ) from None
        rows = []
        with self.engine.begin() as conn:
            subscribed = conn.execute(sa.select(webhooks_table.c.subscription_id,
                                                webhooks_table.c.events)
                                      .where(webhooks_table.c.removed_us.is_(None))).all()
            for row in subscribed:
                if checked not in row.events.split(","):
                    continue
                rows.append({"delivery_id": uuid.uuid4().hex,
                             "subscription_id": row.subscription_id, "kind": checked,
                             "event_id": event_id, "payload": body, "status": "pending",
                             "attempts": 0, "next_attempt_us": micros(now),
                             "last_status": None, "last_error": None, "claim": None,
                             "created_us": micros(now), "updated_us": micros(now)})
            if rows:
                conn.execute(deliveries_table.insert(), rows)
        return [_delivery(_Values(row)) for row in rows]

    def claim(self, *, lease: timedelta, max_attempts: int, limit: int = 10,
              now: datetime | None = None) -> builtins.list[ClaimedDelivery]:
        """Take up to ``limit`` due pending deliveries (oldest due first) for one attempt
        each, in a write transaction: their attempts grow by one, their next attempt
        moves ``lease`` ahead (another dispatcher takes them again only if this one never
        records an outcome) and they get a new claim token. A due delivery that already
        had ``max_attempts`` (its last sender stopped before recording the outcome) is
        marked failed instead."""
        now = now or datetime.now(UTC)
        due = sa.and_(deliveries_table.c.status == "pending",
                      deliveries_table.c.next_attempt_us <= micros(now))
        # Nothing due (most polls): no write lock taken. Not in memory, where every thread
        # shares one connection and a read outside the lock would end another's claim.
        if not isinstance(self.engine.pool, sa.pool.StaticPool):
            with self.engine.connect() as conn:
                if conn.execute(sa.select(deliveries_table.c.delivery_id).where(due)
                                .limit(1)).first() is None:
                    return []
        query = (sa.select(deliveries_table, webhooks_table.c.url, webhooks_table.c.secret)
                 .join(webhooks_table, webhooks_table.c.subscription_id
                       == deliveries_table.c.subscription_id)
                 .where(due).order_by(deliveries_table.c.next_attempt_us,
                                      deliveries_table.c.delivery_id)
                 .limit(limit)
                 .with_for_update(of=deliveries_table, skip_locked=True))
        claimed: builtins.list[ClaimedDelivery] = []
        with write_transaction(self.engine) as conn:
            for row in conn.execute(query).all():
                if row.attempts >= max_attempts:
                    conn.execute(deliveries_table.update()
                                 .where(deliveries_table.c.delivery_id == row.delivery_id)
                                 .values(status="failed", next_attempt_us=None, claim=None,
                                         last_error="AttemptOutcomeLost",
                                         updated_us=micros(now)))
                    continue
                token = uuid.uuid4().hex
                values = {"attempts": row.attempts + 1, "claim": token,
                          "next_attempt_us": micros(now + lease), "updated_us": micros(now)}
                conn.execute(deliveries_table.update()
                             .where(deliveries_table.c.delivery_id == row.delivery_id)
                             .values(**values))
                delivery = _delivery(_Values({**row._mapping, **values}))
                claimed.append(ClaimedDelivery(delivery, row.url, row.secret, token,
                                               row.payload))
        return claimed

    def finish(self, delivery_id: str, claim: str, status: DeliveryStatus, *,
               next_attempt_at: datetime | None = None, http_status: int | None = None,
               error: str | None = None) -> bool:
        """Record the outcome of a claimed attempt: ``delivered``, ``failed``, or
        ``pending`` again due at ``next_attempt_at``, with the HTTP status or the error
        class it ended with. False (nothing written) when the claim is no longer held
        (its lease ran out and another dispatcher claimed the delivery)."""
        if status == "pending" and next_attempt_at is None:
            raise ValueError("a delivery pending again needs next_attempt_at")
        with self.engine.begin() as conn:
            changed = conn.execute(
                deliveries_table.update()
                .where(deliveries_table.c.delivery_id == delivery_id,
                       deliveries_table.c.claim == claim,
                       deliveries_table.c.status == "pending")
                .values(status=status, claim=None,
                        next_attempt_us=(micros(next_attempt_at) if status == "pending"
                                         and next_attempt_at is not None else None),
                        last_status=http_status,
                        last_error=None if error is None else error[:_ERROR_LENGTH],
                        updated_us=micros(datetime.now(UTC)))).rowcount
        return bool(changed)

    def deliveries(self, subscription_id: str, *,
                   limit: int = 100) -> builtins.list[WebhookDelivery]:
        """The delivery log of a subscription, newest first, at most ``limit`` (up to
        :data:`MAX_DELIVERIES_LISTED`) entries."""
        limit = max(1, min(limit, MAX_DELIVERIES_LISTED))
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(deliveries_table)
                                .where(deliveries_table.c.subscription_id == subscription_id)
                                .order_by(deliveries_table.c.created_us.desc(),
                                          deliveries_table.c.delivery_id.desc())
                                .limit(limit)).all()
        return [_delivery(row) for row in rows]


def _finite(value: Any) -> Any:
    """``value`` with every NaN and infinity made None (JSON holds neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


class _Values:
    """Column values by attribute, like a row: a delivery from values just written."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)


def _subscription(row: Any) -> WebhookSubscription:
    kinds = tuple(kind for kind in EVENT_KINDS if kind in row.events.split(","))
    return WebhookSubscription(row.subscription_id, row.url, kinds, from_micros(row.created_us),
                        None if row.removed_us is None else from_micros(row.removed_us))


def _delivery(row: Any) -> WebhookDelivery:
    return WebhookDelivery(
        delivery_id=row.delivery_id, subscription_id=row.subscription_id, kind=row.kind,
        event_id=row.event_id, payload=json.loads(row.payload), status=row.status,
        attempts=int(row.attempts),
        next_attempt_at=None if row.next_attempt_us is None else from_micros(
            row.next_attempt_us),
        last_status=row.last_status, last_error=row.last_error,
        created_at=from_micros(row.created_us), updated_at=from_micros(row.updated_us))
