"""Models made of models: how a composite names, fits, saves and restores its parts.

A part is a registered model family (``Recommender._registry``, e.g. ``als``) with its
parameters. A composite (a hybrid, the learned ranker) fits every part on the same data,
so all parts share one user and item vocabulary and can score the same
:class:`~tailored.models.ScoringBatch`. Saving nests each part's learned arrays under
``part<i>.`` inside the composite's own ``arrays.npz``, the way
a pipeline nests its scorer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tailored.dataset import Dataset
from tailored.models import Recommender, ScoringBatch
from tailored.models.base import DroppedUsers, Users, model_class

#: What every fitted model shares with the composite that holds it (same data).
SHARED_STATE = ("user_vocab_", "item_vocab_", "weights_", "user_items_", "popularity_",
                "data_digest_", "fitted_at_")

_fitted: ContextVar[dict[tuple[str, str], Recommender] | None] = ContextVar(
    "tailored_fitted_parts", default=None)


@contextmanager
def reusing_fitted_parts() -> Iterator[None]:
    """Inside the block, a part is fitted once per events (by digest) and params.

    Tuning a composite refits the same parts on the same data for every trial (the
    learned ranker's sources on the same label split); only the composite's own
    parameters change, so the fitted parts can be shared. Fitted parts are only read
    afterwards, never changed. The item and user tables must not change inside the block
    (they do not within one tuning call). Outside it, and in other threads, every fit is
    new.
    """
    token = _fitted.set({})
    try:
        yield
    finally:
        _fitted.reset(token)


class Part(BaseModel):
    """One model inside a composite: its registered ``model`` name and ``params``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_and_valid(self) -> Part:
        model_class(self.model).Config(**self.params)
        return self

    @property
    def key(self) -> str:
        """Identity of the part (model and params), so equal parts are fitted once."""
        return json.dumps([self.model, self.params], sort_keys=True, default=str)

    def build(self) -> Recommender:
        family = model_class(self.model)
        params = dict(self.params)
        if "ann_min_items" in family.Config.model_fields:
            # A composite scores every item of its parts: an item index would go unused.
            params["ann_min_items"] = None
        return family(family.Config(**params))


class Parts:
    """Distinct fitted parts, by key, with their persistence."""

    def __init__(self, parts: Sequence[Part]) -> None:
        self.specs: dict[str, Part] = {}
        for part in parts:
            self.specs.setdefault(part.key, part)
        self.models: dict[str, Recommender] = {}

    def __getitem__(self, part: Part) -> Recommender:
        return self.models[part.key]

    @property
    def read_profiles(self) -> bool:
        """Whether any fitted part reads a query's profiles."""
        return any(model.reads_profiles for model in self.models.values())

    def fit(self, data: Dataset) -> Parts:
        reuse = _fitted.get()
        if reuse is None:
            self.models = {key: spec.build().fit(data) for key, spec in self.specs.items()}
            return self
        for key, spec in self.specs.items():
            if (data.digest, key) not in reuse:
                reuse[data.digest, key] = spec.build().fit(data)
        self.models = {key: reuse[data.digest, key] for key in self.specs}
        return self

    def resolve(self, owner: Recommender, users: Users) -> ScoringBatch:
        """The owner's batch, with sequences when a part reads them (item2vec, sasrec)."""
        for model in self.models.values():
            if model.needs_sequences:
                return model._resolve(users)
        return Recommender._resolve(owner, users)

    def profile_ids(self) -> list[np.ndarray]:
        """The ids of every part's tables keyed by user id (see ``_profile_ids``)."""
        return [ids for model in self.models.values() for ids in model._profile_ids()]

    def forget(self, owner: Recommender, dropped: DroppedUsers) -> bool:
        """Remove the users from every part; whether every part is exact afterwards.

        ``owner`` has already dropped them from the state the parts share with it.
        """
        exact = True
        for model in self.models.values():
            for name in SHARED_STATE:
                setattr(model, name, getattr(owner, name))
            if model.needs_sequences:  # each part keeps its own
                model.sequences_ = [s for s, stays in zip(model.sequences_, dropped.keep,
                                                          strict=True) if stays]
            exact = model._forget_rows(dropped) and exact
        return exact

    def arrays(self, prefix: str = "part") -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        for position, model in enumerate(self.models.values()):
            head = f"{prefix}{position}."
            arrays.update({head + key: value for key, value in model._arrays().items()})
            if model.needs_sequences:
                arrays[head + "sequences.items"] = np.concatenate(
                    [np.zeros(0, np.int64), *model.sequences_])
                arrays[head + "sequences.lengths"] = np.array(
                    [len(s) for s in model.sequences_], dtype=np.int64)
        return arrays

    def restore(self, owner: Recommender, arrays: dict[str, np.ndarray],
                prefix: str = "part") -> Parts:
        """Rebuild the fitted parts from ``arrays`` and the owner's shared state."""
        self.models = {}
        for position, (key, spec) in enumerate(self.specs.items()):
            head = f"{prefix}{position}."
            model = spec.build()
            for name in SHARED_STATE:
                setattr(model, name, getattr(owner, name))
            mine = {k[len(head):]: v for k, v in arrays.items() if k.startswith(head)}
            if model.needs_sequences:
                ends = np.cumsum(mine.pop("sequences.lengths"))
                items = mine.pop("sequences.items")
                model.sequences_ = np.split(items, ends[:-1]) if len(ends) else []
            model._restore(mine)
            self.models[key] = model
        return self


def normalise_rows(scores: np.ndarray, method: str = "zscore") -> np.ndarray:
    """Per-user (row) normalisation so scores of different models can be added.

    ``zscore``: (s - mean) / std; ``minmax``: to [0, 1]; ``rank``: the share of items
    scored lower (ties in column order). Non-finite scores count as the row's minimum.

    Examples
    --------
    >>> normalise_rows(np.array([[1.0, 2.0, 3.0]]), "minmax").tolist()
    [[0.0, 0.5, 1.0]]
    >>> normalise_rows(np.array([[5.0, 5.0]]), "zscore").tolist()
    [[0.0, 0.0]]
    """
    values = np.array(scores, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        lowest = np.where(finite, values, np.inf).min(axis=1, keepdims=True)
        lowest = np.where(np.isfinite(lowest), lowest, 0.0)
        values = np.where(finite, values, lowest)
    if method == "zscore":
        spread = values.std(axis=1, keepdims=True)
        result = (values - values.mean(axis=1, keepdims=True)) / np.where(spread > 0, spread, 1)
    elif method == "minmax":
        low, high = values.min(axis=1, keepdims=True), values.max(axis=1, keepdims=True)
        result = (values - low) / np.where(high > low, high - low, 1)
    elif method == "rank":
        order = values.argsort(axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(values.shape[1])[None, :], axis=1)
        result = ranks / max(1, values.shape[1] - 1)
    else:
        raise ValueError(f"unknown normalisation {method!r}; choose zscore, minmax or rank")
    return result.astype(np.float32)


def part_scores(model: Recommender, batch: ScoringBatch) -> np.ndarray:
    """A part's scores for every user of the batch (its own fallback for empty histories)."""
    return model._scores(batch)


def part_fallback(model: Recommender, n_items: int, batch: ScoringBatch | None) -> np.ndarray:
    """A part's fallback as a 2-D array (one row for all when ``batch`` is None)."""
    scores = np.asarray(model._fallback(batch), dtype=np.float32)
    rows = 1 if batch is None else len(batch)
    return np.broadcast_to(scores, (rows, n_items)).copy()
