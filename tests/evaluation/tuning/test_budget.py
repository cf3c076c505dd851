"""The budget is a promise: the finishing estimate, slow fits, overruns avoided."""

from __future__ import annotations

import json

import pytest

from tailored.dataset import Split, temporal_split
from tailored.evaluation.costs import CostModel
from tailored.evaluation.search_spaces import (
    DataShape,
)
from tailored.evaluation.tuning import budget as tuning_budget
from tailored.evaluation.tuning import phases as tuning_phases
from tailored.evaluation.tuning import search as tuning_search
from tailored.evaluation.tuning import (
    tune,
)
from tailored.evaluation.tuning import tuner as tuning_tuner
from tailored.evaluation.tuning.objective import Objective
from tailored.testing import checkerboard

from .fakes import FakeClock, study_with


def test_the_finishing_estimate_counts_the_leaders_refits() -> None:
    studies = {"fast": study_with(0.1, 1.0), "slow": study_with(0.4, 10.0),
               "mid": study_with(0.35, 2.0)}
    # The two leaders (slow, mid) are re-checked once each; the slowest of them is
    # then fitted on 1.25 times the data.
    assert tuning_budget.finishing_seconds(studies, recheck=2, growth=1.25) == pytest.approx(
        10.0 + 2.0 + 1.25 * 10.0)
    assert tuning_budget.finishing_seconds(studies, recheck=1, growth=1.0) == pytest.approx(20.0)


def test_the_finishing_estimate_counts_every_recheck_the_guard_will_make() -> None:
    # With fewer families than re-checks, the guard re-checks the next best trials too.
    studies = {"a": study_with(0.5, 3.0, (0.2, 7.0), (0.4, 1.0)), "b": study_with(0.45, 2.0)}
    assert tuning_budget.finishing_seconds(studies, recheck=3, growth=1.0) == pytest.approx(
        3.0 + 2.0 + 1.0 + 3.0)
    # With fewer trials done than re-checks, the missing ones count like the slowest.
    studies = {"a": study_with(0.5, 3.0, (0.4, 1.0))}
    assert tuning_budget.finishing_seconds(studies, recheck=3, growth=1.0) == pytest.approx(
        3.0 + 1.0 + 3.0 + 3.0)
    # A trial timed by the tuner's clock counts by that clock, not by Optuna's wall time.
    studies = {"a": study_with(0.5, 10.0, clock_seconds=4.0)}
    assert tuning_budget.finishing_seconds(studies, recheck=1, growth=1.0) == pytest.approx(8.0)


@pytest.mark.parametrize(("fit_seconds", "models", "budget"), [
    ({"als": 5.0, "ease": 3.0}, ["popular", "ease", "als"], 20),
    ({"als": 8.0, "bpr": 8.0}, ["popular", "item_knn", "als", "bpr"], 30),
    ({"popular": 3.0, "item_knn": 3.0, "als": 3.0}, ["popular", "item_knn", "als"], 20),
], ids=["slow-als-and-ease", "slow-factorisations", "every-fit-slow"])
def test_the_budget_is_kept_when_fits_are_slow(
        monkeypatch: pytest.MonkeyPatch, outer: Split, fit_seconds: dict[str, float],
        models: list[str], budget: float) -> None:
    clock = FakeClock(monkeypatch, seconds=fit_seconds)
    tuned = tune(outer.train, models=models, budget_seconds=budget, clock=clock)
    assert tuned.elapsed == clock.now <= budget
    assert tuned.best_model.is_fitted and tuned.best_model.data_digest_ == outer.train.digest
    # An iterative family's screen stops between checkpoints: after its first 5-8 s fit,
    # the next (twice the iterations, so predicted twice as long) would overrun it.
    screens = tuned.time_split[tuned.time_split["phase"] == "screen"].set_index("family")
    assert screens.loc["als", "spent"] == fit_seconds["als"]
    # Where the time went adds up to all of it; no phase overran the time it was given.
    assert tuned.time_split["spent"].sum() == tuned.elapsed
    search = tuned.time_split[tuned.time_split["phase"] == "search"]
    assert (search["spent"] <= search["planned"]).all()


