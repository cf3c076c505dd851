"""Offline evaluation: fit each model or pipeline on a split's training data and rank for
test users through the same :meth:`Pipeline.run` the service and the CLI use."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tailored.dataset import Split
from tailored.models import Recommender
from tailored.pipeline import Pipeline

from .beyond import ItemDistance, ListMetric, beyond_accuracy_metrics
from .metrics import MAP, NDCG, Coverage, HitRate, RankingMetric, Recall

DEFAULT_METRICS: tuple[type[RankingMetric], ...] = (NDCG, Recall, HitRate, MAP)

Progress = Callable[[str], None]


@dataclass
class ModelResult:
    """One model's figures on one split."""

    name: str
    model: Recommender | Pipeline
    metrics: dict[str, float]
    per_user: dict[str, list[float]] = field(repr=False)
    users: list[str] = field(default_factory=list, repr=False)
    recommended: dict[str, list[str]] = field(default_factory=dict, repr=False)
    fit_seconds: float = 0.0
    recommend_seconds: float = 0.0

    def per_user_values(self, metric: str) -> dict[str, float]:
        """``metric``'s value for each test user (for paired tests and group audits)."""
        return dict(zip(self.users, self.per_user[metric], strict=True))


def evaluate_model(model: Recommender | Pipeline, split: Split, k: int = 10, *,
                   fit: bool = True,
                   metrics: tuple[type[RankingMetric], ...] = DEFAULT_METRICS,
                   beyond_accuracy: bool = True,
                   item_distance: ItemDistance | None = None) -> ModelResult:
    """Fit ``model`` on ``split.train`` (unless ``fit`` is false) and score its top ``k``
    (a bare model runs as a one-stage pipeline).

    Accuracy metrics compare each test user's list with their ground truth (each is
    built by :meth:`~tailored.evaluation.PerUserMetric.for_data`, so ``Revenue`` reads
    the training catalog's prices); with ``beyond_accuracy``, novelty, popularity,
    exposure Gini, personalization and intra-list diversity (by ``item_distance``, else
    by categories) describe the lists.
    """
    pipeline = model if isinstance(model, Pipeline) else Pipeline.of(model)
    started = time.perf_counter()
    if fit:
        pipeline.fit(split.train)
    fitted = time.perf_counter()
    users = split.test_users
    recs = pipeline.run(users, k)
    recommended = items_by_user(recs)
    relevant = relevant_items(split)
    done = time.perf_counter()
    accumulators = [metric.for_data(k, split.train) for metric in metrics]
    coverage = Coverage(split.train.n_items)
    beyond = (beyond_accuracy_metrics(split.train, k, item_distance=item_distance)
              if beyond_accuracy else [])
    for user in users:
        items = recommended.get(user, [])
        coverage.update(items)
        for accumulator in accumulators:
            accumulator.update(items, relevant[user])
        for figure in beyond:
            figure.update(items)
    per_user = [*accumulators, *(f for f in beyond if isinstance(f, ListMetric))]
    return ModelResult(
        name=model.name, model=model,
        metrics={**{a.name: a.value() for a in accumulators}, coverage.name: coverage.value(),
                 **{f.name: f.value() for f in beyond}},
        per_user={a.name: a.values for a in per_user},
        users=users, recommended=recommended,
        fit_seconds=fitted - started, recommend_seconds=done - fitted,
    )


def items_by_user(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Each user's ``item_id`` values in the frame's row order, keyed by ``user_id`` (a
    pandas group-by would spend a Python call per user: the cost of every tuning check).

    Examples
    --------
    >>> items_by_user(pd.DataFrame({"user_id": ["b", "a", "b"], "item_id": ["x", "y", "z"]}))
    {'b': ['x', 'z'], 'a': ['y']}
    >>> items_by_user(pd.DataFrame({"user_id": [], "item_id": []}))
    {}
    """
    codes, users = pd.factorize(frame["user_id"].astype(str))
    if not len(users):
        return {}
    order = np.argsort(codes, kind="stable")
    items = frame["item_id"].astype(str).to_numpy(dtype=object)[order]
    starts = np.searchsorted(codes[order], np.arange(len(users)))
    return {user: chunk.tolist() for user, chunk in
            zip(users.tolist(), np.split(items, starts[1:]), strict=True)}


def relevant_items(split: Split) -> dict[str, set[str]]:
    """Each test user's relevant items (``split.truth`` as sets)."""
    return {user: set(items) for user, items in items_by_user(split.truth).items()}


def compare(models: Mapping[str, Recommender | Pipeline], split: Split, k: int = 10,
            progress: Progress | None = None) -> tuple[pd.DataFrame, dict[str, ModelResult]]:
    """Evaluate several models on the same split; a table with one row per model."""
    results: dict[str, ModelResult] = {}
    for name, model in models.items():
        if progress:
            progress(name)
        results[name] = evaluate_model(model, split, k)
    table = pd.DataFrame([
        {"model": name, **r.metrics, "fit_s": r.fit_seconds,
         "recommend_ms_per_user": 1000 * r.recommend_seconds / max(1, len(split.test_users))}
        for name, r in results.items()
    ]).set_index("model")
    table.attrs.update(split=split.name, test_users=len(split.test_users), k=k)
    return table, results
