"""Recommendations from the live store: a model version scores each user's history as it
is right now, so an event acknowledged a moment ago already counts.

The request path is array-first: :meth:`LiveRecommender.top_list` scores one user and
keeps the model's best items (what a cache may hold), :meth:`LiveRecommender.select`
applies what the request asks (the catalog's unavailable items, ``exclude`` ids, a
``filter`` expression, ``boost`` factors) and returns a :class:`Ranked` list. Filters
and boosts are :mod:`tailored.expressions` over item attributes; the parsed forms live
in :class:`Selection`.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tailored.dataset import UserQuery, interest_mask
from tailored.errors import ModelNotFoundError
from tailored.expressions import Expression, ExpressionError, Name, parse
from tailored.models import Recommender
from tailored.ranking import (
    CategorySimilarity,
    ItemSimilarity,
    ModelSimilarity,
    diversify,
    explain_recommendations,
)
from tailored.store import ModelVersion, Store

#: Compiled filter masks kept per catalog version (each one bool per model item).
MASK_CACHE_SIZE = 256
#: Above this many changed items, the catalog view reloads instead of patching.
PATCH_LIMIT = 2_000
#: At most this many new items (the newest) are offered to exploration per request.
MAX_NEW_ITEMS = 500


# ---- what the request asks for ---------------------------------------------------------


def _item_expression(text: str, parameter: str) -> Expression:
    """An item expression, refused (with the column) when it reads a name it cannot see."""
    expression = parse(text)
    for node in expression.nodes():
        if not isinstance(node, Name):
            continue
        head = node.path[0]
        if (head == "context" and len(node.path) == 2) or len(node.path) == 1 or (
                head == "item" and len(node.path) == 2):
            continue
        raise ExpressionError(
            f"unknown name {node.dotted!r} in {parameter}", text, node.position,
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


@dataclass(frozen=True)
class Boost:
    """Scale the scores of the items where ``where`` holds by ``factor`` (a positive score
    is multiplied, a negative one divided, so a factor above 1 always raises)."""

    where: Expression
    factor: float

    @classmethod
    def parse(cls, text: str) -> Boost:
        """``EXPRESSION:FACTOR``, e.g. ``"shoes" in categories:1.5`` or ``price > 500:0.5``.

        Examples
        --------
        >>> Boost.parse('"shoes" in categories:1.5')
        Boost(where=Expression('"shoes" in categories'), factor=1.5)
        """
        expression_text, factor_text, factor_at = _split_boost(text)
        try:
            factor = float(factor_text)
        except ValueError:
            factor = math.nan
        if not math.isfinite(factor) or factor <= 0:
            raise ExpressionError(f"a boost factor must be a positive number, got "
                                  f"{factor_text.strip()!r}", text, factor_at)
        try:
            where = _item_expression(expression_text, "boost")
        except ExpressionError as error:  # same text, so the column stays right
            raise ExpressionError(error.reason, text, error.position) from None
        return cls(where, factor)


@dataclass(frozen=True)
class Selection:
    """What a request keeps and favours among the model's items.

    ``filter`` keeps the items where it holds; ``boosts`` scale scores; ``exclude``
    leaves item ids out. Unavailable items are always left out.

    Examples
    --------
    >>> selection = Selection.parse(filter='price < 100', boosts=['"shoes" in categories:2'])
    >>> str(selection.filter), selection.boosts[0].factor
    ('price < 100', 2.0)
    >>> Selection.parse(filter='price <')
    Traceback (most recent call last):
    ...
    tailored.expressions.ExpressionError: unexpected end of expression at column 8
      price <
             ^
    """

    filter: Expression | None = None
    boosts: tuple[Boost, ...] = ()
    exclude: tuple[str, ...] = ()

    @classmethod
    def parse(cls, filter: str | None = None, boosts: Sequence[str] = (),
              exclude: Sequence[str] = ()) -> Selection:
        """Parse the request's texts; an :class:`ExpressionError` says where one is wrong."""
        parsed = _item_expression(filter, "filter") if filter and filter.strip() else None
        return cls(parsed, tuple(Boost.parse(text) for text in boosts), tuple(exclude))

    @property
    def reads_context(self) -> bool:
        expressions = [self.filter, *(b.where for b in self.boosts)]
        return any(name.startswith("context.") for e in expressions if e is not None
                   for name in e.names)

    @property
    def is_plain(self) -> bool:
        return self.filter is None and not self.boosts and not self.exclude


