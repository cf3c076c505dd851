"""Per-process cache of scored top lists, validated against the store on every request.

What is cached: a model version's best ``cache_top_n`` items for one user (and one
context), before any request filter (:class:`~tailored.pipeline.live.TopList`). The
entry remembers the user's event count and latest event ``seq`` it was scored from.

How it stays correct with several workers (read-your-writes): every request first asks
the store, in one indexed query (:meth:`tailored.store.Changes.check`), for the user's
event count and last event and for the catalog version. An entry is used only when the
user's events are exactly those it was scored from, so an event acknowledged by *any*
worker invalidates that user, and only that user, on every worker at once. Catalog
changes never invalidate entries: the catalog version brings the model's catalog view
up to date (unavailable items, attributes), and the request filters the cached list
through it, so an item made unavailable is gone from the very next answer. No Redis is
needed for correctness; each worker warms its own cache.

A cut-off list is used only when the answer from it is provably the exact one (see
:meth:`~tailored.pipeline.LiveRecommender.select`); otherwise the user is scored afresh.

Examples
--------
>>> import numpy as np
>>> from tailored.pipeline.live import TopList
>>> cache = TopListCache(max_entries=2)
>>> key = CacheKey(version=1, user_id="u1", context=())
>>> cache.get(key, (3, 17)) is None
True
>>> cache.put(key, (3, 17), TopList.of(np.array([0.1, 0.9, 0.5]), 2))
>>> cache.get(key, (3, 17)).columns.tolist()
[1, 2]
>>> cache.get(key, (4, 18)) is None   # the user has a new event
True
>>> cache.hits, cache.misses
(1, 2)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tailored.pipeline import LiveRecommender
from tailored.pipeline.live import CatalogView, Ranked, Selection, TopList

from .metrics import CACHE_LOOKUPS


@dataclass(frozen=True)
class CacheKey:
    """Whose list: the model version, the user and the request's context."""

    version: int | None
    user_id: str
    context: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, live: LiveRecommender, user_id: str, context: Mapping[str, Any]
           ) -> CacheKey:
        version = None if live.version is None else live.version.version
        # The context may change the model's scores (rules read it), so it is part of
        # the key; str() keeps values of mixed types sortable.
        return cls(version, user_id, tuple(sorted((k, str(v)) for k, v in context.items())))


class TopListCache:
    """A bounded LRU of top lists; an entry counts only for the user events it was
    scored from (``user_key``: the user's event count and latest event seq)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[CacheKey, tuple[tuple[int, int], TopList]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey, user_key: tuple[int, int]) -> TopList | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None and found[0] == user_key:
                self._entries.move_to_end(key)
                self.hits += 1
                hit = True
            else:
                self.misses += 1
                hit = False
        CACHE_LOOKUPS.labels(result="hit" if hit else "miss").inc()
        return found[1] if hit and found is not None else None

    def put(self, key: CacheKey, user_key: tuple[int, int], top: TopList) -> None:
        if self.max_entries <= 0:
            return
        with self._lock:
            self._entries[key] = (user_key, top)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def rank_user(live: LiveRecommender, cache: TopListCache, user_id: str, k: int,
              selection: Selection, context: Mapping[str, Any], top_n: int) -> Ranked:
    """The user's top ``k`` as of now: from the cached list when it is current and
    enough, else scored afresh (and the new list cached)."""
    fresh = live.store.changes.check(user_id)  # the one query that keeps workers honest
    catalog: CatalogView = live.catalog(fresh.catalog_version)
    if k > top_n:  # more than an entry holds: score completely, nothing to cache
        return live.recommend_one(user_id, k, selection, context=context, catalog=catalog)
    key = CacheKey.of(live, user_id, context)
    top = cache.get(key, fresh.user_key)
    scores = None
    if top is None:
        scores = live.scores(user_id, context=context)
        top = TopList.of(scores, top_n)
        cache.put(key, fresh.user_key, top)
    ranked = live.select(top, k, selection, catalog, context)
    if ranked is None:  # the list cannot answer this filter exactly
        if scores is None:
            scores = live.scores(user_id, context=context)
        ranked = live.select(scores, k, selection, catalog, context)
        assert ranked is not None
    return ranked
