"""Early stopping on the validation metric: iterative families (ALS, BPR) are checked
at doubling iteration counts, epoch families (SASRec, LightGCN) after every epoch, and
stop once the metric stops improving or the deadline nears.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass

from tailored.dataset import Split
from tailored.pipeline import Pipeline

from .objective import Model, Objective

Clock = Callable[[], float]  # seconds, e.g. time.perf_counter
_PATIENCE = 2  # checkpoints without improvement before an iterative fit stops
_EPOCH_PATIENCE = 5  # epochs without improvement before an epoch-checked fit stops


def _check_clock(clock: Clock) -> None:
    if not callable(clock):
        raise TypeError(f"clock must be a callable returning seconds (e.g. time.perf_counter), "
                        f"got {clock!r}")


def read_clock(clock: Clock) -> float:
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
