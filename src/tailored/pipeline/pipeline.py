"""The pipeline: the one thing that turns a user into a ranked list.

Every list tailored gives (``Pipeline.run`` in Python, ``tailored recommend``,
``tailored evaluate`` and the REST API) goes through the same named stages:

    scorer -> rules -> (filter, boost, exclude, unavailable) -> top ``pool`` -> re-rankers
           -> [exploration: the service's online stage] -> explanations

- **scorer**: a :class:`~tailored.models.Recommender` (a family, a hybrid, or the learned
  ranker over its candidate sources) scores every item from the user's history; items
  the user has are left out. On large catalogs a factor or embedding model's item index
  gives the service its best candidates instead (:meth:`Pipeline.top_list`).
- **rules**: the recipe's business rules (:mod:`tailored.ranking.rules`), then the
  request's ``filter`` and ``boost``, which are rules too; they read the catalog the
  pipeline runs against (an :class:`~tailored.ranking.ItemTable`: the training items
  offline, the live store's catalog in the service).
- the request's ``exclude`` ids and the catalog's unavailable items never appear.
- **re-rankers** (:mod:`tailored.ranking.rerankers`) reorder the best ``pool`` items
  by a weighted mix of relevance, expected revenue (the catalog's ``price``), novelty
  and MMR diversity, with a cap per category; the request's ``diversity``,
  ``novelty``, ``revenue`` and ``max_per_category`` override the recipe's.
- **explanations**: a reason per item, from the scorer.

A request's parameters are :class:`Overrides` of these stages; a bare model is a
one-stage pipeline. A pipeline saves as one directory: ``config.json`` and
``arrays.npz`` (the catalog it learned, the user facts its rules read) beside the
scorer's own artifact in ``scorer/``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tailored.dataset import Dataset, UserQuery
from tailored.errors import InvalidDataError, NotFittedError
from tailored.models import Recommender
from tailored.models.artifact import read_artifact, read_meta, write_artifact
from tailored.models.base import Forgetting, ScoringBatch, Users, distinct_ids, top_k
from tailored.ranking import ItemTable, RerankerStage, RuleSet, UserFactsTable, rerank
from tailored.ranking.explain import explain_recommendations

ARTIFACT_KIND = "pipeline"
ARTIFACT_FORMAT = 1
#: Scores per scoring batch (64 MB of float32), whatever the catalog size.
_SCORE_BUDGET = 2**24


class PipelineConfig(BaseModel):
    """The stages around the scorer: ``rules`` (checked rule tables), ``rerankers`` in
    order, and ``pool``: how many of the best items the re-rankers choose from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="default", min_length=1, max_length=256)
    rules: list[dict[str, Any]] = Field(default_factory=list)
    rerankers: list[RerankerStage] = Field(default_factory=list)
    pool: int = Field(default=100, ge=1, le=5000)

    @field_validator("rules", mode="before")
    @classmethod
    def _check_rules(cls, value: Any) -> list[dict[str, Any]]:
        try:
            rules = RuleSet.from_toml(value) if isinstance(value, str) else RuleSet.from_spec(
                value)
        except InvalidDataError as error:
            raise ValueError(str(error)) from None
        return rules.to_spec()


