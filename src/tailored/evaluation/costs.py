"""What a fit costs: the cost model behind the time budget of :func:`~tailored.evaluation.tune`.

A *check* fits a model and scores the validation users once: a trial makes one, an
iterative family (ALS, BPR) one per checkpoint, an epoch family (SASRec) one per epoch.
Its time is ``CHECK_OVERHEAD`` plus the family's *work* on data of a :class:`DataShape`
(a count of elementary steps from the algorithm: ALS does ``iterations x (pairs x
factors + (users + items) x (factors^2 + a solve's fixed cost))``, EASE ``items^3``,
and every family scores ``scored_users x items``) times the family's *rate*, seconds
per unit of work. So one timed check on one fold predicts checks with other parameters
and fits on other data: the second fold, all the data, a subsample of the users.

Rates start from ``REFERENCE_RATES``, measured on MovieLens 100K on two CPU cores. Once
the tuner has timed a family's checks, its rate is the slowest of the last
``RATE_MEMORY`` of them, so a machine shared with others makes the tuner careful rather
than late; checks far smaller than the largest timed (less than ``COMPARABLE_WORK`` of
its work) do not count, since their fixed costs inflate the rate. A family not timed yet
runs at its reference rate times the machine's speed relative to the reference machine,
as the families timed so far show it (the median ratio, kept within ``SPEED_LIMIT``
either way: beyond that, a ratio says more about how the work formula fits that family
than about the machine).

Composite families (``weighted``, ``ranked``) cost their parts, each at its own
family's rate, plus their own work (normalising and adding scores; the ranker's
candidates and trees).

Examples
--------
>>> costs = CostModel()
>>> fold = DataShape(users=751, items=1616, events=80_000, pairs=80_000, scored_users=107)
>>> fifteen = costs.seconds("als", {"factors": 32, "iterations": 15}, fold)
>>> costs.record("als", {"factors": 32, "iterations": 15}, fold, seconds=2 * fifteen)
>>> thirty = costs.seconds("als", {"factors": 32, "iterations": 30}, fold)
>>> round(thirty / fifteen, 1)  # twice as slow as the reference, and twice the iterations
4.0
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
CHECK_OVERHEAD = 0.05  # seconds of every check that no work formula counts (scoring's setup)
_SASREC_STEP_WORK = 5e7  # one optimizer step's fixed overhead, in SASRec's work units
_ALS_SOLVE_WORK = 1e5  # one user's or item's solve in an ALS iteration, beyond its factors
_BPR_SAMPLE_WORK = 64  # drawing one BPR triple, in factor updates
_DENSE_CELL_WORK = 0.5  # a kNN's dense similarity cell (picking neighbours), in steps
_SEQUENCE_WORK = 25  # putting one event in its user's time order, in counted steps
_CANDIDATE_WORK = 0.4  # a source scoring one item for one user, in the ranker's tree work

#: Seconds per unit of work of each family's checks (fit and scoring), measured on
#: MovieLens 100K's validation folds on two CPU cores (the starting points on the first
#: temporal fold: 751 users, 1,616 items, 80,000 ratings, 107 validation users; ALS and
#: BPR over 8-256 factors; the ranker over 20-400 trees on a leave-last-one-out fold). A
#: composite's rate is that of its own work, its parts costing at their families'
#: rates. Other families (sources such as ``trending``) cost like ``popular``.
REFERENCE_RATES: dict[str, float] = {
    "popular": 1.5e-7,
    "item_knn": 2.0e-8,
    "user_knn": 2.0e-8,
    "ease": 9.0e-11,
    "als": 3.0e-10,
    "bpr": 1.9e-9,
    "sasrec": 1.0e-10,
    "transitions": 8.0e-8,
    "weighted": 1.0e-7,
    "ranked": 8.0e-7,
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
    # Co-occurrences (each user's pairs of items), then each item's neighbours picked
    # from dense blocks of similarities.
    return Work(shape.pairs * _history(shape) + _DENSE_CELL_WORK * shape.items ** 2,
                shape.scored_users * (_history(shape) * config.neighbors + shape.items))


def _user_knn_work(config: Any, shape: DataShape, steps: int) -> Work:
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
    "transitions": _transitions_work,
    "weighted": _weighted_work,
    "ranked": _ranked_work,
}

#: The config field that counts a family's iterations or epochs.
STEP_FIELDS: dict[str, str] = {"als": "iterations", "bpr": "iterations", "sasrec": "epochs"}


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

    def __init__(self, reference_rates: Mapping[str, float] | None = None) -> None:
        self._reference = dict(REFERENCE_RATES if reference_rates is None
                               else reference_rates)
        self._measured: dict[str, list[tuple[float, float]]] = {}  # (rate, work) per check

    def work(self, family: str, params: Mapping[str, Any], shape: DataShape, *,
             steps: int | None = None, scored: bool = True) -> float:
        """Units of work of the family's own fit of ``steps`` iterations or epochs
        (default: those in ``params``), plus scoring when ``scored``; parts excluded."""
        config = _config(family, params)
        if steps is None:
            steps = int(getattr(config, STEP_FIELDS.get(family, ""), 1))
        work = WORK.get(family, _popular_work)(config, shape, steps)
        return work.fit + (work.score if scored else 0.0)

    def seconds(self, family: str, params: Mapping[str, Any], shape: DataShape, *,
                steps: int | None = None, scored: bool = True,
                with_parts: bool = True) -> float:
        """Predicted seconds of a fit of ``family`` with ``params`` on data of ``shape``
        (``steps`` iterations or epochs; default: those in ``params``), scoring the
        shape's ``scored_users`` when ``scored``. A composite adds the fits of its parts
        unless ``with_parts`` is false (they are fitted already)."""
        own = CHECK_OVERHEAD + self.rate(family) * self.work(family, params, shape,
                                                             steps=steps, scored=scored)
        if not with_parts:
            return own
        return own + self.parts_seconds(family, params, shape)

    def parts_seconds(self, family: str, params: Mapping[str, Any],
                      shape: DataShape) -> float:
        """Predicted seconds of fitting a composite's parts (0 for a single family)."""
        return sum(self.seconds(part.model, part.params, shape, scored=False)
                   for part in _parts(_config(family, params)))

    def record(self, family: str, params: Mapping[str, Any], shape: DataShape,
               seconds: float, *, steps: int | None = None, scored: bool = True,
               with_parts: bool = True) -> None:
        """Learn the family's rate from a timed fit (arguments as in :meth:`seconds`)."""
        parts = self.parts_seconds(family, params, shape) if with_parts else 0.0
        seconds = max(seconds - parts - CHECK_OVERHEAD, OWN_SHARE_FLOOR * seconds)
        work = self.work(family, params, shape, steps=steps, scored=scored)
        if work > 0 and seconds > 0:
            self._measured.setdefault(family, []).append((seconds / work, work))

    def is_measured(self, family: str) -> bool:
        return family in self._measured

    def rate(self, family: str) -> float:
        """Seconds per unit of the family's work: measured, else the reference rate times
        the machine's :meth:`speed`."""
        measured = self._measured.get(family)
        if measured:
            return _recent_rate(measured)
        return self._reference.get(family, self._reference["popular"]) * self.speed()

    def speed(self) -> float:
        """How much slower than the reference machine this one is (the median over the
        families measured so far, within ``SPEED_LIMIT`` either way; 1 before any)."""
        ratios = [_recent_rate(checks) / self._reference[family]
                  for family, checks in self._measured.items() if family in self._reference]
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