@dataclass(frozen=True)
class TopList:
    """A model's best items for one user before request filters: columns of the model's
    item vocabulary and their scores, best first. ``complete`` when no scorable item
    was cut off (every item below ``scores[-1]`` is absent only if it cannot be shown)."""

    columns: np.ndarray
    scores: np.ndarray
    complete: bool

    @classmethod
    def of(cls, scores: np.ndarray, n: int) -> TopList:
        """The best ``n`` finite scores of one user's score row."""
        finite = np.isfinite(scores)
        count = int(finite.sum())
        if count <= n:
            columns = np.flatnonzero(finite)
            complete = True
        else:
            columns = np.argpartition(-np.where(finite, scores, -np.inf), n - 1)[:n]
            complete = False
        order = np.lexsort((columns, -scores[columns]))
        columns = columns[order].astype(np.int32)
        return cls(columns, scores[columns].astype(np.float32), complete)

    @property
    def nbytes(self) -> int:
        return int(self.columns.nbytes + self.scores.nbytes)


@dataclass(frozen=True)
class Ranked:
    """The answer for one user: item ids with their final scores, best first."""

    item_ids: list[str]
    scores: list[float]
    columns: np.ndarray = field(repr=False)

    def frame(self, user_id: str) -> pd.DataFrame:
        return pd.DataFrame({"user_id": pd.Series([user_id] * len(self.item_ids), dtype=object),
                             "item_id": pd.Series(self.item_ids, dtype=object),
                             "score": np.asarray(self.scores, dtype=np.float32),
                             "rank": np.arange(1, len(self.item_ids) + 1)})


