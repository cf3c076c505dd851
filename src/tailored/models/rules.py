"""Business rules on top of any model: pin, boost, bury and exclude items per user.

A rule set is declared in TOML (or JSON, or as a list of dicts)::

    [[rules]]
    name = "berlin promo"
    when = 'user.location == "Berlin"'
    pin = ["promo-berlin"]                      # these first, in this order, if they exist

    [[rules]]
    name = "shoe lovers"
    when = 'recent("view", "shoes", days=7) > 3'
    boost = { where = '"shoes" in categories', factor = 1.5 }

    [[rules]]
    name = "light pages on phones"
    when = 'context.device == "mobile"'
    bury = { where = "price > 500", factor = 0.5 }   # factor defaults to 0.5
    exclude = { where = 'category == "furniture"' }

Each rule has an optional ``name``, an optional condition ``when`` (no condition:
always) and at least one action. Conditions are :mod:`tailored.expressions` over

- ``user.<attribute>``: the user's attributes: the ``users`` table the model was
  trained with, overridden by the query's ``profiles`` row; ``user.id`` is the id;
- ``context.<key>``: the query's context (device, hour, page, ...);
- ``recent(event, category, days)``: how many events the user has, of type ``event``
  (any if null or omitted), on items of ``category`` (any if omitted), in the last
  ``days`` days (all history if omitted), e.g. ``recent("purchase") == 0``,
  ``recent(category="Drama", days=30) >= 5``. The events are the query's when it
  brings events, else the training events of a known user. "Now" is the latest
  training event, or the user's own latest event if later; events without a time
  count as recent.

Actions read item attributes (``price``, or ``item.price``; ``item_id``;
``categories`` as a list, so ``"Drama" in categories``) and may compare them with
``user.*``/``context.*``:

- ``pin``: item ids put first, before any other item, earlier rules' pins first;
- ``boost``/``bury``: scores of the matching items are scaled by ``factor`` (a
  positive score is multiplied by it, a negative one divided, so a factor above 1
  always raises an item and below 1 always lowers it); ``bury`` needs a factor
  below 1;
- ``exclude``: the matching items are never recommended (score ``-inf``); an
  exclusion beats a pin.

Rules are checked when they are loaded: an unknown key, a bad factor, or an
expression that does not parse or reads a name it cannot see is refused with the
rule's number (1-based) and name, and the column of the problem.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field, ValidationError, field_validator, model_validator

from tailored.dataset import Dataset
from tailored.errors import InvalidDataError
from tailored.expressions import (
    Call,
    Expression,
    ExpressionError,
    Literal,
    Name,
    Signature,
    normalise,
    parse,
)

from .base import ModelConfig, Reason, Recommender, ScoringBatch, Users, model_class

#: The behaviour function conditions may call.
RECENT = Signature("recent", ("event", "category", "days"), 0,
                   help="events of a type, on a category, in the last days")
_RULE_KEYS = ("name", "when", "pin", "boost", "bury", "exclude")
_ACTION_KEYS = {"boost": ("where", "factor"), "bury": ("where", "factor"),
                "exclude": ("where",)}
_BURY_FACTOR = 0.5
_SECONDS_PER_DAY = 86_400.0
_SEPARATOR = "|"

# ---- rules --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemAction:
    """Items matching ``where`` get their scores scaled by ``factor`` (or excluded)."""

    where: Expression
    factor: float = 1.0

    @cached_property
    def reads_user(self) -> bool:
        """Whether the item expression also reads ``user.*`` or ``context.*``."""
        return any(name.split(".")[0] in ("user", "context") for name in self.where.names)


@dataclass(frozen=True)
class Rule:
    """One rule: a condition on the user and what to do with the items."""

    name: str
    when: Expression | None = None
    pin: tuple[str, ...] = ()
    boost: ItemAction | None = None
    bury: ItemAction | None = None
    exclude: ItemAction | None = None

    def actions(self) -> Iterator[tuple[str, ItemAction]]:
        for kind in ("boost", "bury", "exclude"):
            action = getattr(self, kind)
            if action is not None:
                yield kind, action

    def to_spec(self) -> dict[str, Any]:
        """The rule as a plain dict (what ``RuleSet.from_spec`` reads)."""
        spec: dict[str, Any] = {"name": self.name}
        if self.when is not None:
            spec["when"] = self.when.text
        if self.pin:
            spec["pin"] = list(self.pin)
        for kind, action in self.actions():
            spec[kind] = {"where": action.where.text}
            if kind != "exclude":
                spec[kind]["factor"] = action.factor
        return spec


@dataclass(frozen=True)
class Behaviour:
    """A user's events: type, item categories and age in days (NaN: unknown, counts as new)."""

    event_types: np.ndarray
    categories: Sequence[tuple[str, ...]]
    age_days: np.ndarray

    def count(self, event: str | None = None, category: str | None = None,
              days: float | None = None) -> int:
        keep = np.ones(len(self.event_types), dtype=bool)
        if event is not None:
            keep &= self.event_types == event
        if days is not None:
            keep &= ~(self.age_days > days)  # NaN ages count as recent
        if category is None:
            return int(keep.sum())
        return sum(category in self.categories[int(position)]
                   for position in np.flatnonzero(keep))


