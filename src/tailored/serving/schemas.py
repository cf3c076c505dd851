"""The bodies the API answers with, as pydantic models (they document /docs too).

Request bodies reuse :mod:`tailored.schema` (an event over HTTP is the same
:class:`~tailored.schema.Event` a file import produces).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tailored.store import ModelVersion


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventsReceipt(_Response):
    """What happened to a posted event or batch; sent once every event is durable."""

    model_config = ConfigDict(json_schema_extra={
        "examples": [{"received": 3, "stored": 2, "duplicates": 1}]})

    received: int = Field(description="Events in the request.")
    stored: int = Field(description="Events that were new and are now stored.")
    duplicates: int = Field(
        description="Events whose event_id was already stored (or repeated in the request); "
                    "kept once, so re-sending a batch is safe.")


class ScoredItem(_Response):
    """One recommended item."""

    item_id: str
    score: float = Field(description="The model's score; higher is better. Comparable only "
                                     "within one response.")
    rank: int = Field(ge=1, description="Position in the list, 1 is best.")


class ModelRef(_Response):
    """The model version that produced an answer."""

    name: str = Field(description="Model family, e.g. item_knn or als.")
    version: int | None = Field(description="Version in the model registry.")


class Recommendations(_Response):
    """Top items for one user, best first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "user_id": "u42", "model": {"name": "item_knn", "version": 3},
        "items": [{"item_id": "i7", "score": 1.83, "rank": 1},
                  {"item_id": "i2", "score": 1.41, "rank": 2}],
    }]})

    user_id: str
    model: ModelRef
    items: list[ScoredItem] = Field(
        description="Never an item the user already interacted with, an unavailable item, "
                    "or an excluded one. Users without history get the most popular items.")


class SimilarItems(_Response):
    """Items most similar to one item, best first (the item itself left out)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "item_id": "i7", "items": [{"item_id": "i9", "score": 0.82, "rank": 1}]}]})

    item_id: str
    items: list[ScoredItem]


class ServingModel(_Response):
    """The model version a service answers with."""

    name: str
    version: int | None
    trained_at: datetime | None = Field(description="When the model was fitted (UTC).")


class Health(_Response):
    """Whether the service can answer, and with what."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "status": "ok", "store": "postgresql://tailored:***@db/tailored", "events": 100000,
        "model": {"name": "item_knn", "version": 3, "trained_at": "2024-05-01T12:00:00Z"},
        "detail": None,
    }]})

    status: Literal["ok", "degraded", "unavailable"] = Field(
        description="`degraded` when the registry's active model cannot be loaded, "
                    "`unavailable` when the store does not answer.")
    store: str = Field(description="The store URL, password masked.")
    events: int | None = Field(description="Events in the store (null when it does not "
                                           "answer).")
    model: ServingModel | None = Field(
        description="The model serving recommendations; null until one is trained.")
    detail: str | None = Field(None, description="What is wrong, when not ok.")


class ModelVersionInfo(_Response):
    """One trained version in the model registry."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "version": 3, "name": "item_knn", "created_at": "2024-05-01T12:00:00Z",
        "active": True, "metrics": {"ndcg@10": 0.21, "recall@10": 0.34},
        "details": {"events": 100000, "users": 943, "items": 1682},
    }]})

    version: int
    name: str
    created_at: datetime
    active: bool = Field(description="Whether the registry marks it as the version to serve.")
    metrics: dict[str, float | None] = Field(
        description="Offline validation metrics recorded at training.")
    details: dict[str, Any] = Field(description="Training config and data summary.")

    @classmethod
    def of(cls, version: ModelVersion) -> ModelVersionInfo:
        return cls(version=version.version, name=version.name, created_at=version.created_at,
                   active=version.active, metrics=dict(version.metrics),
                   details=dict(version.details))


class ModelVersions(_Response):
    """Every version in the registry, oldest first."""

    active: int | None = Field(description="The version the registry marks active.")
    serving: int | None = Field(description="The version this process answers with now "
                                            "(follows `active` within a few seconds).")
    versions: list[ModelVersionInfo]


class Promotion(_Response):
    """The outcome of promoting a version."""

    serving: ModelVersionInfo = Field(description="The version now active and serving.")
    previous: int | None = Field(
        description="The version served before, to promote again for a rollback.")


def scored_items(frame: pd.DataFrame, item_column: str = "item_id") -> list[ScoredItem]:
    """Rows of a model's top-k frame (``item_column``, ``score``, ``rank``) as items."""
    return [ScoredItem(item_id=str(item), score=float(score), rank=int(rank))
            for item, score, rank in zip(frame[item_column], frame["score"], frame["rank"],
                                         strict=True)]
