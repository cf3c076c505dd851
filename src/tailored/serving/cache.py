"""Per-process cache of scored top lists, validated against the store on every request.

What is cached: a version's scorer's best ``cache_top_n`` items for one user (and one
context), before the pipeline's other stages (:class:`~tailored.pipeline.TopList`). The
entry remembers the user's event count and latest event ``seq`` it was scored from.

How it stays correct with several workers (read-your-writes): every request first asks
the store, in one indexed query (:meth:`tailored.store.Changes.check`), for the user's
event count and last event and for the catalog version. An entry is used only when the
user's events are exactly those it was scored from, so an event acknowledged by *any*
worker invalidates that user, and only that user, on every worker at once. Catalog
changes never invalidate entries: the catalog version brings the model's catalog view
up to date (unavailable items, attributes), and the request filters the cached list
through it, so an item made unavailable is gone from the very next answer; rules,
filters and re-rankers run on every request. No Redis is needed for correctness; each
worker warms its own cache.

A cut-off list is used only when the answer from it is provably the exact one (see
:meth:`~tailored.pipeline.Pipeline.select`); otherwise the user is scored afresh. A
scorer with an approximate item index (large catalogs, :mod:`tailored.models.ann`)
fills an entry from the index's candidates; the user's items, the filters, exclusions
and unavailable items are still applied exactly to them, and a request that leaves
too few scores every item.

Examples
--------
>>> import numpy as np
>>> from tailored.pipeline import TopList
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

from tailored.dataset import UserQuery
from tailored.pipeline import LiveRecommender, Overrides, Ranked, TopList

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


#: What an entry was scored from (:attr:`tailored.store.Freshness.user_key`).
UserKey = tuple[int, int, frozenset[str], str | None]


class TopListCache:
    """A bounded LRU of top lists; an entry counts only for the user events it was
    scored from (``user_key``: the user's event count, latest event seq, the consent
    purposes withheld and the profile)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[CacheKey, tuple[UserKey, TopList]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey, user_key: UserKey) -> TopList | None:
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

    def put(self, key: CacheKey, user_key: UserKey, top: TopList) -> None:
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
              overrides: Overrides, context: Mapping[str, Any], top_n: int, *,
              explore: bool = False) -> Ranked:
    """The user's list as of now through the version's pipeline: from the cached top
    list when it is current and answers exactly, else scored afresh (and cached)."""
    fresh = live.store.changes.check(user_id)  # the one query that keeps workers honest
    catalog = live.catalog(fresh.catalog_version)
    pipeline = live.pipeline
    if pipeline.pool(k, overrides, explore) > top_n:  # more than an entry holds
        return live.rank(live.query([user_id], context), k, overrides, catalog=catalog,
                         explore=explore)
    key = CacheKey.of(live, user_id, context)
    top = cache.get(key, fresh.user_key)
    if top is None or pipeline.reads_history(overrides):
        query = live.query([user_id], context)
    else:  # a hit: the stored history is needed only if the list cannot answer
        query = UserQuery((live.stored_id(user_id),), None, dict(context))
    if top is None:
        top = live.top_list(query, top_n)
        cache.put(key, fresh.user_key, top)
    return live.rank(query, k, overrides, top=top, catalog=catalog, explore=explore)