@dataclass(frozen=True)
class UserFacts:
    """What conditions know about one user: attributes and recent behaviour."""

    user_id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    behaviour: Behaviour | None = None

    def recent(self, event: str | None = None, category: str | None = None,
               days: float | None = None) -> int:
        return 0 if self.behaviour is None else self.behaviour.count(event, category, days)


def _label(number: int, spec: Any) -> str:
    name = spec.get("name") if isinstance(spec, Mapping) else None
    return f"rule #{number}" + (f" ({name!r})" if isinstance(name, str) else "")


def _fail(label: str, where: str, problem: str | Exception) -> InvalidDataError:
    return InvalidDataError(f"{label}, {where}: {problem}")


def _expression(text: Any, label: str, where: str, *, condition: bool) -> Expression:
    if not isinstance(text, str):
        raise _fail(label, where, f"must be an expression in a string, got {text!r}")
    try:
        expression = parse(text, functions={"recent": RECENT} if condition else None)
        for node in expression.nodes():
            if isinstance(node, Name):
                _check_name(node, text, condition)
            elif isinstance(node, Call) and node.function == "recent":
                _check_recent(node, text)
    except ExpressionError as error:
        raise _fail(label, where, error) from None
    return expression


def _check_name(node: Name, text: str, condition: bool) -> None:
    head = node.path[0]
    if head in ("user", "context") and len(node.path) >= 2:
        return
    if not condition and ((len(node.path) == 1 and head not in ("user", "context", "item"))
                          or (head == "item" and len(node.path) == 2)):
        return
    hint = ("conditions see user.<attribute>, context.<key> and recent(...)" if condition
            else "item expressions see item attributes (price or item.price), "
                 "user.<attribute> and context.<key>")
    raise ExpressionError(f"unknown name {node.dotted!r}", text, node.position, hint)


def _check_recent(node: Call, text: str) -> None:
    arguments = dict(zip(RECENT.params, node.args, strict=False))
    arguments.update(node.keywords)
    for parameter, value in arguments.items():
        if not isinstance(value, Literal):
            raise ExpressionError(f"recent() takes a constant {parameter}", text,
                                  value.position)
        constant = value.value
        if parameter == "days":
            if constant is not None and not (isinstance(constant, int | float)
                                             and not isinstance(constant, bool)
                                             and constant > 0):
                raise ExpressionError("recent(days=...) must be a positive number", text,
                                      value.position)
        elif constant is not None and not isinstance(constant, str):
            raise ExpressionError(f"recent({parameter}=...) must be a string", text,
                                  value.position)


def _factor(value: Any, label: str, kind: str) -> float:
    if kind == "bury" and value is None:
        return _BURY_FACTOR
    if value is None:
        raise _fail(label, kind, "needs a factor, e.g. { where = \"...\", factor = 1.5 }")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
            value) or value <= 0:
        raise _fail(label, f"{kind}.factor", f"must be a positive number, got {value!r}")
    if kind == "bury" and value >= 1:
        raise _fail(label, "bury.factor", f"must be below 1 (a boost raises), got {value!r}")
    return float(value)


