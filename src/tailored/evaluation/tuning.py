"""Automatic tuning: search each model family's hyperparameters, keep the best model.

:func:`tune` never looks at test data. It receives the user's *training* data and
carves a validation split out of it with the named protocol (the same
``tailored.dataset.split_by_name`` the offline evaluation uses): with ``temporal`` the
earlier 80% of the given events train and the rest validate; with
``leave-last-one-out`` each user's last given event validates. Hyperparameters are
searched on that first fold with Optuna (seeded TPE sampler, median pruner) within a
time budget: a screen of every family at its defaults first, then most of the time on
the families that screened best; iterative models (ALS, BPR, SASRec) stop early on the
validation metric. The best few candidates are then checked again on a
second, different fold (see :func:`validation_folds`) and the winner is the best mean
of both folds, which guards against a configuration that only fits the first fold's
noise. The composites, searched with other families, are stacked on them: searched
last, on the tuned configurations of the best families, the weighted hybrid
(``weighted``) as a blend of them and the learned ranker (``ranked``) with them as its
candidate sources. The winner is refitted on all the given data. Evaluate it on a
held-out test set the tuner never saw::

    split = tailored.dataset.temporal_split(data)
    result = tune(split.train, protocol="temporal")
    evaluate_model(result.best_model, split, fit=False)

What is maximised is an :class:`Objective`: one metric (``"ndcg@10"``) or a weighted
sum of metrics, spelt ``"ndcg@10 + 0.5*revenue@10"``. When it counts ``revenue@K`` or
``diversity@K``, every trial also samples the re-ranker's ``revenue`` or
``diversity`` knob (:func:`~tailored.evaluation.search_spaces.reranker_space`) and
the winner is a :class:`~tailored.pipeline.Pipeline`: the tuned model with a
``diversify`` stage at the tuned knobs.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import numbers
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import optuna
import pandas as pd

from tailored.dataset import Dataset, Split, split_by_name, temporal_split
from tailored.errors import InvalidDataError, TailoredError
from tailored.models import MODELS, Recommender, create
from tailored.pipeline import Pipeline
from tailored.ranking import reusing_fitted_parts
from tailored.ranking.rerankers import item_prices

from .beyond import IntraListDiversity, ListMetric
from .costs import CostModel
from .jsonable import plain
from .metrics import (
    F1,
    MAP,
    MRR,
    NDCG,
    HitRate,
    PerUserMetric,
    Precision,
    RankingMetric,
    Recall,
    Revenue,
    mean_price,
)
from .offline import evaluate_model, relevant_items
from .search_spaces import (
    EPOCH_FAMILIES,
    ITERATIVE_FAMILIES,
    REFERENCE_SHAPE,
    REQUIREMENTS,
    RERANKER_KNOBS,
    SEARCH_SPACES,
    STACKED_STARTING_POINTS,
    STARTING_POINTS,
    DataShape,
    SearchSpace,
    blend_space,
    blend_starting_point,
    reranker_space,
    reranker_starting_point,
    starting_point,
)

Progress = Callable[[str], None]
Clock = Callable[[], float]  # seconds, e.g. time.perf_counter

RANKING_METRICS: dict[str, type[RankingMetric]] = {
    metric.label: metric for metric in (NDCG, Recall, HitRate, MAP, Precision, F1, MRR)}
#: Every metric a validation metric or an objective may name, by label: the ranking
#: metrics, ``revenue`` (summed price of the hits) and ``diversity`` (intra-list, by
#: item categories).
VALIDATION_METRICS: dict[str, type[PerUserMetric]] = {
    **RANKING_METRICS, Revenue.label: Revenue, IntraListDiversity.label: IntraListDiversity}

# Share of the search time by a family's rank after the screen (best first; the rest
# get the last share). Families search from the least to the most promising, and the
# time one leaves unused goes to those after it, so the leader gets the remainder.
RANK_SHARES: tuple[float, ...] = (1.0, 0.5, 0.25, 0.1)
# Of the search time left, at most, for one family's screen trial: a family whose
# screen takes that long still leaves time for its re-check and final fit (two fits).
SCREEN_SHARE = 1 / 3
RESERVED_SHARE = 0.05  # of the budget, kept free on top of the estimated re-check and final fit
STALE_TRIALS = 20  # with a budget, a family stops after this many trials without a new best
FAILURES_TO_GIVE_UP = 3  # with a budget, a family whose last trials all fail stops there
_STARTUP_TRIALS = 6  # random trials before TPE models the space
_PRUNER_STARTUP_TRIALS = 3
_PATIENCE = 2  # checkpoints without improvement before an iterative fit stops
_EPOCH_PATIENCE = 5  # epochs without improvement before an epoch-checked fit stops
STACK_SHARE = 0.5  # of the search time, kept for the stacked composites when searched
STACKED_FAMILIES = 4  # the best families whose tuned configurations are its sources
BLENDED_FAMILIES = 3  # the best families whose tuned configurations the hybrid blends
# The time the ranker leaves for the blend after it: this many of the blend's first trial
# (which fits its parts; a later one only re-weighs them, so it costs a fraction of that).
BLEND_ROUNDS = 3
# A screen predicted to take more than this share of the budget runs on a subsample of
# the users (a proxy fold), sized to take about that share.
PROXY_SHARE = 0.25
MIN_PROXY_USERS = 200  # the fewest users a proxy keeps: fewer validate too noisily
SCREEN_EPOCHS = 10  # epochs an epoch family's screen is predicted to take (to plan a proxy)
# A family whose starting point would take more than this share of the budget to re-check
# and fit on all the data is not screened: it could not win within the budget.
FINISHING_SHARE = 0.5
# A stacked composite is tried when this many of its first trial (which fits its parts
# for the later trials), its re-check and its final fit fit the time left.
STACK_ROUNDS = 2
UNAFFORDABLE_TO_GIVE_UP = 3  # trials in a row predicted not to fit the time left: stop
# The guard and the final fit, the budget's last steps, are held to their predicted time
# times this (a composite's prediction adds the errors of its parts').
PREDICTION_MARGIN = 1.25
TIME_SPLIT_COLUMNS = ["phase", "family", "planned", "spent", "trials"]
# Families made of other families: never a source, and stacked (searched last, on the
# tuned configurations of the others, in this order) when at least this many other
# families are searched.
COMPOSITES = {"ranked": 1, "weighted": 2}


# ---- metric and folds ----------------------------------------------------------------

Model = Recommender | Pipeline


@dataclass(frozen=True)
class ValidationMetric:
    """A metric named like ``ndcg@10``: its accumulator class and list length."""

    metric: type[PerUserMetric]
    k: int

    @property
    def name(self) -> str:
        return f"{self.metric.label}@{self.k}"

    @classmethod
    def parse(cls, name: str) -> ValidationMetric:
        """A metric at a list length: ``ndcg@10``, ``recall@20``, ``revenue@10``...

        Examples
        --------
        >>> ValidationMetric.parse("recall@20").name
        'recall@20'
        >>> ValidationMetric.parse("auc")
        Traceback (most recent call last):
        ...
        ValueError: unknown metric 'auc'; use one of diversity@K, f1@K, hit_rate@K, map@K, mrr@K, ndcg@K, precision@K, recall@K, revenue@K with a list length K of at least 1, e.g. 'ndcg@10'
        """  # noqa: E501
        label, _, k = name.strip().lower().partition("@")
        if label in VALIDATION_METRICS and k.isdigit() and int(k) >= 1:
            return cls(VALIDATION_METRICS[label], int(k))
        raise ValueError(f"unknown metric {name!r}; use one of {_metric_choices()} with a list "
                         "length K of at least 1, e.g. 'ndcg@10'")

    def accumulator(self, train: Dataset) -> PerUserMetric:
        """An empty accumulator for lists recommended from ``train`` (whose catalog gives
        revenue its prices and diversity its categories)."""
        return self.metric.for_data(self.k, train)

    def score(self, model: Model, split: Split) -> float:
        """Fit ``model`` on ``split.train`` and return its metric over the split's test users."""
        return measure([self], model, split)[self.name]

    def evaluate(self, model: Model, split: Split) -> float:
        """The metric of an already fitted ``model`` over the split's test users."""
        return measure([self], model, split, fit=False)[self.name]


def _metric_choices() -> str:
    return ", ".join(f"{label}@K" for label in sorted(VALIDATION_METRICS))


def measure(metrics: Sequence[ValidationMetric], model: Model, split: Split, *,
            fit: bool = True) -> dict[str, float]:
    """Each of ``metrics`` over the split's test users, from one run of ``model`` (fitted
    on ``split.train`` first unless ``fit`` is false) at the longest list they name.

    Examples
    --------
    >>> from tailored.dataset import temporal_split
    >>> from tailored.models import Popular
    >>> from tailored.testing import checkerboard
    >>> metrics = [ValidationMetric.parse(name) for name in ("ndcg@5", "revenue@5")]
    >>> sorted(measure(metrics, Popular(), temporal_split(checkerboard())))
    ['ndcg@5', 'revenue@5']
    """
    accumulators = [metric.accumulator(split.train) for metric in metrics]
    result = evaluate_model(model, split, max(metric.k for metric in metrics), fit=fit,
                            metrics=(), beyond_accuracy=False)
    relevant = relevant_items(split)
    for user in result.users:
        items = result.recommended.get(user, [])
        for accumulator in accumulators:
            if isinstance(accumulator, RankingMetric):
                accumulator.update(items, relevant.get(user, set()))
            elif isinstance(accumulator, ListMetric):
                accumulator.update(items)
            else:
                raise TypeError(f"{type(accumulator).__name__} is neither a RankingMetric nor "
                                "a ListMetric")
    return {metric.name: accumulator.value()
            for metric, accumulator in zip(metrics, accumulators, strict=True)}


_TERM = re.compile(r"\s*(?:(?P<weight>\d+(?:\.\d*)?|\.\d+)\s*\*\s*)?(?P<metric>[^\s*+]+)\s*")


