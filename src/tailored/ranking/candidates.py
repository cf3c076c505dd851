"""Candidate generation: several sources propose items at once, de-duplicated.

Each :class:`CandidateSource` is a registered model (collaborative filtering such as
``als`` or ``ease``, ``item_knn``, ``content``, ``trending``, ``rules``, ...) that
proposes its best ``n`` items per user; with ``recent_items`` it scores from the user's
last few items only (item-kNN of recent items). The union of the proposals is the
candidate set, and every candidate records which sources proposed it and *every*
source's score and rank for it (each source can score any item), so a learned ranker
sees all the evidence.

Examples
--------
>>> from tailored.testing import checkerboard
>>> generator = CandidateGenerator([
...     CandidateSource(model="item_knn", n=3),
...     CandidateSource(name="recent", model="item_knn", recent_items=2, n=3),
...     CandidateSource(model="popular", n=2)]).fit(checkerboard())
>>> frame = generator.frame(["a000"])
>>> list(frame.columns)[:4]
['user_id', 'item_id', 'sources', 'item_knn_score']
>>> frame["item_id"].is_unique
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field, model_validator

from tailored.dataset import Dataset
from tailored.models import Recommender, ScoringBatch
from tailored.models.base import DroppedUsers, Users

from .parts import Part, Parts

_SEPARATOR = ","


class CandidateSource(Part):
    """A model that proposes its ``n`` best items per user.

    ``name`` labels the source in candidate frames and feature names (default: the
    model name; must be unique within a generator). ``recent_items`` scores from only
    the user's last that many distinct items (``None``: the whole history).
    """

    name: str | None = None
    n: int = Field(default=50, ge=1, le=10_000)
    recent_items: int | None = Field(default=None, ge=1)

    @property
    def label(self) -> str:
        return self.name or self.model

    @model_validator(mode="after")
    def _label_is_a_word(self) -> CandidateSource:
        if not self.label.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"source name {self.label!r} must be letters, digits, _ or -")
        return self


def check_sources(sources: Sequence[CandidateSource]) -> None:
    """Sources need at least one entry and unique labels."""
    if not sources:
        raise ValueError("sources needs at least one candidate source")
    labels = [source.label for source in sources]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ValueError(f"candidate sources need distinct names; {twice} appear twice "
                         "(give one of them a name = ...)")


@dataclass(frozen=True)
class CandidateSet:
    """Candidates of a batch in dense indices, one entry per (user row, item).

    ``rows`` are batch rows, ``items`` item indices (sorted by row); ``scores`` and
    ``ranks`` have one column per source (rank 1 = the source's best unseen item);
    ``proposed`` says which sources put the item forward. ``row_scores`` keeps every
    source's full score row per user (users x items), for features that need it.
    """

    rows: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray
    proposed: np.ndarray
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, keep: np.ndarray) -> CandidateSet:
        return dataclasses.replace(self, rows=self.rows[keep], items=self.items[keep],
                                   scores=self.scores[keep], ranks=self.ranks[keep],
                                   proposed=self.proposed[keep])

    def group_sizes(self, n_rows: int) -> np.ndarray:
        return np.bincount(self.rows, minlength=n_rows)


class CandidateGenerator:
    """Fits its sources on one dataset and proposes candidates for a batch of users."""

    def __init__(self, sources: Sequence[CandidateSource]) -> None:
        check_sources(sources)
        self.sources = list(sources)
        self.parts = Parts(self.sources)
        self.recent_depth = max((s.recent_items or 0) for s in self.sources)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(source.label for source in self.sources)

    @property
    def anchor(self) -> Recommender:
        """A fitted source (they share vocabularies and histories)."""
        return next(iter(self.parts.models.values()))

    def fit(self, data: Dataset) -> CandidateGenerator:
        self.parts.fit(data)
        self.recent_ = self._recent_items(data.events, self.anchor.user_vocab_.ids)
        return self

    def resolve(self, users: Users) -> ScoringBatch:
        """The users in the sources' dense indices (with sequences when a source reads them)."""
        return self.parts.resolve(self.anchor, users)

    # ---- recency ---------------------------------------------------------------------

    def _recent_items(self, events: pd.DataFrame, user_ids: Sequence[str] | np.ndarray
                      ) -> np.ndarray:
        """Each user's last ``recent_depth`` distinct known items, newest first (-1 pad)."""
        depth = self.recent_depth
        recent = np.full((len(user_ids), depth), -1, dtype=np.int64)
        if depth == 0 or events.empty:
            return recent
        vocab = self.anchor.item_vocab_
        users = pd.Index(list(user_ids)).get_indexer(pd.Index(events["user_id"].astype(str)))
        frame = pd.DataFrame({"user": users,
                              "item": vocab.indices(events["item_id"].astype(str)),
                              "order": np.arange(len(events))})
        if "timestamp" in events.columns and events["timestamp"].notna().any():
            frame["time"] = pd.to_datetime(events["timestamp"], utc=True).to_numpy()
            frame = frame.sort_values(["user", "time", "order"], kind="stable")
        else:
            frame = frame.sort_values(["user", "order"], kind="stable")
        frame = frame[(frame["user"] >= 0) & (frame["item"] >= 0)]
        frame = frame.iloc[::-1].drop_duplicates(["user", "item"])  # newest first
        frame["slot"] = frame.groupby("user").cumcount()
        frame = frame[frame["slot"] < depth]
        recent[frame["user"].to_numpy(), frame["slot"].to_numpy()] = frame["item"].to_numpy()
        return recent

    def _recent_history(self, batch: ScoringBatch, n: int) -> sp.csr_matrix:
        """The batch's histories cut to each user's last ``n`` distinct items."""
        if batch.events is not None:
            query_users = list(batch.user_ids)
            recent = self._recent_items(batch.events, query_users)
        else:
            recent = np.where(batch.users[:, None] >= 0,
                              self.recent_[np.maximum(batch.users, 0)], -1)
        recent = recent[:, :n]
        rows, slots = np.nonzero(recent >= 0)
        mask = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, recent[rows, slots])),
                             shape=batch.history.shape)
        return sp.csr_matrix(batch.history.multiply(mask > 0), dtype=np.float32)

    # ---- generation ------------------------------------------------------------------

    def source_scores(self, batch: ScoringBatch) -> list[np.ndarray]:
        """Each source's full score matrix (users x items) for the batch."""
        matrices = []
        for source in self.sources:
            model = self.parts[source]
            if source.recent_items is None:
                matrices.append(model._scores(batch))
                continue
            history = self._recent_history(batch, source.recent_items)
            recent = dataclasses.replace(batch, users=np.full(len(batch), -1),
                                         history=history)
            matrices.append(model._scores(recent))
        return matrices

    def generate(self, batch: ScoringBatch, *, exclude_seen: bool = True
                 ) -> tuple[CandidateSet, list[np.ndarray]]:
        """The candidate set of ``batch`` and each source's score matrix.

        Items the user already has are never proposed when ``exclude_seen``.
        """
        matrices = self.source_scores(batch)
        ranks = self._ranks(batch, matrices)
        proposed_any = np.zeros(matrices[0].shape, dtype=bool)
        for source, rank in zip(self.sources, ranks, strict=True):
            proposed_any |= rank <= source.n
        if exclude_seen:
            seen = batch.history.tocoo()
            proposed_any[seen.row, seen.col] = False
        rows, items = np.nonzero(proposed_any)
        return self._pairs(matrices, ranks, rows, items), matrices

    def pairs(self, batch: ScoringBatch, rows: np.ndarray, items: np.ndarray
              ) -> tuple[CandidateSet, list[np.ndarray]]:
        """Given (batch row, item) pairs as candidates, whether proposed or not."""
        matrices = self.source_scores(batch)
        return self._pairs(matrices, self._ranks(batch, matrices), np.asarray(rows),
                           np.asarray(items)), matrices

    def _ranks(self, batch: ScoringBatch, matrices: list[np.ndarray]) -> list[np.ndarray]:
        """Each source's rank of every item (1 = best), the user's own items and items the
        source cannot score (non-finite) last."""
        seen = batch.history.tocoo()
        ranks = []
        for scores in matrices:
            ranking = np.where(np.isfinite(scores), scores, -np.inf).astype(np.float64)
            ranking[seen.row, seen.col] = -np.inf
            order = np.argsort(-ranking, axis=1, kind="stable")
            rank = np.empty(ranking.shape, dtype=np.int32)
            np.put_along_axis(rank, order, np.arange(1, ranking.shape[1] + 1,
                                                     dtype=np.int32)[None, :], axis=1)
            rank[~np.isfinite(ranking)] = ranking.shape[1]
            ranks.append(rank)
        return ranks

    def _pairs(self, matrices: list[np.ndarray], ranks: list[np.ndarray], rows: np.ndarray,
               items: np.ndarray) -> CandidateSet:
        scores = np.stack([m[rows, items] for m in matrices], axis=1).astype(np.float32)
        rank_columns = np.stack([r[rows, items] for r in ranks], axis=1).astype(np.float32)
        limits = np.array([source.n for source in self.sources], dtype=np.float32)
        proposed = rank_columns <= limits[None, :]
        return CandidateSet(rows, items, scores, rank_columns, proposed, self.labels)

    def frame(self, users: Users) -> pd.DataFrame:
        """Candidates as a frame: ``user_id``, ``item_id``, ``sources`` (the labels that
        proposed it, comma-separated), then ``<source>_score`` and ``<source>_rank`` for
        every source."""
        batch = self.resolve(users)
        candidates, _ = self.generate(batch)
        labels = np.asarray(self.labels, dtype=object)
        frame = pd.DataFrame({
            "user_id": np.asarray(batch.user_ids, dtype=object)[candidates.rows],
            "item_id": self.anchor.item_vocab_.ids[candidates.items].astype(object),
            "sources": [_SEPARATOR.join(labels[flags]) for flags in candidates.proposed],
        })
        for column, label in enumerate(self.labels):
            frame[f"{label}_score"] = candidates.scores[:, column]
            frame[f"{label}_rank"] = candidates.ranks[:, column].astype(np.int64)
        return frame

    # ---- forgetting and persistence ---------------------------------------------------

    def forget(self, owner: Recommender, dropped: DroppedUsers) -> bool:
        """Remove the users from the sources and the recent items; whether every source
        is exact afterwards (see :meth:`Parts.forget`)."""
        self.recent_ = self.recent_[dropped.keep]
        return self.parts.forget(owner, dropped)

    def arrays(self) -> dict[str, np.ndarray]:
        return {**self.parts.arrays("source"), "recent": self.recent_}

    def restore(self, owner: Recommender, arrays: dict[str, np.ndarray]) -> CandidateGenerator:
        self.parts.restore(owner, arrays, "source")
        self.recent_ = arrays["recent"]
        return self


__all__ = ["CandidateGenerator", "CandidateSet", "CandidateSource", "check_sources"]