def _rule(spec: Any, number: int) -> Rule:
    label = _label(number, spec)
    if not isinstance(spec, Mapping):
        raise InvalidDataError(f"{label} must be a table of keys ({', '.join(_RULE_KEYS)}), "
                               f"got {spec!r}")
    for key in spec:
        if key not in _RULE_KEYS:
            raise _fail(label, repr(key), f"unknown key; a rule has {', '.join(_RULE_KEYS)}")
    name = spec.get("name", f"rule {number}")
    if not isinstance(name, str) or not name.strip():
        raise _fail(label, "name", f"must be non-empty text, got {name!r}")
    when = (None if spec.get("when") is None
            else _expression(spec["when"], label, "when", condition=True))
    pin = spec.get("pin", [])
    if isinstance(pin, str) or not isinstance(pin, Sequence) or not all(
            isinstance(item, str) and item for item in pin):
        raise _fail(label, "pin", f"must be a list of item ids, got {pin!r}")
    actions: dict[str, ItemAction] = {}
    for kind, keys in _ACTION_KEYS.items():
        if kind not in spec:
            continue
        body = spec[kind]
        if not isinstance(body, Mapping) or "where" not in body:
            raise _fail(label, kind, f"must be a table with 'where' (an item expression)"
                                     f"{' and factor' if 'factor' in keys else ''}, "
                                     f"got {body!r}")
        for key in body:
            if key not in keys:
                raise _fail(label, f"{kind}.{key}", f"unknown key; {kind} has "
                                                    f"{', '.join(keys)}")
        where = _expression(body["where"], label, f"{kind}.where", condition=False)
        factor = _factor(body.get("factor"), label, kind) if "factor" in keys else 1.0
        actions[kind] = ItemAction(where, factor)
    if not pin and not actions:
        raise _fail(label, "actions", "has none; give pin, boost, bury or exclude")
    return Rule(name, when, tuple(pin), **actions)


