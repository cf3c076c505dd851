"""Validation: raw rows in, ``Event`` / ``Item`` / ``User`` records and ``Reject`` reasons out.

Every record tailored stores passed through here; a row that fails is never dropped in
silence but comes back as a :class:`Reject` naming the row, the field and the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

from pydantic import BaseModel, ValidationError

from tailored.ingest.records import (
    TIME_HINT,
    Problems,
    check_kind,
    event_input,
    item_input,
    numeric_columns,
    user_input,
)
from tailored.schema import Event, EventWeights, Item, User

Record = Event | Item | User
_Model = TypeVar("_Model", bound=BaseModel)

_OBJECT_FIELDS = ("context", "attributes")
_TIME_FIELDS = ("timestamp", "created_at")
#: Time errors that are about the bounds, not the spelling: no hint on how to write one.
_TIME_BOUNDS = ("timestamp_too_early", "timestamp_in_future")
_PATTERN_REASONS = {
    "event_type": "should be lower-case letters, digits and '_', starting with a letter and "
                  "at most 32 long, such as 'add_to_cart'",
    "id": "must not contain control characters (tabs, line breaks, NUL)",
}
_SCALAR_ONLY = ("must be text, a number, true/false or null "
                "(nested objects and lists are not allowed)")
_EXTRA_FIELD = ("is not a field of an event (" + ", ".join(Event.model_fields)
                + "); put other data in 'context'")


@dataclass(frozen=True)
class Reject:
    """A row that failed validation, and why.

    Attributes
    ----------
    file : str or None
        The file the row came from (``None`` for a request body).
    row : int
        1-based position a person finds the row at: the line number in CSV and JSON
        Lines files (the header is line 1), the row number in Parquet, the position in a
        request body.
    field : str
        The field that failed, as pydantic locates it (``"value"``, ``"context.device"``);
        several fields are joined with ", ".
    reason : str
        A short message for a person.
    raw : Any
        The row as read, so it can be fixed and imported again.
    """

    file: str | None
    row: int
    field: str
    reason: str
    raw: Any

    def __str__(self) -> str:
        where = f"{self.file}:{self.row}" if self.file else f"row {self.row}"
        if ", " in self.field:  # several fields: the reason names each one
            return f"{where}: {self.reason}"
        return f"{where}: field '{self.field}': {self.reason}"


def _describe(error: ValidationError) -> Problems:
    """One (field, reason) per failing field, in pydantic's order."""
    found: dict[str, str] = {}
    for detail in error.errors(include_url=False, include_input=False):
        loc = detail["loc"]
        if len(loc) > 2 and loc[0] in _OBJECT_FIELDS:
            # A union of scalar types reports one error per member; say it once.
            field, reason = f"{loc[0]}.{loc[1]}", _SCALAR_ONLY
        else:
            field = ".".join(str(part) for part in loc) or "(row)"
            reason = detail["msg"]
            if detail["type"] == "string_pattern_mismatch":  # a regex says little to a person
                reason = _PATTERN_REASONS.get(field, _PATTERN_REASONS["id"])
            elif detail["type"] == "extra_forbidden":  # JSON events only: rows keep extras
                reason = _EXTRA_FIELD
            elif field in _TIME_FIELDS and detail["type"] not in _TIME_BOUNDS:
                reason = f"{reason}; {TIME_HINT}"
        found.setdefault(field, reason)
    return list(found.items())


def _reject(file: str | None, row: int, problems: Problems, raw: Any) -> Reject:
    if len(problems) == 1:
        (field, reason), = problems
        return Reject(file, row, field, reason, raw)
    return Reject(file, row, ", ".join(field for field, _ in problems),
                  "; ".join(f"field '{field}': {reason}" for field, reason in problems), raw)