@dataclass(frozen=True)
class Objective:
    """What :func:`tune` maximises: a weighted sum of metrics, each at a list length.

    Spelt as text (the same in Python, the CLI and REST): metrics joined by ``+``, each
    with an optional positive weight before ``*``, e.g. ``"ndcg@10"`` or
    ``"ndcg@10 + 0.5*revenue@10"`` (no other operator; weights are plain decimals). A
    metric is any of :data:`VALIDATION_METRICS` at a list length ``K``. Its value is
    ``sum(weight * metric / unit)``, where the unit is 1 but for revenue, which counts
    in the catalog's mean price (:func:`~tailored.evaluation.metrics.mean_price`; so
    ``revenue@10 / unit`` is how many average-priced items each user's top 10 sold) and
    lands on the scale of the ranking metrics.

    An objective counting ``revenue@K`` or ``diversity@K`` makes :func:`tune` search the
    re-ranker's knob of the same name (``RERANKER_KNOBS``) with every model.

    Examples
    --------
    >>> objective = Objective.parse("NDCG@10 + 0.5 * revenue@10")
    >>> objective.name, objective.knobs
    ('ndcg@10 + 0.5*revenue@10', ('revenue',))
    >>> objective.value({"ndcg@10": 0.2, "revenue@10": 30.0}, unit_price=20.0)
    0.95
    >>> Objective.parse("ndcg@10 - revenue@10")
    Traceback (most recent call last):
    ...
    ValueError: cannot read 'ndcg@10 - revenue@10' in the objective 'ndcg@10 - revenue@10': write metrics joined by '+', each with an optional positive weight, e.g. 'ndcg@10 + 0.5*revenue@10'; metrics: diversity@K, f1@K, hit_rate@K, map@K, mrr@K, ndcg@K, precision@K, recall@K, revenue@K
    """  # noqa: E501

    terms: tuple[tuple[float, ValidationMetric], ...]

    @classmethod
    def parse(cls, text: str) -> Objective:
        """The objective spelt by ``text``; a ``ValueError`` names the part it cannot read
        and the metrics allowed."""
        if not isinstance(text, str):
            raise TypeError(f"an objective is text like 'ndcg@10 + 0.5*revenue@10', got "
                            f"{text!r}")
        example = ("write metrics joined by '+', each with an optional positive weight, "
                   "e.g. 'ndcg@10 + 0.5*revenue@10'")
        terms: list[tuple[float, ValidationMetric]] = []
        for part in text.split("+"):
            match = _TERM.fullmatch(part)
            if match is None:
                raise ValueError(f"cannot read {part.strip()!r} in the objective {text!r}: "
                                 f"{example}; metrics: {_metric_choices()}")
            weight = float(match["weight"]) if match["weight"] is not None else 1.0
            if not weight > 0:
                raise ValueError(f"the weight of {match['metric']!r} in the objective {text!r} "
                                 f"is {match['weight']}; weights must be above 0 (leave a "
                                 "metric out rather than weigh it 0)")
            try:
                metric = ValidationMetric.parse(match["metric"])
            except ValueError as error:
                raise ValueError(f"{error} (in the objective {text!r}; {example})") from None
            if any(metric == seen for _, seen in terms):
                raise ValueError(f"the objective {text!r} names {metric.name} twice; give each "
                                 "metric once, with one weight")
            terms.append((weight, metric))
        return cls(tuple(terms))

    @property
    def name(self) -> str:
        """The canonical spelling (lower case, weights of 1 left out)."""
        return " + ".join(metric.name if weight == 1 else f"{weight:g}*{metric.name}"
                          for weight, metric in self.terms)

    @property
    def metrics(self) -> list[ValidationMetric]:
        return [metric for _, metric in self.terms]

    @property
    def knobs(self) -> tuple[str, ...]:
        """The re-ranker's knobs :func:`tune` searches for this objective (none for
        relevance alone)."""
        labels = {metric.metric.label for metric in self.metrics}
        return tuple(knob for label, knob in RERANKER_KNOBS.items() if label in labels)

    def check(self, data: Dataset) -> None:
        """Refuse an objective ``data`` cannot measure: revenue without any item price,
        diversity without item categories."""
        for metric in self.metrics:
            metric.accumulator(data)  # diversity@K: refused without categories
            if metric.metric is Revenue and not math.isfinite(self._unit_price(data)):
                raise InvalidDataError(
                    f"the objective {self.name!r} counts {metric.name}, but no item of the "
                    "catalog has a price (a positive number in a `price` attribute); give "
                    "items prices or leave revenue out of the objective")

    def value(self, figures: Mapping[str, float], unit_price: float = 1.0) -> float:
        """The objective from each metric's figure (revenue divided by ``unit_price``)."""
        return float(sum(weight * figures[metric.name]
                         / (unit_price if metric.metric is Revenue else 1.0)
                         for weight, metric in self.terms))

    def score(self, model: Model, split: Split) -> float:
        """Fit ``model`` on ``split.train``; the objective over the split's test users."""
        return self._measured(model, split, fit=True)

    def evaluate(self, model: Model, split: Split) -> float:
        """The objective of an already fitted ``model`` over the split's test users."""
        return self._measured(model, split, fit=False)

    def _measured(self, model: Model, split: Split, *, fit: bool) -> float:
        if len(self.terms) == 1:  # one metric: its own figure
            metric = self.terms[0][1]
            figures = {metric.name: metric.score(model, split) if fit
                       else metric.evaluate(model, split)}
        else:
            figures = measure(self.metrics, model, split, fit=fit)
        return self.value(figures, self._unit_price(split.train))

    def _unit_price(self, data: Dataset) -> float:
        if not any(metric.metric is Revenue for metric in self.metrics):
            return 1.0
        return mean_price(item_prices(data.items))


def validation_folds(data: Dataset, protocol: str = "temporal") -> tuple[Split, Split]:
    """Two validation splits carved from ``data`` alone (the user's training data).

    The first is ``split_by_name(data, protocol)``. The second holds out earlier events
    than the first, so its test events differ: with ``temporal``, a cut at 70% of the
    given events (training on the first 70%, validating on 70-80%, before the first
    fold's period); with ``leave-last-one-out``, each user's second-to-last event
    (training on what came before it). Any other protocol repeats itself on the first
    fold's training data.

    Examples
    --------
    >>> from tailored.testing import checkerboard
    >>> data = checkerboard()
    >>> first, second = validation_folds(data, "temporal")
    >>> len(data), len(first.train), len(second.train)
    (200, 160, 140)
    """
    first = split_by_name(data, protocol)
    if protocol == "temporal":  # 12.5% of the first 80% is the 70-80% window
        second = temporal_split(first.train, test_fraction=0.125)
    else:
        second = split_by_name(first.train, protocol)
    for position, fold in (("first", first), ("second", second)):
        if fold.truth.empty:
            raise InvalidDataError(
                f"the {position} validation fold ({protocol} protocol) carved from the "
                f"{len(data)} training events has no test users; tuning needs more "
                "events per user or a longer history (or use another protocol)")
    return first, second


# ---- early stopping ------------------------------------------------------------------

def _check_clock(clock: Clock) -> None:
    if not callable(clock):
        raise TypeError(f"clock must be a callable returning seconds (e.g. time.perf_counter), "
                        f"got {clock!r}")


def _read_clock(clock: Clock) -> float:
    """The first reading of a user's clock, checked to be a finite number of seconds."""
    _check_clock(clock)
    now = clock()
    if (isinstance(now, bool) or not isinstance(now, numbers.Real)
            or not math.isfinite(float(now))):
        raise TypeError(f"clock must return a finite number of seconds (e.g. "
                        f"time.perf_counter), but clock() returned {now!r}")
    return float(now)


