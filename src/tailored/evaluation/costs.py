"""What a fit costs: the cost model behind the time budget of :func:`~tailored.evaluation.tune`.

A *check* fits a model and scores the validation users once: a trial makes one, an
iterative family (ALS, BPR) one per checkpoint, an epoch family (SASRec, LightGCN) one
per epoch. Its time is the family's *overhead* (a check's fixed cost: setting up the fit
and the scoring) plus its *work* on data of a :class:`DataShape` (a count of elementary
steps from the algorithm: ALS does ``iterations x (pairs x factors + (users + items) x
(factors^2 + a solve's fixed cost))``, EASE ``items^3``, and every family scores
``scored_users x items``) times the family's *rate*, seconds per unit of work. So one
timed check on one fold predicts checks with other parameters and fits on other data:
the second fold, all the data, a subsample of the users. Without the overhead, a check
on small data would set a rate that predicts large data several times too slow.

Overheads and rates start from ``REFERENCES``, fitted by ``benchmarks/cost_model.py`` to
fits and checks on folds from MovieLens 100K's to a 50,000-item shop's on two CPU cores,
as is the weight of each family's scoring work against its fit's. Once the tuner has
timed a family's checks, its rate is the slowest of the last ``RATE_MEMORY`` of them
(net of the overhead), so a machine shared with others makes the tuner careful rather
than late; checks far smaller than the largest timed (less than ``COMPARABLE_WORK`` of
its work) do not count, since fixed costs the overhead does not cover still inflate
their rate. A family not timed yet runs at its reference rate times the machine's speed
relative to the reference machine, as the families timed so far show it (the median
ratio, kept within ``SPEED_LIMIT`` either way: beyond that, a ratio says more about how
the work formula fits that family than about the machine).

Composite families (``weighted``, ``ranked``) cost their parts, each at its own
family's rate (the ranker's twice, ``PART_FITS``), plus their own work (normalising and
adding scores; the ranker's candidates and trees).

Examples
--------
>>> costs = CostModel()
>>> fold = DataShape(users=751, items=1616, events=80_000, pairs=80_000, scored_users=107)
>>> fifteen = costs.seconds("als", {"factors": 32, "iterations": 15}, fold)
>>> costs.record("als", {"factors": 32, "iterations": 15}, fold, seconds=2 * fifteen)
>>> thirty = costs.seconds("als", {"factors": 32, "iterations": 30}, fold)
>>> round(thirty / fifteen, 1)  # twice as slow, twice the iterations, scored once
3.1
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError

import tailored.ranking  # noqa: F401  (registers the composite families)
from tailored.models import MODELS

from .search_spaces import DataShape

RATE_MEMORY = 3  # checks of a family whose slowest rate predicts the next
COMPARABLE_WORK = 0.25  # of the largest check's work, the least a check needs to count
SPEED_LIMIT = 4.0  # most the machine's speed may differ from the reference machine's
OWN_SHARE_FLOOR = 0.1  # of a composite's measured time, at least this much is its own
_SASREC_STEP_WORK = 5e7  # one optimizer step's fixed overhead, in SASRec's work units
_ALS_SOLVE_WORK = 1e5  # one user's or item's solve in an ALS iteration, beyond its factors
_LIGHTGCN_TABLE_WORK = 300  # a step's update of one embedding entry, in propagation steps
_BPR_SAMPLE_WORK = 64  # drawing one BPR triple, in factor updates
_DENSE_CELL_WORK = 0.5  # a dense cell of user-kNN's similarities (picking neighbours), in steps
_SEQUENCE_WORK = 25  # putting one event in its user's time order, in counted steps
_CANDIDATE_WORK = 0.4  # a source scoring one item for one user, in the ranker's tree work
# Fits of each part in a composite's fit: the ranker fits its sources on the events
# before its labels (to learn), then on all of them (to serve).
PART_FITS = {"ranked": 2}


class Reference(NamedTuple):
    """A family's costs on the reference machine."""

    overhead: float  # seconds of a check (or a fit) that its work does not count
    rate: float  # seconds per unit of work
    scoring: float  # what a unit of the formula's scoring work weighs against its fit's