@dataclass(frozen=True)
class RuleSet:
    """An ordered list of rules, loaded and checked from TOML, JSON or plain dicts.

    Examples
    --------
    >>> rules = RuleSet.from_toml('''
    ... [[rules]]
    ... name = "berlin promo"
    ... when = 'user.location == "Berlin"'
    ... pin = ["promo-berlin"]
    ... ''')
    >>> [rule.name for rule in rules]
    ['berlin promo']
    >>> RuleSet.from_spec([{"name": "typo", "when": 'user.location = "Berlin"', "pin": ["x"]}])
    Traceback (most recent call last):
    ...
    tailored.errors.InvalidDataError: rule #1 ('typo'), when: unexpected token '=' at column 15
      user.location = "Berlin"
                    ^
    """

    rules: tuple[Rule, ...] = ()

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    # ---- loading ---------------------------------------------------------------------

    @classmethod
    def from_spec(cls, spec: RuleSet | Sequence[Mapping[str, Any]] | Mapping[str, Any]
                  ) -> RuleSet:
        """From a list of rule dicts, or a dict whose ``rules`` key holds that list."""
        if isinstance(spec, RuleSet):
            return spec
        if isinstance(spec, Mapping):
            unknown = [key for key in spec if key != "rules"]
            if unknown:
                raise InvalidDataError(f"unknown top-level key(s) {unknown} in the rule set; "
                                       "put rules in a list under 'rules'")
            spec = spec.get("rules", [])
        if isinstance(spec, str | bytes) or not isinstance(spec, Sequence):
            raise InvalidDataError(f"a rule set is a list of rules, got {type(spec).__name__}")
        return cls(tuple(_rule(rule, number) for number, rule in enumerate(spec, 1)))

    @classmethod
    def from_toml(cls, text: str) -> RuleSet:
        """From TOML text with a ``[[rules]]`` table per rule."""
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise InvalidDataError(f"the rules are not valid TOML: {error}") from None
        return cls.from_spec(document)

    @classmethod
    def from_json(cls, text: str) -> RuleSet:
        """From JSON text: a list of rules, or an object with a ``rules`` list."""
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidDataError(f"the rules are not valid JSON: {error}") from None
        return cls.from_spec(document)

    @classmethod
    def from_file(cls, path: str | Path) -> RuleSet:
        """From a ``.toml`` or ``.json`` file; errors name the file."""
        path = Path(path)
        readers = {".toml": cls.from_toml, ".json": cls.from_json}
        if path.suffix.lower() not in readers:
            raise InvalidDataError(f"{path}: rules are read from .toml or .json files")
        try:
            return readers[path.suffix.lower()](path.read_text(encoding="utf-8"))
        except InvalidDataError as error:
            raise InvalidDataError(f"{path}: {error}") from None

    def to_spec(self) -> list[dict[str, Any]]:
        """Plain dicts, for JSON configs (``from_spec(to_spec())`` gives the rules back)."""
        return [rule.to_spec() for rule in self.rules]

    # ---- what the rules read ---------------------------------------------------------

    def _expressions(self) -> Iterator[tuple[Rule, str, Expression]]:
        for rule in self.rules:
            if rule.when is not None:
                yield rule, "when", rule.when
            for kind, action in rule.actions():
                yield rule, f"{kind}.where", action.where

    @cached_property
    def item_attributes(self) -> dict[str, Rule]:
        """Item attributes the actions read, each with the first rule reading it."""
        found: dict[str, Rule] = {}
        for rule, _, expression in self._expressions():
            if expression is rule.when:
                continue
            for name in sorted(expression.names):
                path = name.split(".")
                if path[0] not in ("user", "context"):
                    found.setdefault(path[-1], rule)
        return found

    @cached_property
    def user_attributes(self) -> frozenset[str]:
        """Attributes read as ``user.<attribute>`` (``user.id`` is the id itself)."""
        return frozenset(name.split(".")[1] for _, _, expression in self._expressions()
                         for name in expression.names
                         if name.startswith("user.") and name.split(".")[1] != "id")

    @cached_property
    def recent_calls(self) -> tuple[tuple[Rule, dict[str, Any]], ...]:
        """Each ``recent(...)`` call with its arguments by name."""
        calls = []
        for rule in self.rules:
            if rule.when is None:
                continue
            for node in rule.when.nodes():
                if isinstance(node, Call) and node.function == "recent":
                    arguments = {p: a.value for p, a in zip(RECENT.params, node.args,
                                                            strict=False)
                                 if isinstance(a, Literal)}
                    arguments.update({k: v.value for k, v in node.keywords
                                      if isinstance(v, Literal)})
                    calls.append((rule, arguments))
        return tuple(calls)

    @property
    def history_days(self) -> float | None:
        """How far back ``recent`` looks (None: all history, or no call)."""
        days = [arguments.get("days") for _, arguments in self.recent_calls]
        if not days or any(d is None for d in days):
            return None
        return max(float(d) for d in days if d is not None)

    # ---- applying --------------------------------------------------------------------

    def apply(self, scores: np.ndarray, item_ids: Sequence[str] | np.ndarray,
              users: Sequence[UserFacts], items: pd.DataFrame | None = None,
              context: Mapping[str, Any] | None = None, *,
              cache: dict[tuple[int, str], np.ndarray] | None = None) -> np.ndarray:
        """Scores with the rules applied, one row per user, one column per item.

        ``items`` describes the items column by column (row ``j`` is ``item_ids[j]``);
        ``users`` gives each row's facts, ``context`` the moment. Item masks that read
        no user are computed once and kept in ``cache`` if given.

        Examples
        --------
        >>> rules = RuleSet.from_spec([
        ...     {"when": "user.vip", "boost": {"where": "price > 50", "factor": 3}},
        ...     {"exclude": {"where": "stock == 0"}}])
        >>> items = pd.DataFrame({"price": [10, 90, 60], "stock": [1, 1, 0]})
        >>> rules.apply(np.array([[3.0, 2.0, 1.0]] * 2), ["a", "b", "c"],
        ...             [UserFacts("ann", {"vip": True}), UserFacts("bob")], items).tolist()
        [[3.0, 6.0, -inf], [3.0, 2.0, -inf]]
        """
        result = np.array(scores, dtype=np.float32, copy=True)
        n_users, n_items = result.shape
        if len(users) != n_users or len(item_ids) != n_items:
            raise ValueError(f"scores are {n_users} x {n_items} but there are {len(users)} "
                             f"users and {len(item_ids)} items")
        frame = items if items is not None else pd.DataFrame(index=range(n_items))
        if "item_id" not in frame.columns:
            frame = frame.assign(item_id=np.asarray(item_ids, dtype=object))
        context = dict(context or {})
        cache = {} if cache is None else cache
        columns = pd.Index(np.asarray(item_ids, dtype=str))
        for row, user in enumerate(users):
            names = {"user": {**user.attributes, "id": user.user_id}, "context": context}
            functions = {"recent": user.recent}
            excluded = np.zeros(n_items, dtype=bool)
            pins: list[str] = []
            for number, rule in enumerate(self.rules):
                if rule.when is not None and not rule.when.holds(names, functions):
                    continue
                for kind, action in rule.actions():
                    if action.reads_user:
                        mask = action.where.mask(frame, names)
                    else:
                        if (number, kind) not in cache:
                            cache[number, kind] = action.where.mask(frame)
                        mask = cache[number, kind]
                    if kind == "exclude":
                        excluded |= mask
                    else:
                        values = result[row, mask]
                        result[row, mask] = np.where(values > 0, values * action.factor,
                                                     values / action.factor)
                pins.extend(item for item in rule.pin if item not in pins)
            result[row, excluded] = -np.inf
            if pins:
                pinned = columns.get_indexer(pd.Index(pins))
                pinned = pinned[pinned >= 0]
                pinned = pinned[~excluded[pinned]]
                finite = result[row][np.isfinite(result[row])]
                top = float(finite.max()) if finite.size else 0.0
                gap = max(1.0, abs(top)) * 1e-3
                result[row, pinned] = top + gap * np.arange(len(pinned), 0, -1)
        return result


