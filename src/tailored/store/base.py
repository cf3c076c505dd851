"""The store's small interfaces, one per role. Backends implement all of them."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa

from tailored.schema import PERSONALIZATION, Event, Item, User
from tailored.store.changes import Freshness
from tailored.store.experiments import Experiment, ExperimentStatus
from tailored.store.keys import ApiKey
from tailored.store.placements import PlacementVersion
from tailored.store.privacy import ConsentChange, Erasure
from tailored.store.served import Served
from tailored.store.webhooks import (
    ClaimedDelivery,
    DeliveryStatus,
    WebhookDelivery,
    WebhookSubscription,
)

EVENT_COLUMNS = ("event_id", "user_id", "item_id", "event_type", "value", "timestamp",
                 "session_id", "context")
ITEM_COLUMNS = ("item_id", "title", "text", "categories", "attributes", "available",
                "created_at")
USER_COLUMNS = ("user_id", "attributes", "consent")
#: :meth:`EventLog.bought_together` reads at most this many purchases of the items asked
#: (the newest): a bound on its cost however often they sold.
BASKET_LIMIT = 1_000


@dataclass
class BulkLoad:
    """What a bulk load (:meth:`EventLog.loading`) found once it ended: ``repeated``
    rows carried the event id of an earlier row, and only the earliest was kept."""

    repeated: int = 0


class EventLog(Protocol):
    """Append-only log of what users did."""

    def add(self, events: Iterable[Event]) -> int:
        """Store events durably; return how many were new (known event ids are skipped)."""
        ...

    def add_rows(self, rows: pa.Table) -> int:
        """:meth:`add` for events already validated as columns
        (:data:`~tailored.store.rows.EVENT_ROWS`): a file import's bulk path."""
        ...

    def frame(self, *, user_ids: Sequence[str] | None = None,
              consenting: bool = False) -> pd.DataFrame:
        """Events as a frame with :data:`EVENT_COLUMNS`, oldest first (of ``user_ids``
        only, when given; with ``consenting``, none of users whose profile withholds
        personalization: the same read as :meth:`UserDirectory.without_consent` first)."""
        ...

    def loading(self) -> AbstractContextManager[BulkLoad]:
        """Around the writes of one large import, in a transaction
        (:meth:`Store.transaction`): on PostgreSQL, into an empty events table, the rows
        are copied straight in with every index but the primary key dropped, and at the
        end the event ids are made unique (a row repeating an earlier row's id is
        dropped; :attr:`BulkLoad.repeated` counts them) and the indexes are built once,
        several times cheaper than keeping them up to date row by row. Until the
        transaction ends, the events table is locked (readers wait). Elsewhere it does
        nothing."""
        ...

    def vacuum(self) -> None:
        """After a bulk write: bring the database's statistics and visibility map up to
        date, so reads by user stay on the index at once rather than after autovacuum."""
        ...

    def count(self) -> int: ...

    def delete_before(self, cutoff: datetime, *,
                      event_types: Sequence[str] | None = None) -> int:
        """Delete the events timestamped before ``cutoff`` (only those of ``event_types``
        when given); return how many. The users' freshness (:class:`Changes`) moves."""
        ...

    def count_before(self, cutoff: datetime, *,
                     event_types: Sequence[str] | None = None) -> int:
        """How many events :meth:`delete_before` would delete now."""
        ...

    def delete_users(self, user_ids: Sequence[str]) -> int:
        """Delete every event of these users (their freshness moves); return how many."""
        ...

    def item_counts(self, since: datetime, until: datetime | None = None, *,
                    event_types: Sequence[str] | None = None) -> dict[str, int]:
        """Events per item timestamped in ``[since, until)`` (of ``event_types`` only,
        when given): what popular and trending lists count."""
        ...

    def bought_together(self, item_ids: Sequence[str], *,
                        event_types: Sequence[str] = ("purchase",),
                        window: timedelta = timedelta(days=1),
                        limit: int = BASKET_LIMIT) -> dict[str, float]:
        """For each other item bought with one of ``item_ids``, the share of the baskets
        holding one of ``item_ids`` that hold it too (in ``(0, 1]``), from the events as
        stored now: what "bought together" lists rank by.

        A basket is the purchases (events of ``event_types``) of one session (the same
        ``session_id``); a purchase without a session id makes a basket of the purchases
        without one of the same user at most ``window`` before or after it. Only the
        newest ``limit`` purchases of ``item_ids`` are read, so the cost stays bounded
        for an item sold a million times. ``item_ids`` are never in the answer; an item
        no one bought gives ``{}``.
        """
        ...


