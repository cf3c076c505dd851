"""The catalog as a pipeline sees it: item attributes aligned to the scorer's columns.

Business rules, request filters and boosts, category caps and diversity all read items
through one :class:`ItemTable`: row ``j`` describes the scorer's item column ``j``
(``item_id``, ``categories`` as a list, and every attribute, null where an item has
none), ``unavailable`` marks columns never to recommend. Offline the table is the one
the pipeline learned from its training items (and saved with it); the service passes a
live view of the store's catalog instead (:class:`tailored.pipeline.live.CatalogView`,
a subclass), so a price change applies to the next request without a retrain.

Tables are stored as plain typed arrays (number, bool, text, or list), never pickled.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tailored.expressions import Expression, ExpressionError, Name, normalise
from tailored.models import Recommender

from .diversity import CategorySimilarity, ItemSimilarity, ModelSimilarity, item_popularity

#: Compiled masks kept per table (each one bool per column), least recently used dropped.
MASK_CACHE_SIZE = 256
_SEPARATOR = "\x1f"


class ItemTable:
    """Item attributes, one row per scorer column, with cached expression masks.

    Examples
    --------
    >>> from tailored.expressions import parse
    >>> items = pd.DataFrame({"item_id": ["b", "a"], "categories": [["x"], []],
    ...                       "attributes": [{"price": 5}, {"price": 50}]})
    >>> table = ItemTable.from_items(items, np.array(["a", "b", "c"]))
    >>> table.mask(parse("price < 10")).tolist()
    [False, True, False]
    >>> table.categories()
    {'a': [], 'b': ['x'], 'c': []}
    """

    def __init__(self, item_ids: np.ndarray, table: pd.DataFrame | None = None,
                 unavailable: np.ndarray | None = None, positions: pd.Index | None = None
                 ) -> None:
        self.item_ids = np.asarray(item_ids)
        self.unavailable = (np.zeros(len(self.item_ids), dtype=bool) if unavailable is None
                            else unavailable)
        self._table = table
        self._positions = positions
        self._masks: OrderedDict[str, np.ndarray] = OrderedDict()
        self._built: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.RLock()

    @classmethod
    def from_items(cls, items: pd.DataFrame | None, item_ids: np.ndarray) -> ItemTable:
        """From a catalog frame (``item_id``, ``categories``, ``attributes`` as a dict,
        or attributes as columns, and optionally ``available``)."""
        item_ids = np.asarray(item_ids)
        if items is None or items.empty:
            return cls(item_ids, _empty_table(item_ids))
        unavailable = np.zeros(len(item_ids), dtype=bool)
        if "available" in items.columns:
            gone = items.loc[~items["available"].fillna(True).astype(bool), "item_id"]
            columns = pd.Index(item_ids).get_indexer(gone.astype(str))
            unavailable[columns[columns >= 0]] = True
        return cls(item_ids, aligned_attributes(items, item_ids), unavailable)

    # ---- what rows say ---------------------------------------------------------------

    @property
    def positions(self) -> pd.Index:
        """Each item id's column. Built once (at a million items, about 0.1 s), and
        handed on to the tables of later catalog versions, whose ids are the same."""
        if self._positions is None:
            with self._lock:
                if self._positions is None:
                    self._positions = pd.Index(self.item_ids.astype(str))
        return self._positions

    def columns(self, item_ids: Sequence[str]) -> np.ndarray:
        """The columns of ``item_ids`` (unknown ids left out)."""
        if not len(item_ids):
            return np.zeros(0, dtype=np.int64)
        columns = self.positions.get_indexer(pd.Index([str(item) for item in item_ids]))
        return columns[columns >= 0]

    @property
    def table(self) -> pd.DataFrame:
        """``item_id``, ``categories`` and each attribute, one row per column."""
        if self._table is None:
            with self._lock:
                if self._table is None:
                    self._table = self._read_table()
        return self._table

    def _read_table(self) -> pd.DataFrame:
        """The table when it was not given (a live view reads it on first use)."""
        return _empty_table(self.item_ids)

    def categories(self) -> dict[str, list[str]]:
        """``item_id -> categories`` (an empty list for an item without any)."""
        table = self.table
        return {str(item): list(value) if isinstance(value, list | tuple) else []
                for item, value in zip(table["item_id"], table["categories"], strict=True)}

    def similarity(self, scorer: Recommender, kind: str = "categories") -> ItemSimilarity:
        """The one item similarity of diversity re-ranking: with ``categories``, the
        Jaccard overlap of categories when items have any, else the scorer's own
        (:class:`ModelSimilarity`); with ``model``, always the scorer's."""
        def build() -> ItemSimilarity:
            categories = {item: c for item, c in self.categories().items() if c}
            if kind == "categories" and categories:
                return CategorySimilarity(categories)
            return ModelSimilarity(scorer)
        return self._derived(("similarity", kind, id(scorer)), build)

    def popularity(self, scorer: Recommender) -> dict[str, float]:
        """How many training users touched each item (for novelty re-ranking)."""
        return self._derived(("popularity", id(scorer)), lambda: item_popularity(scorer))

    def _derived(self, key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
        """Built once per table (a live table is rebuilt when the catalog changes)."""
        with self._lock:
            if key not in self._built:
                self._built[key] = build()
            return self._built[key]

    # ---- expressions -----------------------------------------------------------------

    def mask(self, expression: Expression, names: Mapping[str, Any] | None = None
             ) -> np.ndarray:
        """Where ``expression`` holds, one bool per column. ``names`` gives ``user`` and
        ``context``; masks of expressions that read neither are cached by their text."""
        personal = any(name.split(".")[0] in ("user", "context") for name in expression.names)
        key = str(expression)
        if not personal:
            with self._lock:
                if key in self._masks:
                    self._masks.move_to_end(key)
                    return self._masks[key]
        mask = np.asarray(expression.mask(self.table, dict(names or {})), dtype=bool)
        if not personal:
            with self._lock:
                self._masks[key] = mask
                while len(self._masks) > MASK_CACHE_SIZE:
                    self._masks.popitem(last=False)
        return mask

    def check_names(self, expression: Expression) -> None:
        """Refuse an expression reading an item attribute no item has (with its column)."""
        columns = set(self.table.columns)
        for node in expression.nodes():
            if not isinstance(node, Name) or node.path[0] in ("context", "user"):
                continue
            name = node.path[-1] if node.path[0] == "item" else node.path[0]
            if name not in columns:
                raise ExpressionError(f"no item has an attribute {name!r}",
                                      expression.text or str(expression), node.position,
                                      f"item attributes are: {', '.join(sorted(columns))}")

    # ---- persistence -----------------------------------------------------------------

    def arrays(self, prefix: str = "items") -> dict[str, np.ndarray]:
        return {**table_arrays(prefix, self.table), f"{prefix}.unavailable": self.unavailable}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], item_ids: np.ndarray,
                    prefix: str = "items") -> ItemTable:
        table = table_frame(prefix, arrays, len(item_ids))
        table["item_id"] = np.asarray(item_ids).astype(object)
        table["categories"] = [list(c) if isinstance(c, tuple | list) else []
                               for c in table["categories"]]
        return cls(item_ids, table, arrays[f"{prefix}.unavailable"].astype(bool))