def iteration_checkpoints(max_iterations: int, first: int | None = None) -> list[int]:
    """Iteration counts at which to check a model: ``first`` doubling, then the maximum.

    Examples
    --------
    >>> iteration_checkpoints(50, first=4)
    [4, 8, 16, 32, 50]
    >>> iteration_checkpoints(3, first=4)
    [3]
    """
    if max_iterations < 1:
        raise ValueError(f"max_iterations must be at least 1, got {max_iterations}")
    step = first if first is not None else max(1, max_iterations // 8)
    if step < 1:
        raise ValueError(f"first must be at least 1, got {first}")
    checkpoints = []
    while step < max_iterations:
        checkpoints.append(step)
        step *= 2
    return [*checkpoints, max_iterations]


@dataclass(frozen=True)
class EarlyStopping:
    """Where an iterative model's validation metric peaked, and the curve up to the stop."""

    iterations: int
    score: float
    curve: dict[int, float]

    @property
    def stopped_early(self) -> bool:
        """Whether the checks stopped before the largest iteration count allowed."""
        return self.iterations < max(self.curve)


def early_stopping_iterations(
    model_factory: Callable[[int], Model], split: Split, metric: str = "ndcg@10",
    max_iterations: int = 100, patience: int = _PATIENCE, *, first: int | None = None,
    report: Callable[[int, float], None] | None = None,
    deadline: float | None = None, clock: Clock = time.perf_counter) -> EarlyStopping:
    """The iteration count (up to ``max_iterations``) where the validation metric peaks.

    ``model_factory(n)`` builds an unfitted model (or pipeline) that trains for ``n``
    iterations; it is fitted on ``split.train`` at each of :func:`iteration_checkpoints`
    (``first``, doubling, then ``max_iterations``) and scored on the split by ``metric``
    (an :class:`Objective`: one metric or a weighted sum). The checks stop once the
    metric has not improved for ``patience`` checkpoints in a row; the earliest
    checkpoint with the best value wins. ``report(iterations, value)`` is called after
    each check (the tuner reports to Optuna there and may raise ``TrialPruned``).
    Each fit starts from scratch, so the total cost is under three fits at the maximum.
    With a ``deadline`` (a ``clock()`` value; ``clock`` defaults to
    ``time.perf_counter``), a checkpoint is not fitted when it would end past it: as
    predicted from the last check's time, in proportion to the iterations (the first
    check is the caller's to afford).

    Examples
    --------
    >>> from tailored.dataset import temporal_split
    >>> from tailored.models import BPR
    >>> from tailored.testing import checkerboard
    >>> split = temporal_split(checkerboard())
    >>> stop = early_stopping_iterations(lambda n: BPR(factors=4, iterations=n), split,
    ...                                  max_iterations=40, first=10)
    >>> sorted(stop.curve)[:2], stop.iterations in stop.curve
    ([10, 20], True)
    """
    if patience < 1:
        raise ValueError(f"patience must be at least 1, got {patience}")
    _check_clock(clock)
    validation = Objective.parse(metric)
    curve: dict[int, float] = {}
    best_iterations, best_score, since_best = 0, -math.inf, 0
    seconds_per_iteration = 0.0  # of the last check, which predicts the next
    for iterations in iteration_checkpoints(max_iterations, first):
        if deadline is not None and curve and (
                clock() + seconds_per_iteration * iterations > deadline):
            break
        began = clock()
        value = validation.score(model_factory(iterations), split)
        curve[iterations] = value
        if report is not None:
            report(iterations, value)
        seconds_per_iteration = (clock() - began) / iterations
        if value > best_score:
            best_iterations, best_score, since_best = iterations, value, 0
        else:
            since_best += 1
            if since_best >= patience:
                break
        if deadline is not None and clock() >= deadline:
            break
    return EarlyStopping(best_iterations, best_score, curve)


def early_stopping_epochs(
    model: Model, split: Split, metric: str = "ndcg@10",
    patience: int = _EPOCH_PATIENCE, *, first: int = 1,
    report: Callable[[int, float], None] | None = None,
    deadline: float | None = None, clock: Clock = time.perf_counter) -> EarlyStopping:
    """Fit ``model`` once on ``split.train``, checking the metric after every epoch.

    ``model.fit`` must take an ``after_epoch`` callback (see ``EPOCH_FAMILIES``), and
    ``model.config.epochs`` is the most epochs it may train; a pipeline's scorer is
    fitted so, its other stages learnt before the first check. From epoch ``first`` on
    (and at the last epoch), the fitted-so-far model is scored on the split by
    ``metric`` (an :class:`Objective`); training
    stops once the metric has not improved for ``patience`` epochs in a row, or when the
    next epoch and its check would end past ``deadline`` (a ``clock()`` value, as in
    :func:`early_stopping_iterations`; predicted from the last check's time per epoch).
    The earliest epoch with the best value wins; refit with that many epochs to get its
    model. ``report`` is called after each check, as in
    :func:`early_stopping_iterations`.

    Examples
    --------
    >>> from tailored.dataset import temporal_split
    >>> from tailored.models.sequential import SASRec
    >>> from tailored.testing import checkerboard
    >>> split = temporal_split(checkerboard())
    >>> model = SASRec(factors=8, blocks=1, max_length=5, epochs=6, threads=1)
    >>> stop = early_stopping_epochs(model, split, first=3)
    >>> sorted(stop.curve)[0], stop.iterations in stop.curve
    (3, True)
    """
    if patience < 1:
        raise ValueError(f"patience must be at least 1, got {patience}")
    if first < 1:
        raise ValueError(f"first must be at least 1, got {first}")
    _check_clock(clock)
    validation = Objective.parse(metric)
    scorer = model.scorer if isinstance(model, Pipeline) else model
    max_epochs = int(getattr(scorer.config, "epochs", 0))
    if max_epochs < 1:
        raise TypeError(f"{type(scorer).__name__} has no 'epochs' in its config; early "
                        "stopping by epoch needs a model whose fit takes after_epoch")
    curve: dict[int, float] = {}
    best = {"epochs": 0, "score": -math.inf, "since": 0}
    last_check = {"epoch": 0, "at": clock()}  # the last check's epoch and end

    def evaluate() -> float:
        if isinstance(model, Pipeline) and not model.is_fitted:
            model.fit_stages(split.train)  # the scorer's items are known from its 1st epoch
        return validation.evaluate(model, split)

    def after_epoch(epoch: int) -> bool:
        if epoch < first and epoch < max_epochs:
            return False
        value = evaluate()
        curve[epoch] = value
        if report is not None:
            report(epoch, value)
        if value > best["score"]:
            best.update(epochs=epoch, score=value, since=0)
        else:
            best["since"] += 1
        now = clock()
        per_epoch = (now - last_check["at"]) / (epoch - last_check["epoch"])
        last_check.update(epoch=epoch, at=now)
        return bool(best["since"] >= patience
                    or (deadline is not None and now + per_epoch > deadline))

    scorer.fit(split.train, after_epoch=after_epoch)  # type: ignore[call-arg]
    if not curve:  # nothing to train on, so no epoch ran: score what the fit gave
        curve[max_epochs] = best["score"] = evaluate()
        best["epochs"] = max_epochs
    return EarlyStopping(int(best["epochs"]), float(best["score"]), curve)


# ---- the result ----------------------------------------------------------------------

@dataclass
class TuningResult:
    """The tuned model and the record of how it was chosen.

    ``best_model`` is fitted on all the data given to :func:`tune` with
    ``best_params``; when the objective searched re-ranker knobs, it is a
    :class:`~tailored.pipeline.Pipeline` of that model and one ``diversify`` stage at
    ``best_reranker`` (e.g. ``{"revenue": 0.4}``; empty otherwise). ``best_score`` is
    the mean of its objective (``metric``, canonically spelt) on the two folds.
    ``trials`` has one row per Optuna trial (``family``, ``number``, the sampled model
    ``params``, the sampled ``reranker`` knobs, ``iterations`` where early stopping
    picked a count, the first fold's ``value`` (NaN unless complete), ``state``,
    ``duration`` (seconds the trial's objective took, by the ``clock`` given to
    :func:`tune`) and any ``error``); ``second_fold`` one row per re-checked candidate
    with its ``first_fold``, ``second_fold`` and ``mean`` scores (when the search ran on
    a subsample of the users, ``first_fold`` is the re-check on the whole first fold).
    ``elapsed`` is the whole call's time by that clock.

    With a time budget, ``time_split`` says where the time went: one row per phase
    (``screen``, ``search``, ``stack``, ``recheck``, ``final fit``) and family, with the
    seconds the cost model ``planned`` for it, the seconds ``spent`` and the ``trials``
    (or fits) made. ``notes`` says what the budget changed: a family left out, a
    subsample searched, a candidate not re-checked, a final fit with fewer iterations;
    each was also sent to the progress callback as a warning.
    """

    best_model: Recommender | Pipeline
    best_name: str
    best_params: dict[str, Any]
    best_score: float
    metric: str
    protocol: str
    trials: pd.DataFrame = field(repr=False)
    second_fold: pd.DataFrame = field(repr=False)
    validation: dict[str, dict[str, Any]] = field(repr=False)
    budget_seconds: float | None
    n_trials: int | None
    seed: int
    elapsed: float
    best_reranker: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    time_split: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=TIME_SPLIT_COLUMNS), repr=False)

    def to_json(self, indent: int | None = 2) -> str:
        """Everything but the model, as JSON (missing values as ``null``)."""
        record = {
            "best_name": self.best_name, "best_params": self.best_params,
            "best_reranker": self.best_reranker, "best_score": self.best_score,
            "metric": self.metric, "protocol": self.protocol,
            "seed": self.seed, "budget_seconds": self.budget_seconds,
            "n_trials": self.n_trials, "elapsed": self.elapsed,
            "notes": self.notes, "validation": self.validation,
            "time_split": self.time_split.to_dict(orient="records"),
            "second_fold": self.second_fold.to_dict(orient="records"),
            "trials": self.trials.to_dict(orient="records"),
        }
        return json.dumps(plain(record), indent=indent)




# ---- tuning --------------------------------------------------------------------------

@contextmanager
def _quiet_optuna() -> Iterator[None]:
    # A failed trial is recorded in the result (its ``error``), so no traceback is logged.
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def _with_seed(family: str, params: dict[str, Any], seed: int) -> dict[str, Any]:
    """The family's params, plus the tuning seed where its config takes one."""
    if "seed" in MODELS[family].Config.model_fields:
        return {**params, "seed": seed}
    return params


def _stopped_parameter(family: str) -> str | None:
    """The config field early stopping sets for ``family`` (None: not iterative)."""
    if family in EPOCH_FAMILIES:
        return "epochs"
    if family in ITERATIVE_FAMILIES:
        return "iterations"
    return None


def _candidate(family: str, params: dict[str, Any], reranker: Mapping[str, float]
               ) -> Model:
    """The family's model with ``params``, re-ranked by ``reranker``'s knobs when the
    objective searches any (then always a pipeline, even with every knob at 0)."""
    model = create(family, **params)
    if not reranker:
        return model
    return Pipeline(model, name=family, rerankers=[dict(reranker)])


def _first_check_steps(family: str, params: Mapping[str, Any]) -> int | None:
    """Iterations or epochs of a trial's first check (None: it has one check, whole)."""
    if family in EPOCH_FAMILIES:
        return min(EPOCH_FAMILIES[family], int(params.get("epochs", EPOCH_FAMILIES[family])))
    if family in ITERATIVE_FAMILIES:
        return iteration_checkpoints(int(params["iterations"]), ITERATIVE_FAMILIES[family])[0]
    return None


def _label_period(params: Mapping[str, Any]) -> str:
    """What a stacked ranker's sources are fitted on: the events before its labels."""
    return json.dumps([params.get("label_split"), params.get("label_fraction")])