class Catalog(Protocol):
    """The items that can be recommended."""

    def upsert(self, items: Iterable[Item]) -> int: ...

    def get(self, item_id: str) -> Item | None: ...

    def titles(self, item_ids: Sequence[str]) -> dict[str, str]:
        """The titles of those of ``item_ids`` that are stored with one, in one read."""
        ...

    def frame(self) -> pd.DataFrame:
        """Items as a frame with :data:`ITEM_COLUMNS`."""
        ...

    def unavailable(self) -> list[str]:
        """Ids of items that must not be recommended now."""
        ...

    def count(self) -> int: ...

    def update(self, item_id: str, changes: dict[str, Any]) -> Item | None:
        """Change some fields of an item; ``attributes`` are merged (a null value removes
        that attribute). The updated item, or None when there is no such item."""
        ...

    def delete(self, item_id: str) -> bool:
        """Remove an item; it is never recommended again, even by a model trained before,
        until it is upserted anew. Whether there was such an item."""
        ...


class UserDirectory(Protocol):
    """Who the users are."""

    def upsert(self, users: Iterable[User]) -> int: ...

    def get(self, user_id: str) -> User | None: ...

    def frame(self) -> pd.DataFrame:
        """Users as a frame with :data:`USER_COLUMNS`."""
        ...

    def without_consent(self, among: Sequence[str] | None = None, *,
                        purpose: str = PERSONALIZATION) -> list[str]:
        """Ids of the users whose profile withholds ``purpose`` (of ``among`` only, when
        given). Without personalization nothing learns from them, and they get no
        personal answer."""
        ...

    def consent_history(self, user_id: str) -> list[ConsentChange]:
        """Every consent change of the user, oldest first (kept when the profile is
        deleted; an erasure removes it)."""
        ...

    def count(self) -> int: ...

    def update(self, user_id: str, changes: dict[str, Any]) -> User | None:
        """Change some fields of a user; ``attributes`` are merged (a null value removes
        that attribute). The updated user, or None when there is no such user."""
        ...

    def delete(self, user_id: str) -> bool:
        """Remove a user's profile (not their events, nor their consent history; an
        erasure removes everything); whether there was one."""
        ...


class PrivacyRecords(Protocol):
    """Erasures and their audit (:mod:`tailored.store.privacy`)."""

    def audit_key(self) -> str:
        """The audit hash key the store keeps, for when none is configured."""
        ...

    def erase(self, user_ids: Iterable[str], *, key: str, erased_by: str,
              retrain_within: timedelta | None) -> list[Erasure]:
        """Delete every row that names each user in one transaction (events, profile,
        consent history, served answers) and audit each under ``keyed_hash(key, id)``.
        ``retrain_within``: how soon a model carrying them at item level must be
        replaced (None: none does)."""
        ...

    def erasures(self, *, pending: bool = False, after: int = 0) -> list[Erasure]:
        """Audit records, newest first (only those still waiting for a retraining, only
        those after the record ``after``)."""
        ...

    def erasures_of(self, user_id: str, *, key: str) -> list[Erasure]:
        """The audit records of ``user_id``, found by its keyed hash, newest first."""
        ...

    def record_retention(self, deleted: Mapping[str, int]) -> None:
        """Keep what one retention run deleted, by kind."""
        ...

    def deletions(self) -> dict[str, int]:
        """Deleted so far, by kind over every retention run, plus ``erasures`` and
        ``erasures_pending``: what the metrics count."""
        ...

    def last_erasure_id(self) -> int:
        """The newest audit record's id (0 before any): serving reloads its models when
        it grows."""
        ...

    def mark_pending(self, erasure_ids: Iterable[int], retrain_within: timedelta) -> int:
        """Set a retraining due on those erasures that had none; how many changed."""
        ...

    def mark_retrained(self, trained_before: datetime) -> int:
        """Close the pending erasures made before ``trained_before``; how many."""
        ...


@dataclass(frozen=True)
class ModelVersion:
    """One trained model artifact in the registry."""

    version: int
    name: str
    path: str
    created_at: datetime
    metrics: dict[str, float] = field(default_factory=dict)
    active: bool = False
    details: dict[str, Any] = field(default_factory=dict)