#: Each family's costs, fitted to its starting point's fits and checks on validation
#: folds from MovieLens 100K's (625 users, 1,561 items, 64,000 ratings, 102 validation
#: users) to a 50,000-item shop's (19,222 users, 19,576 items, 224,000 events, 3,825
#: validation users) on two CPU cores (``benchmarks/cost_model.py``). A composite's are
#: those of its own work, its parts costing at their families' rates (fitted on
#: MovieLens 100K: the ranker over 20-400 trees on a leave-last-one-out fold). Other
#: families (sources such as ``trending``) cost like ``popular``.
REFERENCES: dict[str, Reference] = {
    "popular": Reference(0.01, 6.9e-8, 0.26),
    "item_knn": Reference(0.05, 1.1e-8, 1.2),
    "user_knn": Reference(0.01, 1.9e-8, 0.84),
    "ease": Reference(0.06, 3.1e-11, 14.0),
    "als": Reference(0.1, 7.9e-12, 64.0),
    "bpr": Reference(0.01, 1.3e-9, 0.37),
    "sasrec": Reference(0.6, 3.4e-11, 0.17),
    "lightgcn": Reference(0.04, 5.1e-11, 5.6),
    "transitions": Reference(0.01, 1.0e-7, 0.18),
    "weighted": Reference(0.05, 1.0e-7, 1.0),
    "ranked": Reference(0.05, 8.0e-7, 1.0),
}


class Work(NamedTuple):
    """Units of work of one fit and of scoring the validation users once."""

    fit: float
    score: float


WorkFunction = Callable[[Any, DataShape, int], Work]


def _history(shape: DataShape) -> float:
    return shape.pairs / max(shape.users, 1)


def _popular_work(config: Any, shape: DataShape, steps: int) -> Work:
    return Work(shape.pairs + shape.items, shape.scored_users * shape.items)


def _item_knn_work(config: Any, shape: DataShape, steps: int) -> Work:
    # Co-occurrences (each user's pairs of items), among which each item's neighbours
    # are picked.
    return Work(shape.pairs * _history(shape),
                shape.scored_users * (_history(shape) * config.neighbors + shape.items))


def _user_knn_work(config: Any, shape: DataShape, steps: int) -> Work:
    # Users sharing an item, then each user's neighbours picked; on skewed data, where
    # the users of popular items pair up, the dense term tracks the pairs better.
    return Work(shape.pairs * shape.item_popularity + _DENSE_CELL_WORK * shape.users ** 2,
                shape.scored_users * (_history(shape) * config.neighbors + shape.items))


def _ease_work(config: Any, shape: DataShape, steps: int) -> Work:
    # The dense items x items inverse dominates; a history times the dense weights scores.
    return Work(shape.items ** 3 + shape.pairs * _history(shape),
                shape.scored_users * shape.items * (_history(shape) + 1))


def _als_work(config: Any, shape: DataShape, steps: int) -> Work:
    # Each user's and item's solve has a fixed cost that outweighs its factors up to
    # about a hundred of them (implicit's conjugate gradient, two cores).
    factors = config.factors
    per_iteration = (shape.pairs * factors
                     + (shape.users + shape.items) * (factors ** 2 + _ALS_SOLVE_WORK))
    return Work(steps * per_iteration, shape.scored_users * shape.items * factors)


def _bpr_work(config: Any, shape: DataShape, steps: int) -> Work:
    # Sampling a triple costs about as much as updating 64 factors.
    return Work(steps * shape.pairs * (config.factors + _BPR_SAMPLE_WORK),
                shape.scored_users * shape.items * config.factors)