def _validate(rows: Iterable[tuple[int, Any]], model: type[_Model], kind: str,
              file: str | None, text: bool, require_timestamp: bool,
              event_weights: EventWeights | None = None,
              ) -> tuple[list[_Model], list[Reject]]:
    records: list[_Model] = []
    rejects: list[Reject] = []
    weights = event_weights or EventWeights()
    event_types = frozenset(weights.event_types())
    order = {name: position for position, name in enumerate(model.model_fields)}
    numeric: frozenset[str] = frozenset()
    if text:
        rows = list(rows)
        numeric = numeric_columns([raw for _, raw in rows if isinstance(raw, Mapping)], kind)
    for row, raw in rows:
        if type(raw) is not dict and not isinstance(raw, Mapping):  # type(): the fast path
            rejects.append(Reject(file, row, "(row)",
                                  f"should be an object of fields, got {type(raw).__name__}",
                                  raw))
            continue
        if kind == "events":
            data, problems = event_input(raw, numeric=numeric,
                                         require_timestamp=require_timestamp)
        elif kind == "items":
            data, problems = item_input(raw, numeric=numeric)
        else:
            data, problems = user_input(raw, numeric=numeric)
        try:
            record = model.model_validate(data)
        except ValidationError as error:
            named = {field for field, _ in problems}  # once per field: the first reason
            problems.extend(p for p in _describe(error) if p[0] not in named)
            if named:  # in the record's field order, as pydantic names them
                problems.sort(key=lambda p: order.get(p[0].split(".")[0], -1))
        else:
            if isinstance(record, Event) and record.event_type not in event_types:
                try:
                    weights.check_event_type(record.event_type)
                except ValueError as error:
                    problems.append(("event_type", str(error)))
        if problems:
            rejects.append(_reject(file, row, problems, raw))
        else:
            records.append(record)
    return records, rejects


@overload
def validate_records(rows: Iterable[tuple[int, Any]], kind: Literal["events"], *,
                     file: str | None = ..., text: bool = ..., require_timestamp: bool = ...,
                     event_weights: EventWeights | None = ...,
                     ) -> tuple[list[Event], list[Reject]]: ...
@overload
def validate_records(rows: Iterable[tuple[int, Any]], kind: Literal["items"], *,
                     file: str | None = ..., text: bool = ..., require_timestamp: bool = ...,
                     event_weights: EventWeights | None = ...,
                     ) -> tuple[list[Item], list[Reject]]: ...
@overload
def validate_records(rows: Iterable[tuple[int, Any]], kind: Literal["users"], *,
                     file: str | None = ..., text: bool = ..., require_timestamp: bool = ...,
                     event_weights: EventWeights | None = ...,
                     ) -> tuple[list[User], list[Reject]]: ...
@overload
def validate_records(rows: Iterable[tuple[int, Any]], kind: str, *,
                     file: str | None = ..., text: bool = ..., require_timestamp: bool = ...,
                     event_weights: EventWeights | None = ...,
                     ) -> tuple[list[Event] | list[Item] | list[User], list[Reject]]: ...
def validate_records(rows: Iterable[tuple[int, Any]], kind: str, *, file: str | None = None,
                     text: bool = False, require_timestamp: bool = False,
                     event_weights: EventWeights | None = None,
                     ) -> tuple[list[Event] | list[Item] | list[User], list[Reject]]:
    """Validate numbered raw rows (a :class:`~tailored.ingest.readers.RecordChunk` is one).

    Parameters
    ----------
    rows : iterable of (int, mapping)
        ``(row_number, raw_row)`` pairs; ``None`` values mean missing.
    kind : {"events", "items", "users"}
        What the rows describe.
    file : str, optional
        Named in each :class:`Reject`.
    text : bool, default False
        The values come from a delimited text file, so extra columns whose values all
        read as numbers hold numbers in ``context`` / ``attributes``.
    require_timestamp : bool, default False
        Reject events without a time instead of stamping them with the current time.
    event_weights : EventWeights, optional
        Names the event types accepted (:meth:`~tailored.schema.EventWeights.event_types`,
        the ``event_weights`` setting); an event of another type is rejected. Default:
        ``EventWeights()``, the six known types.

    Returns
    -------
    records : list of Event, Item or User
        The rows that passed, in order.
    rejects : list of Reject
        The rows that failed, in order.

    Examples
    --------
    >>> items, rejects = validate_records(
    ...     [(2, {"item_id": "i1", "categories": "a|b"}), (3, {"item_id": None})], "items",
    ...     file="items.csv")
    >>> items[0].categories
    ['a', 'b']
    >>> print(rejects[0])
    items.csv:3: field 'item_id': Field required
    """
    kind = check_kind(kind)
    if kind == "events":
        return _validate(rows, Event, kind, file, text, require_timestamp, event_weights)
    if kind == "items":
        return _validate(rows, Item, kind, file, text, require_timestamp)
    return _validate(rows, User, kind, file, text, require_timestamp)