@dataclass(frozen=True)
class Overrides:
    """What one request changes in the stages (REST parameters, CLI flags).

    ``rules``: the request's filter and boosts (:meth:`RuleSet.from_request`);
    ``exclude``: item ids to leave out; ``diversity``, ``novelty``, ``revenue`` (each
    0-1) and ``max_per_category``: the re-ranker's knobs (None keeps the recipe's; see
    :class:`~tailored.ranking.RerankerStage`); ``pool``: candidates re-ranked.

    Examples
    --------
    >>> overrides = Overrides.parse(filter="price < 100", boosts=['"shoes" in categories:2'],
    ...                             diversity=0.3)
    >>> [rule.name for rule in overrides.rules], overrides.stages([])
    (['filter', 'boost 1'], [RerankerStage(kind='diversify', diversity=0.3, \
similarity='categories', max_per_category=None, novelty=0.0, revenue=0.0)])
    """

    rules: RuleSet = field(default_factory=RuleSet)
    exclude: tuple[str, ...] = ()
    diversity: float | None = None
    novelty: float | None = None
    max_per_category: int | None = None
    pool: int | None = None
    revenue: float | None = None

    @classmethod
    def parse(cls, filter: str | None = None, boosts: Sequence[str] = (),
              exclude: Sequence[str] = (), *, catalog: ItemTable | None = None,
              **stages: Any) -> Overrides:
        """From a request's texts; an ``ExpressionError`` says where one is wrong. With
        the ``catalog`` the request will run over, one too costly for it is refused as
        soon as it is read (otherwise before it runs)."""
        return cls(RuleSet.from_request(filter, boosts, catalog), tuple(exclude), **stages)

    def stages(self, recipe: Sequence[RerankerStage]) -> list[RerankerStage]:
        """The recipe's re-rankers with this request's knobs: they replace the first
        stage's, or make a stage when the recipe has none."""
        knobs = {name: value for name in ("diversity", "novelty", "revenue", "max_per_category")
                 if (value := getattr(self, name)) is not None}
        if not knobs:
            return list(recipe)
        if not recipe:
            return [RerankerStage(**knobs)]
        return [recipe[0].model_copy(update=knobs), *recipe[1:]]

    def check(self, catalog: ItemTable) -> None:
        """Refuse a filter or boost that reads an attribute no item has (an
        ``ExpressionError`` with its column): a typo would otherwise match nothing."""
        for expression in self.rules.expressions():
            catalog.check_names(expression)


NO_OVERRIDES = Overrides()


@dataclass(frozen=True)
class TopList:
    """A scorer's best items for one user before the other stages: columns of the
    scorer's items and their scores, best first. ``complete`` when no scorable item was
    cut off (every item below ``scores[-1]`` is absent only if it cannot be shown). A
    list from an approximate item index (:meth:`Pipeline.top_list`) is never complete,
    and "below ``scores[-1]``" holds for it only as far as the index found the best."""

    columns: np.ndarray
    scores: np.ndarray
    complete: bool

    @classmethod
    def of(cls, scores: np.ndarray, n: int | None = None) -> TopList:
        """The best ``n`` finite scores of one user's score row (all when ``n`` is None)."""
        finite = np.flatnonzero(np.isfinite(scores))
        complete = n is None or len(finite) <= n
        order = _best(scores[finite], finite, len(finite) if n is None else n)
        columns = finite[order].astype(np.int32)
        return cls(columns, scores[columns].astype(np.float32), complete)

    @property
    def nbytes(self) -> int:
        return int(self.columns.nbytes + self.scores.nbytes)


@dataclass(frozen=True)
class Ranked:
    """One user's list: item ids with their scores (after rules), in order."""

    item_ids: list[str]
    scores: list[float]
    columns: np.ndarray = field(repr=False)

    def frame(self, user_id: str) -> pd.DataFrame:
        return pd.DataFrame({"user_id": pd.Series([user_id] * len(self.item_ids), dtype=object),
                             "item_id": pd.Series(self.item_ids, dtype=object),
                             "score": np.asarray(self.scores, dtype=np.float32),
                             "rank": np.arange(1, len(self.item_ids) + 1)})

    def head(self, k: int) -> Ranked:
        return Ranked(self.item_ids[:k], self.scores[:k], self.columns[:k])