def _objective(family: str, fold: Split, validation: Objective, seed: int,
               deadline: Callable[[], float | None], clock: Clock,
               fixed: dict[str, Any] | None = None, *, shape: DataShape = REFERENCE_SHAPE,
               costs: CostModel | None = None, shared_parts: bool = False,
               space: SearchSpace | None = None) -> Callable[[optuna.Trial], float]:
    """Score a sampled configuration (plus the ``fixed`` params, and the re-ranker's
    knobs the objective asks for) on ``fold``; iterative families stop early, and no
    later than ``deadline()`` (the end of the phase under way, a ``clock()`` value). The
    trial's ``duration`` user attribute is its time by ``clock``, whether it completes,
    is pruned or fails.

    The space's ranges scale with ``shape`` (the data being tuned). With ``costs``,
    every check (a fit and its scoring) is timed into the cost model, and a trial whose
    first check it predicts to end past ``deadline()`` is pruned before it starts (user
    attribute ``unaffordable``). ``shared_parts``: a composite's parts are fitted once
    per label period (inside :func:`~tailored.ranking.reusing_fitted_parts`), so only
    a trial on a new one pays for them. ``space`` replaces the family's search space
    (the blend's, which depends on its parts)."""
    space = space or SEARCH_SPACES[family]
    fold_shape = _shape(fold)
    fitted_periods: dict[str, dict[str, Any]] = {}  # label period: its params

    def scored(trial: optuna.Trial) -> float:
        params = _with_seed(family, {**space(trial, shape), **(fixed or {})}, seed)
        reranker = reranker_space(trial, validation.knobs)
        with_parts = not shared_parts or _label_period(params) not in fitted_periods
        if costs is not None:
            def predicted_seconds() -> float:
                return costs.seconds(family, params, fold_shape, with_parts=with_parts,
                                     steps=_first_check_steps(family, params))

            predicted, end = predicted_seconds(), deadline()
            if shared_parts and with_parts and fitted_periods and end is not None and (
                    clock() + predicted > end):
                # No time to fit the parts on a new label period: keep a fitted one.
                params.update(next(iter(fitted_periods.values())))
                with_parts, predicted = False, predicted_seconds()
            trial.set_user_attr("predicted", predicted)
            if end is not None and clock() + predicted > end:
                trial.set_user_attr("params", params)
                trial.set_user_attr("unaffordable", True)
                raise optuna.TrialPruned(
                    f"its first check would take about {predicted:.1f} s, "
                    f"{max(0.0, end - clock()):.1f} s are left")
        trial.set_user_attr("params", params)
        trial.set_user_attr("reranker", reranker)
        if shared_parts:
            fitted_periods.setdefault(_label_period(params), {
                "label_split": params.get("label_split"),
                "label_fraction": params.get("label_fraction")})
        check = {"began": clock(), "epochs": 0, "with_parts": with_parts}

        def timed(steps: int | None) -> None:
            """Teach the cost model the check that just ended (the first one's time is
            the trial's ``first_check``: what the next trial must at least afford)."""
            now = clock()
            if "first_check" not in trial.user_attrs and not (
                    shared_parts and check["with_parts"]):  # once only: not typical
                trial.set_user_attr("first_check", now - check["began"])
            if costs is not None:
                costs.record(family, params, fold_shape, now - check["began"], steps=steps,
                             with_parts=bool(check["with_parts"]))
            check.update(began=now, with_parts=False)

        def report(iterations: int, value: float) -> None:
            if family in EPOCH_FAMILIES:  # the epochs since the last check
                timed(iterations - int(check["epochs"]))
                check["epochs"] = iterations
            else:  # each checkpoint is a fit from scratch
                timed(iterations)
            trial.report(value, iterations)
            if trial.should_prune():
                raise optuna.TrialPruned(f"{validation.name} {value:.4f} at "
                                         f"{iterations} iterations is below the median")

        try:
            if family in EPOCH_FAMILIES:
                stop = early_stopping_epochs(
                    _candidate(family, params, reranker), fold, validation.name,
                    first=EPOCH_FAMILIES[family], report=report, deadline=deadline(),
                    clock=clock)
            elif family in ITERATIVE_FAMILIES:
                stop = early_stopping_iterations(
                    lambda n: _candidate(family, {**params, "iterations": n}, reranker), fold,
                    validation.name, params["iterations"], first=ITERATIVE_FAMILIES[family],
                    report=report, deadline=deadline(), clock=clock)
            else:
                value = validation.score(_candidate(family, params, reranker), fold)
                timed(None)
                return value
            trial.set_user_attr("iterations", stop.iterations)
            return stop.score
        except optuna.TrialPruned:
            raise
        except Exception as error:
            trial.set_user_attr("error", f"{type(error).__name__}: {error}")
            raise

    def objective(trial: optuna.Trial) -> float:
        started = clock()
        try:
            return scored(trial)
        finally:
            trial.set_user_attr("duration", clock() - started)

    return objective


def _stop_at(deadline: Callable[[], float | None], clock: Clock) -> Callable[
        [optuna.Study, optuna.trial.FrozenTrial], None]:
    """Stop the study after the first trial that ends at or past ``deadline()`` (by
    ``clock``): Optuna's own ``timeout`` would read the wall clock instead."""
    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        end = deadline()
        if end is not None and clock() >= end:
            study.stop()

    return callback


def _stop_before_overrun(deadline: Callable[[], float | None], clock: Clock) -> Callable[
        [optuna.Study, optuna.trial.FrozenTrial], None]:
    """Stop the study when even the quickest first check of its trials so far would end
    past ``deadline()`` (a slower sample is the objective's to turn down)."""
    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        end = deadline()
        checks = [t.user_attrs["first_check"] for t in study.trials
                  if "first_check" in t.user_attrs]
        if end is not None and checks and clock() + min(checks) > end:
            study.stop()

    return callback


def _stop_when_unaffordable(patience: int) -> Callable[
        [optuna.Study, optuna.trial.FrozenTrial], None]:
    """Stop the study after ``patience`` trials in a row that were not started because
    they would not have fitted the time left (each costs only a sample)."""
    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        recent = study.trials[-patience:]
        if len(recent) == patience and all(t.user_attrs.get("unaffordable") for t in recent):
            study.stop()

    return callback


def _seconds(trial: optuna.trial.FrozenTrial) -> float | None:
    """A trial's duration by the tuner's clock (else Optuna's wall-clock record)."""
    if "duration" in trial.user_attrs:
        return float(trial.user_attrs["duration"])
    return trial.duration.total_seconds() if trial.duration is not None else None


def _stop_when_stale(patience: int) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
                    and t.value is not None]
        failed = study.trials[-FAILURES_TO_GIVE_UP:]
        if len(failed) == FAILURES_TO_GIVE_UP and all(
                t.state == optuna.trial.TrialState.FAIL for t in failed):
            study.stop()  # it fails on this data (or in this part of its space): give up
            return
        if not complete:
            if len(study.trials) >= FAILURES_TO_GIVE_UP:  # it fails on this data: give up
                study.stop()
            return
        best = max(range(len(complete)), key=lambda i: (complete[i].value, -i))
        if len(complete) - 1 - best >= patience:
            study.stop()

    return callback


def _trial_rows(family: str, study: optuna.Study) -> list[dict[str, Any]]:
    rows = []
    for trial in study.trials:
        complete = trial.state == optuna.trial.TrialState.COMPLETE
        seconds = _seconds(trial)
        rows.append({
            "family": family, "number": trial.number,
            "params": trial.user_attrs.get("params", {}),
            "reranker": trial.user_attrs.get("reranker", {}),
            "iterations": trial.user_attrs.get("iterations"),
            "value": trial.value if complete and trial.value is not None else math.nan,
            "state": trial.state.name,
            "duration": math.nan if seconds is None else seconds,
            "error": trial.user_attrs.get("error"),
        })
    return rows


def _candidates(trials: pd.DataFrame, families: list[str], count: int) -> list[dict[str, Any]]:
    """Up to ``count`` configurations to re-check: each family's best on the first fold,
    best family first; when fewer families completed a trial, the next best distinct
    configurations fill the list. Ordered by first-fold value."""
    done = trials[(trials["state"] == "COMPLETE") & np.isfinite(trials["value"])].copy()
    done["_order"] = done["family"].map(families.index)
    done = done.sort_values(["value", "_order", "number"], ascending=[False, True, True])
    ranked: list[dict[str, Any]] = []
    seen = set()
    for row in done.itertuples(index=False):
        params = dict(row.params)
        stopped = _stopped_parameter(row.family)
        if stopped is not None and row.iterations is not None and not pd.isna(row.iterations):
            params[stopped] = int(row.iterations)
        reranker = dict(getattr(row, "reranker", None) or {})
        key = (row.family, json.dumps([params, reranker], sort_keys=True, default=str))
        if key not in seen:
            seen.add(key)
            ranked.append({"family": row.family, "number": row.number, "params": params,
                           "reranker": reranker, "first_fold": row.value})
    leaders: dict[str, dict[str, Any]] = {}
    for candidate in ranked:
        leaders.setdefault(candidate["family"], candidate)
    chosen = list(leaders.values())[:count]
    chosen += [c for c in ranked if c not in chosen][:count - len(chosen)]
    return sorted(chosen, key=ranked.index)


def stacked_sources(trials: pd.DataFrame, families: Sequence[str],
                    count: int = STACKED_FAMILIES) -> list[dict[str, Any]]:
    """The stacked ranker's candidate sources, from the trials of single families: the
    best configuration of each of the ``count`` best families on the first fold (the
    leader proposes 100 items, the others 50); when the leader's fit is random (it takes
    a seed: SASRec, ALS, BPR), a second fit of it with the next seed, so the ranker
    averages out the noise of one fit; and item-kNN of the user's last 5 items (with
    item-kNN's tuned configuration) when item-kNN was searched.

    Examples
    --------
    >>> trials = pd.DataFrame({"family": ["popular", "ease", "item_knn"], "number": 0,
    ...     "params": [{"half_life_days": 3.0}, {"regularization": 250.0}, {}],
    ...     "iterations": None, "value": [0.3, 0.2, 0.1], "state": "COMPLETE"})
    >>> [(s.get("name", s["model"]), s["n"]) for s in stacked_sources(trials, ["popular",
    ...     "ease", "item_knn"], count=2)]
    [('popular', 100), ('ease', 50), ('item_knn_recent', 30)]
    """
    leaders = _leaders(trials, families)
    sources = [{"model": family, "params": leader["params"], "n": 100 if position == 0 else 50}
               for position, (family, leader) in enumerate(list(leaders.items())[:count])]
    if sources and "seed" in sources[0]["params"]:
        first = sources[0]
        sources.insert(1, {"name": f"{first['model']}_reseeded", "model": first["model"],
                           "params": {**first["params"], "seed": first["params"]["seed"] + 1},
                           "n": 50})
    if "item_knn" in leaders:
        sources.append({"name": "item_knn_recent", "model": "item_knn",
                        "params": leaders["item_knn"]["params"], "recent_items": 5, "n": 30})
    return sources


def blended_parts(trials: pd.DataFrame, families: Sequence[str],
                  count: int = BLENDED_FAMILIES) -> list[dict[str, Any]]:
    """The stacked weighted hybrid's parts: the best configuration of each of the
    ``count`` best single families on the first fold, best first.

    Examples
    --------
    >>> trials = pd.DataFrame({"family": ["popular", "ease", "item_knn"], "number": 0,
    ...     "params": [{"half_life_days": 3.0}, {"regularization": 250.0}, {}],
    ...     "iterations": None, "value": [0.3, 0.2, 0.1], "state": "COMPLETE"})
    >>> [part["model"] for part in blended_parts(trials, ["popular", "ease", "item_knn"],
    ...                                          count=2)]
    ['popular', 'ease']
    """
    return [{"model": family, "params": leader["params"]}
            for family, leader in list(_leaders(trials, families).items())[:count]]


