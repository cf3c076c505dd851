"""A pipeline bound to the live store: what serving (and ``tailored recommend``) adds.

Two things only: each user's *current* history (an event acknowledged a moment ago
already counts, without retraining) and the *live* catalog (:class:`CatalogView`, the
store's items aligned to the scorer's columns as of a catalog version), which the
pipeline's rules, filters and re-rankers read instead of the catalog it was trained
with, so a price change or an item taken off sale applies to the next request. Every
list itself comes from :class:`~tailored.pipeline.Pipeline`.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from tailored.dataset import UserQuery, interest_mask, profile_table
from tailored.errors import ModelNotFoundError
from tailored.models import Recommender
from tailored.models.content import ContentVectors, catalog_similarity
from tailored.ranking import ItemTable, RuleSet, UserFacts
from tailored.ranking.catalog import aligned_attributes, catalog_attributes
from tailored.schema import PERSONALIZATION
from tailored.store import ModelVersion, Store, stored_user_id

from .pipeline import NO_OVERRIDES, Overrides, Pipeline, Ranked, TopList

#: Up to this many users a query reads their profiles one by one, beyond it all at once.
_PROFILES_ONE_BY_ONE = 100
#: The measures similar items can be ranked by (:meth:`LiveRecommender.similar_items`).
SimilarityKind = Literal["model", "content", "co_views", "bought_together"]
#: The history of a list for no one (similar items).
_NO_EVENTS = pd.DataFrame({"user_id": pd.Series(dtype=object),
                           "item_id": pd.Series(dtype=object)})

#: Above this many changed items, the catalog view reloads instead of patching.
PATCH_LIMIT = 2_000
#: At most this many new items (the newest) are offered to exploration per request.
MAX_NEW_ITEMS = 500
#: A user's newest this many history items are what new arrivals are compared to.
RECENT_ITEMS = 20
#: Candidates taken from a scorer's item index for a list not served from the cache
#: (at least twice the pool), as many as the cache's default ``cache_top_n``.
INDEX_CANDIDATES = 200


class CatalogView(ItemTable):
    """The store's catalog aligned to one scorer's item columns, as of a ``version``.

    Item attributes are read only when an expression or a re-ranker first needs them,
    and so are the available items the scorer does not know (:meth:`new_items`,
    exploration's cold-start candidates). :meth:`updated` brings a view to a newer
    catalog version by re-reading only the items changed since.
    """

    def __init__(self, store: Store, item_ids: np.ndarray, version: int,
                 unavailable: np.ndarray, table: pd.DataFrame | None = None,
                 new: pd.DataFrame | None = None,
                 arrivals: ContentVectors | None = None,
                 positions: pd.Index | None = None) -> None:
        super().__init__(item_ids, table, unavailable, positions)
        self.store = store
        self.version = version
        self._new = new
        self._arrivals = arrivals

    @classmethod
    def load(cls, store: Store, item_ids: np.ndarray, positions: pd.Index | None = None
             ) -> CatalogView:
        version = store.changes.catalog_version()  # first: a later change is re-applied
        view = cls(store, item_ids, version, np.zeros(len(item_ids), dtype=bool),
                   positions=positions)
        view.unavailable[view.columns(store.items.unavailable())] = True
        return view

    def _read_table(self) -> pd.DataFrame:
        frame = self.store.items.frame()
        if frame.empty:
            return super()._read_table()
        return aligned_attributes(frame, self.item_ids)

    def updated(self, version: int) -> CatalogView:
        """This view at catalog ``version`` (itself when nothing changed)."""
        if version == self.version:
            return self
        latest, changed = self.store.changes.items_since(self.version)
        if len(changed) > PATCH_LIMIT:
            return CatalogView.load(self.store, self.item_ids, self.positions)
        columns = self.positions.get_indexer(pd.Index(changed))
        known = columns >= 0
        unknown = np.asarray(changed, dtype=object)[~known].tolist()
        new = None if self._new is None else self._patched_new(unknown)
        arrivals = None if unknown else self._arrivals  # the new items are the same
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
                    value: Any = row.get(name, [] if name == "categories" else None)
                    table.at[column, name] = value
        return CatalogView(self.store, self.item_ids, max(latest, version), unavailable, table,
                           new, arrivals, self.positions)

    def new_items(self) -> pd.DataFrame:
        """Available catalog items the scorer does not know (it was trained before they
        came, or they had no events), newest first: the catalog's columns."""
        if self._new is None:
            with self._lock:
                if self._new is None:
                    frame = self.store.items.frame()
                    fresh = frame["available"].to_numpy(bool) & ~frame["item_id"].isin(
                        pd.Index(self.item_ids)).to_numpy()
                    self._new = _newest_first(frame[fresh])
        return self._new

    def arrivals(self) -> ContentVectors | None:
        """The content of the newest :data:`MAX_NEW_ITEMS` of :meth:`new_items`, what
        users' histories are compared to (None without new items): fitted once per
        catalog view, and kept by views whose changes touch no new item."""
        if self._arrivals is None:
            new = self.new_items()
            if new.empty:
                return None
            with self._lock:
                if self._arrivals is None:
                    self._arrivals = ContentVectors(new.head(MAX_NEW_ITEMS))
        return self._arrivals

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

    def new_candidates(self, rules: RuleSet, facts: UserFacts,
                       context: Mapping[str, Any] | None = None, exclude: Collection[str] = (),
                       seen: Collection[str] = (), limit: int = MAX_NEW_ITEMS) -> list[str]:
        """The newest ``limit`` of :meth:`new_items` that the ``rules`` let through (their
        filters and exclusions, for the user of ``facts``), not in ``exclude`` and not
        in ``seen`` (the user's history)."""
        new = self.new_items()
        if new.empty:
            return []
        new = new[~new["item_id"].isin({*seen, *exclude})]
        if len(rules) and len(new):
            # Every attribute any item has, so names the request was checked on exist.
            table = catalog_attributes(new).reindex(columns=self.table.columns.drop("item_id"))
            table.insert(0, "item_id", new["item_id"].to_numpy())
            table["categories"] = [c if isinstance(c, list) else [] for c in table["categories"]]
            items = ItemTable(new["item_id"].to_numpy(), table.reset_index(drop=True))
            scores = rules.apply(np.ones((1, len(new)), np.float32), np.arange(len(new)),
                                 [facts], items, context)[0]
            new = new[np.isfinite(scores)]
        return new["item_id"].head(limit).astype(str).tolist()


def _newest_first(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["created_at", "item_id"], ascending=[False, True],
                             kind="stable").reset_index(drop=True)


class LiveRecommender:
    """One registered pipeline version bound to the store it serves from."""

    def __init__(self, store: Store, pipeline: Pipeline | Recommender,
                 version: ModelVersion | None = None) -> None:
        self.store = store
        self.pipeline = (pipeline if isinstance(pipeline, Pipeline)
                         else Pipeline.of(pipeline, version.name if version else None))
        self.version = version
        self._catalog: CatalogView | None = None
        self._catalog_lock = threading.Lock()

    @classmethod
    def active(cls, store: Store) -> LiveRecommender:
        """The version the registry marks active."""
        version = store.models.active()
        if version is None:
            raise ModelNotFoundError(
                f"no active model in the store at {store.url}; train one with `tailored train`")
        return cls(store, Pipeline.load(Path(version.path)), version)

    @property
    def model(self) -> Recommender:
        """The pipeline's scorer."""
        return self.pipeline.scorer

    @property
    def name(self) -> str:
        """What the version is called: its recipe's name."""
        return self.version.name if self.version is not None else self.pipeline.name

    # ---- histories and the catalog ---------------------------------------------------

    def history(self, user_ids: Sequence[str]) -> pd.DataFrame:
        """The users' events as stored now, impressions (zero-weight types) left out, and
        none of users who withhold consent (they get the answer of a newcomer)."""
        events = self.store.events.frame(user_ids=user_ids, consenting=True)
        if len(events) and not (keep := interest_mask(events, self.model.weights_)).all():
            events = events[keep].reset_index(drop=True)
        return events

    def stored_id(self, user_id: str) -> str:
        """The id the store and the models know ``user_id`` by (its pseudonym, in a
        pseudonymous store): what a query must name for the models' per-user state."""
        return stored_user_id(self.store, user_id)

    def query(self, user_ids: Sequence[str], context: Mapping[str, Any] | None = None,
              events: pd.DataFrame | None = None) -> UserQuery:
        """The users, by the ids they are stored under, with their histories as stored
        now (or ``events``, a session's)."""
        if events is not None:
            return UserQuery(tuple(user_ids), events, dict(context or {}))
        stored = tuple(self.stored_id(user) for user in user_ids)
        profiles = self.profiles(stored) if self.pipeline.reads_profiles else None
        return UserQuery(stored, self.history(stored), dict(context or {}), profiles)

    def profiles(self, user_ids: Sequence[str]) -> pd.DataFrame | None:
        """The users' profiles as stored now (one column per attribute), none of users
        who withhold consent: segments and rules read them, so a profile written after
        training counts from the next request."""
        if len(user_ids) <= _PROFILES_ONE_BY_ONE:  # the request path: no pandas parsing
            found = [user for user in map(self.store.users.get, user_ids)
                     if user is not None and user.allows(PERSONALIZATION)]
            return (pd.DataFrame([{"user_id": u.user_id, **u.attributes} for u in found])
                    if found else None)
        users = self.store.users.frame()  # a batch: one read of every profile
        users = users[users["user_id"].isin(set(user_ids))]
        allowed = [consent.get(PERSONALIZATION, True) for consent in users["consent"]]
        users = users[np.array(allowed, dtype=bool)]
        return profile_table(users) if len(users) else None

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

    # ---- running the pipeline --------------------------------------------------------

    def top_list(self, query: UserQuery, n: int | None = None) -> TopList:
        """The scorer's best ``n`` items for one user (all when None), before the rules:
        from the scorer's approximate item index when it has one and ``n`` is given
        (:meth:`Pipeline.top_list`)."""
        return self.pipeline.top_list(query, n)

    def rank(self, query: UserQuery, k: int, overrides: Overrides = NO_OVERRIDES, *,
             top: TopList | None = None, catalog: CatalogView | None = None,
             explore: bool = False) -> Ranked:
        """One user's list through the pipeline's stages: from ``top`` (a cached top
        list) when it answers exactly, else scored completely. Without ``top``, a scorer
        with an approximate item index first offers the index's best candidates
        (:data:`INDEX_CANDIDATES`, or twice the pool), and every item is scored only when
        too few of them pass. With ``explore`` the list is the pool exploration chooses
        from."""
        catalog = catalog if catalog is not None else self.catalog()
        pipeline = self.pipeline
        pool = pipeline.pool(k, overrides, explore)
        if top is None and pipeline.scorer.item_index_ is not None and query.events is not None:
            # The item index's candidates; when too few pass, every item is scored below.
            top = self.top_list(query, max(2 * pool, INDEX_CANDIDATES))
        ranked = None if top is None else pipeline.select(top, pool, query, overrides, catalog)
        if ranked is None:
            if query.events is None:  # a cached list came without the history
                query = self.query(query.user_ids, query.context)
            ranked = pipeline.select(self.top_list(query), pool, query, overrides, catalog)
            assert ranked is not None  # a complete list is always exact
        if explore:  # exploration picks from the re-ranked pool
            return pipeline.rerank(ranked, query.user_ids[0], pool, overrides, catalog)
        return pipeline.rerank(ranked, query.user_ids[0], k, overrides, catalog)

    def explain(self, query: UserQuery, ranked: Ranked,
                explored: Sequence[bool] | None = None) -> list[str]:
        """Why each item is in the list, in words (from the user's history in ``query``);
        ``explored`` marks the items an exploration policy placed."""
        if not ranked.item_ids:
            return []
        user_id = query.user_ids[0]
        history = query.events if query.events is not None else self.history([user_id])
        titles = self.store.items.titles(
            [*ranked.item_ids, *history["item_id"].astype(str).tolist()[-50:]])
        shown = ranked.frame(user_id)
        if explored is not None:
            shown["explored"] = list(explored)
        explained = self.pipeline.explain(query, shown, titles)
        return [str(reason) for reason in explained["reason"]]

    def new_arrivals(self, query: UserQuery, n: int, overrides: Overrides = NO_OVERRIDES,
                     catalog: CatalogView | None = None) -> Ranked:
        """The ``n`` new items (available, unknown to the scorer: added after training)
        most like the user's recent history by content (title, text and categories; the
        mean cosine to the newest :data:`RECENT_ITEMS` items the user touched), through
        the pipeline's rules and the request's selection; newest first for a user without
        history. Scores are those similarities; columns are -1 (no scorer column)."""
        catalog = catalog if catalog is not None else self.catalog()
        arrivals = catalog.arrivals()
        if arrivals is None or n <= 0:
            return _EMPTY
        if query.events is None:
            query = self.query(query.user_ids, query.context)
        assert query.events is not None
        history = query.events["item_id"].astype(str)
        facts = self.pipeline.facts_.facts(query, catalog)[0]
        candidates = catalog.new_candidates(self.pipeline.rules + overrides.rules, facts,
                                            query.context, overrides.exclude,
                                            seen=set(history))
        if not candidates:
            return _EMPTY
        scores = np.zeros(len(candidates), dtype=np.float32)
        recent = list(dict.fromkeys(reversed(history.tolist())))[:RECENT_ITEMS]
        liked = [item.model_dump() for item in map(self.store.items.get, recent)
                 if item is not None]
        if liked:
            similarity = arrivals.similarity(pd.DataFrame(liked)).mean(axis=0)
            column = pd.Index(arrivals.item_ids).get_indexer(pd.Index(candidates))
            scores = np.where(column >= 0, similarity[np.maximum(column, 0)], 0.0)
        order = np.argsort(-scores, kind="stable")[:n]  # ties: the newest first
        return Ranked([candidates[i] for i in order], [float(scores[i]) for i in order],
                      np.full(len(order), -1, dtype=np.int64))

    def recommend(self, user_ids: Sequence[str], k: int = 10,
                  overrides: Overrides = NO_OVERRIDES, *, explain: bool = False,
                  context: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Top ``k`` per user from current histories and the live catalog (``tailored
        recommend``): the same stages as a request, for many users at once."""
        catalog = self.catalog()
        titles = None
        if explain:
            items = self.store.items.frame()
            titles = (dict(zip(items["item_id"], items["title"], strict=True))
                      if "title" in items.columns else None)
        lists = self.pipeline.run(self.query(user_ids, context), k, overrides,
                                  catalog=catalog, explain=explain, titles=titles)
        asked = {self.stored_id(user): user for user in user_ids}
        lists["user_id"] = lists["user_id"].map(lambda user: asked.get(user, user))
        return lists

    def similar_users(self, user_id: str, k: int = 10) -> pd.DataFrame:
        """The ``k`` users whose histories are most like ``user_id``'s history as stored
        now (``similar_user_id``, ``score``, ``rank``; ids as the store holds them), for
        the social blocks some sites show. Nobody who withholds personalization is in it,
        on either side: a user without it gets an empty list."""
        query = self.query([user_id])  # no history read for a user who withholds it
        margin = 2 * k + 10  # room for those who withdrew consent since training
        similar = self.model.similar_users(query, k + margin)
        withheld = set(self.store.users.without_consent(
            similar["similar_user_id"].astype(str).tolist()))
        similar = similar[~similar["similar_user_id"].isin(withheld)].head(k)
        similar["rank"] = range(1, len(similar) + 1)
        return similar[["similar_user_id", "score", "rank"]].reset_index(drop=True)

    def popular_items(self, k: int = 10, overrides: Overrides = NO_OVERRIDES, *,
                      category: str | None = None, days: float = 7.0, trending: bool = False,
                      now: datetime | None = None, context: Mapping[str, Any] | None = None
                      ) -> Ranked:
        """The items most interacted with in the last ``days`` before ``now`` (default:
        the clock), or with ``trending`` those whose count grew most against the
        ``days`` before, scored ``(recent + 1) / (earlier + 1)``; of one ``category``
        when given. Counted are events of types that weigh (impressions do not), as
        stored now; listed are the items the serving model knows, through its rules and
        the request's selection, as a list for no one."""
        end = now or datetime.now(UTC)
        window = timedelta(days=days)
        types = [t for t in self.model.weights_.event_types()
                 if self.model.weights_.for_type(t) != 0]

        def counted(since: datetime, until: datetime) -> np.ndarray:
            """Events per model item in ``[since, until)``."""
            found = self.store.events.item_counts(since, until, event_types=types)
            counts = np.zeros(len(self.model.item_ids), dtype=np.float32)
            columns = self.model.item_vocab_.indices(list(found))
            known = columns >= 0
            counts[columns[known]] = np.array(list(found.values()), np.float32)[known]
            return counts

        counts = counted(end - window, end)
        scores = np.where(counts > 0, counts, -np.inf).astype(np.float32)
        if trending:
            before = counted(end - 2 * window, end - window)
            # The growth first; among equal growth, the busier item (a tiny tie-breaker).
            growth = (counts + 1) / (before + 1) + counts * 1e-6
            scores = np.where(counts > 0, growth, -np.inf).astype(np.float32)
        catalog = self.catalog()
        if category is not None:
            listed = np.array([category in found for found in catalog.categories().values()])
            scores = np.where(listed, scores, -np.inf).astype(np.float32)
        query = UserQuery(("",), _NO_EVENTS, dict(context or {}))
        ranked = self.pipeline.select(TopList.of(scores), k, query, overrides, catalog)
        assert ranked is not None  # a complete list is always exact
        return ranked

    def similar_items(self, item_ids: str | Sequence[str], k: int = 10,
                      overrides: Overrides = NO_OVERRIDES,
                      context: Mapping[str, Any] | None = None,
                      kind: SimilarityKind = "model") -> Ranked:
        """The ``k`` items most like ``item_ids`` (one item, or a cart: the mean of their
        similarities), through the pipeline's rules and the request's filters, boosts and
        exclusions, as a list for no one: the items asked, unavailable and excluded items
        are left out. ``kind``: ``model``, the serving model's own measure (items it does
        not know add nothing, unless it knows none of them: then they are compared by
        content); ``content``, title, text and categories in the catalog now (items added
        after training too); ``co_views``, how often the same users touched both in the
        training histories; ``bought_together``, the share of the baskets holding the
        item asked (purchases of one session, or of one user within a day when without a
        session) that hold the other too, from the events as stored now, so a purchase
        acknowledged a moment ago counts and items added after training can be asked
        about (:meth:`~tailored.store.EventLog.bought_together`). The answer is always
        among the items the serving model knows: the pipeline ranks its columns, so an
        item first bought after training is listed once a model trained since serves."""
        asked = [item_ids] if isinstance(item_ids, str) else list(item_ids)
        among = self.model.item_ids.tolist()
        by_model = False  # whether the serving model's own measure ranks them
        if kind == "model":
            similarity = self.model.item_similarity(asked, among)
            by_model = not np.isnan(similarity).all()
            if not by_model:  # items added after training: compared by content
                similarity = catalog_similarity(self.store.items.frame(), asked, among)
        elif kind == "co_views":
            similarity = self.model.co_view_similarity(asked, among)
        elif kind == "bought_together":  # one store call per item: a cart is their mean
            similarity = np.zeros((len(asked), len(among)), dtype=np.float32)
            for row, item in enumerate(asked):
                shares = self.store.events.bought_together([item])
                columns = self.model.item_vocab_.indices(list(shares))
                listed = columns >= 0
                similarity[row, columns[listed]] = np.fromiter(
                    shares.values(), np.float32, len(shares))[listed]
        else:
            similarity = catalog_similarity(self.store.items.frame(), asked, among)
        # A row with no similar item at all is an item the measure does not know.
        known = np.nan_to_num(similarity, nan=0.0).any(axis=1)
        if not known.any():
            return Ranked([], [], np.zeros(0, dtype=np.int64))
        scores = np.nanmean(similarity[known], axis=0).astype(np.float32)
        if not by_model:  # nothing in common is not similar (a model ranks everything)
            scores[~(scores > 0)] = -np.inf
        scores[self.pipeline.items_.columns(asked)] = -np.inf
        query = UserQuery(("",), _NO_EVENTS, dict(context or {}))
        ranked = self.pipeline.select(TopList.of(scores), k, query, overrides, self.catalog())
        assert ranked is not None  # a complete list is always exact
        return ranked

def registered_version(store: Store, model: str) -> ModelVersion:
    """The version ``model`` names: a version number, or the active (else the newest)
    version whose model or recipe name it is; a ``ModelNotFoundError`` says what there is."""
    text = model.strip()
    if text.isascii() and text.isdigit():  # "²" is a digit to Python, not a number
        found = None if len(text) > 18 else store.models.get(int(text))  # 64-bit column
        if found is None:
            raise ModelNotFoundError(f"model version {text[:30]} is not in the registry; "
                                     "GET /models lists the versions there are")
        return found
    named = [v for v in store.models.list()
             if text in (v.name, (v.details.get("recipe") or {}).get("name"))]
    if not named:
        names = sorted({v.name for v in store.models.list()})
        raise ModelNotFoundError(
            f"no model version named {text!r} in the registry; give a version number or one "
            f"of the names {names} (GET /models lists them)")
    return next((v for v in named if v.active), named[-1])


def with_new_arrivals(ranked: Ranked, arrivals: Ranked, k: int, share: float
                      ) -> tuple[Ranked, list[bool]]:
    """``k`` slots of ``ranked`` with a ``share`` of them (at least one, when ``share``
    > 0 and there are any) given to ``arrivals``, spread evenly down the list in their
    order; and which slots they took. The ranked items keep their order.

    Examples
    --------
    >>> base = Ranked(["a", "b", "c", "d"], [4.0, 3.0, 2.0, 1.0], np.arange(4))
    >>> new = Ranked(["n1", "n2"], [0.5, 0.4], np.full(2, -1))
    >>> shown, placed = with_new_arrivals(base, new, k=4, share=0.25)
    >>> shown.item_ids, placed
    (['a', 'b', 'n1', 'c'], [False, False, True, False])
    """
    slots = min(len(arrivals.item_ids), max(1, round(k * share))) if share > 0 else 0
    slots = min(slots, k)
    if slots == 0:
        return ranked.head(k), [False] * min(k, len(ranked.item_ids))
    size = min(k, len(ranked.item_ids) + slots)
    at = {int((n + 1) * size / (slots + 1)) for n in range(slots)}  # distinct: size > n
    base, new = iter(range(len(ranked.item_ids))), iter(range(slots))
    picks = [("new", next(new)) if position in at else ("base", next(base))
             for position in range(size)]
    take = {"base": ranked, "new": arrivals}
    return (Ranked([take[s].item_ids[i] for s, i in picks],
                   [take[s].scores[i] for s, i in picks],
                   np.array([take[s].columns[i] for s, i in picks], dtype=np.int64)),
            [source == "new" for source, _ in picks])


_EMPTY = Ranked([], [], np.zeros(0, dtype=np.int64))

__all__ = ["MAX_NEW_ITEMS", "PATCH_LIMIT", "CatalogView", "LiveRecommender", "SimilarityKind",
           "registered_version", "with_new_arrivals"]
