"""Retraining on a schedule or on a drift alert, promoting only what is not worse.

:func:`retrain` fits a candidate on everything in the store and registers it; it is
promoted only if, on one temporal split of the current events, the candidate's recipe
scores at least as well (``metric``, within ``tolerance``) as the recipe of the version
serving now, both fitted on the same training part. Both figures go into the registry
details of the new version (``details.retrain``), promoted or not.

:func:`run_worker` is the loop behind ``tailored train --schedule 1h``: every ``poll`` it
replays the drift detectors (new alerts are written to the store), and retrains when the
interval since the newest registered version has passed or an unhandled alert waits;
the alerts are then marked handled by that retraining. It also retrains for erasures
(:mod:`tailored.jobs.erase`) whose users a serving model still carries at item level,
once the oldest is half of ``erasure_retrain_hours`` old: erasures made meanwhile share
the retraining, and the other half is left for it to run. Each round first applies the
settings' data retention (:mod:`tailored.jobs.retention`), when any is set.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from tailored.dataset import Dataset, temporal_split
from tailored.evaluation import evaluate_model
from tailored.jobs.retention import apply_retention
from tailored.jobs.train import register_model
from tailored.monitoring.drift import DriftConfig, check_drift
from tailored.pipeline import Recipe
from tailored.settings import Settings
from tailored.store import ModelVersion, Store

Progress = Callable[[str], None]
Reason = Literal["schedule", "drift", "erasure", "manual"]
DEFAULT_METRIC = "ndcg@10"

_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_interval(text: str) -> timedelta:
    """``90s``, ``30m``, ``1h``, ``1.5d`` or ``1w`` as a timedelta.

    Examples
    --------
    >>> parse_interval("1h")
    datetime.timedelta(seconds=3600)
    >>> parse_interval("30m") == timedelta(minutes=30)
    True
    """
    match = _INTERVAL.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not an interval: write a positive number and a unit, "
                         "s, m, h, d or w (e.g. 30m, 1h, 1d)")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


@dataclass(frozen=True)
class RetrainOutcome:
    """One retraining: the new version, what it was compared with, and the decision."""

    reason: Reason
    candidate: ModelVersion
    incumbent: ModelVersion | None
    metric: str
    candidate_score: float | None
    incumbent_score: float | None
    promoted: bool
    decision: str


def _recipe_of(version: ModelVersion | None) -> Recipe | None:
    recorded = None if version is None else version.details.get("recipe")
    return None if recorded is None else Recipe.model_validate(recorded)


def default_recipe(store: Store, settings: Settings) -> Recipe:
    """What to retrain: the serving version's recipe, else the settings' model family."""
    recipe = _recipe_of(store.models.active())
    if recipe is not None:
        return recipe
    return Recipe.of(settings.model)


def retrain(store: Store, settings: Settings, recipe: Recipe | None = None, *,
            reason: Reason = "manual", metric: str = DEFAULT_METRIC, tolerance: float = 0.0,
            alert_ids: tuple[int, ...] = (), progress: Progress | None = None) -> RetrainOutcome:
    """Fit ``recipe`` on every event, register it, and promote it unless it is worse.

    Parameters
    ----------
    recipe
        The candidate; by default the serving version's recipe (fresh data, same recipe).
    metric
        The offline figure compared, e.g. ``ndcg@10`` or ``recall@10``.
    tolerance
        How much lower (relative) the candidate may score and still be promoted; 0 means
        it must score at least as well as the serving version's recipe.
    """
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), not {tolerance}")
    step = progress or (lambda _message: None)
    recipe = recipe or default_recipe(store, settings)
    incumbent = store.models.active()
    step("reading the store")
    read_at, seen = datetime.now(UTC), store.privacy.last_erasure_id()
    data = Dataset.from_store(store, settings.event_weights)
    if len(data) == 0:
        raise ValueError("the store holds no events to train on; import some first")
    split = temporal_split(data)
    k = int(metric.partition("@")[2] or 10)
    candidate_metrics: dict[str, float] = {}
    incumbent_metrics: dict[str, float] = {}
    incumbent_how = "none"
    if split.test_users:
        step(f"validating {recipe.name} on a temporal split")
        candidate_metrics = evaluate_model(recipe.build(), split, k).metrics
        incumbent_recipe = _recipe_of(incumbent)
        if incumbent is not None and incumbent_recipe == recipe:
            # The same recipe fitted on the same training part scores the same.
            incumbent_metrics, incumbent_how = dict(candidate_metrics), "same recipe"
        elif incumbent_recipe is not None:
            step(f"validating the serving version {incumbent.version if incumbent else ''}")
            incumbent_metrics = evaluate_model(incumbent_recipe.build(), split, k).metrics
            incumbent_how = "its recipe refitted on the same training part"
        elif incumbent is not None:
            incumbent_metrics, incumbent_how = dict(incumbent.metrics), "metrics it recorded"
    if metric not in candidate_metrics and split.test_users:
        raise ValueError(f"{metric!r} is not an offline metric; there are "
                         f"{', '.join(sorted(candidate_metrics))}")
    candidate_score = candidate_metrics.get(metric)
    incumbent_score = incumbent_metrics.get(metric)
    promote, decision = _decide(incumbent, candidate_score, incumbent_score, metric, tolerance)
    if reason == "erasure" and not promote:  # the law before the metric
        promote, decision = True, ("promoted: the serving version still carries erased "
                                   f"users ({decision})")

    step(f"fitting {recipe.name} on {len(data):,} events")
    pipeline = recipe.build().fit(data)
    version = register_model(store, settings, recipe, pipeline, data, candidate_metrics,
                             promote=promote, details={"retrain": {
                                 "reason": reason, "metric": metric, "tolerance": tolerance,
                                 "split": {"name": split.name,
                                           "test_users": len(split.test_users)},
                                 "candidate": candidate_metrics,
                                 "incumbent": {
                                     "version": None if incumbent is None else incumbent.version,
                                     "how": incumbent_how, "metrics": incumbent_metrics},
                                 "promoted": promote, "decision": decision,
                                 "alerts": list(alert_ids)}}, erasures_seen=seen)
    if promote:  # the serving model no longer carries anyone erased before the read
        store.privacy.mark_retrained(read_at)
    step(decision)
    return RetrainOutcome(reason, version, incumbent, metric, candidate_score, incumbent_score,
                          promote, decision)


def _decide(incumbent: ModelVersion | None, candidate: float | None, serving: float | None,
            metric: str, tolerance: float) -> tuple[bool, str]:
    if incumbent is None:
        return True, "promoted: no version was serving"
    if candidate is None:
        return False, (f"kept version {incumbent.version}: too few events for a temporal "
                       "split to compare on")
    if serving is None:
        return True, (f"promoted: version {incumbent.version} has no {metric} to compare "
                      "with")
    if candidate >= serving * (1 - tolerance):
        return True, (f"promoted: {metric} {candidate:.4f} against {serving:.4f} for "
                      f"version {incumbent.version}")
    return False, (f"kept version {incumbent.version}: {metric} {candidate:.4f} is below its "
                   f"{serving:.4f}")


def _newest_version_at(store: Store) -> datetime | None:
    versions = store.models.list()
    return max((v.created_at for v in versions), default=None)


def _poll(store: Store, settings: Settings, recipe: Recipe | None, *, now: datetime,
          every: timedelta | None, on_drift: bool, drift: DriftConfig | None, metric: str,
          tolerance: float, progress: Progress) -> RetrainOutcome | None:
    """One round of the worker: check for drift, retrain if due or alerted."""
    alerts = []
    if on_drift:
        report = check_drift(store, drift)
        for alert in report.new_alerts:
            progress(f"drift alert: {alert.message}")
        alerts = store.alerts.list(unhandled=True)
    newest = _newest_version_at(store)
    due = every is not None and (newest is None or now - newest >= every)
    erasures = _erasures_due(store, settings, now)
    if not (due or alerts or erasures):
        return None
    reason: Reason = "erasure" if erasures else "drift" if alerts else "schedule"
    ids = tuple(a.alert_id for a in alerts)
    outcome = retrain(store, settings, recipe, reason=reason, metric=metric,
                      tolerance=tolerance, alert_ids=ids, progress=progress)
    store.alerts.mark_handled(ids, f"retraining to version {outcome.candidate.version} "
                                   f"({outcome.decision})")
    return outcome


def _erasures_due(store: Store, settings: Settings, now: datetime) -> bool:
    """Whether the oldest erasure still waiting for a retraining is half the bound old."""
    pending = store.privacy.erasures(pending=True)
    half = timedelta(hours=settings.erasure_retrain_hours / 2)
    return any(now - erasure.erased_at >= half for erasure in pending)


def _retain(store: Store, settings: Settings, *, now: datetime, progress: Progress) -> None:
    """Apply the settings' retention limits (if any) before a round, so a retraining
    learns only from what may be kept; report what was deleted."""
    if (settings.retention_days is None and settings.served_retention_days is None
            and settings.keep_versions is None and settings.events_without_consent == "keep"):
        return
    report = apply_retention(store, settings, now=now)
    if any(report.counts.values()):
        progress(report.summary())


def run_worker(store: Store, settings: Settings, recipe: Recipe | None = None, *,
               every: timedelta | None = None, on_drift: bool = True,
               drift: DriftConfig | None = None, metric: str = DEFAULT_METRIC,
               tolerance: float = 0.0, poll: timedelta = timedelta(minutes=1),
               iterations: int | None = None,
               clock: Callable[[], datetime] = lambda: datetime.now(UTC),
               sleep: Callable[[float], None] = time.sleep,
               progress: Progress | None = None) -> list[RetrainOutcome]:
    """Retrain every ``every`` (counted from the newest registered version, so a restart
    keeps the rhythm) and, with ``on_drift``, whenever a drift alert is unhandled.

    Runs until interrupted, or for ``iterations`` polls; returns the retrainings made.
    Running without ``iterations``, a round that fails (the store unreachable, too few
    events) is reported through ``progress`` and tried again at the next poll; with
    ``iterations`` (tests, one-off runs) the error is raised.
    """
    if every is None and not on_drift:
        raise ValueError("nothing would trigger a retraining: give an interval, or on_drift")
    step = progress or (lambda _message: None)
    outcomes: list[RetrainOutcome] = []
    done = 0
    while iterations is None or done < iterations:
        try:
            _retain(store, settings, now=clock(), progress=step)
            outcome = _poll(store, settings, recipe, now=clock(), every=every,
                            on_drift=on_drift, drift=drift, metric=metric,
                            tolerance=tolerance, progress=step)
        except Exception as error:  # a worker outlives one bad round (store down, ...)
            step(f"this round failed, trying again next time: {type(error).__name__}: "
                 f"{error}")
            if iterations is not None:
                raise
            outcome = None
        if outcome is not None:
            outcomes.append(outcome)
        done += 1
        if iterations is None or done < iterations:
            sleep(poll.total_seconds())
    return outcomes
