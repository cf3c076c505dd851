"""From a raw row, as a file or a request holds it, to the input of ``Event``, ``Item`` or ``User``.

A raw row maps column names to values; ``None`` means missing (an empty CSV cell, a JSON
``null``), so the record's default applies. Columns the record does not know are kept,
not dropped: an event's go into ``context``, an item's or a user's into ``attributes``.

Delimited text files carry every value as text. There an extra column whose values all
read as numbers holds numbers (``price`` "12.5" -> 12.5, ``hour`` "14" -> 14); a column
with any other value, such as a zero-padded code ("02139", "007"), stays text, so one
column never mixes the two (:func:`numeric_columns` decides, per chunk of rows). An
event's ``value`` given as text ("4.5") becomes the number it spells here: ``Event``
itself takes only numbers, as the REST API does.

Each ``*_input`` function returns the keyword arguments for the record and the problems
found on the way (field, reason); pydantic then checks everything else.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, get_args

from tailored.schema import CONSENT_PURPOSES, Event, Item, User

Kind = Literal["events", "items", "users"]
KINDS: tuple[str, ...] = get_args(Kind)

#: Columns a file of each kind must have. Events need a time so that a re-imported file
#: derives the same event ids (and is stored once) and so that temporal splits are honest.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "events": ("user_id", "item_id", "timestamp"),
    "items": ("item_id",),
    "users": ("user_id",),
}

Problems = list[tuple[str, str]]

_EVENT_FIELDS = frozenset(Event.model_fields)
_ITEM_FIELDS = frozenset(Item.model_fields)
_USER_FIELDS = frozenset(User.model_fields)
_KNOWN_FIELDS = {"events": _EVENT_FIELDS, "items": _ITEM_FIELDS, "users": _USER_FIELDS}
_EVENT_IDS = ("event_id", "user_id", "item_id", "session_id")

# Leading zeros mark codes (zip "02139", id "007"), not numbers, so they stay text.
_INTEGER = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_NUMBER = re.compile(r"[-+]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_NUMBER_STARTS = frozenset("+-.0123456789")
_EPOCH = re.compile(r"[-+]?[0-9]+(?:\.[0-9]*)?")

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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
    if not text or text[0] not in _NUMBER_STARTS:  # most text is not a number: skip regexes
        return text
    if text.isdigit() and text.isascii():  # the common case, without a regex
        return int(text) if text[0] != "0" or len(text) == 1 else text
    if _INTEGER.fullmatch(text):
        return int(text)
    if _NUMBER.fullmatch(text):
        number = float(text)
        return number if math.isfinite(number) else text
    return text


def numeric_columns(rows: Sequence[Mapping[str, Any]], kind: str) -> frozenset[str]:
    """The extra columns of text rows whose every value reads as a number.

    Examples
    --------
    >>> rows = [{"item_id": "1", "price": "12.5", "zip": "02139"},
    ...         {"item_id": "2", "price": "30", "zip": "75001"}]
    >>> sorted(numeric_columns(rows, "items"))
    ['price']
    """
    extra = set().union(*rows) - _KNOWN_FIELDS[kind]  # a row's keys are its columns
    return frozenset(
        key for key in extra
        if all(_reads_as_number(row.get(key)) for row in rows)  # stops at the first word
    )


def _reads_as_number(value: Any) -> bool:
    return value is None or type(value) is not str or type(scalar_from_text(value)) is not str


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
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit() and text.isascii():  # the common cases first, without a regex
            return _from_unix_seconds(int(text))
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
        if _EPOCH.fullmatch(text):
            return _from_unix_seconds(float(text) if "." in text else int(text))
        raise ValueError(f"{_clip(value)} is not a date-time; {TIME_HINT}")
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a date-time; {TIME_HINT}")
    if isinstance(value, int | float):
        return _from_unix_seconds(value)
    return value


def _number_from_text(text: str) -> int | float | None:
    """The number ``text`` spells (zero-padded too: a value is no code), or None."""
    text = text.strip()
    if (text.isascii() and text.isdigit()) or _INTEGER.fullmatch(text):
        return int(text)
    if _NUMBER.fullmatch(text):
        return float(text)
    return None


def _from_unix_seconds(seconds: float) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except OSError:  # times before 1970 on Windows
        return _UNIX_EPOCH + timedelta(seconds=seconds)
    except (OverflowError, ValueError):
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


_TRUE, _FALSE = {"true", "yes", "1", "y", "t"}, {"false", "no", "0", "n", "f"}


def _gather_consent(data: dict[str, Any], extras: dict[str, Any], problems: Problems) -> None:
    """``consent`` as text (a yes/no for every purpose, or a JSON object) and the
    ``consent_<purpose>`` columns into one mapping of purposes (the schema checks it)."""
    consent = data.get("consent")
    if isinstance(consent, str):
        word = consent.strip().lower()
        consent = ((word in _TRUE) if word in _TRUE | _FALSE
                   else _as_object("consent", consent, problems))
    if isinstance(consent, bool):
        consent = dict.fromkeys(CONSENT_PURPOSES, consent)
    by_column = {key[len("consent_"):]: extras.pop(key) for key in list(extras)
                 if key.startswith("consent_")}
    if by_column:
        consent = {**(consent if isinstance(consent, dict) else {}), **by_column}
    if consent is None:
        data.pop("consent", None)  # unreadable: its problem is noted already
    else:
        data["consent"] = consent


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


def _split(raw: Mapping[str, Any], known: frozenset[str], numeric: Collection[str],
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Known fields and extra columns of a raw row, leaving out missing values."""
    data: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None:
            continue
        if key in known:
            data[key] = value
        elif key in numeric and type(value) is str:
            extras[key] = scalar_from_text(value)
        else:
            extras[key] = value
    return data, extras


