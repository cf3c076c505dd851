"""The source of truth: events, items, users and the model registry, picked by URL.

``sqlite:///tailored.db`` is the embedded default; ``postgresql://host/db`` scales out.
"""

from tailored.store.base import (
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    USER_COLUMNS,
    Alert,
    AlertLog,
    Catalog,
    Changes,
    EventLog,
    ExperimentRegistry,
    ModelRegistry,
    ModelVersion,
    PrivacyRecords,
    ServedLog,
    Store,
    Transaction,
    UserDirectory,
)
from tailored.store.changes import Freshness
from tailored.store.experiments import Experiment, Variant
from tailored.store.privacy import ConsentChange, Erasure, keyed_hash
from tailored.store.served import SERVED_COLUMNS, Served
from tailored.store.sql import SqlStore


def open_store(url: str) -> Store:
    """Open (and create if needed) the store at ``url``.

    Examples
    --------
    >>> store = open_store("sqlite://")
    >>> store.events.count()
    0
    """
    return SqlStore(url)


__all__ = [
    "EVENT_COLUMNS",
    "ITEM_COLUMNS",
    "SERVED_COLUMNS",
    "USER_COLUMNS",
    "Alert",
    "AlertLog",
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
    "PrivacyRecords",
    "Served",
    "ServedLog",
    "Store",
    "Transaction",
    "UserDirectory",
    "Variant",
    "keyed_hash",
    "open_store",
]