def _best(scores: np.ndarray, columns: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best scores, best first (ties: lower column first)."""
    if len(scores) > 4 * k:  # a full score row: partition before sorting
        candidates = np.argpartition(-scores, k - 1)[:k]
        order = np.lexsort((columns[candidates], -scores[candidates]))
        return candidates[order]
    return np.lexsort((columns, -scores))[:k]


# ---- the catalog as one model sees it ---------------------------------------------------


class CatalogView:
    """The catalog aligned to one model's item columns, as of a catalog ``version``.

    ``unavailable`` marks columns never to recommend. Item attributes (for filters and
    boosts) are read only when an expression first needs them, and so are the available
    items the model does not know (:meth:`new_items`, exploration's cold-start
    candidates). :meth:`updated` brings a view to a newer catalog version by re-reading
    only the items changed since.
    """

    def __init__(self, store: Store, item_ids: np.ndarray, version: int,
                 unavailable: np.ndarray, table: pd.DataFrame | None = None,
                 new: pd.DataFrame | None = None) -> None:
        self.store = store
        self.item_ids = item_ids
        self.version = version
        self.unavailable = unavailable
        self._table = table
        self._new = new
        self._masks: OrderedDict[str, np.ndarray] = OrderedDict()
        self._similarity: ItemSimilarity | None = None
        self._lock = threading.RLock()

    @classmethod
    def load(cls, store: Store, item_ids: np.ndarray) -> CatalogView:
        version = store.changes.catalog_version()  # first: a later change is re-applied
        unavailable = np.zeros(len(item_ids), dtype=bool)
        columns = pd.Index(item_ids).get_indexer(store.items.unavailable())
        unavailable[columns[columns >= 0]] = True  # (np.isin on strings is quadratic)
        return cls(store, item_ids, version, unavailable)

    def updated(self, version: int) -> CatalogView:
        """This view at catalog ``version`` (itself when nothing changed)."""
        if version == self.version:
            return self
        latest, changed = self.store.changes.items_since(self.version)
        if len(changed) > PATCH_LIMIT:
            return CatalogView.load(self.store, self.item_ids)
        columns = pd.Index(self.item_ids).get_indexer(changed)
        known = columns >= 0
        new = None if self._new is None else self._patched_new(
            np.asarray(changed, dtype=object)[~known].tolist())
        unavailable = self.unavailable.copy()
        table = None if self._table is None else self._table.copy()
        for item_id, column in zip(np.asarray(changed, dtype=object)[known], columns[known],
                                   strict=True):
            item = self.store.items.get(item_id)
            unavailable[column] = item is None or not item.available  # deleted: never again
            if table is not None:
                row = {} if item is None else {"categories": list(item.categories),
                                               **item.attributes}
                for name in sorted(set(row) | set(table.columns.drop("item_id"))):
                    if name not in table.columns:  # a new attribute
                        table[name] = None
                    elif table[name].dtype != object:  # any type may arrive
                        table[name] = table[name].astype(object)
                    value: Any = row.get(name)
                    table.at[column, name] = value
        return CatalogView(self.store, self.item_ids, max(latest, version), unavailable, table,
                           new)

    def new_items(self) -> pd.DataFrame:
        """Available catalog items the model does not know (it was trained before they
        came, or they had no events), newest first: the catalog's columns."""
        if self._new is None:
            with self._lock:
                if self._new is None:
                    frame = self.store.items.frame()
                    fresh = frame["available"].to_numpy(bool) & ~frame["item_id"].isin(
                        pd.Index(self.item_ids)).to_numpy()
                    self._new = _newest_first(frame[fresh])
        return self._new

    def _patched_new(self, changed: list[str]) -> pd.DataFrame:
        """:meth:`new_items` after the unknown items ``changed`` were written."""
        assert self._new is not None
        kept = self._new[~self._new["item_id"].isin(changed)]
        found = [item.model_dump() for item_id in changed
                 if (item := self.store.items.get(item_id)) is not None and item.available]
        if not found:
            return kept
        added = pd.DataFrame(found)[list(kept.columns)]
        added["created_at"] = pd.to_datetime(added["created_at"], utc=True)
        return _newest_first(pd.concat([kept, added], ignore_index=True))

    def new_candidates(self, selection: Selection, context: Mapping[str, Any] | None = None,
                       seen: Collection[str] = (), limit: int = MAX_NEW_ITEMS) -> list[str]:
        """The newest ``limit`` of :meth:`new_items` that pass the request's ``selection``
        (its filter and ``exclude``) and are not in ``seen`` (the user's history)."""
        new = self.new_items()
        if new.empty:
            return []
        keep = ~new["item_id"].isin({*seen, *selection.exclude}).to_numpy()
        if selection.filter is not None and keep.any():
            # Every attribute any item has, so a name the filter passed checks on is there.
            table = _attributes(new).reindex(columns=self.table.columns.drop("item_id"))
            table.insert(0, "item_id", new["item_id"].to_numpy())
            table["categories"] = [c if isinstance(c, list) else []
                                   for c in table["categories"]]
            keep &= np.asarray(selection.filter.mask(table.reset_index(drop=True),
                                                     {"context": dict(context or {})}),
                               dtype=bool)
        return new["item_id"][keep].head(limit).astype(str).tolist()

    @property
    def table(self) -> pd.DataFrame:
        """Item attributes, one row per model column: ``item_id``, ``categories`` and
        each attribute (null where an item has none or is not in the catalog)."""
        if self._table is None:
            with self._lock:
                if self._table is None:
                    self._table = self._read_table()
        return self._table

    def _read_table(self) -> pd.DataFrame:
        frame = self.store.items.frame()
        table = pd.DataFrame({"item_id": pd.Series(self.item_ids, dtype=object)})
        if frame.empty:
            table["categories"] = pd.Series([[] for _ in self.item_ids], dtype=object)
            return table
        aligned = _attributes(frame).reindex(self.item_ids)
        aligned.index = table.index
        table = pd.concat([table, aligned], axis=1)
        table["categories"] = [c if isinstance(c, list) else [] for c in table["categories"]]
        return table

    def similarity(self, model: Recommender) -> ItemSimilarity:
        """What diversity re-ranking measures: category overlap when items have
        categories, else the model's own item similarity (built once per view)."""
        with self._lock:
            if self._similarity is None:
                table = self.table
                categories = {item: list(c) for item, c in
                              zip(table["item_id"], table["categories"], strict=True) if c}
                self._similarity = (CategorySimilarity(categories) if categories
                                    else ModelSimilarity(model))
            return self._similarity

    def mask(self, expression: Expression, context: Mapping[str, Any] | None = None
             ) -> np.ndarray:
        """Where ``expression`` holds, one bool per model column (cached per text when it
        does not read the context)."""
        self._check_names(expression)
        reads_context = any(n.startswith("context.") for n in expression.names)
        key = str(expression)
        if not reads_context:
            with self._lock:
                if key in self._masks:
                    self._masks.move_to_end(key)
                    return self._masks[key]
        mask = np.asarray(expression.mask(self.table, {"context": dict(context or {})}),
                          dtype=bool)
        if not reads_context:
            with self._lock:
                self._masks[key] = mask
                while len(self._masks) > MASK_CACHE_SIZE:
                    self._masks.popitem(last=False)
        return mask

    def _check_names(self, expression: Expression) -> None:
        columns = set(self.table.columns)
        for node in expression.nodes():
            if not isinstance(node, Name) or node.path[0] == "context":
                continue
            name = node.path[-1] if node.path[0] == "item" else node.path[0]
            if name not in columns:
                known = ", ".join(sorted(columns))
                raise ExpressionError(f"no item has an attribute {name!r}",
                                      expression.text or str(expression), node.position,
                                      f"item attributes are: {known}")


def _attributes(frame: pd.DataFrame) -> pd.DataFrame:
    """A catalog frame's categories and attributes, one column each, indexed by item id."""
    spread = pd.json_normalize(frame["attributes"].tolist(), max_level=0)
    spread = spread.drop(columns=[c for c in spread.columns if c in ("item_id", "categories")])
    spread.insert(0, "categories", frame["categories"].to_numpy())
    spread.index = pd.Index(frame["item_id"].to_numpy())
    return spread


def _newest_first(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["created_at", "item_id"], ascending=[False, True],
                             kind="stable").reset_index(drop=True)


# ---- the live recommender ---------------------------------------------------------------


class LiveRecommender:
    """One model version bound to the store it serves from."""

    def __init__(self, store: Store, model: Recommender, version: ModelVersion | None = None):
        self.store = store
        self.model = model
        self.version = version
        self._catalog: CatalogView | None = None
        self._catalog_lock = threading.Lock()
        self._zero_types = sorted(model.weights_.zero_weight_types()) if model.is_fitted else []

    @classmethod
    def active(cls, store: Store) -> LiveRecommender:
        """The version the registry marks active."""
        version = store.models.active()
        if version is None:
            raise ModelNotFoundError(
                f"no active model in the store at {store.url}; train one with `tailored train`")
        return cls(store, Recommender.load(Path(version.path)), version)

    # ---- histories and the catalog ---------------------------------------------------

    def history(self, user_ids: Sequence[str]) -> pd.DataFrame:
        """The users' events as stored now, impressions (zero-weight types) left out."""
        events = self.store.events.frame(user_ids=list(user_ids))
        if len(events) and not (keep := interest_mask(events, self.model.weights_)).all():
            events = events[keep].reset_index(drop=True)
        return events

    def query(self, user_ids: Sequence[str], context: Mapping[str, Any] | None = None
              ) -> UserQuery:
        """The users with their histories as stored now."""
        return UserQuery(tuple(user_ids), self.history(user_ids), dict(context or {}))

    def catalog(self, version: int | None = None) -> CatalogView:
        """The catalog view at ``version`` (default: the store's version now)."""
        if version is None:
            version = self.store.changes.catalog_version()
        view = self._catalog
        if view is None or view.version != version:
            with self._catalog_lock:
                view = self._catalog
                if view is None:
                    view = CatalogView.load(self.store, self.model.item_ids)
                view = view.updated(version) if view.version < version else view
                self._catalog = view
        return view

    # ---- scoring ---------------------------------------------------------------------

    def scores(self, user_id: str, events: pd.DataFrame | None = None,
               context: Mapping[str, Any] | None = None) -> np.ndarray:
        """One user's scores over the model's items from ``events`` (default: the
        history stored now); items already in the history are ``-inf``."""
        if events is None:
            events = self.history([user_id])
        scores = self.model.score(UserQuery((user_id,), events, dict(context or {})))[0]
        scores = np.where(np.isnan(scores), -np.inf, scores).astype(np.float32)
        if len(events):
            seen = self.model.item_vocab_.indices(events["item_id"].astype(str).tolist())
            scores[seen[seen >= 0]] = -np.inf
        return scores

    def top_list(self, user_id: str, n: int, events: pd.DataFrame | None = None,
                 context: Mapping[str, Any] | None = None) -> TopList:
        """The model's best ``n`` items for the user, before request filters."""
        return TopList.of(self.scores(user_id, events, context), n)

    def select(self, top: TopList | np.ndarray, k: int, selection: Selection = Selection(),
               catalog: CatalogView | None = None,
               context: Mapping[str, Any] | None = None) -> Ranked | None:
        """The best ``k`` after the selection, from a top list or a full score row.

        From a cut-off top list the answer is ``None`` when it cannot be proven exact
        (too few items survive the filters, or a boost could lift an item from below the
        list): score the user completely then.
        """
        catalog = catalog if catalog is not None else self.catalog()
        if isinstance(top, np.ndarray):
            columns = np.flatnonzero(np.isfinite(top)).astype(np.int32)
            scores, complete, floor = top[columns], True, -np.inf
        else:
            columns, scores, complete = top.columns, top.scores, top.complete
            floor = float(scores[-1]) if len(scores) else -np.inf
        keep = ~catalog.unavailable[columns]
        if selection.exclude:
            excluded = self.model.item_vocab_.indices(list(selection.exclude))
            keep &= ~np.isin(columns, excluded[excluded >= 0])
        if selection.filter is not None:
            keep &= catalog.mask(selection.filter, context)[columns]
        columns, scores = columns[keep], scores[keep].astype(np.float32)
        top_factor = 1.0
        for boost in selection.boosts:
            hit = catalog.mask(boost.where, context)[columns]
            factor = np.float32(boost.factor)
            scores = np.where(hit, np.where(scores > 0, scores * factor, scores / factor),
                              scores)
            top_factor *= max(boost.factor, 1.0)
        order = _best(scores, columns, k)
        if not complete:
            # An item below the list scored at most `floor`; boosted, at most this.
            ceiling = floor * top_factor if floor > 0 else floor / top_factor
            if len(order) < k or scores[order[-1]] < ceiling:
                return None
        picked = columns[order]
        return Ranked(self.model.item_ids[picked].tolist(),
                      [float(s) for s in scores[order]], picked)

    def recommend_one(self, user_id: str, k: int, selection: Selection = Selection(), *,
                      events: pd.DataFrame | None = None,
                      context: Mapping[str, Any] | None = None,
                      catalog: CatalogView | None = None) -> Ranked:
        """The top ``k`` for one user, scored completely (no cache)."""
        ranked = self.select(self.scores(user_id, events, context), k, selection, catalog,
                             context)
        assert ranked is not None  # a full score row is always exact
        return ranked

    # ---- re-ranking and explanations (tailored.ranking) --------------------------------

    def diversify(self, user_id: str, candidates: Ranked, k: int, diversity: float,
                  catalog: CatalogView | None = None) -> Ranked:
        """The best ``k`` of ``candidates`` re-ranked by MMR for variety (``diversity``
        in [0, 1]; 0 keeps the order); scores stay the model's."""
        if diversity <= 0 or len(candidates.item_ids) <= 1:
            return Ranked(candidates.item_ids[:k], candidates.scores[:k], candidates.columns[:k])
        catalog = catalog if catalog is not None else self.catalog()
        picked = diversify(candidates.frame(user_id), k, diversity=diversity,
                           similarity=catalog.similarity(self.model))
        position = {item: n for n, item in enumerate(candidates.item_ids)}
        order = [position[item] for item in picked["item_id"]]
        return Ranked([candidates.item_ids[n] for n in order],
                      [candidates.scores[n] for n in order], candidates.columns[order])

    def explain(self, user_id: str, ranked: Ranked, events: pd.DataFrame | None = None,
                context: Mapping[str, Any] | None = None,
                explored: Sequence[bool] | None = None) -> list[str]:
        """Why each item is in the list, in words (from the user's history as now);
        ``explored`` marks the items an exploration policy placed."""
        if not ranked.item_ids:
            return []
        history = events if events is not None else self.history([user_id])
        titles = {item_id: found.title for item_id in dict.fromkeys(
            [*ranked.item_ids, *history["item_id"].astype(str).tolist()[-50:]])
            if (found := self.store.items.get(item_id)) is not None and found.title}
        query = UserQuery((user_id,), history, dict(context or {}))
        shown = ranked.frame(user_id)
        if explored is not None:
            shown["explored"] = list(explored)
        explained = explain_recommendations(self.model, query, shown, titles=titles)
        return [str(reason) for reason in explained["reason"]]

    def recommend(self, user_ids: Sequence[str], k: int = 10, *,
                  exclude: Sequence[str] = ()) -> pd.DataFrame:
        """Top ``k`` per user from current histories, never an unavailable item."""
        # Read per call: a catalog change applies to the very next answer.
        excluded = [*self.store.items.unavailable(), *exclude]
        return self.model.recommend(self.query(user_ids), k=k, exclude=excluded)

    def similar_items(self, item_id: str, k: int = 10) -> pd.DataFrame:
        unavailable = self.store.items.unavailable()
        similar = self.model.similar_items(item_id, k=k + len(unavailable))
        similar = similar[~similar["similar_item_id"].isin(unavailable)].head(k)
        similar["rank"] = range(1, len(similar) + 1)
        return similar.reset_index(drop=True)