def _sasrec_work(config: Any, shape: DataShape, steps: int) -> Work:
    length, factors = config.max_length, config.factors
    windows = shape.events / length + shape.users  # each history cut into windows
    encoder = config.blocks * (12 * factors ** 2 + 4 * length * factors)  # per position
    softmax = shape.items * factors if config.negatives == 0 else config.negatives * factors
    per_epoch = (windows * length * encoder + shape.events * softmax * 3
                 + windows / config.batch_size * _SASREC_STEP_WORK)
    return Work(steps * per_epoch,
                shape.scored_users * (length * encoder + shape.items * factors))


def _lightgcn_work(config: Any, shape: DataShape, steps: int) -> Work:
    # Every step propagates over the whole graph (two sparse products a layer, forward and
    # back) and updates the whole embedding table; an epoch takes pairs / batch steps, and
    # each check propagates once more.
    propagation = 2 * config.layers * shape.pairs * config.factors
    table = (shape.users + shape.items) * config.factors
    per_step = 3 * propagation + _LIGHTGCN_TABLE_WORK * table
    return Work(steps * math.ceil(shape.pairs / config.batch_size) * per_step + propagation,
                shape.scored_users * shape.items * config.factors)


def _transitions_work(config: Any, shape: DataShape, steps: int) -> Work:
    # Ordering every user's events outweighs counting the window's steps after each.
    return Work(shape.events * (_SEQUENCE_WORK + config.window),
                2 * shape.scored_users * shape.items)


def _weighted_work(config: Any, shape: DataShape, steps: int) -> Work:
    parts = len(config.parts)  # normalise and add each part's scores
    return Work(parts * shape.pairs, parts * shape.scored_users * shape.items)


def _ranked_work(config: Any, shape: DataShape, steps: int) -> Work:
    # Every source scores every item for the label users, whose features are built; each
    # tree costs about the root of the rows it sees per user (LightGBM's histograms).
    scoring = _CANDIDATE_WORK * len(config.sources) * shape.items
    label_users = min(shape.users, config.max_train_users)
    trees = getattr(config, "n_estimators", 1)
    proposed = sum(source.n for source in config.sources)
    return Work(label_users * (scoring + trees * math.sqrt(config.negatives + 1)),
                shape.scored_users * (scoring + proposed * trees / 100))


#: Each family's work (fit, scoring) on data of a shape, given its config and the
#: iterations or epochs of the fit.
WORK: dict[str, WorkFunction] = {
    "popular": _popular_work,
    "item_knn": _item_knn_work,
    "user_knn": _user_knn_work,
    "ease": _ease_work,
    "als": _als_work,
    "bpr": _bpr_work,
    "sasrec": _sasrec_work,
    "lightgcn": _lightgcn_work,
    "transitions": _transitions_work,
    "weighted": _weighted_work,
    "ranked": _ranked_work,
}

#: The config field that counts a family's iterations or epochs.
STEP_FIELDS: dict[str, str] = {"als": "iterations", "bpr": "iterations", "sasrec": "epochs",
                               "lightgcn": "epochs"}


def _config(family: str, params: Mapping[str, Any]) -> BaseModel | None:
    """The family's validated config (its defaults where ``params`` is invalid: the
    trial will fail on its own; None for an unregistered family)."""
    model = MODELS.get(family)
    if model is None:
        return None
    try:
        return model.Config(**params)
    except (ValidationError, TypeError):
        return model.Config()


def _parts(config: BaseModel | None) -> list[Any]:
    """A composite's parts (a hybrid's ``parts``, a ranker's ``sources``)."""
    for field in ("parts", "sources"):
        if config is not None and hasattr(config, field):
            return list(getattr(config, field))
    return []


