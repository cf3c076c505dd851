"""The source of truth: events, items, users and the model registry, picked by URL.

``sqlite:///tailored.db`` is the embedded default; ``postgresql://host/db`` scales out.
With ``pseudonymize_user_ids`` the store holds keyed pseudonyms instead of user ids
(:mod:`tailored.store.pseudonymous`): open it with :func:`open_store_from`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tailored.store.base import (
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    USER_COLUMNS,
    Alert,
    AlertLog,
    BulkLoad,
    Catalog,
    Changes,
    EventLog,
    ExperimentRegistry,
    ModelRegistry,
    ModelVersion,
    PlacementRegistry,
    PrivacyRecords,
    ServedLog,
    Store,
    Transaction,
    UserDirectory,
    WebhookRegistry,
)
from tailored.store.changes import Freshness
from tailored.store.experiments import Experiment, Variant
from tailored.store.placements import PlacementVersion
from tailored.store.privacy import ConsentChange, Erasure, keyed_hash
from tailored.store.pseudonymous import (
    Pseudonym,
    PseudonymousStore,
    pseudonym,
    stored_user_id,
)
from tailored.store.served import SERVED_COLUMNS, Served
from tailored.store.sql import SqlStore
from tailored.store.sqlbase import STORE_UNAVAILABLE
from tailored.store.webhooks import EVENT_KINDS, WebhookDelivery, WebhookSubscription

if TYPE_CHECKING:
    from tailored.settings import Settings


def open_store(url: str, *, pseudonym_secret: str | None = None) -> Store:
    """Open (and create if needed) the store at ``url``; with ``pseudonym_secret`` (at
    least 32 characters), one that holds the :func:`pseudonym` of each user id instead
    of the id (:class:`PseudonymousStore`).

    Examples
    --------
    >>> store = open_store("sqlite://")
    >>> store.events.count()
    0
    """
    store = SqlStore(url)
    return store if pseudonym_secret is None else PseudonymousStore(store, pseudonym_secret)


def open_store_from(settings: Settings) -> Store:
    """The store ``settings`` name (``store_url``), holding pseudonyms when
    ``pseudonymize_user_ids`` is on (keyed by ``privacy_secret``): how every entry point
    of a running system (the API, the command line, the jobs they start) opens it.

    Examples
    --------
    >>> from tailored.settings import Settings
    >>> store = open_store_from(Settings(store_url="sqlite://", pseudonymize_user_ids=True,
    ...                                  privacy_secret="s" * 32))
    >>> type(store).__name__
    'PseudonymousStore'
    """
    if not settings.pseudonymize_user_ids:
        return open_store(settings.store_url)
    if settings.privacy_secret is None:  # the settings' validator refuses it already
        raise ValueError("pseudonymize_user_ids needs privacy_secret (at least 32 "
                         "characters, from the environment: TAILORED_PRIVACY_SECRET)")
    return open_store(settings.store_url,
                      pseudonym_secret=settings.privacy_secret.get_secret_value())


__all__ = [
    "EVENT_COLUMNS",
    "EVENT_KINDS",
    "ITEM_COLUMNS",
    "SERVED_COLUMNS",
    "STORE_UNAVAILABLE",
    "USER_COLUMNS",
    "Alert",
    "AlertLog",
    "BulkLoad",
    "Catalog",
    "Changes",
    "ConsentChange",
    "Erasure",
    "EventLog",
    "Experiment",
    "ExperimentRegistry",
    "Freshness",
    "ModelRegistry",
    "ModelVersion",
    "PlacementRegistry",
    "PlacementVersion",
    "PrivacyRecords",
    "Pseudonym",
    "PseudonymousStore",
    "Served",
    "ServedLog",
    "Store",
    "Transaction",
    "UserDirectory",
    "Variant",
    "WebhookDelivery",
    "WebhookRegistry",
    "WebhookSubscription",
    "keyed_hash",
    "open_store",
    "open_store_from",
    "pseudonym",
    "stored_user_id",
]
