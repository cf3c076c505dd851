"""The records tailored understands: events, items and users, validated with pydantic.

These are the shared vocabulary of every layer: ingest produces them, the store keeps
them, serving accepts them over HTTP.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

#: Event types with a weight of their own in :class:`EventWeights`. An ``impression``
#: records that an item was shown (``context.recommendation_id``, ``context.position``);
#: it weighs 0, so it never counts as interest, only as exposure.
KNOWN_EVENT_TYPES = ("view", "click", "add_to_cart", "purchase", "rating", "impression")

# Control characters (NUL above all) break PostgreSQL text and log lines: refused.
Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256,
                                      pattern=r"^[^\x00-\x1f\x7f]+$")]
EventType = Annotated[
    str,
    BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v),
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$"),
]
Scalar = str | int | float | bool | None


def _utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC, so files without a zone still import."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Event(BaseModel):
    """One thing a user did with an item.

    ``event_id`` makes writes idempotent: the same id stored twice is kept once. When a
    source has no ids, one is derived from the content, so re-importing a file is safe.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Id | None = None
    user_id: Id
    item_id: Id
    event_type: EventType = "view"
    value: float | None = None
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    session_id: Id | None = None
    context: dict[str, Scalar] = Field(default_factory=dict)

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("value must be a finite number")
        return value

    @field_validator("context")
    @classmethod
    def _finite_context(cls, context: dict[str, Scalar]) -> dict[str, Scalar]:
        _check_finite(context)
        return context

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return _utc(value)

    def model_post_init(self, context: Any) -> None:
        if self.event_id is None:
            object.__setattr__(self, "event_id", self.content_id())

    def content_id(self) -> str:
        """A stable id from what happened, who did it, to what and when."""
        key = "\x1f".join(
            (self.user_id, self.item_id, self.event_type, repr(self.value),
             self.timestamp.isoformat(), self.session_id or "")
        )
        return "h" + hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def _check_finite(mapping: dict[str, Scalar]) -> None:
    for key, value in mapping.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{key} must be a finite number, got {value}")


class Item(BaseModel):
    """Something that can be recommended."""

    model_config = ConfigDict(extra="forbid")

    item_id: Id
    title: str = ""
    text: str = ""
    categories: list[str] = Field(default_factory=list)
    attributes: dict[str, Scalar] = Field(default_factory=dict)
    available: bool = True
    created_at: datetime | None = None

    @field_validator("created_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _utc(value)

    @field_validator("attributes")
    @classmethod
    def _finite_attributes(cls, attributes: dict[str, Scalar]) -> dict[str, Scalar]:
        _check_finite(attributes)
        return attributes

    @field_validator("categories", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        # Flat files carry lists as "a|b".
        if isinstance(value, str):
            return [part.strip() for part in value.split("|") if part.strip()]
        return value


class User(BaseModel):
    """Someone recommendations are made for; ``consent`` gates personal processing."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    attributes: dict[str, Scalar] = Field(default_factory=dict)
    consent: bool = True


class EventWeights(BaseModel):
    """How much each event type says about a user's interest in an item.

    ``"value"`` means the event's own value is its weight (a rating of 4 weighs 4).
    Types not listed weigh ``default``. A type that weighs 0 (``impression`` by default:
    the item was shown, nothing more) never enters a training matrix or a user's
    history: it is neither interest nor "seen".

    Examples
    --------
    >>> weights = EventWeights()
    >>> weights.for_type("purchase"), weights.for_type("impression")
    (8.0, 0.0)
    >>> sorted(weights.zero_weight_types())
    ['impression']
    """

    model_config = ConfigDict(extra="forbid")

    view: float | Literal["value"] = 1.0
    click: float | Literal["value"] = 2.0
    add_to_cart: float | Literal["value"] = 4.0
    purchase: float | Literal["value"] = 8.0
    rating: float | Literal["value"] = "value"
    impression: float | Literal["value"] = 0.0
    custom: dict[str, float | Literal["value"]] = Field(default_factory=dict)
    default: float = 1.0

    def for_type(self, event_type: str) -> float | Literal["value"]:
        """The weight of one event type."""
        if event_type in self.custom:
            return self.custom[event_type]
        if event_type in KNOWN_EVENT_TYPES:
            weight: float | Literal["value"] = getattr(self, event_type)
            return weight
        return self.default

    def zero_weight_types(self) -> frozenset[str]:
        """Event types that weigh exactly 0 (exposure, not interest); the default weight
        applies to unlisted types, so it is not covered here."""
        named = {t: self.for_type(t) for t in (*KNOWN_EVENT_TYPES, *self.custom)}
        return frozenset(t for t, weight in named.items() if weight == 0)
