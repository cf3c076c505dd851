"""From a raw row, as a file or a request holds it, to the input of ``Event``, ``Item`` or ``User``.

A raw row maps column names to values; ``None`` means missing (an empty CSV cell, a JSON
``null``), so the record's default applies. Columns the record does not know are kept,
not dropped: an event's go into ``context``, an item's or a user's into ``attributes``.
Delimited text files carry every value as a string, so there numeric-looking extra
values become numbers (``price`` "12.5" -> 12.5) while ids stay strings ("007").

Each ``*_input`` function returns the keyword arguments for the record and the problems
found on the way (field, reason); pydantic then checks everything else.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, Literal, get_args

from tailored.schema import Event, Item, User

Kind = Literal["events", "items", "users"]
KINDS: tuple[str, ...] = get_args(Kind)

#: Columns a file of each kind must have. Events need a time so that a re-imported file
#: derives the same event ids (and is stored once) and so that temporal splits are honest.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "events": ("user_id", "item_id", "timestamp"),
    "items": ("item_id",),
    "users": ("user_id",),
}

#: The record each kind of file becomes.
RECORD_TYPES: dict[str, type[Event] | type[Item] | type[User]] = {
    "events": Event, "items": Item, "users": User,
}

Problems = list[tuple[str, str]]

_EVENT_FIELDS = frozenset(Event.model_fields)
_ITEM_FIELDS = frozenset(Item.model_fields)
_USER_FIELDS = frozenset(User.model_fields)
_EVENT_IDS = ("event_id", "user_id", "item_id", "session_id")

# Leading zeros mark codes (zip "02139", id "007"), not numbers, so they stay text.
_INTEGER = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_NUMBER = re.compile(r"[-+]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_EPOCH = re.compile(r"[-+]?[0-9]+(?:\.[0-9]*)?")

TIME_HINT = "use ISO-8601 (2024-05-01T12:00:00Z) or Unix seconds (1714564800)"


def check_kind(kind: str) -> Kind:
    """Return ``kind`` if it is one tailored imports, else raise ``ValueError``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    return kind  # type: ignore[return-value]  # checked just above


def scalar_from_text(text: str) -> str | int | float:
    """A number if ``text`` reads as one (and is not a zero-padded code), else ``text``.

    Examples
    --------
    >>> scalar_from_text("12.5"), scalar_from_text("3"), scalar_from_text("007")
    (12.5, 3, '007')
    """
    if _INTEGER.fullmatch(text):
        return int(text)
    if _NUMBER.fullmatch(text):
        number = float(text)
        return number if math.isfinite(number) else text
    return text


def to_datetime(value: Any) -> Any:
    """Turn Unix seconds (number or numeric text) or ISO-8601 text into a ``datetime``.

    Other values pass through for pydantic to judge. Raises ``ValueError`` with a message
    fit for a person when the value cannot be a time.

    Examples
    --------
    >>> to_datetime(1714564800).isoformat()
    '2024-05-01T12:00:00+00:00'
    >>> to_datetime("2024-05-01T12:00:00Z").isoformat()
    '2024-05-01T12:00:00+00:00'
    """
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a date-time; {TIME_HINT}")
    if isinstance(value, int | float):
        return _from_unix_seconds(value)
    if isinstance(value, str):
        text = value.strip()
        if _EPOCH.fullmatch(text):
            return _from_unix_seconds(float(text) if "." in text else int(text))
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{_clip(value)} is not a date-time; {TIME_HINT}") from None
    return value


def _from_unix_seconds(seconds: float) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(
            f"{seconds!r} is out of range for Unix seconds; if it is in milliseconds, "
            "divide it by 1000") from None


