"""The records tailored understands: events, items and users, validated with pydantic.

These are the shared vocabulary of every layer: ingest produces them, the store keeps
them, serving accepts them over HTTP.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

#: Event types with a weight of their own in :class:`EventWeights`. An ``impression``
#: records that an item was shown (``context.recommendation_id``, ``context.position``);
#: it weighs 0, so it never counts as interest, only as exposure.
KNOWN_EVENT_TYPES = ("view", "click", "add_to_cart", "purchase", "rating", "impression")

# Control characters (NUL above all) break PostgreSQL text and log lines: refused.
#: Characters an id may not hold beyond ASCII controls, by Unicode category: format
#: characters (zero-width spaces and joiners, bidi overrides that show "gnp.exe" as
#: "exe.png"), lone surrogates, private use, line and paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cf", "Cs", "Co", "Zl", "Zp"})


def clean_id(value: Any) -> Any:
    """An id in NFC (one spelling of "é", not two), refused when it holds characters that
    cannot be seen or that reorder text: two ids that look alike are one id or an error.

    Examples
    --------
    >>> clean_id("cafe\u0301") == "caf\u00e9"
    True
    >>> try:
    ...     clean_id("alice\u200b")
    ... except ValueError as error:
    ...     print(str(error)[:50])
    ids may not hold U+200B ZERO WIDTH SPACE (at posit
    """
    if not isinstance(value, str) or value.isascii():  # the common case, at no cost
        return value
    text = unicodedata.normalize("NFC", value)
    for position, char in enumerate(text, start=1):
        if unicodedata.category(char) in _HIDDEN_CATEGORIES or char == "\ufffd":
            raise PydanticCustomError(
                "id_character", "ids may not hold U+{code} {name} (at position {position}): "
                "invisible, direction-changing and invalid characters make ids that look "
                "alike but differ",
                {"code": f"{ord(char):04X}", "position": position,
                 "name": unicodedata.name(char, "(a lone surrogate or invalid UTF-8)")})
    return text


# The before-validator comes last: it runs first either way, and the constraints under
# it stay pydantic's own string checks (above it they run as Python, three times slower).
Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256,
                                      pattern=r"^[^\x00-\x1f\x7f]+$"),
               BeforeValidator(clean_id)]
EventType = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$"),
    BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v),
]
Scalar = str | int | float | bool | None

# Bounds on what one record may hold, the same over HTTP and in imported files.
#: Largest ``abs(Event.value)``: far above any rating, price or count, far below what
#: overflows a sum of weights (1e308 would become ``inf`` in a training matrix).
MAX_EVENT_VALUE = 1_000_000.0
#: Earliest event time: the Unix epoch (earlier ones are typos or a zero date).
EARLIEST_EVENT_TIME = datetime(1970, 1, 1, tzinfo=UTC)
#: How far into the future an event may be dated, for clock skew between machines; one
#: event dated in year 9999 would make every time-decayed score zero.
MAX_CLOCK_SKEW = timedelta(days=1)
#: An event's ``context``: at most this many keys, each at most this long (the characters
#: ids allow), and text values at most this long.
MAX_CONTEXT_KEYS = 64
MAX_CONTEXT_KEY_LENGTH = 64
MAX_CONTEXT_TEXT = 1_024
#: An item's or user's ``attributes``: the bounds the REST API has always applied
#: (``tailored.serving.schemas``), now on imported files too.
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_NAME_LENGTH = 128
MAX_ATTRIBUTE_TEXT = 10_000

#: Integers that survive every store and JSON reader (JavaScript, PostgreSQL bigint).
MAX_SAFE_INTEGER = 2**53

_NO_CONTROL = re.compile(r"[^\x00-\x1f\x7f]+")


def _utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC, so files without a zone still import."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _clip(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _check_mapping(field: str, value: Any, *, max_keys: int, max_key_length: int,
                   max_text: int) -> Any:
    """Refuse a mapping with too many keys, a long or odd key, or a long text value.

    Runs before pydantic checks the types (so 200,000 keys are refused at once); what is
    not a mapping passes through for pydantic to refuse.
    """
    if not isinstance(value, Mapping):
        return value
    if len(value) > max_keys:
        raise PydanticCustomError(
            "too_many_keys", "{field} has {count} keys; at most {limit} are allowed",
            {"field": field, "count": len(value), "limit": max_keys})
    for key, item in value.items():
        if not _good_key(key, max_key_length):
            raise PydanticCustomError(
                "bad_key", "{field} key {key} must be 1 to {limit} characters without "
                "control characters (tabs, line breaks, NUL) or lone surrogates",
                {"field": field, "key": _clip(key), "limit": max_key_length})
        if type(item) is int and abs(item) > MAX_SAFE_INTEGER:
            raise PydanticCustomError(
                "integer_too_large", "{field} value of {key} is an integer of {digits} "
                "digits; integers are at most 2**53 in size (send large numbers as text)",
                {"field": field, "key": _clip(key), "digits": len(str(abs(item)))})
        if type(item) is str:
            if len(item) > max_text:
                raise PydanticCustomError(
                    "text_too_long", "{field} value of {key} is {length} characters long; "
                    "text values are at most {limit}",
                    {"field": field, "key": _clip(key), "length": f"{len(item):,}",
                     "limit": f"{max_text:,}"})
            if not _unicode(item):
                raise PydanticCustomError(
                    "bad_text", "{field} value of {key} holds a lone surrogate such as "
                    "\\ud800, which is not text (send valid UTF-8)",
                    {"field": field, "key": _clip(key)})
    return value


def _good_key(key: Any, max_length: int) -> bool:
    if type(key) is not str or not 1 <= len(key) <= max_length:
        return False
    if key.isascii() and key.isprintable():  # the common case, without a regex
        return True
    return _NO_CONTROL.fullmatch(key) is not None and _unicode(key)


def _unicode(text: str) -> bool:
    """Whether ``text`` is valid Unicode: JSON may hold a lone surrogate ("\\ud800"),
    which UTF-8 (a database, a log line, a CSV) cannot."""
    if text.isascii():  # the common case, at no cost
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _context(value: Any) -> Any:
    return _check_mapping("context", value, max_keys=MAX_CONTEXT_KEYS,
                          max_key_length=MAX_CONTEXT_KEY_LENGTH, max_text=MAX_CONTEXT_TEXT)


def _attributes(value: Any) -> Any:
    return _check_mapping("attributes", value, max_keys=MAX_ATTRIBUTES,
                          max_key_length=MAX_ATTRIBUTE_NAME_LENGTH,
                          max_text=MAX_ATTRIBUTE_TEXT)


def _strict_number(value: Any) -> Any:
    """A number stays; text and booleans are refused instead of read as numbers.

    Files are read as text: :func:`tailored.ingest.records.event_input` turns a CSV
    "4.5" into 4.5 before an event is built.
    """
    if isinstance(value, bool):
        raise PydanticCustomError(
            "number_type", "should be a number such as 4.5, not {input}",
            {"input": "true" if value else "false"})
    if isinstance(value, str):
        raise PydanticCustomError(
            "number_type", "should be a number such as 4.5, not the text {input} (send "
            "numbers without quotes)", {"input": _clip(value)})
    return value


# The bounds are checked before the types, with messages that name them; the JSON schema
# (the API's documentation) states the key count.
Context = Annotated[dict[str, Scalar], BeforeValidator(_context),
                    Field(json_schema_extra={"maxProperties": MAX_CONTEXT_KEYS})]
Attributes = Annotated[dict[str, Scalar], BeforeValidator(_attributes),
                       Field(json_schema_extra={"maxProperties": MAX_ATTRIBUTES})]


class Event(BaseModel):
    """One thing a user did with an item.

    ``event_id`` makes writes idempotent: the same id stored twice is kept once. When a
    source has no ids, one is derived from the content, so re-importing a file is safe.

    Bounds, the same over HTTP and in files: ``value`` is a number (not text, not a
    boolean) with ``abs(value) <=`` :data:`MAX_EVENT_VALUE`; a ``rating`` has a value and
    it is at least 0; ``timestamp`` lies between :data:`EARLIEST_EVENT_TIME` and
    :data:`MAX_CLOCK_SKEW` past now; ``context`` holds at most :data:`MAX_CONTEXT_KEYS`
    scalars. Whether ``event_type`` is one the settings know is checked apart
    (:meth:`EventWeights.check_event_type`), since it depends on the configuration.

    Examples
    --------
    >>> Event(user_id="u1", item_id="i1", event_type="rating", value=4).value
    4.0
    >>> Event(user_id="u1", item_id="i1", event_type="rating", value=-1)
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for Event
    value
      a rating is at least 0, got -1.0 ...
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Id | None = None
    user_id: Id
    item_id: Id
    event_type: EventType = "view"
    # validate_default: a rating without a value is refused too.
    value: Annotated[float | None, BeforeValidator(_strict_number),
                     Field(validate_default=True)] = None
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    session_id: Id | None = None
    context: Context = Field(default_factory=dict)

    @field_validator("value")
    @classmethod
    def _bounded(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("value must be a finite number")
        if value is not None and abs(value) > MAX_EVENT_VALUE:
            raise PydanticCustomError(
                "value_out_of_range", "value {value} is out of range: at most {limit} "
                "either side of 0 (MAX_EVENT_VALUE)",
                {"value": value, "limit": f"{MAX_EVENT_VALUE:,.0f}"})
        if info.data.get("event_type") == "rating":
            if value is None:
                raise PydanticCustomError(
                    "rating_without_value", "a rating needs a value, the rating itself "
                    "(such as 4.5)")
            if value < 0:
                raise PydanticCustomError(
                    "negative_rating", "a rating is at least 0, got {value}",
                    {"value": value})
        return value

    @field_validator("context")
    @classmethod
    def _finite_context(cls, context: dict[str, Scalar]) -> dict[str, Scalar]:
        _check_finite(context)
        return context

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        value = _utc(value)
        if value < EARLIEST_EVENT_TIME:
            raise PydanticCustomError(
                "timestamp_too_early", "{value} is before {bound}, the earliest event time "
                "accepted", {"value": value.isoformat(), "bound": EARLIEST_EVENT_TIME.date()})
        latest = datetime.now(UTC) + MAX_CLOCK_SKEW
        if value > latest:
            raise PydanticCustomError(
                "timestamp_in_future", "{value} is in the future: the latest event time "
                "accepted is 1 day past now ({bound}), for clock skew",
                {"value": value.isoformat(),
                 "bound": latest.isoformat(timespec="seconds")})
        return value

    def model_post_init(self, context: Any) -> None:
        if self.event_id is None:
            object.__setattr__(self, "event_id", self.content_id())

    def content_id(self) -> str:
        """A stable id from what happened, who did it, to what and when."""
        return content_id(self.user_id, self.item_id, self.event_type, self.value,
                          self.timestamp, self.session_id)


def content_id(user_id: str, item_id: str, event_type: str, value: float | None,
               timestamp: datetime, session_id: str | None) -> str:
    """The id of an event that came without one (:meth:`Event.content_id`): the same
    event sent twice gets the same id, so it is kept once."""
    key = "\x1f".join((user_id, item_id, event_type, repr(value), timestamp.isoformat(),
                       session_id or ""))
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
    attributes: Attributes = Field(default_factory=dict)
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


#: Purposes a user consents to, each with its meaning in tailored: ``personalization``
#: (answers from their history, training on their events and labels, segments) and
#: ``analytics`` (their answers recorded in the served log, so experiments, CTR, the
#: dashboard and the bandit count them). A shop may record purposes of its own.
PERSONALIZATION, ANALYTICS = "personalization", "analytics"
CONSENT_PURPOSES = (PERSONALIZATION, ANALYTICS)
MAX_CONSENT_PURPOSES = 16
Purpose = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


def by_purpose(consent: Any) -> Any:
    """Consent by purpose: ``True``/``False`` is shorthand for every purpose tailored
    knows; anything else is returned as it is (a mapping, or what validation refuses).

    >>> by_purpose(False)
    {'personalization': False, 'analytics': False}
    """
    if isinstance(consent, bool):
        return dict.fromkeys(CONSENT_PURPOSES, consent)
    return consent


Consent = Annotated[dict[Purpose, bool], BeforeValidator(by_purpose),
                    Field(max_length=MAX_CONSENT_PURPOSES)]


class User(BaseModel):
    """Someone recommendations are made for, and what they consent to.

    ``consent`` maps a purpose to whether it is granted; a purpose not recorded is
    granted. Writing a user changes only the purposes it names, and every change is
    recorded with its time (``UserDirectory.consent_history``).

    Examples
    --------
    >>> User(user_id="u1", consent=False).consent
    {'personalization': False, 'analytics': False}
    >>> User(user_id="u1", consent={"analytics": False}).allows("personalization")
    True
    """

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    attributes: Attributes = Field(default_factory=dict)
    consent: Consent = Field(default_factory=dict)

    def allows(self, purpose: str) -> bool:
        return self.consent.get(purpose, True)

    @field_validator("attributes")
    @classmethod
    def _finite_attributes(cls, attributes: dict[str, Scalar]) -> dict[str, Scalar]:
        _check_finite(attributes)
        return attributes


class EventWeights(BaseModel):
    """How much each event type says about a user's interest in an item, and so which
    event types there are.

    ``"value"`` means the event's own value is its weight (a rating of 4 weighs 4). The
    event types tailored accepts are the six known ones (:data:`KNOWN_EVENT_TYPES`) and
    the keys of ``custom``: configured as ``[event_weights.custom]`` in ``tailored.toml``
    (``wishlist = 3.0``) or ``TAILORED_EVENT_WEIGHTS__CUSTOM='{"wishlist": 3.0}'``. The
    API and imports refuse any other type (:meth:`check_event_type`), so ``default`` only
    weighs events of other types that are stored already (written before that check, or
    straight to the store, or whose custom type was removed from the settings since). A
    type that weighs 0 (``impression`` by default: the item was shown, nothing more)
    never enters a training matrix or a user's history: it is neither interest nor "seen".

    Examples
    --------
    >>> weights = EventWeights(custom={"wishlist": 3.0})
    >>> weights.for_type("purchase"), weights.for_type("impression")
    (8.0, 0.0)
    >>> sorted(weights.zero_weight_types())
    ['impression']
    >>> weights.event_types()
    ('view', 'click', 'add_to_cart', 'purchase', 'rating', 'impression', 'wishlist')
    >>> weights.check_event_type("purchse")
    Traceback (most recent call last):
    ...
    ValueError: unknown event type 'purchse' (did you mean 'purchase'?); ...
    """

    model_config = ConfigDict(extra="forbid")

    view: float | Literal["value"] = 1.0
    click: float | Literal["value"] = 2.0
    add_to_cart: float | Literal["value"] = 4.0
    purchase: float | Literal["value"] = 8.0
    rating: float | Literal["value"] = "value"
    impression: float | Literal["value"] = 0.0
    custom: dict[EventType, float | Literal["value"]] = Field(default_factory=dict)
    default: float = 1.0

    def for_type(self, event_type: str) -> float | Literal["value"]:
        """The weight of one event type (``default`` for a type neither known nor custom)."""
        if event_type in self.custom:
            return self.custom[event_type]
        if event_type in KNOWN_EVENT_TYPES:
            weight: float | Literal["value"] = getattr(self, event_type)
            return weight
        return self.default

    def event_types(self) -> tuple[str, ...]:
        """The event types accepted: the known ones, then the custom ones."""
        return KNOWN_EVENT_TYPES + tuple(t for t in self.custom if t not in KNOWN_EVENT_TYPES)

    def check_event_type(self, event_type: str) -> None:
        """Raise ``ValueError`` naming the accepted types if ``event_type`` is not one.

        The one check of event types, for events over the API and in imported files.
        """
        known = self.event_types()
        if event_type in known:
            return
        close = difflib.get_close_matches(event_type, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"unknown event type {event_type!r}{hint}; the event types are "
            f"{', '.join(known)}; to add one, give it a weight in event_weights.custom: "
            f"{event_type} = 1.0 under [event_weights.custom] in tailored.toml, or "
            f"TAILORED_EVENT_WEIGHTS__CUSTOM='{{\"{event_type}\": 1.0}}'")

    def zero_weight_types(self) -> frozenset[str]:
        """Event types that weigh exactly 0 (exposure, not interest); the default weight
        applies to unlisted types, so it is not covered here."""
        named = {t: self.for_type(t) for t in (*KNOWN_EVENT_TYPES, *self.custom)}
        return frozenset(t for t, weight in named.items() if weight == 0)
