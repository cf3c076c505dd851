""":func:`tune`: search the families, re-check the best on the second fold, fit the
winner on all the data.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
import pandas as pd

from tailored.dataset import Dataset, Split
from tailored.errors import TailoredError

from ..costs import CostModel
from ..search_spaces import (
    DataShape,
)
from .budget import PREDICTION_MARGIN, Budget, Ledger, finishing_seconds
from .early_stopping import Clock, read_clock
from .objective import Model, Objective, validation_folds
from .phases import FINISHING_SHARE, plan_screen, spend
from .result import TuningResult
from .search import (
    Progress,
    Search,
    best_candidates,
    build_candidate,
    fit_until,
    quiet_optuna,
    rechecked_params,
    requested_families,
    scorer_of,
    shape_of,
    stopped_parameter,
    worth_rechecking,
)
from .stacking import COMPOSITES, stacked_composites, stacked_parts


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
       When the screen would take more than ``PROXY_SHARE`` of the budget on a first
       fold of ``PROXY_FROM_USERS`` users or more, every trial runs on a subsample of its
       users (the validation users first, at least ``MIN_PROXY_USERS``), sized to take
       about that share of what the re-checks and the final fit leave.
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
       mostly costs the LightGBM fit. Kept from it for ``weighted`` (with at least two
       other families): ``BLEND_ROUNDS`` times the blend's predicted first trial, and
       its re-check and final fit. The blend mixes the ``BLENDED_FAMILIES`` best
       (:func:`blended_parts`), first at equal weights, then re-weighted, so a trial
       after the first costs little more than scoring.
       A composite gives up after ``STACKED_STALE_TRIALS`` trials without a new best
       (a single family after ``STALE_TRIALS``). With ``n_trials`` they also run after
       the other families.
    4. *Leftover*: time the stack did not use (a composite that would not fit, or one
       that stopped improving) goes back to the search of phase 2, shared alike.
    5. *Guard and final fit*: held back from the start of each phase, the predicted
       time to re-check the candidates and fit the winner on all of ``data``, plus
       ``RESERVED_SHARE`` of the budget. The best configuration of each of the
       ``recheck`` best families on the first fold (or, with fewer families, the next
       best configurations; none scoring under ``RECHECK_FLOOR`` of the best, or more
       than ``RECHECK_NOISE`` standard errors under it, which could not win) is scored
       on the second fold, and the best mean of both folds wins (after a subsample,
       the best second fold: the subsample's scores are biased by family). A candidate
       whose re-check and final fit would not end within the budget is not re-checked;
       a winner whose final fit would not is refitted with fewer iterations or epochs,
       or the next candidate is, or, as a last resort, the winner fitted on the second
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
    started = read_clock(clock)
    validation = Objective.parse(metric)
    validation.check(data)
    families = requested_families(models)
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
    ledger = Ledger(progress)
    fold, screened = first, singles
    if n_trials is None:
        fold, screened = plan_screen(first, second, singles, shape, costs, budget_seconds,
                                      seed, ledger, recheck)
    second_shape = shape_of(second)  # where candidates are re-checked
    # Validation users whose count bounds a score's noise (none: an unbounded objective).
    noise_users = len(fold.test_users) if validation.bounded else 0

    def finishing_costs(family: str, params: Mapping[str, Any]) -> tuple[float, float]:
        """Predicted seconds of a configuration's re-check and of its fit on all data."""
        return (costs.seconds(family, params, second_shape),
                costs.seconds(family, params, shape, scored=False))

    with quiet_optuna():
        search = Search(families, singles, fold, validation, shape=shape, costs=costs,
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
                rechecks, final = finishing_costs(family, rechecked_params(family, trial))
                if (rechecks + final > FINISHING_SHARE * budget_seconds
                        or PREDICTION_MARGIN * (rechecks + final)
                        > started + budget_seconds - clock()):
                    return math.nan, math.nan
                return rechecks, final

            budget = Budget(started, budget_seconds, clock, lambda: finishing_seconds(
                search.studies, recheck, 1.0, costs=reserved_costs, users=noise_users))
            spend(search, budget, ledger, screened, stacked, finishing_costs)
        search.deadline = lambda: None
    trials = search.trials()
    if budget is not None and not best_candidates(trials, families, 1) \
            and trials["error"].isna().all():
        # Data too large for the budget: the cheapest family, once, is better than nothing.
        cheapest = "popular" if "popular" in singles else singles[0]
        ledger.note(f"no trial finished within the budget; {cheapest} was fitted once at "
                    "its starting point past it")
        search.run(cheapest, n_trials=1)
        trials = search.trials()

    candidates = best_candidates(trials, families, recheck)
    candidates = [c for c in candidates if worth_rechecking(
        c["first_fold"], candidates[0]["first_fold"], noise_users)]
    wanted = len(candidates)
    if budget is not None:  # the next best stand by for those the budget passes over
        candidates += [c for c in best_candidates(trials, families, len(trials))
                       if c not in candidates]
    if not candidates:
        failed = trials[trials["error"].notna()]
        reason = (f"; the first failure, {failed.iloc[0]['family']} trial "
                  f"{failed.iloc[0]['number']}: {failed.iloc[0]['error']}"
                  if len(failed) else "")
        raise TailoredError(f"no trial of {families} completed on the first validation "
                            f"fold{reason}")
    if progress is not None:
        progress(f"re-checking the best {wanted} on the second fold")
    checked, fallback = _recheck(candidates[:wanted] if budget is None else candidates,
                                 wanted, (second, second_shape), fold is not first,
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


def _recheck(candidates: list[dict[str, Any]], wanted: int, second: tuple[Split, DataShape],
             proxied: bool, validation: Objective, costs: CostModel,
             budget: Budget | None, ledger: Ledger, clock: Clock,
             finishing_costs: Callable[[str, Mapping[str, Any]], tuple[float, float]]
             ) -> tuple[list[dict[str, Any]], Model | None]:
    """Score up to ``wanted`` candidates, in order, on the ``second`` fold (and its
    shape); under a ``budget``, only those whose re-check, and then the slowest final fit
    of those re-checked, are predicted to end within it (the same family's next best
    configuration stands in for one passed over, else the next candidate). A
    candidate's ``mean`` is that of its scores on both folds, or, when the
    search ran on a subsample of the users (``proxied``), its second fold's alone: the
    subsample's models learn from fewer users, which biases its scores by family. Returns
    the re-checked candidates (with ``first_fold``, ``second_fold`` and ``mean``; the
    best first-fold candidate alone, scored by its first fold, when none could be) and
    the model of the best mean as fitted on the second fold (None if none)."""
    fold, fold_shape = second
    checked: list[dict[str, Any]] = []
    fallback: Model | None = None
    slowest_final = 0.0
    meant = candidates[:wanted]  # those the guard was to re-check; the rest stand in
    queue = list(candidates)
    while queue and len(checked) < wanted:
        candidate = queue.pop(0)
        family, params = candidate["family"], candidate["params"]
        rechecks, final = finishing_costs(family, params)
        needed = PREDICTION_MARGIN * (rechecks + max(final, slowest_final))
        if budget is not None and needed > budget.left():
            # A costlier configuration than its family's next best (searched on a
            # subsample, say): that one, if it fits, stands in for it first.
            same = next((c for c in queue if c["family"] == family), None)
            if same is not None:
                queue.remove(same)
                queue.insert(0, same)
            if candidate in meant:
                ledger.note(f"{family} (trial {candidate['number']}) not re-checked: its "
                            f"re-check and a final fit would take about {needed:.1f} s, "
                            f"{max(0.0, budget.left()):.1f} s are left")
                ledger.spent("recheck", family, rechecks, 0.0, 0)
            continue
        began = clock()
        model = build_candidate(family, params, candidate["reranker"])
        candidate["second_fold"] = validation.score(model, fold)
        costs.record(family, params, fold_shape, clock() - began)
        candidate["mean"] = (candidate["second_fold"] if proxied else
                             (candidate["first_fold"] + candidate["second_fold"]) / 2)
        if budget is not None:
            ledger.spent("recheck", family, rechecks, clock() - began, 1)
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
                costs: CostModel, budget: Budget | None, ledger: Ledger,
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
            return candidate, build_candidate(family, params, candidate["reranker"]).fit(data)
        predicted = costs.seconds(family, params, shape, scored=False) * PREDICTION_MARGIN
        left, stopped = budget.left(), stopped_parameter(family)
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
        model = fit_until(build_candidate(family, params, candidate["reranker"]), data,
                           budget.end, budget.clock)
        ledger.spent("final fit", family, predicted, budget.clock() - began, 1)
        stopped_at = getattr(scorer_of(model).config, stopped or "", None)
        if stopped is not None and stopped_at is not None and stopped_at != params[stopped]:
            ledger.note(f"{family}'s final fit stopped at {stopped_at} {stopped} at the "
                        "end of the budget")
            params[stopped] = stopped_at
        return {**candidate, "params": params}, model
    if fallback is None:  # nothing fits, nothing was re-checked: the cheapest, late
        candidate = min(ranked, key=lambda c: costs.seconds(c["family"], c["params"], shape))
        ledger.note(f"the data is too large for the budget: {candidate['family']} is "
                    "fitted on all data past it")
        return candidate, build_candidate(candidate["family"], candidate["params"],
                                     candidate["reranker"]).fit(data)
    ledger.note(f"the data is too large for the budget: {ranked[0]['family']} is returned "
                "as fitted on the second validation fold's training data, not on all data")
    return ranked[0], fallback


def _describe(fold: Split) -> dict[str, Any]:
    return {"name": fold.name, "train_events": len(fold.train),
            "test_users": len(fold.test_users), "relevant_pairs": len(fold.truth)}
