"""Early stopping of iterative and epoch-checked fits on the validation metric."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from tailored.dataset import Split
from tailored.evaluation.search_spaces import (
    SEARCH_SPACES,
    STARTING_POINTS,
)
from tailored.evaluation.tuning import (
    Objective,
    ValidationMetric,
    early_stopping_epochs,
    early_stopping_iterations,
    iteration_checkpoints,
    tune,
)
from tailored.models import Popular, SASRec, create
from tailored.pipeline import Pipeline

from .fakes import tiny_sasrec_space


def test_checkpoints_double_from_the_first_and_end_at_the_maximum() -> None:
    assert iteration_checkpoints(100, first=25) == [25, 50, 100]
    assert iteration_checkpoints(40, first=25) == [25, 40]
    assert iteration_checkpoints(16) == [2, 4, 8, 16]
    with pytest.raises(ValueError, match="max_iterations"):
        iteration_checkpoints(0)


def _scripted_scores(monkeypatch: pytest.MonkeyPatch, curve: dict[int, float]) -> list[int]:
    """Score a model by its iteration count from ``curve``; return the counts fitted."""
    fitted: list[int] = []

    def score(self: ValidationMetric, model: Any, split: Split) -> float:
        fitted.append(model.config.iterations)
        return curve[model.config.iterations]

    monkeypatch.setattr(ValidationMetric, "score", score)
    return fitted


def test_early_stopping_picks_the_peak_and_stops_after_patience(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    curve = {2: 0.1, 4: 0.3, 8: 0.5, 16: 0.4, 32: 0.45, 64: 0.9, 100: 0.95}
    fitted = _scripted_scores(monkeypatch, curve)
    factory = lambda n: create("als", iterations=n)  # noqa: E731
    stop = early_stopping_iterations(factory, outer, max_iterations=100, patience=2, first=2)
    assert (stop.iterations, stop.score) == (8, 0.5)
    assert fitted == [2, 4, 8, 16, 32]  # two checks without a gain, then no more fits
    assert stop.stopped_early and stop.curve == {n: curve[n] for n in fitted}


def test_early_stopping_keeps_the_earliest_of_equal_peaks_and_reports_each_check(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    _scripted_scores(monkeypatch, {5: 0.2, 10: 0.6, 20: 0.6})
    reports: list[tuple[int, float]] = []
    stop = early_stopping_iterations(lambda n: create("bpr", iterations=n), outer,
                                     max_iterations=20, patience=3, first=5,
                                     report=lambda n, v: reports.append((n, v)))
    assert stop.iterations == 10 and stop.stopped_early
    assert reports == [(5, 0.2), (10, 0.6), (20, 0.6)]


def test_a_report_that_prunes_stops_the_fits(monkeypatch: pytest.MonkeyPatch,
                                             outer: Split) -> None:
    fitted = _scripted_scores(monkeypatch, {4: 0.1, 8: 0.2, 16: 0.3})

    def prune(iterations: int, value: float) -> None:
        raise optuna.TrialPruned()

    with pytest.raises(optuna.TrialPruned):
        early_stopping_iterations(lambda n: create("als", iterations=n), outer,
                                  max_iterations=16, first=4, report=prune)
    assert fitted == [4]


def test_early_stopping_stops_at_the_deadline_by_the_given_clock(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    fitted = _scripted_scores(monkeypatch, {2: 0.1, 4: 0.2, 8: 0.3, 16: 0.4, 32: 0.5})
    now = [0.0]

    def check_takes_its_iterations(iterations: int, value: float) -> None:
        now[0] += iterations  # a check of n iterations takes n seconds

    stop = early_stopping_iterations(lambda n: create("als", iterations=n), outer,
                                     max_iterations=32, first=2, deadline=10.0,
                                     clock=lambda: now[0], report=check_takes_its_iterations)
    # The checks end at 2 and 6 s; the next, of 8 iterations at the last check's 1 s per
    # iteration, would end at 14 s, past the 10 s deadline: it is not started.
    assert fitted == [2, 4] == sorted(stop.curve)
    assert (stop.iterations, stop.score) == (4, 0.2)


def _scripted_epochs(monkeypatch: pytest.MonkeyPatch, curve: list[float]) -> list[int]:
    """Score the model after its n-th check by ``curve[n]``; return the epochs checked."""
    checked: list[int] = []

    def evaluate(self: ValidationMetric, model: Any, split: Split) -> float:
        checked.append(len(checked) + 1)
        return curve[len(checked) - 1]

    monkeypatch.setattr(ValidationMetric, "evaluate", evaluate)
    return checked


def _tiny_sasrec(epochs: int) -> SASRec:
    return SASRec(factors=8, blocks=1, max_length=5, epochs=epochs, threads=1)


def test_epoch_early_stopping_keeps_the_peak_and_stops_the_one_fit(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    checked = _scripted_epochs(monkeypatch, [0.1, 0.3, 0.5, 0.4, 0.45, 0.9, 0.95])
    model = _tiny_sasrec(epochs=7)
    stop = early_stopping_epochs(model, outer, patience=2)
    assert (stop.iterations, stop.score) == (3, 0.5)
    assert checked == [1, 2, 3, 4, 5] and stop.stopped_early
    assert model.config.epochs == 5  # the model says how long it trained


def test_epoch_early_stopping_checks_from_first_and_always_at_the_last_epoch(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    _scripted_epochs(monkeypatch, [0.2, 0.3])
    reports: list[tuple[int, float]] = []
    stop = early_stopping_epochs(_tiny_sasrec(epochs=4), outer, first=3,
                                 report=lambda n, v: reports.append((n, v)))
    assert reports == [(3, 0.2), (4, 0.3)] and stop.iterations == 4
    assert not stop.stopped_early


def test_epoch_early_stopping_stops_at_the_deadline(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    checked = _scripted_epochs(monkeypatch, [0.1, 0.2, 0.3, 0.4, 0.5])
    now = [0.0]

    def epoch_takes_a_second(epoch: int, value: float) -> None:
        now[0] += 1.0

    stop = early_stopping_epochs(_tiny_sasrec(epochs=5), outer, deadline=2.0,
                                 clock=lambda: now[0], report=epoch_takes_a_second)
    assert checked == [1, 2] and stop.iterations == 2


def test_epoch_early_stopping_refuses_a_model_without_epochs(outer: Split) -> None:
    with pytest.raises(TypeError, match="no 'epochs'"):
        early_stopping_epochs(Popular(), outer)


def test_epoch_families_are_tuned_with_early_stopping_and_rechecked_with_the_epochs_found(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    monkeypatch.setitem(SEARCH_SPACES, "sasrec", tiny_sasrec_space)
    monkeypatch.delitem(STARTING_POINTS, "sasrec")
    tuned = tune(outer.train, models=["sasrec", "popular"], n_trials=2, recheck=2)
    rows = tuned.trials[tuned.trials["family"] == "sasrec"]
    assert (rows["state"] == "COMPLETE").all()
    assert rows["iterations"].between(1, 12).all()
    checked = tuned.second_fold.set_index("family").loc["sasrec"]
    best = rows.loc[rows["value"].idxmax()]
    assert checked["params"]["epochs"] == best["iterations"]  # refitted as early stopped
    if tuned.best_name == "sasrec":
        assert tuned.best_model.config.epochs == best["iterations"]


def test_epoch_early_stopping_checks_a_pipeline_around_the_model(outer: Split) -> None:
    pipeline = Pipeline(_tiny_sasrec(4), rerankers=[{"revenue": 0.5}])
    objective = "ndcg@10 + 0.5*revenue@10"
    stop = early_stopping_epochs(pipeline, outer, objective, first=2)
    assert sorted(stop.curve) == [2, 3, 4] and stop.score == max(stop.curve.values())
    assert pipeline.is_fitted  # its catalog was learnt for the first check
    assert stop.curve[4] == pytest.approx(Objective.parse(objective).evaluate(pipeline, outer))
