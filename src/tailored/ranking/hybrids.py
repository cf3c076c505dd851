"""Hybrids: several models combined into one :class:`~tailored.models.Recommender`.

- :class:`WeightedHybrid` (``weighted``): each part's scores are normalised per user,
  then added with weights.
- :class:`SwitchingHybrid` (``switching``): the user's situation picks the models: no
  (or too little) history -> ``cold`` parts (segment popularity), a few items ->
  ``warm`` parts (content and item-kNN), many items -> ``hot`` parts (collaborative
  filtering); the thresholds are parameters.
- :class:`CascadeHybrid` (``cascade``): the first model's best ``keep`` items are
  re-scored by the next model, and so on; the last model orders the survivors.

Each is a model like any other: ``fit``/``recommend``/``save``/``load`` work unchanged,
and its artifact nests the arrays of every part (see :mod:`tailored.ranking.parts`).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field, model_validator

from tailored.dataset import Dataset
from tailored.models import ModelConfig, Recommender, ScoringBatch
from tailored.models.base import DroppedUsers, Reason, Users, top_columns

from .parts import Part, Parts, normalise_rows, part_fallback, part_scores

Normalisation = Literal["zscore", "minmax", "rank"]


class WeightedPart(Part):
    """A part and its ``weight`` in a weighted sum (0 leaves it out)."""

    weight: float = Field(default=1.0, ge=0)


class CascadeStage(Part):
    """A cascade stage: its model, and how many of its best items go on to the next stage
    (``keep``; unused on the last stage)."""

    keep: int = Field(default=100, ge=1)


class _Composite(Recommender):
    """Shared machinery: fit the parts on the same data, score one batch with all of them,
    nest their arrays in the artifact."""

    parts_: Parts

    @abstractmethod
    def _all_parts(self) -> list[Part]:
        """Every model this composite fits, each once."""

    def _fit(self, matrix: sp.csr_matrix, data: Dataset) -> None:
        self.parts_ = Parts(self._all_parts()).fit(data)

    def _resolve(self, users: Users) -> ScoringBatch:
        return self.parts_.resolve(self, users)

    @property
    def reads_profiles(self) -> bool:
        return self.is_fitted and self.parts_.read_profiles

    def _item_similarity(self, columns: np.ndarray) -> np.ndarray:
        return self.parts_[self._all_parts()[0]]._item_similarity(columns)

    def _profile_ids(self) -> list[np.ndarray]:
        return self.parts_.profile_ids()

    def _forget_rows(self, dropped: DroppedUsers) -> bool:
        return self.parts_.forget(self, dropped)  # the composite learns nothing of its own

    def _arrays(self) -> dict[str, np.ndarray]:
        return self.parts_.arrays()

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.parts_ = Parts(self._all_parts()).restore(self, arrays)

    def _explained_by(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray,
                      choice: list[Part], which: np.ndarray) -> list[Reason]:
        """Each pair's reason from the part ``choice[which[i]]`` that put it there."""
        reasons: list[Reason] = [Reason("model")] * len(rows)
        for index, part in enumerate(choice):
            picked = np.flatnonzero(which == index)
            if len(picked):
                for position, reason in zip(picked, self.parts_[part]._reasons(
                        batch, rows[picked], columns[picked]), strict=True):
                    reasons[position] = reason
        return reasons

    def _strongest(self, parts: list[WeightedPart], batch: ScoringBatch, rows: np.ndarray,
                   columns: np.ndarray, normalisation: str) -> np.ndarray:
        """For each (row, column) pair, the part with the largest weighted share."""
        shares = np.stack([
            part.weight * normalise_rows(part_scores(self.parts_[part], batch),
                                         normalisation)[rows, columns]
            for part in parts])
        return np.asarray(shares.argmax(axis=0))

    def _weighted(self, parts: list[WeightedPart], batch: ScoringBatch | None,
                  normalisation: str) -> np.ndarray:
        """Weighted sum of the parts' per-user normalised scores (fallbacks without batch)."""
        total: np.ndarray | None = None
        for part in parts:
            if part.weight == 0:
                continue
            model = self.parts_[part]
            scores = (part_fallback(model, len(self.item_vocab_), None) if batch is None
                      else part_scores(model, batch))
            term = part.weight * normalise_rows(scores, normalisation)
            total = term if total is None else total + term
        assert total is not None  # configs require a part with a positive weight
        return total


def _some_weight(parts: list[WeightedPart], where: str) -> None:
    if not parts:
        raise ValueError(f"{where} needs at least one part")
    if not any(part.weight > 0 for part in parts):
        raise ValueError(f"{where} needs a part with a weight above 0")