class ModelRegistry(Protocol):
    """Trained model versions, and which one serves."""

    def register(self, name: str, path: str, metrics: dict[str, float] | None = None,
                 details: dict[str, Any] | None = None) -> ModelVersion: ...

    def promote(self, version: int) -> ModelVersion:
        """Make ``version`` the one that serves (the previous one stays, for rollback)."""
        ...

    def active(self) -> ModelVersion | None: ...

    def get(self, version: int) -> ModelVersion | None: ...

    def list(self) -> list[ModelVersion]: ...

    def previous(self) -> ModelVersion | None:
        """The version a rollback returns to: the one active before the active one was
        promoted. Promoting it is the rollback, and a second rollback goes one further
        back. None when there is none."""
        ...

    def forget(self, version: int) -> ModelVersion:
        """Remove ``version`` from the registry and return what it was (its artifact on
        disk is the caller's to delete). Refused (:class:`~tailored.errors.InvalidDataError`)
        for the active version, the one a rollback returns to, the newest one (so a
        number is never given twice) and a version a draft or running experiment uses;
        the served log and stopped experiments keep the number as a plain record."""
        ...


@dataclass(frozen=True)
class Alert:
    """Something a monitor found (a drift in the online CTR or in what users do)."""

    alert_id: int
    detector: str
    detected_at: datetime
    raised_at: datetime
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    handled_at: datetime | None = None
    handled_by: str | None = None


class AlertLog(Protocol):
    """Alerts raised by the drift detectors, and whether a retraining handled them."""

    def raise_alert(self, detector: str, detected_at: datetime, message: str,
                    details: dict[str, Any] | None = None) -> Alert | None:
        """Record an alert; ``None`` when ``detector`` already raised one for that moment."""
        ...

    def list(self, *, detector: str | None = None, unhandled: bool = False,
             limit: int | None = None) -> list[Alert]:
        """Alerts, newest detection first."""
        ...

    def latest(self, detector: str) -> Alert | None: ...

    def mark_handled(self, alert_ids: Sequence[int], handled_by: str) -> int:
        """Mark alerts handled (e.g. by a retraining); return how many changed."""
        ...

    def count(self) -> int: ...


class PlacementRegistry(Protocol):
    """Named, versioned placement specs (:mod:`tailored.store.placements`)."""

    def put(self, name: str, spec: dict[str, Any], *, by: str = "") -> PlacementVersion:
        """A new current version of ``name`` (none written when ``spec`` is unchanged)."""
        ...

    def delete(self, name: str, *, by: str = "") -> bool: ...

    def get(self, name: str) -> PlacementVersion | None: ...

    def list(self) -> list[PlacementVersion]: ...

    def history(self, name: str) -> builtins.list[PlacementVersion]: ...


class WebhookRegistry(Protocol):
    """Webhook subscriptions and their delivery log (:mod:`tailored.store.webhooks`)."""

    def subscribe(self, url: str, events: Sequence[str]) -> tuple[WebhookSubscription, str]:
        """A new subscription and its signing secret, which is shown this once."""
        ...

    def get(self, subscription_id: str) -> WebhookSubscription | None: ...

    def list(self) -> list[WebhookSubscription]:
        """Every subscription, removed ones included, oldest first."""
        ...

    def remove(self, subscription_id: str) -> WebhookSubscription:
        """Stop a subscription (its pending deliveries fail; its log stays)."""
        ...

    def enqueue(self, kind: str, data: Mapping[str, Any]) -> builtins.list[WebhookDelivery]:
        """One pending delivery of a new event per active subscription to ``kind``."""
        ...

    def claim(self, *, lease: timedelta, max_attempts: int, limit: int = 10,
              now: datetime | None = None) -> builtins.list[ClaimedDelivery]:
        """Due deliveries taken for one attempt each, in a write transaction: no other
        dispatcher gets the same attempt."""
        ...

    def finish(self, delivery_id: str, claim: str, status: DeliveryStatus, *,
               next_attempt_at: datetime | None = None, http_status: int | None = None,
               error: str | None = None) -> bool:
        """Record a claimed attempt's outcome; False when the claim is no longer held."""
        ...

    def deliveries(self, subscription_id: str, *,
                   limit: int = 100) -> builtins.list[WebhookDelivery]:
        """A subscription's delivery log, newest first, bounded by ``limit``."""
        ...