def _leaders(trials: pd.DataFrame, families: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each single family's best configuration on the first fold, best family first."""
    singles = [family for family in families if family not in COMPOSITES]
    leaders: dict[str, dict[str, Any]] = {}
    for candidate in _candidates(trials[trials["family"].isin(singles)], singles,
                                 len(singles)):
        leaders.setdefault(candidate["family"], candidate)
    return leaders


def stacked_composites(families: Sequence[str]) -> list[str]:
    """The composites among ``families`` that :func:`tune` stacks on the others (those
    with at least ``COMPOSITES[family]`` others searched), in the order it stacks them:
    the ranker, then the blend. Alone, a composite keeps its default parts."""
    singles = [family for family in families if family not in COMPOSITES]
    return [family for family, fewest in COMPOSITES.items()
            if family in families and len(singles) >= fewest]


def available_families() -> list[str]:
    """The families :func:`tune` searches by default: every one in ``SEARCH_SPACES``
    whose extra requirement (``REQUIREMENTS``, e.g. PyTorch for SASRec) is installed."""
    return [family for family in SEARCH_SPACES
            if family not in REQUIREMENTS
            or importlib.util.find_spec(REQUIREMENTS[family]) is not None]


def _families(models: Sequence[str] | None) -> list[str]:
    if models is None:
        return available_families()
    if isinstance(models, str):
        models = [models]
    families = list(dict.fromkeys(models))
    unknown = [name for name in families if name not in SEARCH_SPACES]
    if unknown or not families:
        raise ValueError(f"cannot tune {unknown or 'no model family'}; families with a "
                         f"search space: {list(SEARCH_SPACES)}")
    return families


class _Ledger:
    """Where a budgeted search's time went (the rows of ``TuningResult.time_split``) and
    what the budget changed (``notes``, each also sent to ``progress`` as a warning)."""

    def __init__(self, progress: Progress | None) -> None:
        self.notes: list[str] = []
        self.rows: list[dict[str, Any]] = []
        self._progress = progress

    def note(self, text: str) -> None:
        self.notes.append(text)
        if self._progress is not None:
            self._progress(f"warning: {text}")

    def spent(self, phase: str, family: str, planned: float, spent: float,
              trials: int) -> None:
        self.rows.append({"phase": phase, "family": family, "planned": planned,
                          "spent": spent, "trials": trials})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=TIME_SPLIT_COLUMNS)


