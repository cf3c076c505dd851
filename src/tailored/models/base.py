"""The one interface every recommender implements, and what they share.

A model learns on dense integer indices; this base class translates the external ids
of a :class:`~tailored.dataset.Dataset` or :class:`~tailored.dataset.UserQuery` at the
boundary, excludes seen items, picks the top k, falls back to popularity for users
without history, forgets users on request (:meth:`Recommender.forget_users`), and saves
and loads artifacts as ``config.json`` + ``arrays.npz``.
"""

from __future__ import annotations

import contextlib
import importlib
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from tailored.dataset import Dataset, UserQuery, Vocabulary, interaction_matrix
from tailored.errors import NotFittedError
from tailored.models.ann import INDEX_FILE, ItemIndex, faiss_available
from tailored.models.artifact import read_artifact, write_artifact
from tailored.schema import EventWeights

ARTIFACT_FORMAT = 1
Users = str | Sequence[str] | UserQuery
_SCORE_BUDGET = 2**24  # floats per scoring batch (64 MB), whatever the catalog size
_SEARCH_BATCH = 256  # users per search of the item index


@dataclass(frozen=True)
class ScoringBatch:
    """What ``_score`` sees for a batch of users, all in dense indices.

    ``users[i]`` is user i's training row, or -1 when the user is new or brought a
    current history (score those from ``history`` alone). ``history`` holds event
    weights over the model's items. ``sequences`` (only for models with
    ``needs_sequences``) lists each user's item indices oldest first. ``profiles`` has
    attributes of users the query described (``user_id`` + attribute columns);
    ``events`` the query's raw events (types, times), when it brought any.
    """

    user_ids: tuple[str, ...]
    users: np.ndarray
    history: sp.csr_matrix
    sequences: list[np.ndarray] | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    profiles: pd.DataFrame | None = None
    events: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.users)

    def rows(self, start: int, stop: int) -> ScoringBatch:
        """A slice of the batch (users ``start`` to ``stop``)."""
        if start == 0 and stop >= len(self):
            return self
        return self.take(np.arange(start, min(stop, len(self))))

    def take(self, rows: np.ndarray) -> ScoringBatch:
        """The users at positions ``rows``, with their events and profiles."""
        user_ids = tuple(self.user_ids[i] for i in rows)
        return ScoringBatch(
            user_ids, self.users[rows], sp.csr_matrix(self.history[rows]),
            None if self.sequences is None else [self.sequences[i] for i in rows],
            self.context, _of_users(self.profiles, user_ids), _of_users(self.events, user_ids))


def _of_users(frame: pd.DataFrame | None, user_ids: tuple[str, ...]) -> pd.DataFrame | None:
    if frame is None:
        return None
    return frame[frame["user_id"].astype(str).isin(user_ids)]


@dataclass(frozen=True)
class Forgetting:
    """What forgetting users did to a model's state (:meth:`Recommender.forget_users`).

    ``known``: how many of the given users the state held (0: nothing was changed).
    ``exact``: nothing those users' events shaped is left, item-level state included,
    so the model is what a fit without them would give; False when item-level state
    (item factors, similarities learned from them, trees) still carries their
    influence until a retraining.

    Examples
    --------
    >>> Forgetting.combine(Forgetting(2, True), Forgetting(1, False))
    Forgetting(known=3, exact=False)
    """

    known: int = 0
    exact: bool = True

    @classmethod
    def combine(cls, *parts: Forgetting) -> Forgetting:
        """Several states forgotten as one: ``known`` adds up (a user counts once per
        state that held them), ``exact`` only when every part is."""
        return cls(sum(part.known for part in parts), all(part.exact for part in parts))


@dataclass(frozen=True)
class DroppedUsers:
    """Users leaving a model, as a family's ``_forget_rows`` sees them.

    ``keep`` says, per training row before forgetting, whether the row stays;
    ``user_ids`` are the ids to remove (also from tables keyed by id rather than by
    training row, such as user profiles); ``history`` holds their training rows
    (users x items, what they did), for item-level state that can be updated exactly.
    """

    keep: np.ndarray
    user_ids: np.ndarray
    history: sp.csr_matrix


#: Kinds of reason a model can give (``Reason.kind``).
REASON_KINDS = ("history", "similar", "similar_users", "categories", "terms", "attributes",
                "segment", "trending", "popular", "new", "exploration", "features", "model")


@dataclass(frozen=True)
class Reason:
    """Why a model put an item in a user's list, in terms that hold for what it names.

    ``kind`` says which evidence the model used: ``history`` (``items`` are the user's
    history items that contributed most to the item's score, exactly from the model's
    arrays), ``similar`` (the history items the model finds most similar to the item;
    the generic fallback), ``similar_users`` (``detail``: how many of the user's nearest
    users touched the item), ``categories``/``terms``/``attributes`` (``features`` are on
    the item and on every named history item), ``segment`` (``detail`` describes the
    segment), ``trending`` (``detail``: the window in days), ``popular``, ``new`` (the
    model does not know the item), ``exploration`` (shown to learn about it),
    ``features`` (a learned ranker's top feature contributions, in ``features``) and
    ``model`` (the model's own scores, no simpler account).

    Examples
    --------
    >>> Reason("history", items=("i1",)).text({"i1": "Heat (1995)"})
    'because you viewed Heat (1995)'
    >>> Reason("categories", items=("i1",), features=("Drama", "Romance")).text()
    'matches Drama, Romance'
    """

    kind: str
    items: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    detail: str = ""

    def text(self, titles: Mapping[str, str] | None = None) -> str:
        """One short sentence for people; ``titles`` names items (else their ids)."""
        names = [str(titles.get(item, item)) if titles else item for item in self.items]
        named = " and ".join(names[:2])
        listed = ", ".join(self.features)
        texts = {
            "history": f"because you viewed {named}",
            "similar": f"similar to {named}, which you viewed",
            "similar_users": (f"liked by {self.detail} people with tastes like yours"
                              if self.detail else "liked by people with tastes like yours"),
            "categories": f"matches {listed}",
            "terms": f"mentions {listed}, like {named}",
            "attributes": f"has {listed}, like {named}",
            "segment": "popular in your segment",
            "trending": ("trending this week" if self.detail in ("", "7") else
                         f"trending in the last {self.detail} days"),
            "popular": "popular",
            "new": "new in the catalog",
            "exploration": "something new for you to try",
            "features": f"ranked high for {listed}",
            "model": "picked for you from your history",
        }
        return texts.get(self.kind, self.kind)