class CostModel:
    """Seconds of a family's checks and fits, from work and measured rates (see the
    module's docstring). Not thread-safe beyond what appending to lists is.
    """

    def __init__(self, references: Mapping[str, Reference] | None = None) -> None:
        self._references = dict(REFERENCES if references is None else references)
        self._measured: dict[str, list[tuple[float, float]]] = {}  # (rate, work) per check

    def reference(self, family: str) -> Reference:
        return self._references.get(family, self._references["popular"])

    def split_work(self, family: str, params: Mapping[str, Any], shape: DataShape, *,
                   steps: int | None = None) -> Work:
        """Units of work of the family's own fit of ``steps`` iterations or epochs
        (default: those in ``params``) and of scoring once, as the formula counts them."""
        config = _config(family, params)
        if steps is None:
            steps = int(getattr(config, STEP_FIELDS.get(family, ""), 1))
        return WORK.get(family, _popular_work)(config, shape, steps)

    def work(self, family: str, params: Mapping[str, Any], shape: DataShape, *,
             steps: int | None = None, scored: bool = True) -> float:
        """Units of work of the family's own fit, plus scoring (at its weight) when
        ``scored``; parts excluded."""
        work = self.split_work(family, params, shape, steps=steps)
        return work.fit + (self.reference(family).scoring * work.score if scored else 0.0)

    def seconds(self, family: str, params: Mapping[str, Any], shape: DataShape, *,
                steps: int | None = None, scored: bool = True,
                with_parts: bool = True) -> float:
        """Predicted seconds of a fit of ``family`` with ``params`` on data of ``shape``
        (``steps`` iterations or epochs; default: those in ``params``), scoring the
        shape's ``scored_users`` when ``scored``. A composite adds the fits of its parts
        unless ``with_parts`` is false (they are fitted already)."""
        own = self.overhead(family) + self.rate(family) * self.work(
            family, params, shape, steps=steps, scored=scored)
        if not with_parts:
            return own
        return own + self.parts_seconds(family, params, shape)

    def parts_seconds(self, family: str, params: Mapping[str, Any],
                      shape: DataShape) -> float:
        """Predicted seconds of fitting a composite's parts (0 for a single family)."""
        return PART_FITS.get(family, 1) * sum(
            self.seconds(part.model, part.params, shape, scored=False)
            for part in _parts(_config(family, params)))

    def record(self, family: str, params: Mapping[str, Any], shape: DataShape,
               seconds: float, *, steps: int | None = None, scored: bool = True,
               with_parts: bool = True) -> None:
        """Learn the family's rate from a timed fit (arguments as in :meth:`seconds`)."""
        parts = self.parts_seconds(family, params, shape) if with_parts else 0.0
        seconds = max(seconds - parts - self.overhead(family), OWN_SHARE_FLOOR * seconds)
        work = self.work(family, params, shape, steps=steps, scored=scored)
        if work > 0 and seconds > 0:
            self._measured.setdefault(family, []).append((seconds / work, work))

    def is_measured(self, family: str) -> bool:
        return family in self._measured

    def overhead(self, family: str) -> float:
        """Seconds of a check of the family that its work does not count."""
        return self.reference(family).overhead

    def rate(self, family: str) -> float:
        """Seconds per unit of the family's work: measured, else the reference rate times
        the machine's :meth:`speed`."""
        measured = self._measured.get(family)
        if measured:
            return _recent_rate(measured)
        return self.reference(family).rate * self.speed()

    def speed(self) -> float:
        """How much slower than the reference machine this one is (the median over the
        families measured so far, within ``SPEED_LIMIT`` either way; 1 before any)."""
        ratios = [_recent_rate(checks) / self._references[family].rate
                  for family, checks in self._measured.items() if family in self._references]
        if not ratios:
            return 1.0
        return min(SPEED_LIMIT, max(1 / SPEED_LIMIT, statistics.median(ratios)))


def _recent_rate(checks: list[tuple[float, float]]) -> float:
    """The slowest rate of the last ``RATE_MEMORY`` checks among those of a comparable
    size: a check with less than ``COMPARABLE_WORK`` of the largest work timed says more
    about fixed costs (setting up a fit, a pass over the users) than about the rate, and
    would make larger fits look several times slower than they are."""
    largest = max(work for _, work in checks)
    comparable = [rate for rate, work in checks if work >= COMPARABLE_WORK * largest]
    return max(comparable[-RATE_MEMORY:])