def _rule_set(value: Any) -> RuleSet:
    if isinstance(value, str):
        return RuleSet.from_toml(value)
    return RuleSet.from_spec(value)


# ---- storing tables as plain arrays -------------------------------------------------------


def _encode(series: pd.Series) -> tuple[str, np.ndarray, np.ndarray]:
    """(kind, values, null) in plain dtypes: number, bool, text, or list ('|'-joined)."""
    raw = series.tolist()
    listy = [isinstance(v, list | tuple | np.ndarray) for v in raw]
    if any(listy):
        joined = [_SEPARATOR.join(map(str, v)) if is_list else v if isinstance(v, str) else ""
                  for v, is_list in zip(raw, listy, strict=True)]
        missing = [not is_list and not isinstance(v, str)
                   for v, is_list in zip(raw, listy, strict=True)]
        return "list", np.asarray(joined, dtype=str), np.asarray(missing, dtype=bool)
    values = [normalise(v) for v in raw]
    null = np.asarray([v is None for v in values], dtype=bool)
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "bool", np.asarray([bool(v) for v in values], dtype=bool), null
    if present and all(isinstance(v, int | float) for v in present):
        return "number", np.asarray([np.nan if v is None else float(v) for v in values],
                                    dtype=np.float64), null
    return "text", np.asarray(["" if v is None else str(v) for v in values], dtype=str), null


def _decode(kind: str, values: np.ndarray, null: np.ndarray) -> pd.Series:
    if kind == "number":
        return pd.Series(values.astype(np.float64))
    if kind == "bool" and not null.any():
        return pd.Series(values.astype(bool))
    if kind == "list":
        items: list[Any] = [None if n else tuple(x for x in str(v).split(_SEPARATOR) if x)
                            for v, n in zip(values, null, strict=True)]
        return pd.Series(items, dtype=object)
    convert = bool if kind == "bool" else str
    return pd.Series([None if n else convert(v) for v, n in zip(values.tolist(), null,
                                                                strict=True)], dtype=object)