def _merge_extras(data: dict[str, Any], field: str, extras: dict[str, Any],
                  problems: Problems) -> None:
    given = data.pop(field, None)
    if given is not None:
        explicit = _as_object(field, given, problems)
        if explicit is not None:
            extras.update(explicit)  # an explicit object wins over loose columns
    if extras:
        data[field] = extras  # a fresh dict per row, so no copy


def _convert_time(data: dict[str, Any], field: str, problems: Problems) -> None:
    if field in data:
        try:
            data[field] = to_datetime(data[field])
        except ValueError as error:
            del data[field]
            problems.append((field, str(error)))


def event_input(raw: Mapping[str, Any], *, numeric: Collection[str] = (),
                require_timestamp: bool = False) -> tuple[dict[str, Any], Problems]:
    """Keyword arguments for :class:`~tailored.schema.Event` from a raw row.

    ``numeric`` names the extra text columns to read as numbers (see
    :func:`numeric_columns`); ``require_timestamp`` reports a missing time as a problem
    instead of letting it default to now.

    Examples
    --------
    >>> data, problems = event_input(
    ...     {"user_id": 7, "item_id": "i1", "timestamp": "1714564800", "device": "mobile",
    ...      "hour": "14"}, numeric={"hour"})
    >>> data["user_id"], data["context"], problems
    ('7', {'device': 'mobile', 'hour': 14}, [])
    """
    # The hot path of every import: one loop, type() checks, few calls.
    data, extras = _split(raw, _EVENT_FIELDS, numeric)
    problems: Problems = []
    for field in _EVENT_IDS:
        value = data.get(field)
        if value is not None and type(value) is not str:
            data[field] = _text_id(value)
    value = data.get("value")
    if type(value) is str:  # a CSV's "4.5"; over the API a value must be a JSON number
        number = _number_from_text(value)
        if number is None:
            del data["value"]
            problems.append(("value", f"{_clip(value)} is not a number; write the value "
                                      "as a number such as 4.5, or leave it empty"))
        else:
            data["value"] = number
    timestamp = data.get("timestamp")
    if timestamp is not None:
        if type(timestamp) is not datetime:
            try:
                data["timestamp"] = to_datetime(timestamp)
            except ValueError as error:
                del data["timestamp"]
                problems.append(("timestamp", str(error)))
    elif require_timestamp:
        problems.append(("timestamp", f"is missing; every event in a file needs a time: "
                                      f"{TIME_HINT}"))
    if extras or "context" in data:
        _merge_extras(data, "context", extras, problems)
    return data, problems


def item_input(raw: Mapping[str, Any], *, numeric: Collection[str] = (),
               ) -> tuple[dict[str, Any], Problems]:
    """Keyword arguments for :class:`~tailored.schema.Item` from a raw row.

    Examples
    --------
    >>> data, _ = item_input({"item_id": "i1", "categories": "shoes|sale", "price": "12.5"},
    ...                      numeric={"price"})
    >>> data["attributes"]
    {'price': 12.5}
    """
    data, extras = _split(raw, _ITEM_FIELDS, numeric)
    problems: Problems = []
    if "item_id" in data:
        data["item_id"] = _text_id(data["item_id"])
    _convert_time(data, "created_at", problems)
    if extras or "attributes" in data:
        _merge_extras(data, "attributes", extras, problems)
    return data, problems


def user_input(raw: Mapping[str, Any], *, numeric: Collection[str] = (),
               ) -> tuple[dict[str, Any], Problems]:
    """Keyword arguments for :class:`~tailored.schema.User` from a raw row.

    Examples
    --------
    Consent comes as one ``consent`` column (true/false for every purpose, or a JSON
    object by purpose) and as a column per purpose, ``consent_<purpose>``:

    >>> data, _ = user_input({"user_id": "u1", "age_band": "25-34", "zip": "02139",
    ...                       "consent": "yes", "consent_analytics": "false"})
    >>> data["attributes"], data["consent"]
    ({'age_band': '25-34', 'zip': '02139'}, {'personalization': True, 'analytics': 'false'})
    """
    data, extras = _split(raw, _USER_FIELDS, numeric)
    problems: Problems = []
    if "user_id" in data:
        data["user_id"] = _text_id(data["user_id"])
    _gather_consent(data, extras, problems)
    if extras or "attributes" in data:
        _merge_extras(data, "attributes", extras, problems)
    return data, problems