def parse_events(rows: Iterable[Any], *, event_weights: EventWeights | None = None,
                 ) -> tuple[list[Event], list[Reject]]:
    """Validate events given as JSON-like objects, e.g. the body of an HTTP request.

    Rows are numbered from 1 in the rejects. Fields other than an event's own go into
    its ``context``; a missing ``timestamp`` means now. ``event_weights`` names the event
    types accepted (default: the six known ones).

    Examples
    --------
    >>> events, rejects = parse_events([
    ...     {"user_id": "u1", "item_id": "i1", "event_type": "click",
    ...      "timestamp": 1714564800, "device": "mobile"},
    ...     {"user_id": "u2", "item_id": "i2", "value": "abc"},
    ... ])
    >>> [(e.user_id, e.timestamp.isoformat(), e.context) for e in events]
    [('u1', '2024-05-01T12:00:00+00:00', {'device': 'mobile'})]
    >>> print(rejects[0])
    row 2: field 'value': 'abc' is not a number; write the value as a number such as 4.5, ...
    """
    return _validate(enumerate(rows, 1), Event, "events", None, False, False, event_weights)


def validate_json_events(objects: Iterable[Any], *, event_weights: EventWeights | None = None,
                         ) -> tuple[list[Event], list[Reject]]:
    """Validate events parsed from JSON exactly as ``POST /events`` does.

    Stricter than :func:`parse_events`, which reads rows of a file: an event holds the
    fields of :class:`~tailored.schema.Event` only (any other field is refused, not moved
    into ``context``), ``value`` is a JSON number, and ``event_type`` is one that
    ``event_weights`` names (default: the six known ones). Rows are numbered from 1.

    Examples
    --------
    >>> events, rejects = validate_json_events([
    ...     {"event_id": "e1", "user_id": "u1", "item_id": "i1", "event_type": "click"},
    ...     {"user_id": "u2", "item_id": "i2", "value": "4.5", "device": "mobile"},
    ... ])
    >>> [e.event_id for e in events], [(r.row, r.field) for r in rejects]
    (['e1'], [(2, 'value, device')])
    """
    weights = event_weights or EventWeights()
    event_types = frozenset(weights.event_types())
    events: list[Event] = []
    rejects: list[Reject] = []
    for row, raw in enumerate(objects, 1):
        if not isinstance(raw, dict):
            rejects.append(Reject(None, row, "(row)", "should be a JSON object of fields, got "
                                  f"{type(raw).__name__}", raw))
            continue
        try:
            event = Event.model_validate(raw)
        except ValidationError as error:
            rejects.append(_reject(None, row, _describe(error), raw))
            continue
        if event.event_type not in event_types:
            try:
                weights.check_event_type(event.event_type)
            except ValueError as error:
                rejects.append(Reject(None, row, "event_type", str(error), raw))
                continue
        events.append(event)
    return events, rejects


def parse_items(rows: Iterable[Any]) -> tuple[list[Item], list[Reject]]:
    """Validate items given as JSON-like objects; other fields go into ``attributes``.

    Examples
    --------
    >>> items, rejects = parse_items([{"item_id": "i1", "title": "Shoe", "price": 12.5}])
    >>> items[0].attributes, rejects
    ({'price': 12.5}, [])
    """
    return _validate(enumerate(rows, 1), Item, "items", None, False, False)


def parse_users(rows: Iterable[Any]) -> tuple[list[User], list[Reject]]:
    """Validate users given as JSON-like objects; other fields go into ``attributes``.

    Examples
    --------
    >>> users, rejects = parse_users([{"user_id": "u1", "age_band": "25-34"}, {"age": 3}])
    >>> users[0].attributes, [str(r) for r in rejects]
    ({'age_band': '25-34'}, ["row 2: field 'user_id': Field required"])
    """
    return _validate(enumerate(rows, 1), User, "users", None, False, False)