def _table_arrays(prefix: str, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    arrays = {f"{prefix}.columns": np.asarray(list(frame.columns), dtype=str)}
    kinds = []
    for number, column in enumerate(frame.columns):
        kind, values, null = _encode(frame[column])
        kinds.append(kind)
        arrays[f"{prefix}.{number}.values"] = values
        arrays[f"{prefix}.{number}.null"] = null
    arrays[f"{prefix}.kinds"] = np.asarray(kinds, dtype=str)
    return arrays


def _table_frame(prefix: str, arrays: Mapping[str, np.ndarray], rows: int) -> pd.DataFrame:
    columns = arrays[f"{prefix}.columns"].tolist()
    kinds = arrays[f"{prefix}.kinds"].tolist()
    frame = pd.DataFrame(index=range(rows))
    for number, (column, kind) in enumerate(zip(columns, kinds, strict=True)):
        frame[column] = _decode(kind, arrays[f"{prefix}.{number}.values"],
                                arrays[f"{prefix}.{number}.null"])
    return frame


# ---- the model ----------------------------------------------------------------------------


class RuleBasedConfig(ModelConfig):
    """``rules``: the rule set, as a list of rule tables or TOML text with ``[[rules]]``
    (checked here, stored as tables). ``base``: the registered name of the model whose
    scores the rules adjust (``popular``, ``item_knn``, ``als``, ...). ``base_params``:
    that model's parameters."""

    rules: list[dict[str, Any]] = Field(default_factory=list)
    base: str = "popular"
    base_params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("rules", mode="before")
    @classmethod
    def _check_rules(cls, value: Any) -> list[dict[str, Any]]:
        try:
            return _rule_set(value).to_spec()
        except InvalidDataError as error:
            raise ValueError(f"rules: {error}") from None

    @model_validator(mode="after")
    def _check_base(self) -> Self:
        if self.base == RuleBased.name:
            raise ValueError("base: 'rules' cannot be its own base; put all the rules in "
                             "one rule set")
        try:
            family = model_class(self.base)
        except ValueError as error:
            raise ValueError(f"base: {error}") from None
        try:
            family.Config(**self.base_params)
        except ValidationError as error:
            raise ValueError(f"base_params for {self.base!r}: {error}") from None
        return self


class RuleBased(Recommender):
    """A base model's scores adjusted by business rules (pin, boost, bury, exclude).

    The base model (``base``, default ``popular``) is fitted on the same data; the
    rules (see :mod:`tailored.models.rules`) then apply to every user's scores,
    including users the base model answers with its fallback. Use :meth:`wrap` to
    put rules on an already fitted model, and :meth:`RuleSet.apply` for bare score
    matrices.

    Examples
    --------
    >>> import pandas as pd
    >>> import tailored
    >>> events = pd.DataFrame({"user_id": ["a", "b", "b", "c", "c"],
    ...                        "item_id": ["x", "x", "y", "x", "promo"]})
    >>> users = pd.DataFrame({"user_id": ["a", "b", "c"], "city": ["Berlin", "Paris", "Rome"]})
    >>> rules = '''
    ... [[rules]]
    ... name = "berlin promo"
    ... when = 'user.city == "Berlin"'
    ... pin = ["promo"]
    ... '''
    >>> model = RuleBased(rules=rules).fit(tailored.Dataset.from_frame(events, users=users))
    >>> model.recommend("a", k=2)["item_id"].tolist()
    ['promo', 'y']
    >>> new = tailored.UserQuery(("guest",), profiles=pd.DataFrame(
    ...     {"user_id": ["guest"], "city": ["Berlin"]}))
    >>> model.recommend(new, k=2)["item_id"].tolist()
    ['promo', 'x']
    """

    name = "rules"
    Config = RuleBasedConfig
    config: RuleBasedConfig
    _base_state: ClassVar[tuple[str, ...]] = (
        "user_vocab_", "item_vocab_", "weights_", "user_items_", "popularity_",
        "data_digest_", "fitted_at_")

    @cached_property
    def rule_set(self) -> RuleSet:
        """The rules, parsed."""
        return RuleSet.from_spec(self.config.rules)

    # ---- learning --------------------------------------------------------------------

    def _fit(self, matrix: sp.csr_matrix, data: Dataset) -> None:
        family = model_class(self.config.base)
        self.base_ = family(family.Config(**self.config.base_params)).fit(data)
        self._learn_facts(data)

    @classmethod
    def wrap(cls, model: Recommender, rules: Any, data: Dataset) -> RuleBased:
        """Rules on top of an already fitted ``model``, with facts from ``data``.

        ``data`` is what the model was fitted on (for item attributes, user attributes
        and training behaviour); the result saves and loads like any model.
        """
        model._check_fitted()
        if model.item_vocab_ != data.item_vocab or model.user_vocab_ != data.user_vocab:
            raise InvalidDataError(f"the {type(model).__name__} was not fitted on this data "
                                   "(users or items differ); pass the data it was fitted on")
        wrapped = cls(rules=rules, base=model.name,
                      base_params=model.config.model_dump(mode="json"))
        for name in cls._base_state:
            setattr(wrapped, name, getattr(model, name))
        wrapped.base_ = model
        wrapped._learn_facts(data)
        return wrapped

    def _learn_facts(self, data: Dataset) -> None:
        """Item attributes, user attributes and behaviour the rules need, as plain arrays."""
        rules = self.rule_set
        self._masks: dict[tuple[int, str], np.ndarray] = {}
        for cached in ("_item_frame", "_item_categories", "_user_table"):
            self.__dict__.pop(cached, None)  # computed from the previous fit's tables
        items = data.items.set_index("item_id") if data.items is not None else None
        wanted = {n: r for n, r in rules.item_attributes.items() if n != "item_id"}
        categories_needed = any(a.get("category") is not None for _, a in rules.recent_calls)
        for attribute, rule in wanted.items():
            if items is None or attribute not in items.columns:
                have = ("no item table" if items is None
                        else f"items have {', '.join(map(str, items.columns)) or 'no columns'}")
                raise InvalidDataError(f"rule {rule.name!r} reads item attribute "
                                       f"{attribute!r}, which the data lacks ({have})")
        if categories_needed:
            rule = next(r for r, a in rules.recent_calls if a.get("category") is not None)
            if items is None or "categories" not in items.columns:
                raise InvalidDataError(f"rule {rule.name!r} counts events by category, but "
                                       "the items have no categories")
            wanted.setdefault("categories", rule)
        columns = sorted(wanted)
        frame = (items.reindex(self.item_vocab_.ids)[columns].reset_index(drop=True)
                 if items is not None else pd.DataFrame(index=range(len(self.item_vocab_))))
        self.item_table_ = _table_arrays("items", frame[columns])

        attributes = sorted(rules.user_attributes)
        users = data.users
        if users is not None:
            users = users.drop_duplicates("user_id", keep="last")
            present = [a for a in attributes if a in users.columns]
            self.user_table_ids_ = users["user_id"].astype(str).to_numpy(dtype=str)
            self.user_table_ = _table_arrays("users", users[present].reset_index(drop=True))
        else:
            self.user_table_ids_ = np.zeros(0, dtype=str)
            self.user_table_ = _table_arrays("users", pd.DataFrame())

        times = data.events["timestamp"]
        seconds = _seconds(times)
        self.reference_time_ = float(np.nanmax(seconds)) if np.isfinite(seconds).any() \
            else float("nan")
        self.history_ = self._history_arrays(data, seconds) if rules.recent_calls else {}

    def _history_arrays(self, data: Dataset, seconds: np.ndarray) -> dict[str, np.ndarray]:
        events = data.events
        users = self.user_vocab_.indices(events["user_id"])
        keep = users >= 0
        days = self.rule_set.history_days
        if days is not None and math.isfinite(self.reference_time_):
            keep &= ~(seconds < self.reference_time_ - days * _SECONDS_PER_DAY)
        order = np.argsort(users[keep], kind="stable")
        users = users[keep][order]
        types = events["event_type"].astype(str).to_numpy()[keep][order]
        items = self.item_vocab_.indices(events["item_id"])[keep][order]
        indptr = np.searchsorted(users, np.arange(len(self.user_vocab_) + 1))
        return {"indptr": indptr.astype(np.int64), "types": np.asarray(types, dtype=str),
                "items": items.astype(np.int64), "seconds": seconds[keep][order]}

    # ---- scoring ---------------------------------------------------------------------

    @cached_property
    def _item_frame(self) -> pd.DataFrame:
        frame = _table_frame("items", self.item_table_, len(self.item_vocab_))
        frame["item_id"] = self.item_vocab_.ids.astype(object)
        return frame

    @cached_property
    def _user_table(self) -> tuple[pd.Index, pd.DataFrame]:
        index = pd.Index(self.user_table_ids_)
        return index, _table_frame("users", self.user_table_, len(index))

    @cached_property
    def _item_categories(self) -> list[Any] | None:
        """Each item's categories (None when no rule reads them)."""
        frame = self._item_frame
        return frame["categories"].tolist() if "categories" in frame.columns else None

    def _resolve(self, users: Users) -> ScoringBatch:
        # The base model builds the batch, since only it knows whether it reads sequences
        # (item2vec, sasrec); this class's needs_sequences cannot depend on the base.
        return self.base_._resolve(users)

    def _score(self, batch: ScoringBatch) -> np.ndarray:
        scores = np.asarray(self.base_._score(batch), dtype=np.float32)
        # Users without history are scored by _fallback (rules included) instead.
        with_history = np.flatnonzero(np.diff(batch.history.indptr) > 0)
        scores[with_history] = self._apply_rules(scores[with_history],
                                                 batch.take(with_history))
        return scores

    def _fallback(self, batch: ScoringBatch | None = None) -> np.ndarray:
        scores = self.base_._fallback(batch)
        if batch is None:  # for no user in particular, so no rule applies
            return scores
        return self._apply_rules(np.broadcast_to(scores, (len(batch), len(self.item_vocab_))),
                                 batch)

    def _apply_rules(self, scores: np.ndarray, batch: ScoringBatch) -> np.ndarray:
        return self.rule_set.apply(scores, self.item_vocab_.ids, self._facts(batch),
                                   self._item_frame, batch.context, cache=self._masks)

    def _facts(self, batch: ScoringBatch) -> list[UserFacts]:
        rules = self.rule_set
        attributes = (self._attributes(batch) if rules.user_attributes
                      else [{} for _ in batch.user_ids])
        behaviours: list[Behaviour | None]
        if not rules.recent_calls:
            behaviours = [None] * len(batch)
        elif batch.events is None:
            behaviours = self._stored_behaviour(batch.users)
        else:
            behaviours = self._query_behaviour(batch.user_ids, batch.events)
        return [UserFacts(user, attrs, behaviour) for user, attrs, behaviour
                in zip(batch.user_ids, attributes, behaviours, strict=True)]

    def _attributes(self, batch: ScoringBatch) -> list[dict[str, Any]]:
        """Each user's attributes: the users table, overridden by the query's profiles."""
        index, table = self._user_table
        rows = index.get_indexer(pd.Index(batch.user_ids)) if len(index) else np.full(
            len(batch), -1)
        records = iter(table.iloc[rows[rows >= 0]].to_dict("records"))
        found: list[dict[str, Any]] = [{str(k): v for k, v in next(records).items()}
                                       if row >= 0 else {} for row in rows]
        profiles = batch.profiles
        if profiles is not None and "user_id" in profiles.columns:
            profiles = profiles.drop_duplicates("user_id", keep="last")
            by_user: dict[Any, dict[Any, Any]] = profiles.set_index(
                profiles["user_id"].astype(str)).drop(columns="user_id").to_dict("index")
            for position, user in enumerate(batch.user_ids):
                for key, value in by_user.get(user, {}).items():
                    if normalise(value) is not None:
                        found[position][str(key)] = value
        return found

    def _stored_behaviour(self, rows: np.ndarray) -> list[Behaviour | None]:
        """Known users' training events (None for unknown users: they have none)."""
        history = self.history_
        behaviours: list[Behaviour | None] = []
        for row in rows:
            if row < 0:
                behaviours.append(None)
                continue
            start, stop = history["indptr"][row], history["indptr"][row + 1]
            ages = (self.reference_time_ - history["seconds"][start:stop]) / _SECONDS_PER_DAY
            behaviours.append(Behaviour(history["types"][start:stop],
                                        self._categories_of(history["items"][start:stop]),
                                        ages))
        return behaviours

    def _query_behaviour(self, user_ids: Sequence[str],
                         events: pd.DataFrame) -> list[Behaviour | None]:
        """Each user's events in the query; ages count from the user's own "now"."""
        seconds = (_seconds(events["timestamp"]) if "timestamp" in events.columns
                   else np.full(len(events), np.nan))
        types = (events["event_type"].fillna("view").astype(str).to_numpy()
                 if "event_type" in events.columns else np.full(len(events), "view"))
        items = self.item_vocab_.indices(events["item_id"].astype(str))
        by_user = pd.Series(np.arange(len(events))).groupby(
            events["user_id"].astype(str).to_numpy()).indices
        behaviours: list[Behaviour | None] = []
        for user in user_ids:
            positions = by_user.get(user, np.zeros(0, dtype=np.int64))
            # Per user, so a user's counts do not depend on who else is in the batch.
            now = np.fmax.reduce(seconds[positions], initial=self.reference_time_)
            behaviours.append(Behaviour(types[positions], self._categories_of(items[positions]),
                                        (now - seconds[positions]) / _SECONDS_PER_DAY))
        return behaviours

    def _categories_of(self, items: np.ndarray) -> list[tuple[str, ...]]:
        """The categories of each event's item (none for unknown items)."""
        categories = self._item_categories
        if categories is None:
            return [()] * len(items)
        return [tuple(categories[i] or ()) if i >= 0 else () for i in items]

    def _item_similarity(self, columns: np.ndarray) -> np.ndarray:
        return self.base_._item_similarity(columns)

    def _reasons(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                 ) -> list[Reason]:
        # The base model scored the items; the rules only scale or pin them.
        return self.base_._reasons(batch, rows, columns)

    # ---- persistence -----------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"base.{key}": value for key, value in self.base_._arrays().items()}
        if self.base_.needs_sequences:
            sequences = self.base_.sequences_
            arrays["base_sequences.items"] = np.concatenate([np.zeros(0, np.int64),
                                                             *sequences])
            arrays["base_sequences.lengths"] = np.array([len(s) for s in sequences],
                                                        dtype=np.int64)
        arrays.update(self.item_table_)
        arrays.update(self.user_table_)
        arrays["users.ids"] = self.user_table_ids_
        arrays["reference_time"] = np.array([self.reference_time_])
        arrays.update({f"history.{key}": value for key, value in self.history_.items()})
        return arrays

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        family = model_class(self.config.base)
        base = family(family.Config(**self.config.base_params))
        for name in self._base_state:
            setattr(base, name, getattr(self, name))
        if base.needs_sequences:
            ends = np.cumsum(arrays["base_sequences.lengths"])
            base.sequences_ = (np.split(arrays["base_sequences.items"], ends[:-1])
                               if len(ends) else [])
        base._restore({key[5:]: value for key, value in arrays.items()
                       if key.startswith("base.")})
        self.base_ = base
        self.item_table_ = {k: v for k, v in arrays.items() if k.startswith("items.")}
        self.user_table_ = {k: v for k, v in arrays.items()
                            if k.startswith("users.") and k != "users.ids"}
        self.user_table_ids_ = arrays["users.ids"]
        self.reference_time_ = float(arrays["reference_time"][0])
        self.history_ = {k[8:]: v for k, v in arrays.items() if k.startswith("history.")}
        self._masks = {}


def _seconds(times: pd.Series) -> np.ndarray:
    """Unix seconds of a timestamp column (NaN where unknown)."""
    stamps = pd.to_datetime(times, utc=True, errors="coerce")
    return np.asarray((stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds(),
                      dtype=np.float64)


__all__ = ["RECENT", "Behaviour", "ItemAction", "Rule", "RuleBased", "RuleBasedConfig",
           "RuleSet", "UserFacts"]