class Pipeline:
    """A scorer and the stages around it, fitted, run and saved as one.

    Examples
    --------
    >>> from tailored.testing import checkerboard
    >>> from tailored.models import ItemKNN
    >>> pipeline = Pipeline(ItemKNN(), name="knn", rules=[
    ...     {"name": "promo", "pin": ["B005"]}]).fit(checkerboard())
    >>> pipeline.run("a000", k=3)["item_id"].tolist()
    ['B005', 'A009', 'A008']
    >>> one_per_group = Overrides(max_per_category=1)     # items are in two groups
    >>> pipeline.run("a000", k=3, overrides=one_per_group)["item_id"].tolist()
    ['B005', 'A009']
    >>> cheap = Overrides.parse(filter="price < 19", exclude=["B005"])
    >>> pipeline.run("a000", k=3, overrides=cheap)["item_id"].tolist()
    ['A008', 'A001', 'A000']
    """

    def __init__(self, scorer: Recommender, config: PipelineConfig | None = None,
                 **params: Any) -> None:
        if config is not None and params:
            raise TypeError("pass either a config object or keyword parameters, not both")
        self.scorer = scorer
        self.config = config if config is not None else PipelineConfig(**params)
        self.rules = RuleSet.from_spec(self.config.rules)

    def __repr__(self) -> str:
        return (f"Pipeline({self.scorer!r}, name={self.config.name!r}, "
                f"rules={len(self.rules)}, rerankers={len(self.config.rerankers)})")

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def item_ids(self) -> np.ndarray:
        return self.scorer.item_ids

    @property
    def user_ids(self) -> np.ndarray:
        """Every user the pipeline holds state about, sorted: the scorer's training users,
        users its profile tables name, and those of the facts its rules read."""
        self._check_fitted()
        scorer, facts = self.scorer, self.facts_
        return np.unique(np.concatenate([scorer.user_vocab_.ids, *scorer._profile_ids(),
                                         facts.user_vocab.ids, facts.user_ids]).astype(str))

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "items_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"the pipeline {self.name!r} is not fitted yet; call "
                                 "fit(data)")

    # ---- learning -------------------------------------------------------------------

    def fit(self, data: Dataset) -> Self:
        """Fit the scorer, then learn the catalog and the user facts the rules read."""
        self.scorer.fit(data)
        return self.fit_stages(data)

    def fit_stages(self, data: Dataset) -> Self:
        """Learn the catalog and the user facts the rules read, around a scorer fitted on
        ``data`` already (or being fitted on it: tuning checks one between epochs)."""
        self.scorer._check_fitted()
        self.items_ = ItemTable.from_items(data.items, self.scorer.item_ids)
        self.facts_ = UserFactsTable(self.rules).fit(data, self.items_)
        return self

    # ---- the stages, one user at a time (the service's path) --------------------------

    def scores(self, query: UserQuery) -> np.ndarray:
        """The scorer's scores, one row per user; items in a user's history (the query's
        events, else the training history) and unscorable ones are ``-inf``."""
        return self._scores_and_history(query)[0]

    def top_list(self, query: UserQuery, n: int | None = None) -> TopList:
        """The scorer's best ``n`` items for one user (all when None) that the user does
        not have, before the rules: what :meth:`select` picks from.

        With ``n`` given and a scorer that built an approximate item index (factor and
        embedding models on catalogs of ``ann_min_items`` or more), the list is the
        index's ``n`` best candidates, rescored exactly, and never ``complete``: when
        too few of them pass the rules and filters, :meth:`select` says so and the
        caller scores every item (``top_list(query)``). Otherwise every item is scored.
        """
        self._check_fitted()
        batch = self.scorer._resolve(query)
        if n is not None:
            found = self.scorer._approximate_top(batch, n)[0]
            if found is not None:
                return TopList(found[0].astype(np.int32), found[1].astype(np.float32),
                               complete=False)
        return TopList.of(self._masked_scores(batch)[0][0], n)

    def _scores_and_history(self, query: UserQuery) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`scores` and the mask of each user's history items (never shown, not
        even when a rule pins them)."""
        self._check_fitted()
        return self._masked_scores(self.scorer._resolve(query))

    def _masked_scores(self, batch: ScoringBatch) -> tuple[np.ndarray, np.ndarray]:
        scores = self.scorer._scores(batch)
        scores = np.where(np.isnan(scores), -np.inf, scores).astype(np.float32)
        seen = batch.history.toarray() != 0
        scores[seen] = -np.inf
        return scores, seen

    @property
    def reads_profiles(self) -> bool:
        """Whether the scorer or the recipe's rules read users' profiles."""
        return self.scorer.reads_profiles or bool(self.rules.user_attributes)

    def reads_history(self, overrides: Overrides = NO_OVERRIDES) -> bool:
        """Whether the rules need the user's events: ``recent(...)`` counts them, and a
        pin must not bring back an item the user has."""
        rules = self.rules + overrides.rules
        return bool(rules.recent_calls or rules.pins)

    def pool(self, k: int, overrides: Overrides = NO_OVERRIDES, explore: bool = False
             ) -> int:
        """How many of the best items the re-rankers (or exploration) choose from."""
        stages = overrides.stages(self.config.rerankers)
        if explore or any(not stage.is_identity for stage in stages):
            return max(k, overrides.pool or self.config.pool)
        return k

    def select(self, top: TopList, n: int, query: UserQuery,
               overrides: Overrides = NO_OVERRIDES, catalog: ItemTable | None = None
               ) -> Ranked | None:
        """One user's best ``n`` after the rules, the request's filters and the catalog.

        From a cut-off top list the answer is None when it cannot be proven exact (too
        few items survive, or a boost could lift an item from below the list): score the
        user completely (:meth:`TopList.of` of :meth:`scores`) then. Rules, filters,
        exclusions and the catalog apply exactly to the listed items whatever the list
        came from; from an approximate index's list, the answer is exact with respect
        to the candidates the index found.
        """
        catalog = catalog if catalog is not None else self.items_
        overrides.check(catalog)
        rules = self.rules + overrides.rules
        columns, scores = top.columns, top.scores
        pinned = catalog.columns(rules.pins)
        extra = np.setdiff1d(pinned, columns) if len(pinned) else pinned
        if len(extra):  # a pin may lift an item from anywhere the user has not been
            extra = np.setdiff1d(extra, self.scorer._resolve(query).history.indices)
            columns = np.concatenate([columns, extra.astype(columns.dtype)])
            scores = np.concatenate([scores, np.full(len(extra), -np.inf, np.float32)])
        if len(rules):
            facts = self.facts_.facts(query, catalog)
            scores = rules.apply(scores[None, :], columns, facts, catalog, query.context)[0]
        blocked = self._blocked(catalog, overrides)
        scores = np.where(blocked[columns], -np.inf, scores)
        order = _best(scores, columns, n)
        if not top.complete:
            # An item below the list scored at most `floor`; boosted, at most `ceiling`.
            floor = float(top.scores[-1]) if len(top.scores) else -np.inf
            ceiling = rules.boost_ceiling
            ceiling = floor * ceiling if floor > 0 else floor / ceiling
            if len(order) < n or scores[order[-1]] < ceiling:
                return None
        picked = columns[order]
        return Ranked(self.item_ids[picked].tolist(), [float(s) for s in scores[order]],
                      picked)

    def rerank(self, ranked: Ranked, user_id: str, k: int,
               overrides: Overrides = NO_OVERRIDES, catalog: ItemTable | None = None
               ) -> Ranked:
        """One user's list re-ranked by the stages; ``k`` items."""
        stages = overrides.stages(self.config.rerankers)
        if all(stage.is_identity for stage in stages) or len(ranked.item_ids) <= 1:
            return ranked.head(k)
        catalog = catalog if catalog is not None else self.items_
        picked = rerank(ranked.frame(user_id), k, stages, catalog, self.scorer)
        position = {item: n for n, item in enumerate(ranked.item_ids)}
        order = [position[item] for item in picked["item_id"]]
        return Ranked([ranked.item_ids[n] for n in order], [ranked.scores[n] for n in order],
                      ranked.columns[order])

    def explain(self, query: UserQuery, recommendations: pd.DataFrame,
                titles: Mapping[str, str] | None = None) -> pd.DataFrame:
        """``recommendations`` with a ``reason`` per row (from the scorer's evidence)."""
        return explain_recommendations(self.scorer, query, recommendations, titles=titles)

    # ---- the stages for many users at once ----------------------------------------------

    def run(self, users: Users, k: int = 10, overrides: Overrides = NO_OVERRIDES, *,
            catalog: ItemTable | None = None, explain: bool = False,
            titles: Mapping[str, str] | None = None) -> pd.DataFrame:
        """The top ``k`` per user through every stage, best first.

        ``users`` are ids or a :class:`UserQuery` (with current histories, profiles and
        context); ``catalog`` is the item table the rules and re-rankers read (default:
        the one learned at fit). Returns ``user_id``, ``item_id``, ``score``, ``rank``
        (and ``reason``... with ``explain``).
        """
        self._check_fitted()
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        query = UserQuery.of(users)
        catalog = catalog if catalog is not None else self.items_
        overrides.check(catalog)
        rules = self.rules + overrides.rules
        blocked = self._blocked(catalog, overrides)
        n = self.pool(k, overrides)
        every = np.arange(len(self.item_ids))
        parts = []
        for part in _chunks(query, max(1, _SCORE_BUDGET // max(1, len(every)))):
            scores, seen = self._scores_and_history(part)
            if len(rules):
                scores = rules.apply(scores, every, self.facts_.facts(part, catalog),
                                     catalog, part.context)
                scores[seen] = -np.inf  # a pin does not bring back what the user has
            scores[:, blocked] = -np.inf
            parts.append(top_k(scores, n, part.user_ids, self.item_ids))
        recs = pd.concat(parts, ignore_index=True) if parts else top_k(
            np.zeros((0, 0), np.float32), n, (), self.item_ids)
        recs = rerank(recs, k, overrides.stages(self.config.rerankers), catalog, self.scorer)
        if explain:
            recs = self.explain(query, recs, titles)
        return recs

    def _blocked(self, catalog: ItemTable, overrides: Overrides) -> np.ndarray:
        """Columns never to show: unavailable in the catalog, or excluded by the request."""
        blocked = catalog.unavailable
        if overrides.exclude:
            blocked = blocked.copy()
            blocked[catalog.columns(overrides.exclude)] = True
        return blocked

    # ---- forgetting -----------------------------------------------------------------

    def forget_users(self, user_ids: str | Sequence[str]) -> Forgetting:
        """Remove users from the scorer (:meth:`Recommender.forget_users`) and from the
        facts the rules read, in place.

        ``known`` counts the given users that either held; ``exact`` is the scorer's
        (the catalog holds nothing of users). Save the pipeline, or use
        :func:`~tailored.pipeline.forget_in_artifact`, to rewrite an artifact.
        """
        self._check_fitted()
        ids = distinct_ids(user_ids)
        held = self.scorer._held(ids) | self.facts_._held(ids)
        if not held.any():
            return Forgetting()
        forgotten = self.scorer.forget_users(ids[held])
        self.facts_.forget_users(ids[held])
        return Forgetting(int(held.sum()), forgotten.exact)

    # ---- persistence ----------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """One directory: ``config.json`` + ``arrays.npz``, the scorer in ``scorer/``."""
        self._check_fitted()
        directory = Path(path)
        self.scorer.save(directory / "scorer")
        meta = {"format": ARTIFACT_FORMAT, "kind": ARTIFACT_KIND,
                "pipeline": self.config.model_dump(mode="json")}
        return write_artifact(directory, meta, {**self.items_.arrays(),
                                                **self.facts_.arrays()})

    @classmethod
    def load(cls, path: str | Path) -> Pipeline:
        """A saved pipeline; a saved bare model loads as a one-stage pipeline."""
        directory = Path(path)
        meta = read_meta(directory)
        if meta.get("kind") != ARTIFACT_KIND:
            return cls.of(Recommender.load(directory))
        _, arrays = read_artifact(directory)
        pipeline = cls(Recommender.load(directory / "scorer"),
                       PipelineConfig(**meta["pipeline"]))
        pipeline.items_ = ItemTable.from_arrays(arrays, pipeline.item_ids)
        pipeline.facts_ = UserFactsTable(pipeline.rules).restore(arrays, pipeline.items_)
        return pipeline

    @classmethod
    def of(cls, scorer: Recommender, name: str | None = None) -> Pipeline:
        """A fitted scorer as a one-stage pipeline (no rules, no re-rankers)."""
        pipeline = cls(scorer, name=name or scorer.name)
        if scorer.is_fitted:
            pipeline.items_ = ItemTable(scorer.item_ids)
            pipeline.facts_ = UserFactsTable(pipeline.rules)
        return pipeline


def _chunks(query: UserQuery, size: int) -> Iterator[UserQuery]:
    """The query in batches of ``size`` users (their events and profiles with them)."""
    if len(query.user_ids) <= size:
        yield query
        return
    for start in range(0, len(query.user_ids), size):
        users = query.user_ids[start:start + size]
        yield replace(query, user_ids=users, events=_of_users(query.events, users),
                      profiles=_of_users(query.profiles, users))


def _of_users(frame: pd.DataFrame | None, users: Sequence[str]) -> pd.DataFrame | None:
    if frame is None:
        return None
    return frame[frame["user_id"].astype(str).isin(set(users))]


def _best(scores: np.ndarray, columns: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` best finite scores, best first; ties go to the lower
    column (exactly, as :func:`~tailored.models.base.top_k` breaks them)."""
    candidates = np.flatnonzero(np.isfinite(scores))
    if n <= 0:
        return candidates[:0]
    if len(candidates) > 4 * n:  # a long row: keep the n-th best value and its ties
        kth = -np.partition(-scores[candidates], n - 1)[n - 1]
        candidates = candidates[scores[candidates] >= kth]
    order = np.lexsort((columns[candidates], -scores[candidates]))
    return candidates[order][:n]


__all__ = ["NO_OVERRIDES", "Overrides", "Pipeline", "PipelineConfig", "Ranked", "TopList"]