def aligned_attributes(items: pd.DataFrame, item_ids: np.ndarray) -> pd.DataFrame:
    """The catalog frame's attributes aligned to ``item_ids`` (``item_id``,
    ``categories`` as lists, then one column per attribute)."""
    spread = catalog_attributes(items).reindex(pd.Index(np.asarray(item_ids).astype(str)))
    spread.index = pd.RangeIndex(len(item_ids))
    spread.insert(0, "item_id", np.asarray(item_ids).astype(object))
    spread["categories"] = [list(c) if isinstance(c, list | tuple | np.ndarray) else []
                            for c in spread["categories"]]
    return spread


def catalog_attributes(frame: pd.DataFrame) -> pd.DataFrame:
    """``categories`` and every attribute, one column each, indexed by item id; reads a
    store's ``attributes`` dicts or a dataset's attribute columns."""
    if "attributes" in frame.columns:
        spread = pd.json_normalize(frame["attributes"].tolist(), max_level=0)
    else:
        spread = frame.drop(columns=[c for c in ("available", "created_at", "updated_at",
                                                 "title", "text") if c in frame.columns])
        spread = spread.reset_index(drop=True)
    spread = spread.drop(columns=[c for c in spread.columns if c in ("item_id", "categories")])
    categories = (frame["categories"].to_numpy() if "categories" in frame.columns
                  else np.full(len(frame), None, dtype=object))
    spread.insert(0, "categories", categories)
    spread.index = pd.Index(frame["item_id"].astype(str).to_numpy())
    return spread[~spread.index.duplicated(keep="last")]


def _empty_table(item_ids: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"item_id": pd.Series(np.asarray(item_ids), dtype=object),
                         "categories": pd.Series([[] for _ in item_ids], dtype=object)})


# ---- tables as plain arrays ---------------------------------------------------------------


def _encode(series: pd.Series) -> tuple[str, np.ndarray, np.ndarray]:
    """(kind, values, null) in plain dtypes: number, bool, text, or list."""
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


def table_arrays(prefix: str, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """A frame as named plain arrays (``prefix.columns``, ``prefix.kinds``, values)."""
    arrays = {f"{prefix}.columns": np.asarray(list(frame.columns), dtype=str)}
    kinds = []
    for number, column in enumerate(frame.columns):
        kind, values, null = _encode(frame[column])
        kinds.append(kind)
        arrays[f"{prefix}.{number}.values"] = values
        arrays[f"{prefix}.{number}.null"] = null
    arrays[f"{prefix}.kinds"] = np.asarray(kinds, dtype=str)
    return arrays


def table_frame(prefix: str, arrays: Mapping[str, np.ndarray], rows: int) -> pd.DataFrame:
    """The frame :func:`table_arrays` stored."""
    columns = arrays[f"{prefix}.columns"].tolist()
    kinds = arrays[f"{prefix}.kinds"].tolist()
    frame = pd.DataFrame(index=range(rows))
    for number, (column, kind) in enumerate(zip(columns, kinds, strict=True)):
        frame[column] = _decode(kind, arrays[f"{prefix}.{number}.values"],
                                arrays[f"{prefix}.{number}.null"])
    return frame


__all__ = ["MASK_CACHE_SIZE", "ItemTable", "aligned_attributes", "catalog_attributes",
           "table_arrays", "table_frame"]
