"""The Optuna machinery of one tuning call: a study per family, the trial objective
(fit on the fold searched, early stopping, the cost model's deadline checks), and the
rules that end a family's search under a budget.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

import numpy as np
import optuna
import pandas as pd

from tailored.dataset import Dataset, Split
from tailored.models import MODELS, Recommender, create
from tailored.pipeline import Pipeline
from tailored.ranking import reusing_fitted_parts

from ..costs import CostModel
from ..search_spaces import (
    EPOCH_FAMILIES,
    ITERATIVE_FAMILIES,
    REFERENCE_SHAPE,
    REQUIREMENTS,
    SEARCH_SPACES,
    STACKED_STARTING_POINTS,
    DataShape,
    SearchSpace,
    blend_space,
    blend_starting_point,
    reranker_space,
    reranker_starting_point,
    starting_point,
)
from .early_stopping import (
    Clock,
    early_stopping_epochs,
    early_stopping_iterations,
    iteration_checkpoints,
)
from .objective import Model, Objective

Progress = Callable[[str], None]

STALE_TRIALS = 20  # with a budget, a family stops after this many trials without a new best
# A stacked composite stops sooner: its parts are fixed and its own space is small, and
# the time it holds goes to the blend after it and to the leftover search. Past the
# startup trials, so its sampler has modelled the space before it gives up.
STACKED_STALE_TRIALS = 8
FAILURES_TO_GIVE_UP = 3  # with a budget, a family whose last trials all fail stops there
_STARTUP_TRIALS = 6  # random trials before TPE models the space
_PRUNER_STARTUP_TRIALS = 3
UNAFFORDABLE_TO_GIVE_UP = 3  # trials in a row predicted not to fit the time left: stop

# A configuration scoring below this share of the best on the first fold is not
# re-checked: to win the mean of both folds it would have to lead by as much on the
# second. Its re-check would only take time from the search (popularity's, on a large
# catalog, as long as a kNN's).
RECHECK_FLOOR = 0.75
# Nor is one trailing the best by more than this many standard errors of their
# difference: on large data, where validation users are many, a share of the best is a
# wide margin, and a re-check on the large second fold costs as much as a search. The
# standard error is bounded as for a metric in [0, 1] with the best's mean (whose
# per-user variance is at most mean x (1 - mean)), the two scores taken as independent.
RECHECK_NOISE = 2.0


@contextmanager
def quiet_optuna() -> Iterator[None]:
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


def stopped_parameter(family: str) -> str | None:
    """The config field early stopping sets for ``family`` (None: not iterative)."""
    if family in EPOCH_FAMILIES:
        return "epochs"
    if family in ITERATIVE_FAMILIES:
        return "iterations"
    return None


def build_candidate(family: str, params: dict[str, Any], reranker: Mapping[str, float]
               ) -> Model:
    """The family's model with ``params``, re-ranked by ``reranker``'s knobs when the
    objective searches any (then always a pipeline, even with every knob at 0)."""
    model = create(family, **params)
    if not reranker:
        return model
    return Pipeline(model, name=family, rerankers=[dict(reranker)])


def first_check_steps(family: str, params: Mapping[str, Any]) -> int | None:
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
    fold_shape = shape_of(fold)
    fitted_periods: dict[str, dict[str, Any]] = {}  # label period: its params

    def scored(trial: optuna.Trial) -> float:
        params = _with_seed(family, {**space(trial, shape), **(fixed or {})}, seed)
        reranker = reranker_space(trial, validation.knobs)
        with_parts = not shared_parts or _label_period(params) not in fitted_periods
        if costs is not None:
            def predicted_seconds() -> float:
                return costs.seconds(family, params, fold_shape, with_parts=with_parts,
                                     steps=first_check_steps(family, params))

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
                    build_candidate(family, params, reranker), fold, validation.name,
                    first=EPOCH_FAMILIES[family], report=report, deadline=deadline(),
                    clock=clock)
            elif family in ITERATIVE_FAMILIES:
                stop = early_stopping_iterations(
                    lambda n: build_candidate(family, {**params, "iterations": n}, reranker), fold,
                    validation.name, params["iterations"], first=ITERATIVE_FAMILIES[family],
                    report=report, deadline=deadline(), clock=clock)
            else:
                value = validation.score(build_candidate(family, params, reranker), fold)
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


def trial_seconds(trial: optuna.trial.FrozenTrial) -> float | None:
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
        seconds = trial_seconds(trial)
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


def worth_rechecking(value: float, best: float, users: int = 0) -> bool:
    """Whether a first-fold ``value`` could still win against the ``best`` one, both
    averaged over ``users`` validation users (``RECHECK_FLOOR``, ``RECHECK_NOISE``)."""
    if best <= 0:
        return True
    if value < RECHECK_FLOOR * best:
        return False
    if users <= 0 or best >= 1:  # no count, or not a metric in [0, 1]: no noise bound
        return True
    return best - value <= RECHECK_NOISE * math.sqrt(2 * best * (1 - best) / users)


def best_candidates(trials: pd.DataFrame, families: list[str], count: int) -> list[dict[str, Any]]:
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
        stopped = stopped_parameter(row.family)
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


def available_families() -> list[str]:
    """The families :func:`tune` searches by default: every one in ``SEARCH_SPACES``
    whose extra requirement (``REQUIREMENTS``, e.g. PyTorch for SASRec) is installed."""
    return [family for family in SEARCH_SPACES
            if family not in REQUIREMENTS
            or importlib.util.find_spec(REQUIREMENTS[family]) is not None]


def requested_families(models: Sequence[str] | None) -> list[str]:
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


class Search:
    """The Optuna studies of one :func:`tune` call, one per family, with their objectives
    on the fold searched, and the rules that end a family's search under a budget."""

    def __init__(self, families: list[str], singles: list[str], fold: Split,
                 validation: Objective, *, shape: DataShape, costs: CostModel, seed: int,
                 protocol: str, n_jobs: int, clock: Clock, progress: Progress | None) -> None:
        self.families, self.singles, self.fold = families, singles, fold
        self.validation, self.shape, self.costs, self.seed = validation, shape, costs, seed
        self.n_jobs, self.clock, self.progress = n_jobs, clock, progress
        self.protocol = protocol
        self.fold_shape = shape_of(fold)
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

    def run(self, family: str, *, n_trials: int | None = None, budgeted: bool = False,
            patience: int = STALE_TRIALS) -> int:
        """``n_trials`` trials of ``family``, or (``budgeted``) trials until the deadline
        passes, the family stops improving (``patience`` trials without a new best) or
        its trials stop fitting the time left. Returns how many trials ran (not counting
        those not started for lack of time)."""
        callbacks = [] if self.progress is None else [_progress_callback(family,
                                                                         self.progress)]
        if budgeted:
            callbacks += [_stop_when_stale(patience),
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
            return self.run(family, n_trials=n_trials, budgeted=budgeted,
                            patience=STACKED_STALE_TRIALS)

    def trials(self, families: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per trial of ``families`` (default: all), as ``TuningResult.trials``."""
        rows = [row for family in (families or self.families)
                for row in _trial_rows(family, self.studies[family])]
        trials = pd.DataFrame(rows, columns=["family", "number", "params", "reranker",
                                             "iterations", "value", "state", "duration",
                                             "error"])
        trials["iterations"] = trials["iterations"].astype("Int64")
        return trials


def complete_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials
            if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]


def search_order(studies: dict[str, optuna.Study]) -> list[str]:
    """Families from the least to the most promising (best first-fold value so far;
    a family without a complete trial counts as the least promising)."""
    def best(family: str) -> float:
        values = [t.value for t in complete_trials(studies[family]) if t.value is not None]
        return max(values, default=-math.inf)

    ranked = sorted(studies, key=lambda family: (-best(family), list(studies).index(family)))
    return ranked[::-1]


def _progress_callback(family: str, progress: Progress) -> Callable[
        [optuna.Study, optuna.trial.FrozenTrial], None]:
    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        try:
            best = f", best {study.best_value:.4f}"
        except ValueError:  # no complete trial yet
            best = ""
        progress(f"{family}: trial {trial.number} {trial.state.name.lower()}{best}")

    return callback


def shape_of(fold: Split) -> DataShape:
    """The shape of a fold's training data, its checks scoring its validation users."""
    return DataShape.of(fold.train, len(fold.test_users))


def start_params(family: str, shape: DataShape, start: Mapping[str, Any] | None = None
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


def _trials_run(study: optuna.Study) -> int:
    """Trials that ran (not waiting, nor pruned before starting for lack of time)."""
    return sum(1 for trial in study.trials if trial.state.is_finished()
               and not trial.user_attrs.get("unaffordable"))


def typical_seconds(study: optuna.Study) -> float:
    """The median time of the study's trials that ran (0 before any)."""
    seconds = [trial_seconds(trial) for trial in study.trials
               if not trial.user_attrs.get("unaffordable")]
    return float(np.median([s for s in seconds if s is not None] or [0.0]))


def rechecked_params(family: str, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """A trial's params as the guard re-checks them: with the count early stopping kept."""
    params = dict(trial.user_attrs.get("params", {}))
    stopped = stopped_parameter(family)
    if stopped is not None and trial.user_attrs.get("iterations") is not None:
        params[stopped] = int(trial.user_attrs["iterations"])
    return params


def scorer_of(model: Model) -> Recommender:
    return model.scorer if isinstance(model, Pipeline) else model


def fit_until(model: Model, data: Dataset, end: float, clock: Clock) -> Model:
    """``model`` fitted on ``data``; an epoch family stops between epochs once the next is
    predicted (by the last one's time) to end past ``end``."""
    scorer = scorer_of(model)
    if getattr(scorer, "name", None) not in EPOCH_FAMILIES:
        return model.fit(data)
    last = {"at": clock()}

    def after_epoch(epoch: int) -> bool:
        now = clock()
        took, last["at"] = now - last["at"], now
        return now + took > end

    scorer.fit(data, after_epoch=after_epoch)  # type: ignore[call-arg]
    return model.fit_stages(data) if isinstance(model, Pipeline) else model