class ModelConfig(BaseModel):
    """Base of every model's typed configuration: strict, immutable, JSON round-trip."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ItemIndexConfig(ModelConfig):
    """Base of the configs of models whose scores are inner products of a user's vector
    and items' vectors (ALS, BPR, Item2Vec): they can build an approximate
    nearest-neighbour index of their items (:mod:`tailored.models.ann`, the ``ann``
    extra) that their top lists come from on large catalogs.

    ``ann_min_items``: the catalog size (items the model scores) from which ``fit``
    builds the index; ``None`` never builds one. ``ann_cells``: how many cells the
    items are split into (``None``: 4·√items). ``ann_probes``: how many cells, nearest
    to the user's vector, a search scans (``None``: a fifth of them; more when they hold
    too few items): more finds more of the exact top list, and takes longer.
    """

    ann_min_items: int | None = Field(50_000, ge=1)
    ann_cells: int | None = Field(None, ge=1, le=1_000_000)
    ann_probes: int | None = Field(None, ge=1, le=1_000_000)


class Recommender(ABC):
    """Learns from a :class:`Dataset`, then scores and recommends items for users.

    Subclasses set ``name`` and ``Config`` and implement ``_fit`` and ``_score`` (and
    ``_arrays``/``_restore`` for what they learn, ``_forget_rows`` for what they learn
    per user or can recount exactly). Learned state ends in ``_``. Models
    that read the order of a history set ``needs_sequences``. A family is one module:
    subclassing with a ``name`` registers it for the CLI, recipes, tuning and the
    contract suite.
    """

    name: ClassVar[str]
    Config: ClassVar[type[ModelConfig]]
    needs_sequences: ClassVar[bool] = False
    #: Parameters of a small, quick model on tiny data: what the contract suite, which
    #: runs on every registered family (tests/models/test_registry.py), fits.
    example_params: ClassVar[dict[str, Any]] = {}
    #: False for families that rank every user alike (popularity).
    personalised: ClassVar[bool] = True
    #: The approximate index of the items that top lists come from, when ``fit`` built
    #: one (:class:`ItemIndexConfig`); None: top lists score every item.
    item_index_: ItemIndex | None = None
    _registry: ClassVar[dict[str, type[Recommender]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            Recommender._registry[cls.name] = cls

    def __init__(self, config: ModelConfig | None = None, **params: Any) -> None:
        if config is not None and params:
            raise TypeError("pass either a config object or keyword parameters, not both")
        if config is not None and not isinstance(config, self.Config):
            raise TypeError(f"{type(self).__name__} needs a {self.Config.__name__}, "
                            f"got {type(config).__name__}")
        self.config = config if config is not None else self.Config(**params)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.config.model_dump().items())
        return f"{type(self).__name__}({params})"

    # ---- learning -------------------------------------------------------------------

    def fit(self, data: Dataset) -> Self:
        """Learn from ``data`` from scratch (any earlier fit is forgotten); return ``self``."""
        matrix = data.matrix()
        self.user_vocab_ = data.user_vocab
        self.item_vocab_ = data.item_vocab
        self.weights_ = data.weights
        self.user_items_ = matrix
        self.popularity_ = _popularity(matrix)
        self.data_digest_ = data.digest
        self.fitted_at_ = datetime.now(UTC).isoformat(timespec="seconds")
        if self.needs_sequences:
            self.sequences_ = _sequences(data.events, data.user_vocab, data.item_vocab)
        self._fit(matrix, data)
        self.item_index_ = self._build_item_index()
        return self

    @abstractmethod
    def _fit(self, matrix: sp.csr_matrix, data: Dataset) -> None:
        """Learn from the users x items weight matrix (and, if useful, the rest of data)."""

    @abstractmethod
    def _score(self, batch: ScoringBatch) -> np.ndarray:
        """Scores, one row per user of the batch and one column per item."""

    # ---- forgetting -----------------------------------------------------------------

    def forget_users(self, user_ids: str | Sequence[str]) -> Forgetting:
        """Remove users from every user-level structure, in place (the right to be
        forgotten).

        Their training rows, vocabulary entries, sequences, the family's own per-user
        arrays and profile rows go; popularity (the fallback) is recounted without
        them. Afterwards each of them is scored like a user never seen, and a saved
        artifact holds none of their ids. Ids the model does not know are ignored; when
        it knows none, nothing changes. Item-level state is updated exactly where the
        family can (see :class:`Forgetting`); otherwise it keeps their influence until
        the next fit.

        Examples
        --------
        >>> import pandas as pd
        >>> import tailored
        >>> events = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c"],
        ...                        "item_id": ["x", "y", "x", "y", "z"]})
        >>> model = tailored.models.Popular().fit(tailored.Dataset.from_frame(events))
        >>> model.popularity_.tolist()
        [2.0, 2.0, 1.0]
        >>> model.forget_users(["a", "nobody"])
        Forgetting(known=1, exact=True)
        >>> model.user_vocab_.ids.tolist(), model.popularity_.tolist()
        (['b', 'c'], [1.0, 1.0, 1.0])
        """
        self._check_fitted()
        ids = distinct_ids(user_ids)
        held = self._held(ids)
        if not held.any():
            return Forgetting()
        ids = ids[held]
        rows = self.user_vocab_.indices(ids)
        keep = np.ones(len(self.user_vocab_), dtype=bool)
        keep[rows[rows >= 0]] = False
        dropped = DroppedUsers(keep, ids, sp.csr_matrix(self.user_items_[~keep]))
        counted = self.popularity_
        # The vocabulary sorts its ids, so the kept ones stay in training-row order.
        self.user_vocab_ = Vocabulary(self.user_vocab_.ids[keep])
        self.user_items_ = sp.csr_matrix(self.user_items_[keep])
        self.popularity_ = _popularity(self.user_items_)
        if self.needs_sequences:
            self.sequences_ = [s for s, stays in zip(self.sequences_, keep, strict=True)
                               if stays]
        exact = self._forget_rows(dropped)
        # An item only they touched stays in the item vocabulary: a fit without them
        # would not know it.
        orphaned = bool(((counted > 0) & (self.popularity_ == 0)).any())
        return Forgetting(len(ids), exact and not orphaned)

    def _held(self, user_ids: np.ndarray) -> np.ndarray:
        """Which of ``user_ids`` this model holds state about (a training row or a
        profile)."""
        held = self.user_vocab_.indices(user_ids) >= 0
        for table in self._profile_ids():
            held |= among(user_ids, table)
        return held

    def _profile_ids(self) -> list[np.ndarray]:
        """Ids of tables the family keys by user id rather than by training row (user
        profiles, which may name users without events)."""
        return []

    def _forget_rows(self, dropped: DroppedUsers) -> bool:
        """Remove the users from the family's own state; whether its item-level state
        is exact afterwards.

        Called after the shared state (vocabulary, ``user_items_``, ``popularity_``,
        ``sequences_``) already holds the remaining users only. Families with per-user
        arrays drop their rows (``dropped.keep``) or ids (``dropped.user_ids``);
        families whose item-level state follows exactly from the remaining data
        recompute it and return True. The default has no per-user arrays and claims no
        exactness.
        """
        return False

    def _fallback(self, batch: ScoringBatch | None = None) -> np.ndarray:
        """Scores for users without history: one row for all, or one per user of ``batch``
        (a model that knows users' profiles can do better than popularity)."""
        return self.popularity_

    # ---- scoring --------------------------------------------------------------------

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "item_vocab_")

    @property
    def reads_profiles(self) -> bool:
        """Whether scoring reads a query's ``profiles`` (serving then reads them from the
        store for each request; a family that does not spares it the read)."""
        return False

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(data)")

    @property
    def item_ids(self) -> np.ndarray:
        """The items this model can score, in score-column order."""
        self._check_fitted()
        return self.item_vocab_.ids

    def _resolve(self, users: Users) -> ScoringBatch:
        """The query in dense indices: training rows (-1: from history) and histories."""
        query = UserQuery.of(users)
        sequences = None
        if query.events is None:
            rows = self.user_vocab_.indices(list(query.user_ids))
            history = self.user_items_[np.maximum(rows, 0)]
            if (rows < 0).any():  # unknown users have no history
                history = sp.diags((rows >= 0).astype(np.float32)) @ history
            if self.needs_sequences:
                sequences = [self.sequences_[row] if row >= 0 else np.zeros(0, np.int64)
                             for row in rows]
        else:
            vocab = Vocabulary(query.user_ids)
            # The query vocabulary sorts ids; put rows back in the order the caller asked.
            order = vocab.indices(list(query.user_ids))
            history = interaction_matrix(query.events, vocab, self.item_vocab_,
                                         self.weights_)[order]
            rows = np.full(len(order), -1)
            if self.needs_sequences:
                by_user = _sequences(query.events, vocab, self.item_vocab_)
                sequences = [by_user[row] for row in order]
        return ScoringBatch(query.user_ids, rows, sp.csr_matrix(history, dtype=np.float32),
                            sequences, query.context, query.profiles, query.events)

    def _scores(self, batch: ScoringBatch) -> np.ndarray:
        scores = np.asarray(self._score(batch), dtype=np.float32)
        empty = np.flatnonzero(np.diff(batch.history.indptr) == 0)
        if len(empty):
            scores[empty] = self._fallback(batch.take(empty))
        return scores

    def score(self, users: Users, items: Sequence[str] | None = None) -> np.ndarray:
        """Scores of ``items`` (default: every known item, see ``item_ids``) per user.

        Returns an array of shape (n_users, n_items); unknown items score NaN.
        """
        self._check_fitted()
        scores = self._scores(self._resolve(users))
        if items is None:
            return scores
        columns = self.item_vocab_.indices(list(items))
        picked = scores[:, np.maximum(columns, 0)]
        picked[:, columns < 0] = np.nan
        return picked

    def recommend(self, users: Users, k: int = 10, *, exclude_seen: bool = True,
                  candidates: Sequence[str] | None = None,
                  exclude: Sequence[str] = ()) -> pd.DataFrame:
        """The top ``k`` items per user, best first.

        Returns a frame with columns ``user_id``, ``item_id``, ``score``, ``rank``
        (1-based). Items the user already has are left out unless ``exclude_seen`` is
        false; ``candidates`` restricts the choice to those item ids and ``exclude``
        leaves those out (unavailable items, say).
        """
        self._check_fitted()
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        batch = self._resolve(users)
        allowed = None
        if candidates is not None:
            allowed = np.zeros(len(self.item_vocab_), dtype=bool)
            columns = self.item_vocab_.indices(list(candidates))
            allowed[columns[columns >= 0]] = True
        if len(exclude):
            if allowed is None:
                allowed = np.ones(len(self.item_vocab_), dtype=bool)
            columns = self.item_vocab_.indices(list(exclude))
            allowed[columns[columns >= 0]] = False
        parts = []
        step = max(1, _SCORE_BUDGET // max(1, len(self.item_vocab_)))
        for start in range(0, len(batch), step):
            part = batch.rows(start, start + step)
            scores = self._scores(part)
            if exclude_seen:
                seen = part.history.tocoo()
                scores[seen.row, seen.col] = -np.inf
            if allowed is not None:
                scores[:, ~allowed] = -np.inf
            parts.append(top_k(scores, k, part.user_ids, self.item_vocab_.ids))
        if not parts:
            return top_k(np.zeros((0, 0), np.float32), k, (), self.item_vocab_.ids)
        return pd.concat(parts, ignore_index=True)

    # ---- top lists, from the item index on large catalogs ------------------------------

    def top_items(self, users: Users, n: int = 100) -> pd.DataFrame:
        """The ``n`` best items per user that the user does not have, best first, as
        :meth:`recommend` lists them (``user_id``, ``item_id``, ``score``, ``rank``).

        When ``fit`` built an approximate item index (``item_index_``: factor and
        embedding models on catalogs of ``ann_min_items`` or more), the list comes from
        the index's candidates, rescored exactly with the model's own vectors: an item
        the index misses is left out and the next one found moves up. Otherwise, and for
        users the index cannot answer (no history: the fallback; a history longer than
        the index's reach), it is exactly ``recommend(users, n)``.

        Examples
        --------
        >>> import pandas as pd
        >>> import tailored
        >>> events = pd.DataFrame({"user_id": list("aabbcc"), "item_id": list("xyxyzw")})
        >>> model = tailored.models.Popular().fit(tailored.Dataset.from_frame(events))
        >>> model.top_items("c", n=2)["item_id"].tolist()
        ['x', 'y']
        """
        self._check_fitted()
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        batch = self._resolve(users)
        found = self._approximate_top(batch, n)
        exact = np.array([row for row, top in enumerate(found) if top is None], dtype=np.int64)
        step = max(1, _SCORE_BUDGET // max(1, len(self.item_vocab_)))
        for start in range(0, len(exact), step):
            rows = exact[start:start + step]
            part = batch.take(rows)
            scores = self._scores(part)
            seen = part.history.tocoo()
            scores[seen.row, seen.col] = -np.inf
            scores = np.where(np.isnan(scores), -np.inf, scores)
            top = top_columns(scores, n)
            top_scores = np.take_along_axis(scores, top, axis=1)
            order = np.lexsort((top, -top_scores), axis=1)
            for row, columns, values in zip(rows, np.take_along_axis(top, order, axis=1),
                                            np.take_along_axis(top_scores, order, axis=1),
                                            strict=True):
                found[row] = (columns, values)
        tops = [top for top in found if top is not None]
        columns = np.concatenate([np.zeros(0, np.int64), *(c for c, _ in tops)])
        scores = np.concatenate([np.zeros(0, np.float32), *(s for _, s in tops)])
        keep = np.isfinite(scores)
        sizes = [len(c) for c, _ in tops]
        return pd.DataFrame({
            "user_id": np.repeat(np.asarray(batch.user_ids, dtype=object), sizes)[keep],
            "item_id": self.item_vocab_.ids[columns[keep]].astype(object),
            "score": scores[keep].astype(np.float32),
            "rank": np.concatenate([np.zeros(0, np.int64),
                                    *(np.arange(1, size + 1) for size in sizes)])[keep],
        })

    def _approximate_top(self, batch: ScoringBatch, n: int
                         ) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """Per user of ``batch``, the columns and scores of the ``n`` best items not in
        the user's history, best first, from the item index; None for a user it does
        not answer: there is no index, the family scores the user otherwise (no
        history), ``n`` plus the history exceeds the indexed items, or the search found
        fewer than ``n`` (then every item must be scored)."""
        found: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(batch)
        index = self.item_index_
        if index is None or len(batch) == 0:
            return found
        vectors, answerable = self._query_vectors(batch)
        history = batch.history
        lengths = np.diff(history.indptr)
        rows = np.flatnonzero(answerable & (lengths + n <= len(index)))
        if not len(rows):
            return found
        # By the longest history first, so each search asks for about as many as it needs.
        rows = rows[np.argsort(-lengths[rows], kind="stable")]
        for start in range(0, len(rows), _SEARCH_BATCH):
            chunk = rows[start:start + _SEARCH_BATCH]
            columns, scores = index.search(vectors[chunk], n + int(lengths[chunk[0]]))
            for row, row_columns, row_scores in zip(chunk, columns, scores, strict=True):
                seen = history.indices[history.indptr[row]:history.indptr[row + 1]]
                keep = (row_columns >= 0) & ~np.isin(row_columns, seen)
                if keep.sum() >= n:
                    found[row] = (row_columns[keep][:n], row_scores[keep][:n])
        return found

    def _index_vectors(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Item vectors for an approximate index, for families that score item column
        ``columns[j]`` as the inner product of the user's vector (``_query_vectors``)
        and ``vectors[j]``, and rank the items left out below every one listed; None
        (the default) for families that score otherwise."""
        return None

    def _query_vectors(self, batch: ScoringBatch) -> tuple[np.ndarray, np.ndarray]:
        """Each user's vector for the item index, and which users those vectors score
        (the others, users without history, go to the exact path). Families that
        define ``_index_vectors`` define this too."""
        raise NotImplementedError(f"{type(self).__name__} scores without an item index")

    def _build_item_index(self) -> ItemIndex | None:
        """The item index for this fit, when the config asks for one at this size."""
        config = self.config
        if not isinstance(config, ItemIndexConfig) or config.ann_min_items is None \
                or len(self.item_vocab_) < config.ann_min_items:
            return None
        indexed = self._index_vectors()
        if indexed is None:
            return None
        if not faiss_available():
            warnings.warn(
                f"{type(self).__name__} has {len(self.item_vocab_):,} items, at least "
                f"ann_min_items={config.ann_min_items:,}, but faiss is not installed, so "
                "its top lists score every item; install the approximate index with "
                "`pip install 'tailored[ann]'` (or set ann_min_items=None)", stacklevel=3)
            return None
        vectors, columns = indexed
        if not len(columns):  # no item has a vector: nothing to search
            return None
        seed = int(getattr(config, "seed", 0)) % 2**31
        return ItemIndex.build(vectors, columns, cells=config.ann_cells,
                               probes=config.ann_probes, seed=seed)

    def _load_item_index(self, directory: Path) -> ItemIndex | None:
        """The item index saved beside the artifact in ``directory``."""
        indexed = self._index_vectors()
        config = self.config
        if indexed is None or not isinstance(config, ItemIndexConfig):
            return None
        if not faiss_available():
            warnings.warn(
                f"{directory} holds an approximate item index, but faiss is not installed, "
                "so top lists score every item; `pip install 'tailored[ann]'` to use it",
                stacklevel=3)
            return None
        return ItemIndex.load(directory, *indexed, probes=config.ann_probes)

    def similar_users(self, users: Users, k: int = 10) -> pd.DataFrame:
        """The ``k`` training users whose histories are most like each given user's:
        cosine of who touched what, from the user's current history when ``users``
        carries events (the user themself left out). Returns ``user_id``,
        ``similar_user_id``, ``score``, ``rank``; a user without history gets no rows.

        Examples
        --------
        >>> import pandas as pd
        >>> import tailored
        >>> events = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c"],
        ...                        "item_id": ["x", "y", "x", "y", "z"]})
        >>> model = tailored.models.Popular().fit(tailored.Dataset.from_frame(events))
        >>> model.similar_users("a", k=2)[["similar_user_id", "score"]].values.tolist()
        [['b', 1.0]]
        """
        self._check_fitted()
        batch = self._resolve(users)
        mine = sp.csr_matrix(batch.history > 0, dtype=np.float32)
        theirs = sp.csr_matrix(self.user_items_ > 0, dtype=np.float32)
        scale = np.sqrt(np.asarray(theirs.sum(axis=1)).ravel())
        own = np.sqrt(np.asarray(mine.sum(axis=1)).ravel())
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = (mine @ theirs.T).toarray() / own[:, None] / scale[None, :]
        scores[~np.isfinite(scores) | (scores <= 0)] = -np.inf
        themselves = self.user_vocab_.indices(list(batch.user_ids))
        known = themselves >= 0
        scores[np.flatnonzero(known), themselves[known]] = -np.inf
        frame = top_k(scores, k, batch.user_ids, self.user_vocab_.ids)
        return frame.rename(columns={"item_id": "similar_user_id"})

    def similar_items(self, items: str | Sequence[str], k: int = 10) -> pd.DataFrame:
        """The ``k`` items most similar to each given item (itself excluded).

        Returns ``item_id``, ``similar_item_id``, ``score``, ``rank``; unknown items get
        no rows.
        """
        self._check_fitted()
        item_ids = (items,) if isinstance(items, str) else tuple(items)
        columns = self.item_vocab_.indices(list(item_ids))
        known = columns >= 0
        similarity = self._item_similarity(columns[known]).astype(np.float32)
        similarity[np.arange(known.sum()), columns[known]] = -np.inf
        frame = top_k(similarity, k, tuple(np.asarray(item_ids)[known]), self.item_vocab_.ids)
        return frame.rename(columns={"user_id": "item_id", "item_id": "similar_item_id"})

    def _item_similarity(self, columns: np.ndarray) -> np.ndarray:
        """Cosine similarity of co-occurrence (who touched both); models may override."""
        binary = (self.user_items_ > 0).astype(np.float32).tocsc()
        norms = np.sqrt(np.asarray(binary.sum(axis=0)).ravel())
        norms[norms == 0] = 1
        co = (binary[:, columns].T @ binary).toarray()
        return co / norms[columns, None] / norms[None, :]

    def co_view_similarity(self, items: Sequence[str], others: Sequence[str]) -> np.ndarray:
        """How often the same training users touched each of ``items`` (rows) and each of
        ``others`` (columns), as a cosine, whatever the family; unknown items are NaN."""
        return self._similarity_by(Recommender._item_similarity, items, others)

    def item_similarity(self, items: Sequence[str], others: Sequence[str] | None = None
                        ) -> np.ndarray:
        """The model's similarity of each of ``items`` (rows) to each of ``others``
        (columns; default: ``items`` again). Unknown items get NaN rows and columns.

        The measure is the model's own (``similar_items`` ranks by it): cosine of item
        factors for ALS/BPR, the neighbour weights for item-kNN, co-occurrence cosine by
        default.
        """
        return self._similarity_by(type(self)._item_similarity, items, others)

    def _similarity_by(self, measure: Callable[[Recommender, np.ndarray], np.ndarray],
                       items: Sequence[str], others: Sequence[str] | None) -> np.ndarray:
        self._check_fitted()
        rows = self.item_vocab_.indices(list(items))
        columns = rows if others is None else self.item_vocab_.indices(list(others))
        known = rows >= 0
        similarity = np.full((len(rows), len(columns)), np.nan, dtype=np.float32)
        if known.any():
            block = np.asarray(measure(self, rows[known]), dtype=np.float32)
            picked = block[:, np.maximum(columns, 0)]
            picked[:, columns < 0] = np.nan
            similarity[known] = picked
        return similarity

    # ---- explanations ---------------------------------------------------------------

    def explanations(self, users: Users, recommendations: pd.DataFrame, *,
                     titles: Mapping[str, str] | None = None) -> pd.DataFrame:
        """Why each recommended item is there: ``recommendations`` with a ``reason``.

        ``users`` is what was asked (ids or a :class:`UserQuery` with current histories;
        pass the same query that ``recommend`` got); ``recommendations`` has
        ``user_id`` and ``item_id`` columns (as ``recommend`` returns). The result adds
        ``reason`` (a short sentence; ``titles`` maps item ids to names),
        ``reason_kind``, ``reason_items`` (the user's history items it names) and
        ``reason_features`` (categories, terms or features it names); see
        :class:`Reason`. Every reason comes from the model's own arrays.
        """
        self._check_fitted()
        missing = [c for c in ("user_id", "item_id") if c not in recommendations.columns]
        if missing:
            raise ValueError(f"recommendations lack column(s) {missing}; pass the frame "
                             "recommend() returned (user_id, item_id, score, rank)")
        batch = self._resolve(users)
        row_of = {user: row for row, user in enumerate(batch.user_ids)}
        rec_users = recommendations["user_id"].astype(str).tolist()
        absent = sorted({user for user in rec_users if user not in row_of})
        if absent:
            raise ValueError(f"recommendations name users {absent[:5]} that users does not "
                             "ask about; pass the query the recommendations were made for")
        rows = np.array([row_of[user] for user in rec_users], dtype=np.int64)
        columns = self.item_vocab_.indices(recommendations["item_id"].astype(str).tolist())
        reasons = self._reasons(batch, rows, columns)
        explained = recommendations.copy()
        explained["reason"] = [reason.text(titles) for reason in reasons]
        explained["reason_kind"] = [reason.kind for reason in reasons]
        explained["reason_items"] = [list(reason.items) for reason in reasons]
        explained["reason_features"] = [list(reason.features) for reason in reasons]
        return explained

    def _reasons(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                 ) -> list[Reason]:
        """One :class:`Reason` per (batch row, item column) pair, in dense indices.

        Items the model does not know (column -1) are ``new``; users without history
        get the reason for the fallback (``_explain_fallback``); the rest go to
        ``_explain``. A composite model calls this on its parts with the same batch.
        """
        rows = np.asarray(rows, dtype=np.int64)
        columns = np.asarray(columns, dtype=np.int64)
        reasons: list[Reason | None] = [None] * len(rows)
        lengths = np.diff(batch.history.indptr)
        for position in np.flatnonzero(columns < 0):
            reasons[position] = Reason("new")
        cold = np.flatnonzero((columns >= 0) & (lengths[rows] == 0))
        if len(cold):
            for position, reason in zip(cold, self._explain_fallback(
                    batch, rows[cold], columns[cold]), strict=True):
                reasons[position] = reason
        warm = np.flatnonzero((columns >= 0) & (lengths[rows] > 0))
        if len(warm):
            for position, reason in zip(warm, self._explain(batch, rows[warm], columns[warm]),
                                        strict=True):
                reasons[position] = reason
        return [reason if reason is not None else Reason("model") for reason in reasons]

    def _explain(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                 ) -> list[Reason]:
        """Reasons for users with a history (rows of ``batch``) and known items.

        The generic account: the history item the model finds most similar to the
        recommended item (``_item_similarity`` times the history weight). Models whose
        scores decompose over the history override this with exact contributions.
        """
        unique, inverse = np.unique(columns, return_inverse=True)
        similarity = np.asarray(self._item_similarity(unique), dtype=np.float32)
        history = sp.csr_matrix(batch.history[rows])
        values = history.data * similarity[inverse[_row_of_entries(history)], history.indices]
        best, strength = strongest_entries(history, values)
        return [Reason("similar", items=(str(self.item_vocab_.ids[b]),))
                if b >= 0 and s > 0 else Reason("model")
                for b, s in zip(best, strength, strict=True)]

    def _explain_fallback(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                          ) -> list[Reason]:
        """Reasons for users the fallback scored (popularity unless overridden)."""
        return [Reason("popular")] * len(rows)

    # ---- persistence ----------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        """What this model learned, as named arrays."""
        return {}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:  # noqa: B027 (optional hook)
        """Set learned state from ``_arrays`` output."""

    def save(self, path: str | Path) -> Path:
        """Write ``config.json`` and ``arrays.npz`` into the directory ``path``."""
        self._check_fitted()
        meta = {
            "format": ARTIFACT_FORMAT, "model": self.name,
            "config": self.config.model_dump(mode="json"),
            "event_weights": self.weights_.model_dump(mode="json"),
            "data_digest": self.data_digest_, "fitted_at": self.fitted_at_,
        }
        matrix = self.user_items_
        arrays = {
            "user_ids": self.user_vocab_.ids, "item_ids": self.item_vocab_.ids,
            "user_items.data": matrix.data, "user_items.indices": matrix.indices,
            "user_items.indptr": matrix.indptr, "popularity": self.popularity_,
            **{f"model.{key}": value for key, value in self._arrays().items()},
        }
        if self.needs_sequences:
            arrays["sequences.items"] = np.concatenate([np.zeros(0, np.int64),
                                                        *self.sequences_])
            arrays["sequences.lengths"] = np.array([len(s) for s in self.sequences_])
        index = self.item_index_
        if index is not None:  # faiss's own binary file beside the arrays, never pickle
            meta["item_index"] = {"file": INDEX_FILE, "items": len(index),
                                  "faiss": _version_of("faiss-cpu")}
        directory = write_artifact(path, meta, arrays)
        if index is not None:
            index.save(directory)
        else:  # an index left from an earlier save into the same directory
            (directory / INDEX_FILE).unlink(missing_ok=True)
        return directory

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a saved model; ``Recommender.load`` picks the class the artifact names."""
        directory = Path(path)
        meta, arrays = read_artifact(directory)
        if "model" not in meta:
            raise ValueError(f"{directory} holds a {meta.get('kind', 'different')} artifact, "
                             "not a model; load it with its own class (Pipeline.load)")
        family = Recommender._registry.get(meta["model"])
        if family is None:
            raise ValueError(f"{directory} holds an unknown model {meta['model']!r}; "
                             f"known: {sorted(Recommender._registry)}")
        if cls is not Recommender and family is not cls:
            raise TypeError(f"{directory} holds a {family.__name__}, not a {cls.__name__}")
        model = family(family.Config(**meta["config"]))
        model.user_vocab_ = Vocabulary(arrays["user_ids"])
        model.item_vocab_ = Vocabulary(arrays["item_ids"])
        model.weights_ = EventWeights(**meta["event_weights"])
        model.user_items_ = sp.csr_matrix(
            (arrays["user_items.data"], arrays["user_items.indices"],
             arrays["user_items.indptr"]),
            shape=(len(model.user_vocab_), len(model.item_vocab_)))
        model.popularity_ = arrays["popularity"]
        model.data_digest_ = meta["data_digest"]
        model.fitted_at_ = meta["fitted_at"]
        if model.needs_sequences:
            ends = np.cumsum(arrays["sequences.lengths"])
            model.sequences_ = np.split(arrays["sequences.items"], ends[:-1]) if len(ends) else []
        model._restore({key[6:]: value for key, value in arrays.items()
                        if key.startswith("model.")})
        if "item_index" in meta:
            model.item_index_ = model._load_item_index(directory)
        return model


def model_class(name: str) -> type[Recommender]:
    """The registered model family ``name`` (importing ``tailored.models.<name>`` if needed).

    Examples
    --------
    >>> model_class("popular").__name__
    'Popular'
    """
    if name not in Recommender._registry and name.isidentifier():
        # Families outside the package's default imports register when imported.
        with contextlib.suppress(ImportError):
            importlib.import_module(f"tailored.models.{name}")
    if name not in Recommender._registry:
        raise ValueError(f"unknown model {name!r}; choose one of "
                         f"{sorted(Recommender._registry)}")
    return Recommender._registry[name]


def _version_of(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _popularity(matrix: sp.csr_matrix) -> np.ndarray:
    """How many users touched each item (the fallback's scores)."""
    return np.asarray((matrix > 0).sum(axis=0), dtype=np.float32).ravel()


def distinct_ids(user_ids: str | Sequence[str]) -> np.ndarray:
    """User ids as a sorted array of distinct strings; one id alone is a list of one.

    Examples
    --------
    >>> distinct_ids(["b", "a", "b"]).tolist(), distinct_ids("a").tolist()
    (['a', 'b'], ['a'])
    """
    ids = [user_ids] if isinstance(user_ids, str) else [str(u) for u in user_ids]
    return np.unique(np.asarray(ids, dtype=str))


def among(ids: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Which of ``ids`` are in ``others`` (strings), by hashing: linear in both lengths.

    Examples
    --------
    >>> among(np.array(["a", "b", "c"]), np.array(["c", "a"])).tolist()
    [True, False, True]
    """
    wanted = set(np.asarray(others).tolist())
    return np.fromiter((value in wanted for value in np.asarray(ids).tolist()), dtype=bool,
                       count=len(ids))


def _sequences(events: pd.DataFrame, user_vocab: Vocabulary,
               item_vocab: Vocabulary) -> list[np.ndarray]:
    """Each user's known item indices, oldest first (ties keep the frame's order)."""
    frame = pd.DataFrame({"user": user_vocab.indices(events["user_id"].astype(str)),
                          "item": item_vocab.indices(events["item_id"].astype(str))})
    if "timestamp" in events.columns:
        frame["time"] = events["timestamp"].to_numpy()
        frame = frame.sort_values(["user", "time"], kind="stable")
    else:
        frame = frame.sort_values("user", kind="stable")
    frame = frame[(frame["user"] >= 0) & (frame["item"] >= 0)]
    users = frame["user"].to_numpy()
    items = frame["item"].to_numpy(np.int64)
    present, starts = np.unique(users, return_index=True)
    sequences = [np.zeros(0, np.int64)] * len(user_vocab)
    for user, chunk in zip(present, np.split(items, starts[1:]), strict=True):
        sequences[user] = chunk
    return sequences


def top_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """The columns of each row's ``k`` best scores (unordered), ties going to the lower
    column exactly, also where they straddle the cut (NaN counts as lowest).

    Examples
    --------
    >>> top_columns(np.array([[1.0, 3.0, 3.0, 3.0], [4.0, 0.0, 4.0, 5.0]]), 2).tolist()
    [[1, 2], [0, 3]]
    """
    n_rows, n_columns = scores.shape
    k = min(k, n_columns)
    if k >= n_columns:
        return np.tile(np.arange(n_columns), (n_rows, 1))
    if np.isnan(scores).any():
        scores = np.where(np.isnan(scores), -np.inf, scores)
    # Everything above the k-th best value, then the lowest columns among its ties
    # (counted only in the rows where they straddle the cut).
    kth = _kth_largest(scores, k)[:, None]
    above = scores > kth
    tied = scores == kth
    room = k - above.sum(axis=1)
    crowded = np.flatnonzero(tied.sum(axis=1) > room)
    if len(crowded):
        first = tied[crowded]
        first &= np.cumsum(first, axis=1) <= room[crowded, None]
        tied[crowded] = first
    return np.nonzero(above | tied)[1].reshape(n_rows, k)


_CHUNK = 64  # columns per chunk whose maxima bound a row's k-th largest score


def _kth_largest(scores: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k``-th largest score (no NaN; ``k`` below the row's length).

    Most scores of a large catalog lie far below the k-th and many are equal (items no
    neighbour touched score 0), which makes a partition of the whole row crawl. So the
    k-th largest of the rows' chunk maxima, which at least ``k`` scores reach, bounds it
    from below; the scores at or above that bound are few, and are sorted (a row they
    fill, with ties at the bound, is sorted whole: a sort does not mind ties).
    """
    n_rows, n_columns = scores.shape
    chunks = -(-n_columns // _CHUNK)
    if chunks < 4 * k:  # a narrow row: nothing to gain
        return np.partition(scores, n_columns - k, axis=1)[:, n_columns - k]
    padded = np.pad(scores, ((0, 0), (0, chunks * _CHUNK - n_columns)),
                    constant_values=-np.inf)
    maxima = padded.reshape(n_rows, chunks, _CHUNK).max(axis=2)
    bound = np.sort(maxima, axis=1)[:, chunks - k]
    candidates = scores >= bound[:, None]
    counts = candidates.sum(axis=1)
    kth = np.empty(n_rows, dtype=scores.dtype)
    crowded = counts > n_columns // 8  # ties at the bound fill the row: sort it whole
    if crowded.any():
        kth[crowded] = np.sort(scores[crowded], axis=1)[:, n_columns - k]
    few = np.flatnonzero(~crowded)
    if len(few):
        rows, columns = np.nonzero(candidates[few])
        width = int(counts[few].max())
        table = np.full((len(few), width), -np.inf, dtype=scores.dtype)
        starts = np.cumsum(counts[few]) - counts[few]
        table[rows, np.arange(len(rows)) - starts[rows]] = scores[few[rows], columns]
        kth[few] = np.sort(table, axis=1)[:, width - k]
    return kth


def top_k(scores: np.ndarray, k: int, row_ids: Sequence[str],
          column_ids: np.ndarray) -> pd.DataFrame:
    """Best ``k`` finite scores per row as a long frame, ties broken by the lower column
    (exactly, also where ties straddle the cut), so every path that ranks the same
    scores gives the same list.

    Examples
    --------
    >>> top_k(np.array([[1.0, 3.0, 3.0, 3.0]]), 2, ["u"], np.array(["a", "b", "c", "d"]))[
    ...     "item_id"].tolist()
    ['b', 'c']
    """
    n_rows, n_columns = scores.shape
    k = min(k, n_columns)
    if n_rows == 0 or k == 0:
        return pd.DataFrame({"user_id": pd.Series(dtype=object),
                             "item_id": pd.Series(dtype=object),
                             "score": pd.Series(dtype=np.float32),
                             "rank": pd.Series(dtype=np.int64)})
    if np.isnan(scores).any():
        scores = np.where(np.isnan(scores), -np.inf, scores)
    top = top_columns(scores, k)
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.lexsort((top, -top_scores), axis=1)
    top = np.take_along_axis(top, order, axis=1)
    top_scores = np.take_along_axis(top_scores, order, axis=1)
    keep = np.isfinite(top_scores)
    return pd.DataFrame({
        "user_id": np.repeat(np.asarray(row_ids, dtype=object), k)[keep.ravel()],
        "item_id": column_ids[top[keep]].astype(object),
        "score": top_scores[keep].astype(np.float32),
        "rank": np.tile(np.arange(1, k + 1), n_rows)[keep.ravel()],
    })


def _row_of_entries(matrix: sp.csr_matrix) -> np.ndarray:
    """The row of each stored entry of a CSR matrix, aligned with ``matrix.data``."""
    return np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))


def recent_items(sequence: np.ndarray, recent: int | None, decay: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A history's latest ``recent`` distinct items (``None``: all), newest first, and
    their weights: the item ``k`` places before the latest weighs ``decay ** k``.

    Examples
    --------
    >>> recent_items(np.array([3, 1, 2, 1]), recent=2, decay=0.5)
    (array([1, 2]), array([1. , 0.5]))
    """
    newest_first = sequence[::-1]
    _, first = np.unique(newest_first, return_index=True)
    items = newest_first[np.sort(first)][:recent]
    return items, decay ** np.arange(len(items), dtype=np.float64)


def strongest_entries(matrix: sp.csr_matrix, values: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``matrix``, the column whose entry has the largest of ``values``
    (aligned with ``matrix.data``) and that value; -1 and -inf for an empty row.
    Ties go to the lower column.

    Examples
    --------
    >>> matrix = sp.csr_matrix(np.array([[1, 0, 1], [0, 0, 0], [0, 1, 1]]))
    >>> strongest_entries(matrix, np.array([0.5, 0.7, -1.0, -2.0]))
    (array([ 2, -1,  1]), array([ 0.7, -inf, -1. ]))
    """
    rows = _row_of_entries(matrix)
    best = np.full(matrix.shape[0], -1, dtype=np.int64)
    strength = np.full(matrix.shape[0], -np.inf)
    if len(values):
        order = np.lexsort((matrix.indices, -np.asarray(values, dtype=np.float64), rows))
        first = order[np.r_[True, rows[order][1:] != rows[order][:-1]]]
        best[rows[first]] = matrix.indices[first]
        strength[rows[first]] = values[first]
    return best, strength