class WeightedHybridConfig(ModelConfig):
    """``parts``: models with weights; ``normalisation``: how each part's scores are put
    on one scale per user before adding (``zscore``, ``minmax`` or ``rank``)."""

    parts: list[WeightedPart] = Field(default_factory=lambda: [
        WeightedPart(model="als"), WeightedPart(model="item_knn"),
        WeightedPart(model="popular", weight=0.2)])
    normalisation: Normalisation = "zscore"

    @model_validator(mode="after")
    def _weights(self) -> WeightedHybridConfig:
        _some_weight(self.parts, "parts")
        return self


class WeightedHybrid(_Composite):
    """Normalised scores of several models, added with weights.

    Examples
    --------
    >>> from tailored.testing import checkerboard
    >>> model = WeightedHybrid(parts=[{"model": "item_knn", "weight": 1.0},
    ...                               {"model": "popular", "weight": 0.1}])
    >>> model.fit(checkerboard()).recommend("a000", k=2)["item_id"].str[0].tolist()
    ['A', 'A']
    """

    name = "weighted"
    example_params: ClassVar[dict[str, Any]] = {"parts": [
        {"model": "item_knn"}, {"model": "popular", "weight": 0.1},
        {"model": "als", "params": {"factors": 2, "iterations": 15, "alpha": 5.0}}]}
    Config = WeightedHybridConfig
    config: WeightedHybridConfig

    def _all_parts(self) -> list[Part]:
        return list(self.config.parts)

    def _score(self, batch: ScoringBatch) -> np.ndarray:
        return self._weighted(self.config.parts, batch, self.config.normalisation)

    def _fallback(self, batch: ScoringBatch | None = None) -> np.ndarray:
        scores = self._weighted(self.config.parts, batch, self.config.normalisation)
        return scores[0] if batch is None else scores

    def _explain(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                 ) -> list[Reason]:
        """The reason of the part with the largest weighted share of the item's score."""
        parts = list(self.config.parts)
        which = self._strongest(parts, batch, rows, columns, self.config.normalisation)
        return self._explained_by(batch, rows, columns, list(parts), which)

    _explain_fallback = _explain


class SwitchingHybridConfig(ModelConfig):
    """Which models answer whom.

    A user's *items* are the distinct items in their history. Fewer than
    ``few_events`` items (by default: none) -> the ``cold`` parts; at least
    ``few_events`` and fewer than ``many_events`` -> the ``warm`` parts; at least
    ``many_events`` -> the ``hot`` parts. Each group is a weighted list of parts
    (normalised per user like :class:`WeightedHybrid`, with ``normalisation``).
    """

    cold: list[WeightedPart] = Field(default_factory=lambda: [WeightedPart(model="segments")])
    warm: list[WeightedPart] = Field(default_factory=lambda: [
        WeightedPart(model="content"), WeightedPart(model="item_knn")])
    hot: list[WeightedPart] = Field(default_factory=lambda: [WeightedPart(model="als")])
    few_events: int = Field(default=1, ge=1)
    many_events: int = Field(default=10, ge=1)
    normalisation: Normalisation = "zscore"

    @model_validator(mode="after")
    def _groups(self) -> SwitchingHybridConfig:
        for group in ("cold", "warm", "hot"):
            _some_weight(getattr(self, group), group)
        if self.many_events < self.few_events:
            raise ValueError(f"many_events ({self.many_events}) must be at least few_events "
                             f"({self.few_events})")
        return self


class SwitchingHybrid(_Composite):
    """Different models for new, light and heavy users.

    Examples
    --------
    >>> from tailored.testing import checkerboard
    >>> model = SwitchingHybrid(many_events=4).fit(checkerboard())
    >>> model.situation(["a000", "nobody"]).tolist()
    ['hot', 'cold']
    """

    name = "switching"
    example_params: ClassVar[dict[str, Any]] = {"many_events": 4, "hot": [{"model": "item_knn"}]}
    Config = SwitchingHybridConfig
    config: SwitchingHybridConfig
    GROUPS: ClassVar[tuple[str, ...]] = ("cold", "warm", "hot")

    def _all_parts(self) -> list[Part]:
        return [*self.config.hot, *self.config.warm, *self.config.cold]

    def _groups_of(self, batch: ScoringBatch) -> np.ndarray:
        items = np.diff(batch.history.indptr)
        return np.where(items < self.config.few_events, 0,
                        np.where(items < self.config.many_events, 1, 2))

    def situation(self, users: Users) -> np.ndarray:
        """``cold``, ``warm`` or ``hot`` per user: which parts answer them."""
        self._check_fitted()
        return np.asarray(self.GROUPS, dtype=object)[self._groups_of(self._resolve(users))]

    def _score(self, batch: ScoringBatch) -> np.ndarray:
        groups = self._groups_of(batch)
        scores = np.zeros((len(batch), len(self.item_vocab_)), dtype=np.float32)
        for group, name in enumerate(self.GROUPS):
            rows = np.flatnonzero(groups == group)
            if len(rows):
                scores[rows] = self._weighted(getattr(self.config, name), batch.take(rows),
                                              self.config.normalisation)
        return scores

    def _fallback(self, batch: ScoringBatch | None = None) -> np.ndarray:
        scores = self._weighted(self.config.cold, batch, self.config.normalisation)
        return scores[0] if batch is None else scores

    def _explain(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                 ) -> list[Reason]:
        """The reason of the strongest part of the user's group (cold, warm or hot)."""
        groups = self._groups_of(batch)[rows]
        reasons: list[Reason] = [Reason("model")] * len(rows)
        for group, name in enumerate(self.GROUPS):
            picked = np.flatnonzero(groups == group)
            if not len(picked):
                continue
            parts = list(getattr(self.config, name))
            which = self._strongest(parts, batch, rows[picked], columns[picked],
                                    self.config.normalisation)
            for position, reason in zip(picked, self._explained_by(
                    batch, rows[picked], columns[picked], list(parts), which), strict=True):
                reasons[position] = reason
        return reasons

    _explain_fallback = _explain


