"""The store's small interfaces, one per role. Backends implement all of them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from tailored.schema import Event, Item, User

EVENT_COLUMNS = ("event_id", "user_id", "item_id", "event_type", "value", "timestamp",
                 "session_id", "context")
ITEM_COLUMNS = ("item_id", "title", "text", "categories", "attributes", "available",
                "created_at")
USER_COLUMNS = ("user_id", "attributes", "consent")


class EventLog(Protocol):
    """Append-only log of what users did."""

    def add(self, events: Iterable[Event]) -> int:
        """Store events durably; return how many were new (known event ids are skipped)."""
        ...

    def frame(self, *, user_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Events as a frame with :data:`EVENT_COLUMNS`, oldest first."""
        ...

    def count(self) -> int: ...


class Catalog(Protocol):
    """The items that can be recommended."""

    def upsert(self, items: Iterable[Item]) -> int: ...

    def get(self, item_id: str) -> Item | None: ...

    def frame(self) -> pd.DataFrame:
        """Items as a frame with :data:`ITEM_COLUMNS`."""
        ...

    def unavailable(self) -> list[str]:
        """Ids of items that must not be recommended now."""
        ...

    def count(self) -> int: ...


class UserDirectory(Protocol):
    """Who the users are."""

    def upsert(self, users: Iterable[User]) -> int: ...

    def get(self, user_id: str) -> User | None: ...

    def frame(self) -> pd.DataFrame:
        """Users as a frame with :data:`USER_COLUMNS`."""
        ...

    def count(self) -> int: ...


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


class Store(Protocol):
    """The source of truth, one attribute per role."""

    @property
    def url(self) -> str:
        """Where the store lives, password masked."""
        ...

    @property
    def events(self) -> EventLog: ...

    @property
    def items(self) -> Catalog: ...

    @property
    def users(self) -> UserDirectory: ...

    @property
    def models(self) -> ModelRegistry: ...

    def close(self) -> None: ...