class _Search:
    """The Optuna studies of one :func:`tune` call, one per family, with their objectives
    on the fold searched, and the rules that end a family's search under a budget."""

    def __init__(self, families: list[str], singles: list[str], fold: Split,
                 validation: Objective, *, shape: DataShape, costs: CostModel, seed: int,
                 protocol: str, n_jobs: int, clock: Clock, progress: Progress | None) -> None:
        self.families, self.singles, self.fold = families, singles, fold
        self.validation, self.shape, self.costs, self.seed = validation, shape, costs, seed
        self.n_jobs, self.clock, self.progress = n_jobs, clock, progress
        self.protocol = protocol
        self.fold_shape = _shape(fold)
        #: When the trial under way must end (a ``clock()`` value; None: no limit).
        self.deadline: Callable[[], float | None] = lambda: None
        self.studies: dict[str, optuna.Study] = {}
        for family in families:
            self.studies[family] = optuna.create_study(
                direction="maximize", study_name=family,
                sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=_STARTUP_TRIALS),
                pruner=optuna.pruners.MedianPruner(n_startup_trials=_PRUNER_STARTUP_TRIALS))
            if family in singles:
                start = starting_point(family, shape)
            elif family == "ranked":
                start = STACKED_STARTING_POINTS.get(protocol, starting_point(family))
            else:  # the blend's start names its parts: enqueued when it is stacked
                start = None
            if start is not None:
                self.studies[family].enqueue_trial(
                    {**start, **reranker_starting_point(validation.knobs)})
        self.objectives = {family: self._objective(family) for family in singles}

    def _objective(self, family: str, fixed: dict[str, Any] | None = None,
                   shared_parts: bool = False, space: SearchSpace | None = None
                   ) -> Callable[[optuna.Trial], float]:
        return _objective(family, self.fold, self.validation, self.seed,
                          lambda: self.deadline(), self.clock, fixed, shape=self.shape,
                          costs=self.costs, shared_parts=shared_parts, space=space)

    def run(self, family: str, *, n_trials: int | None = None, budgeted: bool = False
            ) -> int:
        """``n_trials`` trials of ``family``, or (``budgeted``) trials until the deadline
        passes, the family stops improving or its trials stop fitting the time left.
        Returns how many trials ran (not counting those not started for lack of time)."""
        callbacks = [] if self.progress is None else [_progress_callback(family,
                                                                         self.progress)]
        if budgeted:
            callbacks += [_stop_when_stale(STALE_TRIALS),
                          _stop_when_unaffordable(UNAFFORDABLE_TO_GIVE_UP),
                          _stop_at(lambda: self.deadline(), self.clock),
                          _stop_before_overrun(lambda: self.deadline(), self.clock)]
        before = _trials_run(self.studies[family])
        self.studies[family].optimize(self.objectives[family], n_trials=n_trials,
                                      n_jobs=self.n_jobs, catch=(Exception,),
                                      callbacks=callbacks)
        return _trials_run(self.studies[family]) - before

    def stack(self, family: str, parts: list[dict[str, Any]], *,
              n_trials: int | None = None, budgeted: bool = False) -> int:
        """Trials of the composite ``family`` stacked on ``parts`` (:func:`stacked_parts`),
        which are fitted once (the ranker's sources once per label period)."""
        if self.progress is not None:
            self.progress(f"{family}: stacked on {[part['model'] for part in parts]}")
        if family == "ranked":
            self.objectives[family] = self._objective(family, {"sources": parts},
                                                      shared_parts=True)
        else:
            self.objectives[family] = self._objective(
                family, shared_parts=True, space=functools.partial(blend_space, parts=parts))
            self.studies[family].enqueue_trial(
                {**blend_starting_point(parts), **reranker_starting_point(self.validation.knobs)})
        with reusing_fitted_parts():  # every trial refits the same parts
            return self.run(family, n_trials=n_trials, budgeted=budgeted)

    def trials(self, families: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per trial of ``families`` (default: all), as ``TuningResult.trials``."""
        rows = [row for family in (families or self.families)
                for row in _trial_rows(family, self.studies[family])]
        trials = pd.DataFrame(rows, columns=["family", "number", "params", "reranker",
                                             "iterations", "value", "state", "duration",
                                             "error"])
        trials["iterations"] = trials["iterations"].astype("Int64")
        return trials


class _Budget:
    """A budget's clockwork: the search ends early enough to leave the guard and the
    final fit their predicted time (``finishing()``, times ``PREDICTION_MARGIN``) plus
    ``RESERVED_SHARE`` of the budget."""

    def __init__(self, started: float, seconds: float, clock: Clock,
                 finishing: Callable[[], float]) -> None:
        self.seconds, self.end, self.clock = seconds, started + seconds, clock
        self._finishing = finishing

    def search_end(self) -> float:
        return (self.end - RESERVED_SHARE * self.seconds
                - PREDICTION_MARGIN * self._finishing())

    def search_left(self) -> float:
        return max(0.0, self.search_end() - self.clock())

    def left(self) -> float:
        return self.end - self.clock()


def tune(data: Dataset, *, budget_seconds: float = 600, metric: str = "ndcg@10",
         models: Sequence[str] | None = None, protocol: str = "temporal", seed: int = 0,
         n_jobs: int = 1, n_trials: int | None = None, recheck: int = 3,
         progress: Progress | None = None, clock: Clock = time.perf_counter) -> TuningResult:
    """Search hyperparameters of several model families and return the best model.

    ``metric`` is what is maximised: one metric (``"ndcg@10"``) or a weighted sum of
    metrics at list lengths (``"ndcg@10 + 0.5*revenue@10"``, see :class:`Objective`;
    revenue counts in units of the catalog's mean price). When it counts
    ``revenue@K`` or ``diversity@K``, each trial also samples the re-ranker's knob of
    that name (0-1, first at 0) and is scored re-ranked by it, and the winner is a
    :class:`~tailored.pipeline.Pipeline` (see :class:`TuningResult`).

    ``data`` is the training data only: both validation folds are carved from it
    (:func:`validation_folds` with ``protocol``), so any test split held out before
    calling ``tune`` is never seen. Each family in ``models`` (default:
    :func:`available_families`, every family with a search space whose requirements
    are installed) gets an Optuna study on the first fold, with a TPE sampler seeded by
    ``seed`` and a median pruner; its search ranges scale with the shape of ``data``
    (:class:`~tailored.evaluation.search_spaces.DataShape`) and its first trial is the
    family's starting point at that shape
    (:func:`~tailored.evaluation.search_spaces.starting_point`: the model's defaults on
    data shaped like MovieLens 100K). ALS and BPR are checked at doubling
    iteration counts up to the sampled ``iterations`` (:func:`early_stopping_iterations`),
    SASRec after every epoch of one fit (:func:`early_stopping_epochs`): the pruner
    stops a trial whose metric falls below the other trials' median at the same count,
    and early stopping keeps the count where the metric peaked.

    With ``n_trials``, every family runs exactly that many trials (``budget_seconds`` is
    then unused) and, with ``n_jobs=1``, the result depends only on the data and
    ``seed``. Otherwise the whole call, final fit included, ends within
    ``budget_seconds``. What each fit costs is predicted by a
    :class:`~tailored.evaluation.costs.CostModel` that times every check (fit and
    scoring) and scales it to other parameters and data sizes; no trial, checkpoint or
    epoch starts that it predicts to end past the deadline of its phase. The phases:

    1. *Screen*: every family's starting point, one family after another, each allowed
       at most ``SCREEN_SHARE`` of the search time left (an iterative family stops
       early by then). A family whose first check alone would take longer is left out,
       and so is one whose re-check and final fit would take more than
       ``FINISHING_SHARE`` of the budget.
       When the screen would take more than ``PROXY_SHARE`` of the budget on the first
       fold, every trial runs on a subsample of its users (the validation users first,
       at least ``MIN_PROXY_USERS``), sized to take about that share.
    2. *Search*: TPE per family, ranked by their best score so far; the time is shared
       by ``RANK_SHARES`` (the leader gets most), the least promising family searches
       first, and a family that stops early (``STALE_TRIALS`` trials without a new best)
       or whose share is shorter than its typical trial leaves its time to the next
       ones, so the leader also gets what others left. With composites stacked (below),
       the search keeps ``STACK_SHARE`` of its time for them when the cost model says
       ``STACK_ROUNDS`` of one's first trial and its re-check and final fit fit in that.
    3. *Stack*: the composites come last (:func:`stacked_composites`), on the best
       configurations found so far (the costliest left out while the stack would not
       fit the time left), and their trials share the fitted parts
       (:func:`~tailored.ranking.reusing_fitted_parts`). First ``ranked``: its candidate
       sources are the best configurations (:func:`stacked_sources`) and its first
       trial is matched to the protocol (``STACKED_STARTING_POINTS``), so a trial
       mostly costs the LightGBM fit. It leaves ``BLEND_ROUNDS`` times the predicted
       first trial of ``weighted`` (with at least two other families) for it, a blend
       of the ``BLENDED_FAMILIES`` best (:func:`blended_parts`), first at equal weights,
       then re-weighted, so a trial after the first costs little more than scoring.
       With ``n_trials`` they also run after the other families.
    4. *Leftover*: time the stack did not use (a composite that would not fit, or one
       that stopped improving) goes back to the search of phase 2, shared alike.
    5. *Guard and final fit*: held back from the start of each phase, the predicted
       time to re-check the candidates and fit the winner on all of ``data``, plus
       ``RESERVED_SHARE`` of the budget. The best configuration of each of the
       ``recheck`` best families on the first fold (or, with fewer families, the next
       best configurations) is scored on the second fold (and on the whole first fold
       after a subsample), and the best mean of both folds wins. A candidate whose
       re-check and final fit would not end within the budget is not re-checked; a
       winner whose final fit would not is refitted with fewer iterations or epochs, or
       the next candidate is, or, as a last resort, the winner fitted on the second
       fold is returned.

    What the budget changed is in ``notes`` of the result (and sent to ``progress`` as
    warnings), where the time went in its ``time_split``. ``n_jobs`` above 1 runs trials
    in threads (faster, not reproducible).

    ``clock`` (default ``time.perf_counter``; any callable returning seconds) times
    everything the budget decides on: the phases' ends, each trial's ``duration`` and
    each check the cost model learns from, early stopping's deadlines and ``elapsed``.
    Only tests need another one: a fake clock that advances a fixed amount per fit makes
    a budgeted search independent of the machine's speed.

    Examples
    --------
    >>> from tailored.testing import checkerboard
    >>> result = tune(checkerboard(), models=["popular", "item_knn"], n_trials=3)
    >>> result.best_name, result.best_model.is_fitted, len(result.trials)
    ('item_knn', True, 6)
    >>> list(result.second_fold.columns)
    ['family', 'number', 'params', 'reranker', 'first_fold', 'second_fold', 'mean']
    >>> mixed = tune(checkerboard(), models=["item_knn"], n_trials=3,
    ...              metric="ndcg@10 + 0.5*revenue@10")
    >>> mixed.metric, sorted(mixed.best_reranker), type(mixed.best_model).__name__
    ('ndcg@10 + 0.5*revenue@10', ['revenue'], 'Pipeline')
    """
    started = _read_clock(clock)
    validation = Objective.parse(metric)
    validation.check(data)
    families = _families(models)
    if n_trials is not None and n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    if n_trials is None and not budget_seconds > 0:
        raise ValueError(f"budget_seconds must be above 0, got {budget_seconds}")
    if recheck < 1:
        raise ValueError(f"recheck must be at least 1, got {recheck}")
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be at least 1, got {n_jobs}")
    first, second = validation_folds(data, protocol)
    # A composite among other families is stacked on them: searched after them, on
    # their tuned configurations. Alone, it keeps its default parts.
    stacked = stacked_composites(families)
    singles = [family for family in families if family not in stacked]
    shape = DataShape.of(data)  # the ranges scale with the data the winner learns from
    costs = CostModel()
    ledger = _Ledger(progress)
    fold, screened = first, singles
    if n_trials is None:
        fold, screened = _plan_screen(first, second, singles, shape, costs, budget_seconds,
                                      seed, ledger)
    # Candidates are re-checked on the second fold, and on the whole first one when the
    # search ran on a subsample of its users.
    recheck_folds = [second] if fold is first else [first, second]
    recheck_shapes = [_shape(f) for f in recheck_folds]

    def finishing_costs(family: str, params: Mapping[str, Any]) -> tuple[float, float]:
        """Predicted seconds of a configuration's re-checks and of its fit on all data."""
        return (sum(costs.seconds(family, params, s) for s in recheck_shapes),
                costs.seconds(family, params, shape, scored=False))

    with _quiet_optuna():
        search = _Search(families, singles, fold, validation, shape=shape, costs=costs,
                         seed=seed, protocol=protocol, n_jobs=n_jobs, clock=clock,
                         progress=progress)
        budget = None
        if n_trials is not None:
            for family in singles:
                search.run(family, n_trials=n_trials)
            for family in stacked:
                parts = stacked_parts(family, search.trials(singles), singles)
                if len(parts) >= COMPOSITES[family]:
                    search.stack(family, parts, n_trials=n_trials)
        else:
            def reserved_costs(family: str, trial: optuna.trial.FrozenTrial
                               ) -> tuple[float, float]:
                """A trial's re-check and final fit, unless they could never fit the
                budget (``FINISHING_SHARE`` of it, as at the screen) or no longer fit the
                time left (as the guard will judge it): the guard passes such a
                configuration over, so no time is kept for it."""
                rechecks, final = finishing_costs(family, _rechecked_params(family, trial))
                if (rechecks + final > FINISHING_SHARE * budget_seconds
                        or PREDICTION_MARGIN * (rechecks + final)
                        > started + budget_seconds - clock()):
                    return math.nan, math.nan
                return rechecks, final

            budget = _Budget(started, budget_seconds, clock, lambda: _finishing_seconds(
                search.studies, recheck, 1.0, costs=reserved_costs))
            _spend(search, budget, ledger, screened, stacked, finishing_costs)
        search.deadline = lambda: None
    trials = search.trials()
    if budget is not None and not _candidates(trials, families, 1) \
            and trials["error"].isna().all():
        # Data too large for the budget: the cheapest family, once, is better than nothing.
        cheapest = "popular" if "popular" in singles else singles[0]
        ledger.note(f"no trial finished within the budget; {cheapest} was fitted once at "
                    "its starting point past it")
        search.run(cheapest, n_trials=1)
        trials = search.trials()

    candidates = _candidates(trials, families, recheck)
    if budget is not None:  # the next best stand by for those the budget passes over
        candidates += [c for c in _candidates(trials, families, len(trials))
                       if c not in candidates]
    if not candidates:
        failed = trials[trials["error"].notna()]
        reason = (f"; the first failure, {failed.iloc[0]['family']} trial "
                  f"{failed.iloc[0]['number']}: {failed.iloc[0]['error']}"
                  if len(failed) else "")
        raise TailoredError(f"no trial of {families} completed on the first validation "
                            f"fold{reason}")
    if progress is not None:
        progress(f"re-checking the best {min(recheck, len(candidates))} on the second fold")
    checked, fallback = _recheck(candidates[:recheck] if budget is None else candidates,
                                 recheck, list(zip(recheck_folds, recheck_shapes, strict=True)),
                                 validation, costs, budget, ledger, clock, finishing_costs)
    best, best_model = _fit_winner(checked, data, shape, costs, budget, ledger, fallback,
                                   progress)
    return TuningResult(
        best_model=best_model, best_name=best["family"], best_params=dict(best["params"]),
        best_reranker=dict(best["reranker"]),
        best_score=float(best["mean"]), metric=validation.name, protocol=protocol,
        trials=trials, second_fold=pd.DataFrame(checked, columns=[
            "family", "number", "params", "reranker", "first_fold", "second_fold", "mean"]),
        validation={name: _describe(split) for name, split in (
            ("first", first), ("second", second), *([("searched", fold)]
                                                    if fold is not first else []))},
        budget_seconds=None if n_trials is not None else budget_seconds, n_trials=n_trials,
        seed=seed, elapsed=clock() - started, notes=ledger.notes,
        time_split=ledger.frame())


def _spend(search: _Search, budget: _Budget, ledger: _Ledger, families: list[str],
           stacked: list[str],
           finishing_costs: Callable[[str, Mapping[str, Any]], tuple[float, float]]
           ) -> None:
    """The budgeted phases of :func:`tune`: screen ``families``, search, stack the
    composites ``stacked`` on them, and search again in the time the stack left."""
    clock, costs, fold_shape = search.clock, search.costs, search.fold_shape

    def until(end: float, kept: float = 0.0) -> Callable[[], float]:
        """A phase's deadline: ``end``, or earlier when the search must end earlier to
        keep ``kept`` seconds (and the guard and final fit their predicted time)."""
        return lambda: min(end, budget.search_end() - kept)

    screened: list[str] = []
    for family in families:  # 1. screen
        allowance = SCREEN_SHARE * budget.search_left()
        params = _start_params(family, search.shape)
        first_check = costs.seconds(family, params, fold_shape,
                                    steps=_first_check_steps(family, params))
        if first_check > allowance:
            ledger.note(f"{family} left out: its first fit would take about "
                        f"{first_check:.1f} s, more than the {allowance:.1f} s its screen "
                        "can have")
            ledger.spent("screen", family, 0.0, 0.0, 0)
            continue
        planned = min(allowance, _screen_seconds(costs, family, params, fold_shape))
        search.deadline = until(clock() + allowance)
        began = clock()
        ran = search.run(family, n_trials=1)
        ledger.spent("screen", family, planned, clock() - began, ran)
        screened.append(family)

    stack_time = _stack_time(search, budget, stacked, finishing_costs)
    _search_phase("search", search, budget, ledger, screened, until, stack_time)  # 2. search

    for position, family in enumerate(stacked if screened else []):  # 3. stack
        left = budget.search_left()
        parts, dropped = _affordable_parts(search, family, left, finishing_costs)
        if not parts:
            ledger.note(f"{family} left out: stacked on the best families it would need "
                        f"more than the {left:.1f} s left")
            ledger.spent("stack", family, 0.0, 0.0, 0)
            continue
        if dropped:
            ledger.note(f"{family}: stacked without the parts {dropped} to fit the "
                        f"{left:.1f} s left")
        kept = sum(_blend_seconds(search, later, left, finishing_costs)
                   for later in stacked[position + 1:])  # the blend's, after the ranker
        search.deadline = until(clock() + left, kept)
        began = clock()
        ran = search.stack(family, parts, budgeted=True)
        ledger.spent("stack", family, left - kept, clock() - began, ran)

    # 4. Time the stack did not use (a composite left out or stopped early) goes back
    # to the search rather than being left on the table.
    _search_phase("leftover", search, budget, ledger, screened, until)


def _search_phase(phase: str, search: _Search, budget: _Budget, ledger: _Ledger,
                  families: list[str], until: Callable[[float, float], Callable[[], float]],
                  kept: float = 0.0) -> None:
    """Search ``families`` in the time left but ``kept`` seconds, the leader last, each
    getting its ``RANK_SHARES`` share of what the ones before it left (none when that is
    less than one of its typical trials: it goes to the next)."""
    clock = search.clock
    order = _search_order({f: search.studies[f] for f in families})
    weights = [RANK_SHARES[min(rank, len(RANK_SHARES) - 1)]
               for rank in range(len(order))][::-1]
    for position, family in enumerate(order):
        share = (max(0.0, budget.search_left() - kept)
                 * weights[position] / sum(weights[position:]))
        typical = _typical_seconds(search.studies[family])
        if share <= 0 or share < typical:  # not one trial: the time goes to the next
            if phase == "search":
                ledger.spent(phase, family, share, 0.0, 0)
            continue
        search.deadline = until(clock() + share, kept)
        began = clock()
        ran = search.run(family, budgeted=True)
        ledger.spent(phase, family, share, clock() - began, ran)


def _blend_seconds(search: _Search, family: str, left: float,
                   finishing_costs: Callable[[str, Mapping[str, Any]], tuple[float, float]]
                   ) -> float:
    """The time a composite stacked after another keeps from it: ``BLEND_ROUNDS`` of its
    first trial, when it fits in ``left`` at all (none otherwise)."""
    parts, _ = _affordable_parts(search, family, left, finishing_costs)
    if not parts:
        return 0.0
    first = search.costs.seconds(family, _stacked_start(search, family, parts),
                                 search.fold_shape)
    return BLEND_ROUNDS * first


def stacked_parts(family: str, trials: pd.DataFrame, families: Sequence[str]
                  ) -> list[dict[str, Any]]:
    """What the composite ``family`` is stacked on, from the trials of ``families``: the
    ranker's sources (:func:`stacked_sources`) or the blend's parts
    (:func:`blended_parts`)."""
    if family == "ranked":
        return stacked_sources(trials, families)
    return blended_parts(trials, families)


def _stack_time(search: _Search, budget: _Budget, stacked: Sequence[str],
                finishing_costs: Callable[[str, Mapping[str, Any]], tuple[float, float]]
                ) -> float:
    """The search time kept for the stacked composites: ``STACK_SHARE`` of what is left
    when the cost model says one of them (on the screen's leaders, the costliest parts
    left out as needed) fits in it, else none."""
    kept = STACK_SHARE * budget.search_left()
    fits = any(_affordable_parts(search, family, kept, finishing_costs)[0]
               for family in stacked)
    return kept if fits else 0.0


def _stacked_start(search: _Search, family: str, parts: list[dict[str, Any]]
                   ) -> dict[str, Any]:
    """The model params of a stacked composite's first trial on ``parts``."""
    if family == "ranked":
        start = STACKED_STARTING_POINTS.get(search.protocol, STARTING_POINTS["ranked"])
        return {**_start_params("ranked", search.shape, start), "sources": parts}
    fixed = cast(optuna.Trial, optuna.trial.FixedTrial(blend_starting_point(parts)))
    return blend_space(fixed, search.shape, parts=parts)


def _stack_cost(search: _Search, family: str, parts: list[dict[str, Any]],
                finishing_costs: Callable[[str, Mapping[str, Any]], tuple[float, float]]
                ) -> float:
    """Predicted seconds a stacked composite needs on ``parts``: ``STACK_ROUNDS`` of its
    first trial (its parts fitted) and its re-check and final fit."""
    params = _stacked_start(search, family, parts)
    trial = search.costs.seconds(family, params, search.fold_shape)
    return STACK_ROUNDS * trial + sum(finishing_costs(family, params))


def _affordable_parts(search: _Search, family: str, left: float,
                      finishing_costs: Callable[[str, Mapping[str, Any]],
                                                tuple[float, float]]
                      ) -> tuple[list[dict[str, Any]], list[str]]:
    """The stacked composite's parts (:func:`stacked_parts`, best first), some left out
    until its trials, re-check and final fit fit in ``left`` seconds (none when they
    never do with ``COMPOSITES[family]`` parts), and the names of those left out. The
    ranker's second seed of the leader goes first, the leader never; of the others, the
    weakest part whose absence lets the rest fit, else the costliest, and again."""
    parts = stacked_parts(family, search.trials(search.singles), search.singles)
    dropped: list[str] = []

    def fits(kept: list[dict[str, Any]]) -> bool:
        return _stack_cost(search, family, kept, finishing_costs) <= left

    while len(parts) >= COMPOSITES[family] and not fits(parts):
        droppable = ([p for p in parts if p.get("name", "").endswith("_reseeded")]
                     or parts[1:] or parts)
        enough = [p for p in droppable if len(parts) > COMPOSITES[family]
                  and fits([q for q in parts if q is not p])]
        left_out = enough[-1] if enough else max(droppable, key=lambda p: search.costs.seconds(
            p["model"], p["params"], search.fold_shape, scored=False))
        dropped.append(left_out.get("name", left_out["model"]))
        parts = [p for p in parts if p is not left_out]
    return (parts, dropped) if len(parts) >= COMPOSITES[family] else ([], dropped)


def _recheck(candidates: list[dict[str, Any]], wanted: int,
             folds: list[tuple[Split, DataShape]], validation: Objective, costs: CostModel,
             budget: _Budget | None, ledger: _Ledger, clock: Clock,
             finishing_costs: Callable[[str, Mapping[str, Any]], tuple[float, float]]
             ) -> tuple[list[dict[str, Any]], Model | None]:
    """Score up to ``wanted`` candidates, in order, on the re-check ``folds`` (the whole
    first fold after a subsample, then the second); under a ``budget``, only those whose
    re-check, and then the slowest final fit of those re-checked, are predicted to end
    within it (the next candidates stand in for the others). Returns the re-checked
    candidates (with ``first_fold``, ``second_fold`` and ``mean``; the best first-fold
    candidate alone, scored by its first fold, when none could be) and the model of the
    best mean as fitted on the last fold (None if none)."""
    checked: list[dict[str, Any]] = []
    fallback: Model | None = None
    slowest_final = 0.0
    too_slow: set[str] = set()  # families passed over: their next configurations too
    for position, candidate in enumerate(candidates):
        if len(checked) == wanted:
            break
        family, params = candidate["family"], candidate["params"]
        if family in too_slow:
            continue
        rechecks, final = finishing_costs(family, params)
        needed = PREDICTION_MARGIN * (rechecks + max(final, slowest_final))
        if budget is not None and needed > budget.left():
            too_slow.add(family)
            if position < wanted:  # one the guard was to re-check, not a stand-in
                ledger.note(f"{family} (trial {candidate['number']}) not re-checked: its "
                            f"re-check and a final fit would take about {needed:.1f} s, "
                            f"{max(0.0, budget.left()):.1f} s are left")
                ledger.spent("recheck", family, rechecks, 0.0, 0)
            continue
        began = clock()
        scores = []
        for fold, fold_shape in folds:
            model = _candidate(family, params, candidate["reranker"])
            fit_began = clock()
            scores.append(validation.score(model, fold))
            costs.record(family, params, fold_shape, clock() - fit_began)
        if len(folds) > 1:  # after a subsample, the whole first fold's score counts
            candidate["first_fold"] = scores[0]
        candidate["second_fold"] = scores[-1]
        candidate["mean"] = (candidate["first_fold"] + candidate["second_fold"]) / 2
        if budget is not None:
            ledger.spent("recheck", family, rechecks, clock() - began, len(folds))
        if not checked or candidate["mean"] > max(c["mean"] for c in checked):
            fallback = model
        checked.append(candidate)
        slowest_final = max(slowest_final, final)
    if not checked:
        best = {**candidates[0], "second_fold": math.nan}
        best["mean"] = best["first_fold"]
        ledger.note(f"no candidate could be re-checked within the budget: "
                    f"{best['family']} wins on its first-fold score alone")
        return [best], None
    return checked, fallback


def _fit_winner(checked: list[dict[str, Any]], data: Dataset, shape: DataShape,
                costs: CostModel, budget: _Budget | None, ledger: _Ledger,
                fallback: Model | None, progress: Progress | None
                ) -> tuple[dict[str, Any], Model]:
    """The winner (best mean; the first on ties) fitted on all of ``data``. Under a
    budget, a fit predicted to end past it is made with fewer iterations or epochs, or
    the next candidate's is made instead, or (last resort) ``fallback`` is returned."""
    ranked = sorted(checked, key=lambda c: -c["mean"])  # stable: the first on ties
    for candidate in ranked:
        family, params = candidate["family"], dict(candidate["params"])
        if progress is not None:
            progress(f"fitting {family} on all {len(data)} events")
        if budget is None:
            return candidate, _candidate(family, params, candidate["reranker"]).fit(data)
        predicted = costs.seconds(family, params, shape, scored=False) * PREDICTION_MARGIN
        left, stopped = budget.left(), _stopped_parameter(family)
        if predicted > left and stopped is not None and stopped in params:
            fewer = int(params[stopped] * left / predicted)
            if fewer >= 1:
                ledger.note(f"{family} refitted on all data with {fewer} {stopped} instead "
                            f"of {params[stopped]} to end within the budget")
                params[stopped] = fewer
                predicted = costs.seconds(family, params, shape,
                                          scored=False) * PREDICTION_MARGIN
        if predicted > left:
            ledger.note(f"{family} not fitted on all data: it would take about "
                        f"{predicted:.1f} s, {max(0.0, left):.1f} s are left")
            ledger.spent("final fit", family, predicted, 0.0, 0)
            continue
        began = budget.clock()
        model = _fit_until(_candidate(family, params, candidate["reranker"]), data,
                           budget.end, budget.clock)
        ledger.spent("final fit", family, predicted, budget.clock() - began, 1)
        stopped_at = getattr(_scorer(model).config, stopped or "", None)
        if stopped is not None and stopped_at is not None and stopped_at != params[stopped]:
            ledger.note(f"{family}'s final fit stopped at {stopped_at} {stopped} at the "
                        "end of the budget")
            params[stopped] = stopped_at
        return {**candidate, "params": params}, model
    if fallback is None:  # nothing fits, nothing was re-checked: the cheapest, late
        candidate = min(ranked, key=lambda c: costs.seconds(c["family"], c["params"], shape))
        ledger.note(f"the data is too large for the budget: {candidate['family']} is "
                    "fitted on all data past it")
        return candidate, _candidate(candidate["family"], candidate["params"],
                                     candidate["reranker"]).fit(data)
    ledger.note(f"the data is too large for the budget: {ranked[0]['family']} is returned "
                "as fitted on the second validation fold's training data, not on all data")
    return ranked[0], fallback


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials
            if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]


def _search_order(studies: dict[str, optuna.Study]) -> list[str]:
    """Families from the least to the most promising (best first-fold value so far;
    a family without a complete trial counts as the least promising)."""
    def best(family: str) -> float:
        values = [t.value for t in _complete(studies[family]) if t.value is not None]
        return max(values, default=-math.inf)

    ranked = sorted(studies, key=lambda family: (-best(family), list(studies).index(family)))
    return ranked[::-1]


def _finishing_seconds(studies: dict[str, optuna.Study], recheck: int, growth: float,
                       costs: Callable[[str, optuna.trial.FrozenTrial], tuple[float, float]]
                       | None = None) -> float:
    """Estimated time of the guard and the final fit: the re-checks of the ``recheck``
    configurations the guard will re-check (as :func:`_candidates` picks them: the best
    of each leading family, then, with fewer families, the next best trials; while fewer
    trials are done, the missing ones like the slowest), and the slowest of their fits
    on all the data. ``costs(family, trial)`` predicts a configuration's re-check and
    final fit; by default both come from the trial's duration (which also paid for its
    validation checks), the final fit times ``growth`` (all the data over the first
    fold's training events)."""
    ranked = sorted(((trial.value or 0.0, position, trial.number, family, trial)
                     for position, family in enumerate(studies)
                     for trial in _complete(studies[family])),
                    key=lambda entry: (-entry[0], entry[1], entry[2]))
    leaders: dict[int, int] = {}  # family position: index in ranked of its best trial
    for index, (_, position, _, _, _) in enumerate(ranked):
        leaders.setdefault(position, index)
    chosen = list(leaders.values())[:recheck]
    chosen += [index for index in range(len(ranked)) if index not in chosen][
        :recheck - len(chosen)]

    def from_duration(family: str, trial: optuna.trial.FrozenTrial) -> tuple[float, float]:
        seconds = _seconds(trial)
        return (math.nan, math.nan) if seconds is None else (seconds, growth * seconds)

    estimates = [(costs or from_duration)(ranked[index][3], ranked[index][4])
                 for index in chosen]
    rechecks = [check for check, _ in estimates if not math.isnan(check)]
    slowest = max(rechecks, default=0.0)
    final = max((fit for _, fit in estimates if not math.isnan(fit)), default=0.0)
    return sum(rechecks) + (recheck - len(rechecks)) * slowest + final


def _describe(fold: Split) -> dict[str, Any]:
    return {"name": fold.name, "train_events": len(fold.train),
            "test_users": len(fold.test_users), "relevant_pairs": len(fold.truth)}


def _progress_callback(family: str, progress: Progress) -> Callable[
        [optuna.Study, optuna.trial.FrozenTrial], None]:
    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        try:
            best = f", best {study.best_value:.4f}"
        except ValueError:  # no complete trial yet
            best = ""
        progress(f"{family}: trial {trial.number} {trial.state.name.lower()}{best}")

    return callback


# ---- budget helpers ------------------------------------------------------------------

def _shape(fold: Split) -> DataShape:
    """The shape of a fold's training data, its checks scoring its validation users."""
    return DataShape.of(fold.train, len(fold.test_users))


def _start_params(family: str, shape: DataShape, start: Mapping[str, Any] | None = None
                  ) -> dict[str, Any]:
    """The model params of the family's starting point at ``shape`` (or of the trial
    values ``start``); its defaults when it has none the space can read."""
    start = starting_point(family, shape) if start is None else start
    if start is None:
        return {}
    try:
        fixed = cast(optuna.Trial, optuna.trial.FixedTrial(dict(start)))
        return SEARCH_SPACES[family](fixed, shape)
    except (ValueError, KeyError, TypeError):  # a space asking for more than the start
        return {}


def _screen_seconds(costs: CostModel, family: str, params: Mapping[str, Any],
                    shape: DataShape) -> float:
    """Predicted seconds of a family's screen trial at ``params``: every checkpoint up to
    its iterations (an iterative family), ``SCREEN_EPOCHS`` epochs checked one by one (an
    epoch family), else one check."""
    if family in ITERATIVE_FAMILIES and "iterations" in params:
        return sum(costs.seconds(family, params, shape, steps=n) for n in
                   iteration_checkpoints(int(params["iterations"]), ITERATIVE_FAMILIES[family]))
    if family in EPOCH_FAMILIES:
        return SCREEN_EPOCHS * costs.seconds(family, params, shape, steps=1)
    return costs.seconds(family, params, shape)


def _plan_screen(first: Split, second: Split, families: Sequence[str], shape: DataShape,
                 costs: CostModel, budget_seconds: float, seed: int, ledger: _Ledger
                 ) -> tuple[Split, list[str]]:
    """The fold the trials run on and the families worth screening there.

    A family is left out when re-checking its starting point and fitting it on all the
    data (an epoch family at ``SCREEN_EPOCHS``) would take more than ``FINISHING_SHARE``
    of the budget: it could not win within it (when every family is so, the cheapest is
    kept, and the data said too large). The fold is ``first``, or a subsample of its
    users when the screen of the others there would take more than ``PROXY_SHARE`` of
    the budget (sized to take about that share, assuming costs in proportion to the
    events); the candidates are then re-checked on the whole first fold too, which
    leaves out more families."""
    first_shape, second_shape = _shape(first), _shape(second)

    def finishing(family: str, recheck_shapes: list[DataShape]) -> float:
        params = _start_params(family, shape)
        if family in EPOCH_FAMILIES:
            params["epochs"] = SCREEN_EPOCHS
        return (sum(costs.seconds(family, params, s) for s in recheck_shapes)
                + costs.seconds(family, params, shape, scored=False))

    def affordable(candidates: Sequence[str], recheck_shapes: list[DataShape]) -> list[str]:
        cost = {family: finishing(family, recheck_shapes) for family in candidates}
        kept = [family for family in candidates
                if cost[family] <= FINISHING_SHARE * budget_seconds]
        if not kept:
            kept = [min(candidates, key=cost.__getitem__)]
            ledger.note(f"the data is too large for the budget: even {kept[0]} would take "
                        f"about {cost[kept[0]]:.0f} s to re-check and fit on all data; it "
                        "is the only family searched")
        for family in candidates:
            if family not in kept:
                ledger.note(f"{family} left out: re-checking its starting point and fitting "
                            f"it on all data would take about {cost[family]:.0f} s, more "
                            f"than {FINISHING_SHARE:.0%} of the budget")
                ledger.spent("screen", family, 0.0, 0.0, 0)
        return kept

    screened = affordable(families, [second_shape])
    screen = sum(_screen_seconds(costs, family, _start_params(family, shape), first_shape)
                 for family in screened)
    allowed = PROXY_SHARE * budget_seconds
    users = first.train.n_users
    if screen <= allowed or users < 2 * MIN_PROXY_USERS:
        return first, screened
    proxy = _user_sample(first, allowed / screen, seed)
    ledger.note(f"the screen on the first fold's {users} users would take about "
                f"{screen:.0f} s, more than {PROXY_SHARE:.0%} of the budget: the search "
                f"runs on {proxy.train.n_users} of them ({len(proxy.train)} of "
                f"{len(first.train)} events) and its best candidates are re-checked on "
                "the whole fold")
    return proxy, affordable(screened, [first_shape, second_shape])


def _user_sample(split: Split, fraction: float, seed: int) -> Split:
    """``split`` on some of its users (their training events and relevant items): the
    users it validates first, then the others, in random order, until they hold
    ``fraction`` of the training events (at least ``MIN_PROXY_USERS`` users)."""
    rng = np.random.default_rng(seed)
    counts = split.train.events["user_id"].value_counts(sort=False)
    validated = counts.index.isin(split.truth["user_id"].unique())
    order = np.concatenate([rng.permutation(np.flatnonzero(validated)),
                            rng.permutation(np.flatnonzero(~validated))])
    taken = int(np.searchsorted(np.cumsum(counts.to_numpy()[order]),
                                fraction * len(split.train))) + 1
    kept = counts.index[order[:max(taken, MIN_PROXY_USERS)]]
    train = split.train.filter(split.train.events["user_id"].isin(kept).to_numpy())
    truth = split.truth[split.truth["user_id"].isin(kept)].reset_index(drop=True)
    return Split(name=f"{split.name} ({len(kept)} of {len(counts)} users)", train=train,
                 truth=truth, protocol=split.protocol, params=split.params)


def _trials_run(study: optuna.Study) -> int:
    """Trials that ran (not waiting, nor pruned before starting for lack of time)."""
    return sum(1 for trial in study.trials if trial.state.is_finished()
               and not trial.user_attrs.get("unaffordable"))


def _typical_seconds(study: optuna.Study) -> float:
    """The median time of the study's trials that ran (0 before any)."""
    seconds = [_seconds(trial) for trial in study.trials
               if not trial.user_attrs.get("unaffordable")]
    return float(np.median([s for s in seconds if s is not None] or [0.0]))


def _rechecked_params(family: str, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """A trial's params as the guard re-checks them: with the count early stopping kept."""
    params = dict(trial.user_attrs.get("params", {}))
    stopped = _stopped_parameter(family)
    if stopped is not None and trial.user_attrs.get("iterations") is not None:
        params[stopped] = int(trial.user_attrs["iterations"])
    return params


def _scorer(model: Model) -> Recommender:
    return model.scorer if isinstance(model, Pipeline) else model


def _fit_until(model: Model, data: Dataset, end: float, clock: Clock) -> Model:
    """``model`` fitted on ``data``; an epoch family stops between epochs once the next is
    predicted (by the last one's time) to end past ``end``."""
    scorer = _scorer(model)
    if getattr(scorer, "name", None) not in EPOCH_FAMILIES:
        return model.fit(data)
    last = {"at": clock()}

    def after_epoch(epoch: int) -> bool:
        now = clock()
        took, last["at"] = now - last["at"], now
        return now + took > end

    scorer.fit(data, after_epoch=after_epoch)  # type: ignore[call-arg]
    return model.fit_stages(data) if isinstance(model, Pipeline) else model