def _clip(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _text_id(value: Any) -> Any:
    # JSON and Parquet often carry numeric ids; tailored's ids are text.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # an int column with gaps, widened to float by a writer
    return value


def _as_object(field: str, value: Any, problems: Problems) -> dict[str, Any] | None:
    """A JSON object given as a mapping, as JSON text, or as Parquet map pairs."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            problems.append((field, f"{_clip(value)} is not a JSON object such as "
                                    '{"device": "mobile"}'))
            return None
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        return dict(value)
    problems.append((field, f"should be a JSON object such as {{\"device\": \"mobile\"}}, "
                            f"got {_clip(value)}"))
    return None


def _split(raw: Mapping[str, Any], known: frozenset[str], text: bool,
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Known fields and extra columns of a raw row, leaving out missing values."""
    data: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None:
            continue
        if key in known:
            data[key] = value
        elif text and isinstance(value, str):
            extras[key] = scalar_from_text(value)
        else:
            extras[key] = value
    return data, extras


def _merge_extras(data: dict[str, Any], field: str, extras: dict[str, Any],
                  problems: Problems) -> None:
    given = data.pop(field, None)
    merged = dict(extras)
    if given is not None:
        explicit = _as_object(field, given, problems)
        if explicit is not None:
            merged.update(explicit)  # an explicit object wins over loose columns
    if merged:
        data[field] = merged


def _convert_time(data: dict[str, Any], field: str, problems: Problems) -> None:
    if field in data:
        try:
            data[field] = to_datetime(data[field])
        except ValueError as error:
            del data[field]
            problems.append((field, str(error)))


def event_input(raw: Mapping[str, Any], *, text: bool = False,
                require_timestamp: bool = False) -> tuple[dict[str, Any], Problems]:
    """Keyword arguments for :class:`~tailored.schema.Event` from a raw row.

    Examples
    --------
    >>> data, problems = event_input(
    ...     {"user_id": 7, "item_id": "i1", "timestamp": "1714564800", "device": "mobile"})
    >>> data["user_id"], data["context"], problems
    ('7', {'device': 'mobile'}, [])
    """
    data, extras = _split(raw, _EVENT_FIELDS, text)
    problems: Problems = []
    for field in _EVENT_IDS:
        if field in data:
            data[field] = _text_id(data[field])
    if "timestamp" in data:
        _convert_time(data, "timestamp", problems)
    elif require_timestamp:
        problems.append(("timestamp", f"is missing; every event in a file needs a time: "
                                      f"{TIME_HINT}"))
    if extras or "context" in data:
        _merge_extras(data, "context", extras, problems)
    return data, problems


def item_input(raw: Mapping[str, Any], *, text: bool = False,
               ) -> tuple[dict[str, Any], Problems]:
    """Keyword arguments for :class:`~tailored.schema.Item` from a raw row.

    Examples
    --------
    >>> data, _ = item_input({"item_id": "i1", "categories": "shoes|sale", "price": "12.5"},
    ...                      text=True)
    >>> data["attributes"]
    {'price': 12.5}
    """
    data, extras = _split(raw, _ITEM_FIELDS, text)
    problems: Problems = []
    if "item_id" in data:
        data["item_id"] = _text_id(data["item_id"])
    _convert_time(data, "created_at", problems)
    if extras or "attributes" in data:
        _merge_extras(data, "attributes", extras, problems)
    return data, problems


def user_input(raw: Mapping[str, Any], *, text: bool = False,
               ) -> tuple[dict[str, Any], Problems]:
    """Keyword arguments for :class:`~tailored.schema.User` from a raw row.

    Examples
    --------
    >>> data, _ = user_input({"user_id": "u1", "age_band": "25-34", "zip": "02139"},
    ...                      text=True)
    >>> data["attributes"]
    {'age_band': '25-34', 'zip': '02139'}
    """
    data, extras = _split(raw, _USER_FIELDS, text)
    problems: Problems = []
    if "user_id" in data:
        data["user_id"] = _text_id(data["user_id"])
    if extras or "attributes" in data:
        _merge_extras(data, "attributes", extras, problems)
    return data, problems
