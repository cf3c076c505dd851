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
noise. When the learned ranker (``ranked``) is searched with other families, it is
stacked on them: searched last, on the tuned configurations of the best families as its
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

import importlib.util
import json
import math
import numbers
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

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
from .offline import evaluate_model
from .search_spaces import (
    EPOCH_FAMILIES,
    ITERATIVE_FAMILIES,
    REQUIREMENTS,
    RERANKER_KNOBS,
    SEARCH_SPACES,
    STACKED_STARTING_POINTS,
    STARTING_POINTS,
    reranker_space,
    reranker_starting_point,
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
FAILURES_TO_GIVE_UP = 3  # with a budget, a family whose first trials all fail stops there
_STARTUP_TRIALS = 6  # random trials before TPE models the space
_PRUNER_STARTUP_TRIALS = 3
_PATIENCE = 2  # checkpoints without improvement before an iterative fit stops
_EPOCH_PATIENCE = 5  # epochs without improvement before an epoch-checked fit stops
STACK_SHARE = 0.5  # of the search time, kept for the stacked ranker when it is searched
STACKED_FAMILIES = 4  # the best families whose tuned configurations are its sources
COMPOSITES = ("weighted", "ranked")  # families made of other families: never a source


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
    relevant = split.truth.groupby("user_id")["item_id"].agg(set).to_dict()
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
    Past ``deadline`` (a ``clock()`` value; ``clock`` defaults to ``time.perf_counter``)
    no further checkpoint is fitted.

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
    for iterations in iteration_checkpoints(max_iterations, first):
        value = validation.score(model_factory(iterations), split)
        curve[iterations] = value
        if report is not None:
            report(iterations, value)
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
    stops once the metric has not improved for ``patience`` epochs in a row, or at the
    first check past ``deadline`` (a ``clock()`` value, as in
    :func:`early_stopping_iterations`). The earliest epoch with the best value wins;
    refit with that many epochs to get its model. ``report`` is called after each check,
    as in :func:`early_stopping_iterations`.

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
        return bool(best["since"] >= patience
                    or (deadline is not None and clock() >= deadline))

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
    with its ``first_fold``, ``second_fold`` and ``mean`` scores. ``elapsed`` is the
    whole call's time by that clock.
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

    def to_json(self, indent: int | None = 2) -> str:
        """Everything but the model, as JSON (missing values as ``null``)."""
        record = {
            "best_name": self.best_name, "best_params": self.best_params,
            "best_reranker": self.best_reranker, "best_score": self.best_score,
            "metric": self.metric, "protocol": self.protocol,
            "seed": self.seed, "budget_seconds": self.budget_seconds,
            "n_trials": self.n_trials, "elapsed": self.elapsed,
            "validation": self.validation,
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


def _objective(family: str, fold: Split, validation: Objective, seed: int,
               deadline: Callable[[], float | None], clock: Clock,
               fixed: dict[str, Any] | None = None) -> Callable[[optuna.Trial], float]:
    """Score a sampled configuration (plus the ``fixed`` params, and the re-ranker's
    knobs the objective asks for) on ``fold``; iterative families stop early, and no
    later than ``deadline()`` (the end of the phase under way, a ``clock()`` value). The
    trial's ``duration`` user attribute is its time by ``clock``, whether it completes,
    is pruned or fails."""
    space = SEARCH_SPACES[family]

    def scored(trial: optuna.Trial) -> float:
        params = _with_seed(family, {**space(trial), **(fixed or {})}, seed)
        reranker = reranker_space(trial, validation.knobs)
        trial.set_user_attr("params", params)
        trial.set_user_attr("reranker", reranker)

        def report(iterations: int, value: float) -> None:
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
                return validation.score(_candidate(family, params, reranker), fold)
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


def _stop_at(deadline: float, clock: Clock) -> Callable[
        [optuna.Study, optuna.trial.FrozenTrial], None]:
    """Stop the study after the first trial that ends at or past ``deadline`` (by
    ``clock``): Optuna's own ``timeout`` would read the wall clock instead."""
    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if clock() >= deadline:
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
    singles = [family for family in families if family not in COMPOSITES]
    leaders: dict[str, dict[str, Any]] = {}  # best first, one per family
    for candidate in _candidates(trials[trials["family"].isin(singles)], singles,
                                 len(singles)):
        leaders.setdefault(candidate["family"], candidate)
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
    ``seed`` and a median pruner; its first trial is the family's starting point
    (``STARTING_POINTS``, the model's defaults). ALS and BPR are checked at doubling
    iteration counts up to the sampled ``iterations`` (:func:`early_stopping_iterations`),
    SASRec after every epoch of one fit (:func:`early_stopping_epochs`): the pruner
    stops a trial whose metric falls below the other trials' median at the same count,
    and early stopping keeps the count where the metric peaked.

    With ``n_trials``, every family runs exactly that many trials (``budget_seconds`` is
    then unused) and, with ``n_jobs=1``, the result depends only on the data and
    ``seed``. Otherwise the whole call, final fit included, aims to take
    ``budget_seconds``, spent in phases:

    1. *Screen*: every family's starting point, one family after another (an iterative
       one stops early by then, and at the latest once it has used ``SCREEN_SHARE`` of
       the search time left).
    2. *Search*: TPE per family, ranked by their best score so far; the time is shared
       by ``RANK_SHARES`` (the leader gets most), the least promising family searches
       first, and a family that stops early (``STALE_TRIALS`` trials without a new best)
       leaves its time to the next ones, so the leader also gets what others left.
       With the ranker stacked (below), the search keeps ``STACK_SHARE`` of its time
       for it.
    3. *Stack*: when ``ranked`` is searched with other families, it comes last, its
       candidate sources fixed to the best configurations found so far
       (:func:`stacked_sources`), its first trial matched to the protocol
       (``STACKED_STARTING_POINTS``); its trials share the fitted sources
       (:func:`~tailored.ranking.reusing_fitted_parts`), so a trial mostly costs the
       LightGBM fit. With ``n_trials`` it also runs after the other families.
    4. *Guard and final fit*: held back from the start of each phase, the estimated
       time (from the measured trial durations) to re-check the candidates and fit the
       winner on all of ``data``, plus ``RESERVED_SHARE`` of the budget. The best
       configuration of each of the ``recheck`` best families on the first fold (or,
       with fewer families, the next best configurations) is scored on the second fold,
       and the best mean of both folds wins.

    A trial under way finishes, so the budget can be overrun by about one fit.
    ``n_jobs`` above 1 runs trials in threads (faster, not reproducible).

    ``clock`` (default ``time.perf_counter``; any callable returning seconds) times
    everything the budget decides on: the phases' ends, each trial's ``duration`` (and so
    the estimate of the guard and final fit), early stopping's deadlines and
    ``elapsed``. Only tests need another one: a fake clock that advances a fixed amount
    per fit makes a budgeted search independent of the machine's speed.

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
    # The ranker among other families is stacked on them: searched after them, with their
    # tuned configurations as its sources. Alone, it keeps its default sources.
    stacks = "ranked" in families and len(families) > 1
    singles = [family for family in families if not (stacks and family == "ranked")]

    budget_end = started + budget_seconds
    phase_end: list[float | None] = [None]  # when the trial under way must stop iterating
    studies: dict[str, optuna.Study] = {}
    with _quiet_optuna():
        for family in families:
            studies[family] = optuna.create_study(
                direction="maximize", study_name=family,
                sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=_STARTUP_TRIALS),
                pruner=optuna.pruners.MedianPruner(n_startup_trials=_PRUNER_STARTUP_TRIALS))
            start = (STACKED_STARTING_POINTS.get(protocol, STARTING_POINTS[family])
                     if family not in singles else STARTING_POINTS.get(family))
            if start is not None:
                studies[family].enqueue_trial(
                    {**start, **reranker_starting_point(validation.knobs)})
        objectives = {family: _objective(family, first, validation, seed,
                                         lambda: phase_end[0], clock)
                      for family in singles}

        def run(family: str, *, n_trials: int | None = None, until: float | None = None
                ) -> None:
            """``n_trials`` trials of ``family``, or trials until the ``clock`` passes
            ``until`` (or the family stops improving)."""
            callbacks = [] if progress is None else [_progress_callback(family, progress)]
            if until is not None:
                callbacks += [_stop_when_stale(STALE_TRIALS), _stop_at(until, clock)]
            studies[family].optimize(objectives[family], n_trials=n_trials, n_jobs=n_jobs,
                                     catch=(Exception,), callbacks=callbacks)

        def search_time_left() -> float:
            reserve = (RESERVED_SHARE * budget_seconds
                       + _finishing_seconds(studies, recheck, len(data) / len(first.train)))
            return max(0.0, budget_end - reserve - clock())

        def stack(*, n_trials: int | None = None, until: float | None = None) -> None:
            searched = pd.DataFrame([row for family in singles
                                     for row in _trial_rows(family, studies[family])])
            sources = stacked_sources(searched, singles)
            if not sources:
                return
            if progress is not None:
                progress(f"ranked: stacked on {[source['model'] for source in sources]}")
            objectives["ranked"] = _objective("ranked", first, validation, seed,
                                              lambda: phase_end[0], clock, {"sources": sources})
            with reusing_fitted_parts():  # every trial refits the same sources
                run("ranked", n_trials=n_trials, until=until)

        if n_trials is not None:
            for family in singles:
                run(family, n_trials=n_trials)
            if stacks:
                stack(n_trials=n_trials)
        else:
            for family in singles:  # 1. screen
                phase_end[0] = clock() + SCREEN_SHARE * search_time_left()
                run(family, n_trials=1)
            stack_time = STACK_SHARE * search_time_left() if stacks else 0.0
            order = _search_order({f: studies[f] for f in singles})  # 2. search, leader last
            weights = [RANK_SHARES[min(rank, len(RANK_SHARES) - 1)]
                       for rank in range(len(order))][::-1]
            for position, family in enumerate(order):
                share = (max(0.0, search_time_left() - stack_time)
                         * weights[position] / sum(weights[position:]))
                if share > 0:
                    phase_end[0] = clock() + share
                    run(family, until=phase_end[0])
            if stacks and search_time_left() > 0:  # 3. stack
                phase_end[0] = clock() + search_time_left()
                stack(until=phase_end[0])
        phase_end[0] = None
    rows = [row for family in families for row in _trial_rows(family, studies[family])]
    trials = pd.DataFrame(rows, columns=["family", "number", "params", "reranker",
                                         "iterations", "value", "state", "duration", "error"])
    trials["iterations"] = trials["iterations"].astype("Int64")

    candidates = _candidates(trials, families, recheck)
    if not candidates:
        failed = trials[trials["error"].notna()]
        reason = (f"; the first failure, {failed.iloc[0]['family']} trial "
                  f"{failed.iloc[0]['number']}: {failed.iloc[0]['error']}"
                  if len(failed) else "")
        raise TailoredError(f"no trial of {families} completed on the first validation "
                            f"fold{reason}")
    if progress is not None:
        progress(f"re-checking the best {len(candidates)} on the second fold")
    for candidate in candidates:
        candidate["second_fold"] = validation.score(
            _candidate(candidate["family"], candidate["params"], candidate["reranker"]),
            second)
        candidate["mean"] = (candidate["first_fold"] + candidate["second_fold"]) / 2
    best = max(candidates, key=lambda c: c["mean"])  # the first (best first fold) on ties

    if progress is not None:
        progress(f"fitting {best['family']} on all {len(data)} events")
    best_model = _candidate(best["family"], best["params"], best["reranker"]).fit(data)
    return TuningResult(
        best_model=best_model, best_name=best["family"], best_params=dict(best["params"]),
        best_reranker=dict(best["reranker"]),
        best_score=float(best["mean"]), metric=validation.name, protocol=protocol,
        trials=trials, second_fold=pd.DataFrame(candidates, columns=[
            "family", "number", "params", "reranker", "first_fold", "second_fold", "mean"]),
        validation={name: _describe(fold) for name, fold in (("first", first),
                                                              ("second", second))},
        budget_seconds=None if n_trials is not None else budget_seconds, n_trials=n_trials,
        seed=seed, elapsed=clock() - started)


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


def _finishing_seconds(studies: dict[str, optuna.Study], recheck: int,
                       growth: float) -> float:
    """Estimated time of the guard and the final fit: one fit on the second fold for each
    of the ``recheck`` configurations it will re-check (as :func:`_candidates` picks
    them: the best of each leading family, then, with fewer families, the next best
    trials; while fewer trials are done, the missing ones like the slowest), and one on
    all the data (``growth`` times the first fold's training events) for the slowest of
    them. A fit is estimated by the duration of its trial (which also paid for its
    validation checks)."""
    ranked = sorted(((trial.value or 0.0, position, trial.number, trial)
                     for position, family in enumerate(studies)
                     for trial in _complete(studies[family])),
                    key=lambda entry: (-entry[0], entry[1], entry[2]))
    leaders: dict[int, int] = {}  # family position: index in ranked of its best trial
    for index, (_, position, _, _) in enumerate(ranked):
        leaders.setdefault(position, index)
    chosen = list(leaders.values())[:recheck]
    chosen += [index for index in range(len(ranked)) if index not in chosen][
        :recheck - len(chosen)]
    durations = [seconds for seconds in (_seconds(ranked[index][3]) for index in chosen)
                 if seconds is not None]
    slowest = max(durations, default=0.0)
    return sum(durations) + (recheck - len(durations)) * slowest + growth * slowest


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
