"""Business rules, a stage of every pipeline: pin, boost, bury, filter and exclude items.

A rule set is declared in a recipe (TOML), JSON, or as a list of dicts::

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

    [[rules]]
    name = "in stock only"
    filter = { where = "stock > 0" }                  # keep only the matching items

Each rule has an optional ``name``, an optional condition ``when`` (no condition:
always) and at least one action. Conditions are :mod:`tailored.expressions` over

- ``user.<attribute>``: the user's attributes: the ``users`` table the pipeline was
  trained with, overridden by the query's ``profiles`` row; ``user.id`` is the id;
- ``context.<key>``: the query's context (device, hour, page, ...);
- ``recent(event, category, days)``: how many events the user has, of type ``event``
  (any if null or omitted), on items of ``category`` (any if omitted), in the last
  ``days`` days (all history if omitted), e.g. ``recent("purchase") == 0``,
  ``recent(category="Drama", days=30) >= 5``. The events are the query's when it
  brings events, else the training events of a known user. "Now" is the latest
  training event, or the user's own latest event if later; events without a time
  count as recent.

Actions read item attributes from the catalog the pipeline runs against
(:class:`~tailored.ranking.catalog.ItemTable`: ``price``, or ``item.price``;
``item_id``; ``categories`` as a list, so ``"Drama" in categories``) and may compare
them with ``user.*``/``context.*``:

- ``pin``: item ids put first, before any other item, earlier rules' pins first;
- ``boost``/``bury``: scores of the matching items are scaled by ``factor`` (a
  positive score is multiplied by it, a negative one divided, so a factor above 1
  always raises an item and below 1 always lowers it); ``bury`` needs a factor
  below 1;
- ``filter``: only the matching items may be recommended;
- ``exclude``: the matching items are never recommended (score ``-inf``); an
  exclusion (or a filter) beats a pin.

A request's ``filter``, ``boost`` and ``exclude`` are rules too
(:meth:`RuleSet.from_request`), added after the recipe's, so there is one
implementation of both. Rules are checked when they are loaded: an unknown key, a bad
factor, or an expression that does not parse or reads a name it cannot see is refused
with the rule's number (1-based) and name, and the column of the problem.

A request's expressions are someone else's input, so before they run over a catalog
their estimated cost (:meth:`~tailored.expressions.Expression.cost`) is checked
against :data:`REQUEST_COST_BUDGET`, the filter and all boosts together
(:meth:`RuleSet.check_cost`); the recipe's rules are the operator's and have no budget.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from tailored.dataset import Dataset, UserQuery, Vocabulary
from tailored.errors import InvalidDataError
from tailored.expressions import (
    Call,
    Expression,
    ExpressionCostError,
    ExpressionError,
    Literal,
    Name,
    Signature,
    column_kind,
    normalise,
    parse,
)
from tailored.models.base import among, distinct_ids

from .catalog import ItemTable, table_arrays, table_frame

#: The behaviour function conditions may call.
RECENT = Signature("recent", ("event", "category", "days"), 0,
                   help="events of a type, on a category, in the last days")
_RULE_KEYS = ("name", "when", "pin", "boost", "bury", "filter", "exclude")
_ACTION_KEYS = {"boost": ("where", "factor"), "bury": ("where", "factor"),
                "filter": ("where",), "exclude": ("where",)}
_BURY_FACTOR = 0.5
_SECONDS_PER_DAY = 86_400.0
#: The most a request's filter and boosts together may cost over the catalog they run
#: on, in per-row Python operations (:meth:`~tailored.expressions.Expression.cost`),
#: roughly a second of Python. Every documented filter and boost passes on 100,000 items
#: (the dearest, ``len(categories) == 1 and lower(category) == "shoes"``, costs about 5
#: per item), while 20 boosts that call functions on every item are refused unrun.
REQUEST_COST_BUDGET: Final = 1_000_000.0

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
    filter: ItemAction | None = None
    exclude: ItemAction | None = None
    #: Made from a request (:meth:`RuleSet.from_request`): its cost counts against
    #: :data:`REQUEST_COST_BUDGET`.
    request: bool = False

    def actions(self) -> Iterator[tuple[str, ItemAction]]:
        for kind in ("boost", "bury", "filter", "exclude"):
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
            if kind in ("boost", "bury"):
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
        raise _fail(label, "actions", "has none; give pin, boost, bury, filter or exclude")
    return Rule(name, when, tuple(pin), boost=actions.get("boost"), bury=actions.get("bury"),
                filter=actions.get("filter"), exclude=actions.get("exclude"))


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

    # ---- combining -------------------------------------------------------------------

    def __add__(self, other: RuleSet) -> RuleSet:
        return RuleSet(self.rules + other.rules)

    @classmethod
    def from_request(cls, filter: str | None = None, boosts: Sequence[str] = (),
                     items: ItemTable | None = None) -> RuleSet:
        """A request's ``filter`` (keep where it holds) and ``boosts``
        (``EXPRESSION:FACTOR``, a factor below 1 buries) as rules. An
        :class:`ExpressionError` names the text and the column of a problem.

        :meth:`apply` refuses the rules when they would cost more than
        :data:`REQUEST_COST_BUDGET` over its catalog (:meth:`check_cost`). Given the
        catalog as ``items``, the cost is checked here too, as each expression is read,
        so a costly request is refused before the rest of it is parsed.

        Examples
        --------
        >>> rules = RuleSet.from_request('price < 100', ['"shoes" in categories:2'])
        >>> [(rule.name, kind) for rule in rules for kind, _ in rule.actions()]
        [('filter', 'filter'), ('boost 1', 'boost')]
        >>> RuleSet.from_request('price <')
        Traceback (most recent call last):
        ...
        tailored.expressions.ExpressionError: unexpected end of expression at column 8
          price <
                 ^
        """
        rules: list[Rule] = []
        priced: list[tuple[Rule, Expression, float]] = []

        def add(rule: Rule) -> None:
            rules.append(rule)
            if items is not None:
                priced.extend(_priced([rule], items))
                _check_cost(priced, len(items.item_ids), REQUEST_COST_BUDGET)

        if filter is not None and filter.strip():
            add(Rule("filter", filter=ItemAction(_request_expression(filter)), request=True))
        for number, text in enumerate(boosts, 1):
            expression_text, factor_text, factor_at = _split_boost(text)
            try:
                factor = float(factor_text)
            except ValueError:
                factor = math.nan
            if not math.isfinite(factor) or factor <= 0:
                raise ExpressionError(f"a boost factor must be a positive number, got "
                                      f"{factor_text.strip()!r}", text, factor_at)
            try:
                where = _request_expression(expression_text)
            except ExpressionError as error:  # the whole text, so the column stays right
                raise ExpressionError(error.reason, text, error.position, error.hint) from None
            add(Rule(f"boost {number}", boost=ItemAction(where, factor), request=True))
        return cls(tuple(rules))

    @property
    def boost_ceiling(self) -> float:
        """The most any item's score can be raised by these rules (the product of every
        factor above 1): what proves a list cut off below some score still exact."""
        return math.prod(max(action.factor, 1.0) for rule in self.rules
                         for kind, action in rule.actions() if kind == "boost")

    @property
    def pins(self) -> tuple[str, ...]:
        """Every item id some rule may pin."""
        return tuple(dict.fromkeys(item for rule in self.rules for item in rule.pin))

    def expressions(self) -> Iterator[Expression]:
        """Every item expression of the actions (to check against a catalog)."""
        for rule in self.rules:
            for _, action in rule.actions():
                yield action.where

    # ---- applying --------------------------------------------------------------------

    def check_cost(self, items: ItemTable, budget: float = REQUEST_COST_BUDGET) -> float:
        """The estimated cost of the request's item expressions (the rules
        :meth:`from_request` made) over ``items``, in per-row Python operations; over
        ``budget`` they are refused, before anything runs, with an
        :class:`~tailored.expressions.ExpressionCostError` naming the costliest.
        :meth:`apply` checks this first.

        Examples
        --------
        >>> items = ItemTable(np.array(["a", "b"]), pd.DataFrame(
        ...     {"item_id": ["a", "b"], "price": [10.0, 90.0]}))
        >>> rules = RuleSet.from_request("price < 50", ["lower(item_id) == 'a':2"])
        >>> round(rules.check_cost(items), 2)      # lower() and == per item: about 2 each
        4.14
        >>> rules.check_cost(items, budget=1)
        Traceback (most recent call last):
        ...
        tailored.expressions.ExpressionCostError: the request's filter and boosts would \
cost about 4 per-row Python operations over 2 items, more than the budget of 1; the \
costliest is boost 1 (4, about 2.1 per item) at column 1; per item, call fewer functions \
(lower, upper, len, abs, min, max) and test fewer list attributes ("x" in categories), as \
comparing numbers, text == and in [...] cost little; or send a shorter filter or fewer boosts
          lower(item_id) == 'a'
          ^
        """
        return _check_cost(_priced(self.rules, items), len(items.item_ids), budget)

    def apply(self, scores: np.ndarray, columns: np.ndarray, users: Sequence[UserFacts],
              items: ItemTable, context: Mapping[str, Any] | None = None) -> np.ndarray:
        """Scores with the rules applied, one row per user.

        ``scores[:, j]`` is the score of the item in column ``columns[j]`` of ``items``
        (every column, or a user's cut-off top list); ``users`` gives each row's facts,
        ``context`` the moment. Pinned items take part only if their column is present.

        Examples
        --------
        >>> rules = RuleSet.from_spec([
        ...     {"when": "user.vip", "boost": {"where": "price > 50", "factor": 3}},
        ...     {"exclude": {"where": "stock == 0"}}])
        >>> items = ItemTable(np.array(["a", "b", "c"]), pd.DataFrame(
        ...     {"item_id": ["a", "b", "c"], "price": [10, 90, 60], "stock": [1, 1, 0]}))
        >>> rules.apply(np.array([[3.0, 2.0, 1.0]] * 2), np.arange(3),
        ...             [UserFacts("ann", {"vip": True}), UserFacts("bob")], items).tolist()
        [[3.0, 6.0, -inf], [3.0, 2.0, -inf]]
        """
        result = np.array(scores, dtype=np.float32, copy=True)
        n_users, n_columns = result.shape
        if len(users) != n_users or len(columns) != n_columns:
            raise ValueError(f"scores are {n_users} x {n_columns} but there are {len(users)} "
                             f"users and {len(columns)} columns")
        if not self.rules:
            return result
        self.check_cost(items)
        context = dict(context or {})
        position = pd.Index(np.asarray(items.item_ids)[columns].astype(str))
        for row, user in enumerate(users):
            names = {"user": {**user.attributes, "id": user.user_id}, "context": context}
            functions = {"recent": user.recent}
            excluded = np.zeros(n_columns, dtype=bool)
            pins: list[str] = []
            for rule in self.rules:
                if rule.when is not None and not rule.when.holds(names, functions):
                    continue
                for kind, action in rule.actions():
                    mask = items.mask(action.where, names if action.reads_user else None)
                    mask = mask[columns]
                    if kind == "exclude":
                        excluded |= mask
                    elif kind == "filter":
                        excluded |= ~mask
                    else:
                        values = result[row, mask]
                        result[row, mask] = np.where(values > 0, values * action.factor,
                                                     values / action.factor)
                pins.extend(item for item in rule.pin if item not in pins)
            result[row, excluded] = -np.inf
            if pins:
                pinned = position.get_indexer(pd.Index(pins))
                pinned = pinned[pinned >= 0]
                pinned = pinned[~excluded[pinned]]
                finite = result[row][np.isfinite(result[row])]
                top = float(finite.max()) if finite.size else 0.0
                gap = max(1.0, abs(top)) * 1e-3
                result[row, pinned] = top + gap * np.arange(len(pinned), 0, -1)
        return result


def _priced(rules: Sequence[Rule], items: ItemTable) -> list[tuple[Rule, Expression, float]]:
    """Each item expression of the request's rules with its estimated cost over ``items``."""
    columns = set(items.table.columns)
    rows = len(items.item_ids)
    priced = []
    for rule in rules:
        if not rule.request:
            continue
        for _, action in rule.actions():
            kinds = {key: _column_kind(items, key) for name in action.where.names
                     for key in (name, name.removeprefix("item.")) if key in columns}
            priced.append((rule, action.where, action.where.cost(rows, kinds)))
    return priced


def _column_kind(items: ItemTable, column: str) -> str:
    """How masks read a column of the catalog, learned once per table (a live table is
    rebuilt when the catalog changes)."""
    def learn() -> str:
        return column_kind(items.table[column])
    return str(items._derived(("column kind", column), learn))


def _check_cost(priced: Sequence[tuple[Rule, Expression, float]], rows: int,
                budget: float) -> float:
    """The one check of a request's cost: the total of ``priced``, or an
    :class:`ExpressionCostError` when it is over ``budget``."""
    total = sum(cost for _, _, cost in priced)
    if total <= budget:
        return total
    rule, expression, cost = max(priced, key=lambda entry: entry[2])
    per_item = cost / max(rows, 1)
    raise ExpressionCostError(
        f"the request's filter and boosts would cost about {total:,.0f} per-row Python "
        f"operations over {rows:,} items, more than the budget of {budget:,.0f}; the "
        f"costliest is {rule.name} ({cost:,.0f}, about {per_item:,.1f} per item)",
        expression.text or str(expression), 0,
        "per item, call fewer functions (lower, upper, len, abs, min, max) and test fewer "
        "list attributes (\"x\" in categories), as comparing numbers, text == and "
        "in [...] cost little; or send a shorter filter or fewer boosts",
        cost=total, budget=budget)


def _rule_set(value: Any) -> RuleSet:
    if isinstance(value, str):
        return RuleSet.from_toml(value)
    return RuleSet.from_spec(value)


def _request_expression(text: str) -> Expression:
    """A request's item expression: item attributes and ``context.<key>``. A request
    cannot read ``user.*``: a caller must not probe a user's attributes through it."""
    expression = parse(text)
    for node in expression.nodes():
        if not isinstance(node, Name):
            continue
        head = node.path[0]
        if (head == "context" and len(node.path) == 2) or (
                len(node.path) == 1 and head not in ("user", "context", "item")) or (
                head == "item" and len(node.path) == 2):
            continue
        raise ExpressionError(
            f"unknown name {node.dotted!r}", text, node.position,
            "filters and boosts see item attributes (price or item.price, categories, "
            "item_id) and context.<key>")
    return expression


def _split_boost(text: str) -> tuple[str, str, int]:
    """``EXPRESSION:FACTOR`` split at the last colon outside quotes."""
    quote = None
    split = -1
    for position, char in enumerate(text):
        if quote:
            if char == "\\":
                continue
            if char == quote and (position == 0 or text[position - 1] != "\\"):
                quote = None
        elif char in "\"'":
            quote = char
        elif char == ":":
            split = position
    if split < 0:
        raise ExpressionError("a boost needs a factor after a colon, e.g. "
                              "'in_stock == true:1.5'", text, len(text))
    return text[:split], text[split + 1:], split + 1


# ---- what rules know about users ----------------------------------------------------------


class UserFactsTable:
    """The user attributes and events the rules read, learned with the pipeline.

    A query that brings events and profiles (the service's) is described by them; a
    query of ids alone (offline) by the training users table and training events.
    """

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        # Unfitted, it knows nothing beyond the query (a bare scorer's pipeline).
        self.user_vocab = Vocabulary(np.zeros(0, dtype=str))
        self.user_ids = np.zeros(0, dtype=str)
        self.user_table = pd.DataFrame()
        self.reference_time = float("nan")
        self.history: dict[str, np.ndarray] = {}

    def fit(self, data: Dataset, items: ItemTable) -> UserFactsTable:
        rules = self.rules
        self.user_vocab = data.user_vocab
        self._items = items
        item_columns = set(items.table.columns)
        for attribute, rule in rules.item_attributes.items():
            if attribute not in item_columns:
                raise InvalidDataError(
                    f"rule {rule.name!r} reads item attribute {attribute!r}, which no item "
                    f"has (items have {', '.join(sorted(item_columns))})")
        if rules.recent_calls and not any(items.categories().values()) and any(
                a.get("category") is not None for _, a in rules.recent_calls):
            rule = next(r for r, a in rules.recent_calls if a.get("category") is not None)
            raise InvalidDataError(f"rule {rule.name!r} counts events by category, but the "
                                   "items have no categories")
        attributes = sorted(rules.user_attributes)
        users = data.users
        if users is not None and attributes:
            users = users.drop_duplicates("user_id", keep="last")
            present = [a for a in attributes if a in users.columns]
            self.user_ids = users["user_id"].astype(str).to_numpy(dtype=str)
            self.user_table = users[present].reset_index(drop=True)
        else:
            self.user_ids = np.zeros(0, dtype=str)
            self.user_table = pd.DataFrame()
        seconds = _seconds(data.events["timestamp"])
        self.reference_time = (float(np.nanmax(seconds)) if np.isfinite(seconds).any()
                               else float("nan"))
        self.history = self._history_arrays(data, seconds) if rules.recent_calls else {}
        return self

    def _history_arrays(self, data: Dataset, seconds: np.ndarray) -> dict[str, np.ndarray]:
        events = data.events
        users = self.user_vocab.indices(events["user_id"])
        keep = users >= 0
        days = self.rules.history_days
        if days is not None and math.isfinite(self.reference_time):
            keep &= ~(seconds < self.reference_time - days * _SECONDS_PER_DAY)
        order = np.argsort(users[keep], kind="stable")
        users = users[keep][order]
        types = events["event_type"].astype(str).to_numpy()[keep][order]
        item_index = Vocabulary(self._items.item_ids)
        items = item_index.indices(events["item_id"])[keep][order]
        indptr = np.searchsorted(users, np.arange(len(self.user_vocab) + 1))
        return {"indptr": indptr.astype(np.int64), "types": np.asarray(types, dtype=str),
                "items": items.astype(np.int64), "seconds": seconds[keep][order]}

    # ---- facts per query -------------------------------------------------------------

    def facts(self, query: UserQuery, items: ItemTable) -> list[UserFacts]:
        """Each user's facts; ``items`` gives the categories of their events' items."""
        rules = self.rules
        attributes = (self._attributes(query) if rules.user_attributes
                      else [{} for _ in query.user_ids])
        behaviours: list[Behaviour | None]
        if not rules.recent_calls:
            behaviours = [None] * len(query.user_ids)
        elif query.events is None:
            behaviours = self._stored_behaviour(query.user_ids, items)
        else:
            behaviours = self._query_behaviour(query.user_ids, query.events, items)
        return [UserFacts(user, attrs, behaviour) for user, attrs, behaviour
                in zip(query.user_ids, attributes, behaviours, strict=True)]

    def _attributes(self, query: UserQuery) -> list[dict[str, Any]]:
        """The users table's attributes, overridden by the query's profiles."""
        index = pd.Index(self.user_ids)
        rows = (index.get_indexer(pd.Index(query.user_ids)) if len(index)
                else np.full(len(query.user_ids), -1))
        records = iter(self.user_table.iloc[rows[rows >= 0]].to_dict("records"))
        found: list[dict[str, Any]] = [{str(k): v for k, v in next(records).items()}
                                       if row >= 0 else {} for row in rows]
        profiles = query.profiles
        if profiles is not None and "user_id" in profiles.columns:
            profiles = profiles.drop_duplicates("user_id", keep="last")
            by_user: dict[Any, dict[Any, Any]] = profiles.set_index(
                profiles["user_id"].astype(str)).drop(columns="user_id").to_dict("index")
            for position, user in enumerate(query.user_ids):
                for key, value in by_user.get(user, {}).items():
                    if normalise(value) is not None:
                        found[position][str(key)] = value
        return found

    def _stored_behaviour(self, user_ids: Sequence[str], items: ItemTable
                          ) -> list[Behaviour | None]:
        """Known users' training events (None for unknown users: they have none)."""
        history = self.history
        behaviours: list[Behaviour | None] = []
        for row in self.user_vocab.indices(list(user_ids)):
            if row < 0:
                behaviours.append(None)
                continue
            start, stop = history["indptr"][row], history["indptr"][row + 1]
            ages = (self.reference_time - history["seconds"][start:stop]) / _SECONDS_PER_DAY
            behaviours.append(Behaviour(history["types"][start:stop],
                                        _categories_of(items, history["items"][start:stop]),
                                        ages))
        return behaviours

    def _query_behaviour(self, user_ids: Sequence[str], events: pd.DataFrame,
                         items: ItemTable) -> list[Behaviour | None]:
        """Each user's events in the query; ages count from the user's own "now"."""
        seconds = (_seconds(events["timestamp"]) if "timestamp" in events.columns
                   else np.full(len(events), np.nan))
        types = (events["event_type"].fillna("view").astype(str).to_numpy()
                 if "event_type" in events.columns else np.full(len(events), "view"))
        columns = pd.Index(np.asarray(items.item_ids).astype(str)).get_indexer(
            events["item_id"].astype(str))
        by_user = pd.Series(np.arange(len(events))).groupby(
            events["user_id"].astype(str).to_numpy()).indices
        behaviours: list[Behaviour | None] = []
        for user in user_ids:
            positions = by_user.get(user, np.zeros(0, dtype=np.int64))
            # Per user, so a user's counts do not depend on who else is in the batch.
            now = np.fmax.reduce(seconds[positions], initial=self.reference_time)
            behaviours.append(Behaviour(types[positions],
                                        _categories_of(items, columns[positions]),
                                        (now - seconds[positions]) / _SECONDS_PER_DAY))
        return behaviours

    # ---- forgetting and persistence ---------------------------------------------------

    def forget_users(self, user_ids: str | Sequence[str]) -> int:
        """Remove users' attributes and events, in place; how many of them it held.

        Afterwards the rules know them as they know a user never seen (the query's own
        events and profile still count). The reference time ("now") stays the latest
        training event's.
        """
        ids = distinct_ids(user_ids)
        held = self._held(ids)
        if not held.any():
            return 0
        listed = among(self.user_ids, ids)
        if listed.any():
            self.user_ids = self.user_ids[~listed]
            self.user_table = self.user_table[~listed].reset_index(drop=True)
        rows = self.user_vocab.indices(ids)
        if (rows >= 0).any():
            keep = np.ones(len(self.user_vocab), dtype=bool)
            keep[rows[rows >= 0]] = False
            if self.history:
                lengths = np.diff(self.history["indptr"])
                events = np.repeat(keep, lengths)
                self.history = {
                    "indptr": np.concatenate([[0], np.cumsum(lengths[keep])]).astype(np.int64),
                    **{key: self.history[key][events] for key in ("types", "items", "seconds")}}
            self.user_vocab = Vocabulary(self.user_vocab.ids[keep])
        return int(held.sum())

    def _held(self, user_ids: np.ndarray) -> np.ndarray:
        """Which of ``user_ids`` this table holds attributes or events of."""
        return (self.user_vocab.indices(user_ids) >= 0) | among(user_ids, self.user_ids)

    def arrays(self, prefix: str = "facts") -> dict[str, np.ndarray]:
        return {**table_arrays(f"{prefix}.users", self.user_table),
                f"{prefix}.user_ids": self.user_ids,
                f"{prefix}.vocabulary": self.user_vocab.ids,
                f"{prefix}.reference_time": np.array([self.reference_time]),
                **{f"{prefix}.history.{key}": value for key, value in self.history.items()}}

    def restore(self, arrays: Mapping[str, np.ndarray], items: ItemTable,
                prefix: str = "facts") -> UserFactsTable:
        self._items = items
        self.user_ids = arrays[f"{prefix}.user_ids"]
        self.user_table = table_frame(f"{prefix}.users", arrays, len(self.user_ids))
        self.user_vocab = Vocabulary(arrays[f"{prefix}.vocabulary"])
        self.reference_time = float(arrays[f"{prefix}.reference_time"][0])
        head = f"{prefix}.history."
        self.history = {k[len(head):]: v for k, v in arrays.items() if k.startswith(head)}
        return self


def _categories_of(items: ItemTable, columns: np.ndarray) -> list[tuple[str, ...]]:
    """The categories of each event's item (none for items not in the table)."""
    categories = items.table["categories"].tolist()
    return [tuple(categories[c] or ()) if c >= 0 else () for c in columns]


def _seconds(times: pd.Series) -> np.ndarray:
    """Unix seconds of a timestamp column (NaN where unknown)."""
    stamps = pd.to_datetime(times, utc=True, errors="coerce")
    return np.asarray((stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds(),
                      dtype=np.float64)


__all__ = ["RECENT", "Behaviour", "ItemAction", "Rule", "RuleSet", "UserFacts",
           "UserFactsTable"]