class ExperimentRegistry(Protocol):
    """A/B tests: drafts, the one running now per placement, and stopped ones kept for
    analysis."""

    def create(self, name: str, variants: list[tuple[str, int, float]], *,
               holdout_share: float = 0.0, holdout_version: int | None = None,
               planned_sample_size: int | None = None, description: str = "",
               experiment_id: str | None = None, placement: str | None = None
               ) -> Experiment:
        """Store a draft with variants ``(name, model version, traffic share)``."""
        ...

    def get(self, experiment_id: str) -> Experiment | None: ...

    def list(self, status: ExperimentStatus | None = None) -> list[Experiment]: ...

    def running(self, placement: str | None = None) -> Experiment | None: ...

    def start(self, experiment_id: str, at: datetime | None = None) -> Experiment: ...

    def stop(self, experiment_id: str, at: datetime | None = None) -> Experiment: ...


class KeyStore(Protocol):
    """API keys, stored hashed (:mod:`tailored.store.keys`)."""

    def create(self, name: str, scopes: Sequence[str]) -> tuple[ApiKey, str]:
        """A new key and its secret, which is shown this once and never stored."""
        ...

    def verify(self, token: str) -> ApiKey | None:
        """The active key a secret belongs to, or None."""
        ...

    def get(self, key_id: str) -> ApiKey | None: ...

    def list(self) -> list[ApiKey]: ...

    def revoke(self, key_id: str) -> ApiKey: ...

    def count(self) -> int:
        """Keys ever created, revoked ones included."""
        ...


class ServedLog(Protocol):
    """Every answer the service gave (:mod:`tailored.store.served`)."""

    def record(self, served: Iterable[Served]) -> int:
        """Store answers; return how many were new (known recommendation ids skipped)."""
        ...

    def get(self, recommendation_id: str) -> Served | None: ...

    def frame(self, *, since: datetime | None = None, experiment_id: str | None = None,
              user_id: str | None = None, placement: str | None = None) -> pd.DataFrame:
        """Answers as a frame with ``SERVED_COLUMNS``, oldest first (those since a time, of
        one experiment, given to one user, of one placement)."""
        ...

    def count(self) -> int: ...

    def delete_before(self, cutoff: datetime) -> int:
        """Delete the answers served before ``cutoff``; return how many."""
        ...

    def count_before(self, cutoff: datetime) -> int:
        """How many answers :meth:`delete_before` would delete now."""
        ...


class Changes(Protocol):
    """What changed since a cache looked (:mod:`tailored.store.changes`)."""

    def check(self, user_id: str) -> Freshness:
        """The user's event count and last event, and the catalog version (one query)."""
        ...

    def catalog_version(self) -> int: ...

    def items_since(self, version: int) -> tuple[int, list[str]]:
        """The catalog version now and the items written or deleted after ``version``."""
        ...


class Transaction(Protocol):
    """Events, items and users as one open transaction sees them (its own writes too):
    what is written through them is committed together, or not at all."""

    @property
    def events(self) -> EventLog: ...

    @property
    def items(self) -> Catalog: ...

    @property
    def users(self) -> UserDirectory: ...


class Store(Transaction, Protocol):
    """The source of truth, one attribute per role (events, items and users as in a
    :class:`Transaction`, each call its own)."""

    @property
    def url(self) -> str:
        """Where the store lives, password masked."""
        ...

    @property
    def models(self) -> ModelRegistry: ...

    @property
    def keys(self) -> KeyStore: ...

    @property
    def alerts(self) -> AlertLog: ...

    @property
    def experiments(self) -> ExperimentRegistry: ...

    @property
    def served(self) -> ServedLog: ...

    @property
    def placements(self) -> PlacementRegistry: ...

    @property
    def webhooks(self) -> WebhookRegistry: ...

    @property
    def changes(self) -> Changes: ...

    @property
    def privacy(self) -> PrivacyRecords: ...

    def transaction(self) -> AbstractContextManager[Transaction]:
        """Write events, items and users in several calls, committed as one when the
        ``with`` block ends, or rolled back if it raises (an import of one file).

        Other writers wait while it is open on SQLite (one writer at a time), so keep it
        to a bulk write; writes through ``store.events`` etc. are not part of it.
        """
        ...

    def close(self) -> None: ...