def test_a_budget_too_short_for_any_trial_still_returns_a_fitted_model_and_says_so(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    clock = FakeClock(monkeypatch)
    tuned = tune(outer.train, models=["popular", "ease", "als"], budget_seconds=0.01,
                 clock=clock)
    assert tuned.best_name == "popular" and tuned.best_model.is_fitted
    assert any(note.startswith("no trial finished within the budget") for note in tuned.notes)


@pytest.mark.usefixtures("every_candidate_rechecked")
def test_a_candidate_whose_recheck_would_overrun_is_passed_over_with_a_note(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    clock = FakeClock(monkeypatch, seconds={"als": 5.0, "ease": 3.0})
    progress: list[str] = []
    tuned = tune(outer.train, models=["popular", "ease", "als"], budget_seconds=20,
                 clock=clock, progress=progress.append)
    assert "als" not in set(tuned.second_fold["family"])
    assert any(note.startswith("als (trial 0) not re-checked") for note in tuned.notes)
    assert [f"warning: {note}" for note in tuned.notes] == [
        message for message in progress if message.startswith("warning: ")]
    assert json.loads(tuned.to_json())["notes"] == tuned.notes


def test_a_family_passed_over_for_a_costly_configuration_is_rechecked_at_its_next_best(
        outer: Split) -> None:
    # Searched on a subsample, ALS's best is too costly to re-check on the second fold
    # within the 10 s left; its cheaper next best stands in before the next family.
    second = tuning_tuner.validation_folds(outer.train, "temporal")[1]
    candidates = [{"family": family, "number": number, "params": params, "reranker": {},
                   "first_fold": value} for family, number, params, value in (
        ("als", 1, {"factors": 8, "iterations": 50}, 0.5),
        ("popular", 0, {}, 0.4),
        ("als", 0, {"factors": 8, "iterations": 4}, 0.45))]
    clock = iter(range(1000)).__next__
    budget = tuning_budget.Budget(0.0, 10.0, lambda: 0.0, lambda: 0.0)

    def finishing(family: str, params: dict[str, object]) -> tuple[float, float]:
        return (20.0, 20.0) if params.get("iterations") == 50 else (1.0, 1.0)

    ledger = tuning_budget.Ledger(None)
    checked, _ = tuning_tuner._recheck(
        candidates, 2, (second, tuning_search.shape_of(second)), True,
        Objective.parse("ndcg@10"), CostModel(), budget, ledger, clock, finishing)
    assert [(c["family"], c["number"]) for c in checked] == [("als", 0), ("popular", 0)]
    assert [note.split(":")[0] for note in ledger.notes] == ["als (trial 1) not re-checked"]


def test_a_final_fit_that_would_overrun_is_made_with_fewer_iterations(outer: Split) -> None:
    costs = CostModel()
    shape = DataShape.of(outer.train)
    params = {"factors": 8, "iterations": 40, "seed": 0}
    # Measured: a 40-iteration fit takes 10 s; 4 s are left.
    costs.record("als", params, shape, seconds=10.0, scored=False)
    budget = tuning_budget.Budget(started=0.0, seconds=20.0, clock=lambda: 16.0,
                            finishing=lambda: 0.0)
    ledger = tuning_budget.Ledger(progress=None)
    candidate = {"family": "als", "number": 3, "params": params, "reranker": {},
                 "first_fold": 0.3, "second_fold": 0.2, "mean": 0.25}
    best, model = tuning_tuner._fit_winner([candidate], outer.train, shape, costs, budget, ledger,
                                     fallback=None, progress=None)
    assert best["family"] == "als" and 1 <= best["params"]["iterations"] < 16
    assert model.config.iterations == best["params"]["iterations"] and model.is_fitted
    assert ledger.notes == [f"als refitted on all data with {best['params']['iterations']} "
                            "iterations instead of 40 to end within the budget"]
    # A family without iterations that would overrun gives way to the next candidate.
    costs.record("ease", {}, shape, seconds=30.0, scored=False)
    slow = {**candidate, "family": "ease", "params": {}, "mean": 0.3}
    best, model = tuning_tuner._fit_winner([slow, candidate], outer.train, shape, costs, budget,
                                     ledger, fallback=None, progress=None)
    assert best["family"] == "als" and any("ease not fitted on all data" in note
                                           for note in ledger.notes)


@pytest.mark.usefixtures("every_candidate_rechecked")
def test_the_stacked_ranker_gets_its_turn_when_time_allows(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    # Every fit takes 1 s, the ranker's sources too (once per label period).
    clock = FakeClock(monkeypatch, parts=True)
    tuned = tune(outer.train, models=["popular", "item_knn", "ranked"], budget_seconds=60,
                 clock=clock)
    stack = tuned.time_split.set_index(["phase", "family"]).loc[("stack", "ranked")]
    ranked = tuned.trials[tuned.trials["family"] == "ranked"]
    assert stack["trials"] >= 1 and (ranked["state"] == "COMPLETE").sum() == stack["trials"]
    assert stack["spent"] <= stack["planned"]
    # Its sources are the families searched before it, each fitted once for its trials.
    sources = ranked["params"].iloc[0]["sources"]
    assert {source["model"] for source in sources} == {"popular", "item_knn"}
    assert "ranked" in set(tuned.second_fold["family"])  # and it was re-checked
    assert tuned.elapsed == clock.now <= 60
    # With too little time for its sources, re-check and final fit, it is left out, and
    # says so; the others use the time.
    clock = FakeClock(monkeypatch, parts=True)
    short = tune(outer.train, models=["popular", "item_knn", "ranked"], budget_seconds=8,
                 clock=clock)
    assert (short.trials["family"] == "ranked").sum() == 1  # its starting point, unused
    assert short.trials.loc[short.trials["family"] == "ranked", "state"].iloc[0] == "WAITING"
    assert any(note.startswith("ranked left out") for note in short.notes)
    assert short.elapsed == clock.now <= 8


def test_a_screen_too_long_for_the_budget_runs_on_a_subsample_judged_at_full_size(
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = temporal_split(checkerboard(n_users=80, n_items=20, seed=4)).train
    monkeypatch.setattr(tuning_phases, "PROXY_SHARE", 0.0)  # any screen is too long
    monkeypatch.setattr(tuning_phases, "MIN_PROXY_USERS", 20)
    monkeypatch.setattr(tuning_phases, "PROXY_FROM_USERS", 40)
    clock = FakeClock(monkeypatch)
    tuned = tune(data, models=["popular", "item_knn"], budget_seconds=30, clock=clock)
    first, searched = tuned.validation["first"], tuned.validation["searched"]
    assert searched["train_events"] < first["train_events"]
    assert searched["name"].endswith(" users)")  # e.g. "temporal (20 of 80 users)"
    assert any("the search runs on" in note for note in tuned.notes)
    # Every trial fits the subsample; the re-checks fit the second fold, and the winner
    # is fitted on all the data.
    trial_fits = len(tuned.trials)
    assert {events for _, events, _ in clock.fits[:trial_fits]} == {searched["train_events"]}
    rechecks = [events for _, events, _ in clock.fits[trial_fits:-1]]
    assert rechecks == [tuned.validation["second"]["train_events"]] * len(tuned.second_fold)
    assert len(tuned.second_fold) >= 1 and clock.fits[-1][1] == len(data)
    # The second fold's score alone decides: the subsample's is biased by family.
    checked = tuned.second_fold
    assert (checked["mean"] == checked["second_fold"]).all()
    assert tuned.best_score == checked["second_fold"].max()
    assert tuned.elapsed == clock.now <= 30


def test_the_finishing_estimate_keeps_no_time_for_what_is_too_far_behind_to_win() -> None:
    # "slow" scores under RECHECK_FLOOR of the leader: the guard will not re-check it.
    studies = {"best": study_with(0.4, 2.0), "close": study_with(0.35, 1.0),
               "slow": study_with(0.1, 30.0)}
    assert tuning_budget.finishing_seconds(studies, recheck=3, growth=1.0) == pytest.approx(
        2.0 + 1.0 + 2.0)


def test_a_candidate_trailing_by_more_than_the_noise_is_not_rechecked() -> None:
    # Over 4,000 validation users 0.13 trails 0.16 by about four standard errors of the
    # difference; over 100 users by less than one.
    assert not tuning_search.worth_rechecking(0.13, 0.16, users=4000)
    assert tuning_search.worth_rechecking(0.13, 0.16, users=100)
    assert tuning_search.worth_rechecking(0.13, 0.16)  # no count: the share floor alone
    assert not tuning_search.worth_rechecking(0.10, 0.16, users=100)  # under the floor
    # Only a single ranking metric is bounded so; an objective with revenue is not.
    assert Objective.parse("ndcg@10").bounded
    assert not Objective.parse("ndcg@10 + 0.5*revenue@10").bounded