class CascadeHybridConfig(ModelConfig):
    """``stages``: models in order; each stage's best ``keep`` items (among those still in)
    go on to the next, and the last stage orders what is left."""

    stages: list[CascadeStage] = Field(default_factory=lambda: [
        CascadeStage(model="als", keep=100), CascadeStage(model="item_knn")])

    @model_validator(mode="after")
    def _some(self) -> CascadeHybridConfig:
        if not self.stages:
            raise ValueError("stages needs at least one stage")
        return self


class CascadeHybrid(_Composite):
    """One model's best items re-scored by the next.

    Every item gets a finite score: an item cut after stage ``i`` (0-based) scores in
    ``[i, i + 1)`` by that stage's opinion, so it ranks below everything that went further.
    Items the user already has never take a stage's ``keep`` slots.

    Examples
    --------
    >>> from tailored.testing import checkerboard
    >>> model = CascadeHybrid(stages=[{"model": "popular", "keep": 8},
    ...                               {"model": "item_knn"}]).fit(checkerboard())
    >>> model.recommend("b000", k=2)["item_id"].str[0].tolist()
    ['B', 'B']
    """

    name = "cascade"
    example_params: ClassVar[dict[str, Any]] = {
        "stages": [{"model": "item_knn", "keep": 4}, {"model": "popular"}]}
    Config = CascadeHybridConfig
    config: CascadeHybridConfig

    def _all_parts(self) -> list[Part]:
        return list(self.config.stages)

    def _cascade(self, batch: ScoringBatch | None) -> np.ndarray:
        n_items = len(self.item_vocab_)
        rows = 1 if batch is None else len(batch)
        alive = np.ones((rows, n_items), dtype=bool)
        if batch is not None:  # seen items may stay, but never take a stage's slots
            seen = batch.history.tocoo()
            eligible = alive.copy()
            eligible[seen.row, seen.col] = False
        else:
            eligible = alive.copy()
        final = np.zeros((rows, n_items), dtype=np.float32)
        for level, stage in enumerate(self.config.stages):
            model = self.parts_[stage]
            scores = (part_fallback(model, n_items, None) if batch is None
                      else part_scores(model, batch)).astype(np.float64)
            scores = np.where(np.isfinite(scores), scores, np.nan)
            low = np.nanmin(np.where(alive, scores, np.nan), axis=1, keepdims=True)
            high = np.nanmax(np.where(alive, scores, np.nan), axis=1, keepdims=True)
            low, high = np.nan_to_num(low), np.nan_to_num(high)
            spread = np.where(high > low, high - low, 1.0)
            squashed = np.clip(np.nan_to_num((scores - low) / spread, nan=0.0), 0.0, 1.0)
            final = np.where(alive, level + 0.999 * squashed, final).astype(np.float32)
            if level + 1 == len(self.config.stages):
                break
            ranked = np.where(alive & eligible, np.nan_to_num(scores, nan=-np.inf), -np.inf)
            keep = min(stage.keep, n_items)
            top = top_columns(ranked, keep)
            survivors = np.zeros_like(alive)
            np.put_along_axis(survivors, top, True, axis=1)
            alive = survivors & alive & eligible
        return final

    def _score(self, batch: ScoringBatch) -> np.ndarray:
        return self._cascade(batch)

    def _fallback(self, batch: ScoringBatch | None = None) -> np.ndarray:
        scores = self._cascade(batch)
        return scores[0] if batch is None else scores

    def _explain(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                 ) -> list[Reason]:
        """The reason of the last stage that scored the item (its tier)."""
        tiers = np.floor(self._cascade(batch)[rows, columns]).astype(np.int64)
        stages: list[Part] = list(self.config.stages)
        return self._explained_by(batch, rows, columns, stages,
                                  np.clip(tiers, 0, len(stages) - 1))

    _explain_fallback = _explain


__all__ = ["CascadeHybrid", "CascadeHybridConfig", "CascadeStage", "SwitchingHybrid",
           "SwitchingHybridConfig", "WeightedHybrid", "WeightedHybridConfig", "WeightedPart"]
