"""tune end to end: the guard, the result, what it refuses, re-ranker knobs."""

from __future__ import annotations

import json
import math
from typing import Any

import optuna
import pandas as pd
import pytest

from tailored.dataset import Dataset, Split, leave_last_out_split, temporal_split
from tailored.errors import TailoredError
from tailored.evaluation import evaluate_model, tuning
from tailored.evaluation.search_spaces import (
    EPOCH_FAMILIES,
    ITERATIVE_FAMILIES,
    SEARCH_SPACES,
    STACKED_STARTING_POINTS,
    STARTING_POINTS,
    DataShape,
    starting_point,
)
from tailored.evaluation.tuning import (
    BLENDED_FAMILIES,
    Objective,
    TuningResult,
    ValidationMetric,
    available_families,
    early_stopping_iterations,
    iteration_checkpoints,
    measure,
    tune,
    validation_folds,
)
from tailored.evaluation.tuning import objective as tuning_objective
from tailored.evaluation.tuning import search as tuning_search
from tailored.models import ItemKNN, Popular, create
from tailored.pipeline import Pipeline
from tailored.ranking import RerankerStage
from tailored.sample import shop
from tailored.testing import checkerboard

from .fakes import FAMILIES, FIT_SECONDS, KEYS, FakeClock, tiny_sasrec_space


@pytest.fixture(scope="module")
def mixed(outer: Split) -> TuningResult:
    """Two families (one iterative) tuned for relevance and revenue."""
    return tune(outer.train, models=["item_knn", "als"], n_trials=4, seed=0,
                metric="ndcg@10 + 0.5*revenue@10")


def test_a_mixed_objective_tunes_the_revenue_knob_and_gives_a_pipeline(
        outer: Split, mixed: TuningResult) -> None:
    assert mixed.metric == "ndcg@10 + 0.5*revenue@10"
    assert set(mixed.best_reranker) == {"revenue"} and 0 <= mixed.best_reranker["revenue"] <= 1
    model = mixed.best_model
    assert isinstance(model, Pipeline) and model.is_fitted
    assert model.config.rerankers == [RerankerStage(revenue=mixed.best_reranker["revenue"])]
    assert model.scorer.config == create(mixed.best_name, **mixed.best_params).config
    assert model.scorer.data_digest_ == outer.train.digest  # refitted on all the given data
    # Every trial sampled the knob; each family's first (its starting point) at 0.
    trials = mixed.trials
    assert all(set(knobs) == {"revenue"} and 0 <= knobs["revenue"] <= 1
               for knobs in trials["reranker"])
    assert all(rows.sort_values("number")["reranker"].iloc[0] == {"revenue": 0.0}
               for _, rows in trials.groupby("family"))
    assert len({knobs["revenue"] for knobs in trials["reranker"]}) > 2


def test_the_reported_objective_is_the_winners_mix_on_both_folds(
        outer: Split, mixed: TuningResult) -> None:
    winner = mixed.second_fold.loc[mixed.second_fold["mean"].idxmax()]
    assert mixed.best_score == winner["mean"] == (winner["first_fold"]
                                                  + winner["second_fold"]) / 2
    assert winner["reranker"] == mixed.best_reranker
    # Re-scored by hand on the second fold: NDCG plus half the revenue in mean prices.
    second = validation_folds(outer.train)[1]
    candidate = Pipeline(create(winner["family"], **winner["params"]),
                         rerankers=[winner["reranker"]])
    metrics = Objective.parse(mixed.metric).metrics
    figures = measure(metrics, candidate, second)
    assert winner["second_fold"] == pytest.approx(
        figures["ndcg@10"] + 0.5 * figures["revenue@10"] / 19.5)
    record = json.loads(mixed.to_json())
    assert record["metric"] == mixed.metric and record["best_reranker"] == mixed.best_reranker


def test_a_diversity_objective_tunes_mmr_and_the_lists_get_more_varied(outer: Split) -> None:
    # Item-kNN's top 3 are all of the user's own group (diversity 0): MMR mixes the groups.
    diversity = [ValidationMetric.parse("diversity@3")]
    assert measure(diversity, ItemKNN(), outer)["diversity@3"] == 0
    tuned = tune(outer.train, models=["item_knn"], n_trials=6, seed=1,
                 metric="ndcg@3 + diversity@3")
    assert set(tuned.best_reranker) == {"diversity"} and tuned.best_reranker["diversity"] > 0
    assert isinstance(tuned.best_model, Pipeline)
    assert measure(diversity, tuned.best_model, outer, fit=False)["diversity@3"] > 0.3


def test_the_tune_path_runs_on_the_sample_shop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SEARCH_SPACES, "sasrec", tiny_sasrec_space)
    monkeypatch.setitem(STARTING_POINTS, "sasrec", {"learning_rate": 3e-3})
    sample = shop(n_users=80, n_items=30, n_events=2_000, seed=3)
    data = Dataset.from_frame(sample.events[["user_id", "item_id", "event_type", "value",
                                             "timestamp"]])
    outer_split = temporal_split(data)
    # Every fit takes 1 s, the parts of the hybrid and the ranker's sources too: the cost
    # model counts them, so a composite needs more time than a single family.
    clock = FakeClock(monkeypatch, parts=True)
    tuned = tune(outer_split.train, budget_seconds=45, seed=0, clock=clock)
    assert tuned.best_model.is_fitted
    assert tuned.best_model.data_digest_ == outer_split.train.digest
    # Every single family is screened at its starting point, then the blend is stacked
    # on them; with the guard and the final fit, within the budget. The time kept for the
    # blend leaves the ranker before it too little here (each part's fit costs 1 s), and
    # a note says so.
    singles = [family for family in available_families() if family not in tuning.COMPOSITES]
    first_trials = tuned.trials[tuned.trials["number"] == 0].set_index("family")["state"]
    assert first_trials.to_dict() == {**dict.fromkeys([*singles, "weighted"], "COMPLETE"),
                                      "ranked": "WAITING"}
    assert any(note.startswith("ranked left out: stacked on the best families it would "
                               "need more than the ") for note in tuned.notes)
    fitted = list(dict.fromkeys(family for family, _, _ in clock.fits))
    assert sorted(fitted[:-1]) == sorted(singles) and fitted[-1] == "weighted"
    assert tuned.elapsed == clock.now <= 45
    assert 0 < tuned.best_score <= 1 and math.isfinite(tuned.best_score)
    winner = tuned.second_fold.loc[tuned.second_fold["mean"].idxmax()]
    assert winner["family"] == tuned.best_name and winner["mean"] == tuned.best_score
    test = evaluate_model(tuned.best_model, outer_split, fit=False).metrics["ndcg@10"]
    assert 0 <= test <= 1


def test_the_tuned_model_beats_popular_on_the_held_out_test(
        outer: Split, result: TuningResult) -> None:
    assert result.best_model.is_fitted
    assert result.best_model.data_digest_ == outer.train.digest  # refitted on all given data
    assert create(result.best_name, **result.best_params).config == result.best_model.config
    tuned = evaluate_model(result.best_model, outer, fit=False).metrics["ndcg@10"]
    popular = evaluate_model(Popular(), outer).metrics["ndcg@10"]
    assert tuned > popular + 0.1


def test_every_trial_is_recorded(outer: Split,
                                 result_clock: tuple[TuningResult, FakeClock]) -> None:
    result, clock = result_clock
    trials = result.trials
    assert list(trials.columns) == ["family", "number", "params", "reranker", "iterations",
                                    "value", "state", "duration", "error"]
    assert trials["reranker"].tolist() == [{}] * len(trials)  # relevance alone: no knob
    assert trials.groupby("family")["number"].agg(list).to_dict() == {
        family: [0, 1] for family in FAMILIES}
    assert set(trials["state"]) <= {"COMPLETE", "PRUNED"}
    assert trials["error"].isna().all()
    complete = trials[trials["state"] == "COMPLETE"]
    assert complete["value"].between(0, 1).all()
    for row in trials.itertuples():
        assert row.params and create(row.family, **row.params)
        if row.family in ITERATIVE_FAMILIES and row.state == "COMPLETE":
            assert 1 <= row.iterations <= row.params["iterations"]
        elif row.family in EPOCH_FAMILIES and row.state == "COMPLETE":
            assert 1 <= row.iterations <= row.params["epochs"]
        else:
            assert pd.isna(row.iterations)
        # A trial's duration is the time of its fits by the tune's clock: one fit, or one
        # per checkpoint an iterative family reached.
        fit = FIT_SECONDS.get(row.family, 1.0)
        if row.family in ITERATIVE_FAMILIES:
            checkpoints = iteration_checkpoints(row.params["iterations"],
                                                ITERATIVE_FAMILIES[row.family])
            assert row.duration / fit in range(1, len(checkpoints) + 1)
        else:
            assert row.duration == fit
    # The trials' fits are all those on the first fold; with the re-checks and the final
    # fit they are all the time that passed.
    first_fold = result.validation["first"]["train_events"]
    assert trials["duration"].sum() == sum(FIT_SECONDS.get(family, 1.0) for family, events, _
                                           in clock.fits if events == first_fold)
    assert result.elapsed == clock.now
    # Each family's first trial is its starting point at the data's shape (the model's
    # defaults, but what scales with the data: EASE's penalty here); the stacked ranker's
    # is the one for the protocol (temporal here), the blend's its best parts at equal weights.
    shape = DataShape.of(outer.train)
    for family, rows in trials.groupby("family"):
        first = rows.loc[rows["number"] == 0, "params"].iloc[0]
        if family == "weighted":
            assert [part["weight"] for part in first["parts"]][:BLENDED_FAMILIES] == [
                1.0] * BLENDED_FAMILIES
            assert first["normalisation"] == "zscore"
            continue
        start = (STACKED_STARTING_POINTS["temporal"] if family == "ranked"
                 else starting_point(str(family), shape))
        assert start is not None
        expected = SEARCH_SPACES[str(family)](optuna.trial.FixedTrial(start), shape)
        assert {k: first[k] for k in expected} == expected
    assert trials.loc[(trials["family"] == "ease") & (trials["number"] == 0), "params"].iloc[
        0]["regularization"] < STARTING_POINTS["ease"]["regularization"]


def test_the_guard_rechecks_the_best_candidates_on_the_second_fold(
        result: TuningResult) -> None:
    checked = result.second_fold
    assert list(checked.columns) == ["family", "number", "params", "reranker", "first_fold",
                                     "second_fold", "mean"]
    assert len(checked) == 3
    top_first = result.trials["value"].dropna().sort_values(ascending=False)
    assert checked["first_fold"].iloc[0] == top_first.iloc[0]
    assert checked["first_fold"].is_monotonic_decreasing
    # One per family: each family's best, from the best three families.
    family_best = result.trials.groupby("family")["value"].max().sort_values(ascending=False)
    assert checked["family"].tolist() == family_best.index[:3].tolist()
    assert checked["first_fold"].tolist() == family_best.iloc[:3].tolist()
    assert checked["second_fold"].between(0, 1).all()
    assert (checked["mean"] == (checked["first_fold"] + checked["second_fold"]) / 2).all()
    winner = checked.loc[checked["mean"].idxmax()]
    assert result.best_score == winner["mean"] == checked["mean"].max()
    assert (result.best_name, result.best_params) == (winner["family"], winner["params"])
    assert result.best_reranker == {} and not isinstance(result.best_model, Pipeline)


def test_the_guard_does_not_recheck_a_configuration_too_far_behind_to_win(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    models = ["popular", "item_knn", "als"]
    with monkeypatch.context() as unfloored:
        unfloored.setattr(tuning_search, "RECHECK_FLOOR", 0.0)
        unfloored.setattr(tuning_search, "RECHECK_NOISE", math.inf)
        every = tune(outer.train, models=models, n_trials=2).second_fold
    assert len(every) == 3
    # At the default floor, one of them scores too far below the best on the first fold.
    default = tune(outer.train, models=models, n_trials=2).second_fold
    best = every["first_fold"].iloc[0]
    behind = every[every["first_fold"] < tuning_search.RECHECK_FLOOR * best]
    assert len(behind) >= 1 and default["family"].tolist() == every["family"].iloc[
        :len(every) - len(behind)].tolist()


def test_with_one_family_the_guard_rechecks_its_best_distinct_configurations(
        outer: Split) -> None:
    tuned = tune(outer.train, models=["item_knn"], n_trials=5, recheck=3)
    checked = tuned.second_fold
    assert len(checked) == 3 and set(checked["family"]) == {"item_knn"}
    assert len({json.dumps(p, sort_keys=True) for p in checked["params"]}) == 3
    assert checked["first_fold"].tolist() == sorted(
        tuned.trials["value"].dropna(), reverse=True)[:3]


def test_tuning_never_sees_the_test_data(monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    evaluated: list[Split] = []

    def spy(model: Any, split: Split, k: int = 10, **kwargs: Any) -> Any:
        evaluated.append(split)
        return evaluate_model(model, split, k, **kwargs)

    monkeypatch.setattr(tuning_objective, "evaluate_model", spy)
    tuned = tune(outer.train, models=["item_knn", "bpr"], n_trials=2)
    train_events = outer.train.events[KEYS]
    train_pairs = set(map(tuple, train_events[["user_id", "item_id"]].to_numpy()))
    test_pairs = set(map(tuple, outer.truth.to_numpy()))
    assert len(evaluated) >= 4
    for split in evaluated:
        assert len(split.train.events[KEYS].merge(train_events, on=KEYS)) == len(split.train)
        truth = set(map(tuple, split.truth.to_numpy()))
        assert truth <= train_pairs and not truth & test_pairs
    assert tuned.best_model.data_digest_ == outer.train.digest


def test_the_same_seed_gives_the_same_search_and_another_seed_another(outer: Split) -> None:
    def run(seed: int) -> TuningResult:
        return tune(outer.train, models=["user_knn", "bpr"], n_trials=3, seed=seed)

    first, again, other = run(0), run(0), run(1)
    columns = ["family", "number", "params", "iterations", "value", "state"]
    pd.testing.assert_frame_equal(first.trials[columns], again.trials[columns])
    assert (first.best_name, first.best_params) == (again.best_name, again.best_params)
    assert first.trials["params"].tolist() != other.trials["params"].tolist()
    assert first.best_params.get("seed", 0) == 0 and first.seed == 0


@pytest.mark.usefixtures("every_candidate_rechecked")
def test_a_time_budget_screens_every_family_then_searches_the_leader_most(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    clock = FakeClock(monkeypatch)  # every fit takes 1 s
    tuned = tune(outer.train, models=["popular", "ease"], budget_seconds=30, clock=clock)
    trials = tuned.trials
    assert tuned.budget_seconds == 30 and tuned.n_trials is None
    assert (trials["state"] == "COMPLETE").all() and (trials["duration"] == 1.0).all()
    # The screen: each family's starting point, one after the other (the cheapest first),
    # before any search.
    assert sorted(family for family, _, _ in clock.fits[:2]) == ["ease", "popular"]
    # Held back from the search: 5% of the budget (1.5 s) and what the cost model predicts,
    # from the 1 s checks scaled to each fold's size, for the three re-checks on the
    # second fold (112 events: under 1 s each) and the final fit (160 events: under
    # 1.25 s), with a 25% margin. So the search ends just before 24 s, and no trial
    # starts that would end past that: the last one ends at 23 s.
    assert len(trials) == 23
    # Then three re-checks and the final fit.
    assert [events for _, events, _ in clock.fits[23:]] == [112, 112, 112, 160]
    assert tuned.elapsed == clock.now == 27 <= tuned.budget_seconds
    # The runner-up searches first, for a third of the search time left after the 2 s
    # screen (its share 0.5 against the leader's 1.0): until about 2 + (24 - 2) / 3 =
    # 9.3 s, so 7 trials after its screen (an eighth would end at 10 s); the leader
    # searches last, with the rest.
    best = trials.groupby("family")["value"].max()
    leader, runner_up = best.idxmax(), best.idxmin()
    counts = trials.groupby("family").size()
    assert (counts[runner_up], counts[leader]) == (1 + 7, 23 - 8)
    assert [family for family, _, _ in clock.fits[2:23]] == [runner_up] * 7 + [leader] * 14
    # The time split says so: no phase ran past the time it was given.
    split = tuned.time_split.set_index(["phase", "family"])
    assert split.loc[("search", runner_up), "trials"] == 7
    assert (split.loc["search", "spent"] <= split.loc["search", "planned"]).all()
    assert split["spent"].sum() == tuned.elapsed and tuned.notes == []


def test_unknown_families_protocols_and_options_are_refused(outer: Split) -> None:
    with pytest.raises(ValueError, match=r"cannot tune \['content'\].*families with a search"):
        tune(outer.train, models=["als", "content"], n_trials=1)
    with pytest.raises(ValueError, match="cannot tune"):
        tune(outer.train, models=[], n_trials=1)
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        tune(outer.train, metric="auc", n_trials=1)
    with pytest.raises(ValueError, match="unknown protocol 'random'"):
        tune(outer.train, protocol="random", n_trials=1)
    with pytest.raises(ValueError, match="n_trials must be at least 1"):
        tune(outer.train, n_trials=0)
    with pytest.raises(ValueError, match="budget_seconds must be above 0"):
        tune(outer.train, budget_seconds=0)
    with pytest.raises(TypeError, match=r"clock must be a callable returning seconds \(e\.g\. "
                       r"time\.perf_counter\), got 12\.0"):
        tune(outer.train, n_trials=1, clock=12.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"clock must return a finite number of seconds .*"
                       r"clock\(\) returned 'now'"):
        tune(outer.train, n_trials=1, clock=lambda: "now")  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match=r"clock\(\) returned nan"):
        tune(outer.train, n_trials=1, clock=lambda: math.nan)
    with pytest.raises(TypeError, match="clock must be a callable"):
        early_stopping_iterations(lambda n: create("als", iterations=n), outer,
                                  clock=None)  # type: ignore[arg-type]


def test_failed_trials_are_recorded_and_all_failing_is_an_error(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    monkeypatch.setitem(SEARCH_SPACES, "item_knn", lambda trial, shape: {"neighbors": 0})
    with pytest.raises(TailoredError, match=r"no trial .* item_knn trial 0: ValidationError"):
        tune(outer.train, models=["item_knn"], n_trials=2)
    tuned = tune(outer.train, models=["item_knn", "ease"], n_trials=2)
    failed = tuned.trials[tuned.trials["family"] == "item_knn"]
    assert (failed["state"] == "FAIL").all() and failed["error"].str.contains("neighbors").all()
    assert tuned.best_name == "ease"
    # With a budget, a family that keeps failing is given up instead of using its time:
    # its trials fail in 1 s each, and its share of the search (a third of what is left
    # after the screen, about 4 s) would have taken six.
    clock = FakeClock(monkeypatch)

    def failing(trial: optuna.Trial, shape: DataShape) -> dict[str, Any]:
        clock.now += 1.0
        return {"neighbors": 0}

    monkeypatch.setitem(SEARCH_SPACES, "item_knn", failing)
    budgeted = tune(outer.train, models=["item_knn", "ease"], budget_seconds=20, clock=clock)
    failed = budgeted.trials[budgeted.trials["family"] == "item_knn"]
    assert len(failed) == tuning_search.FAILURES_TO_GIVE_UP and (failed["state"] == "FAIL").all()
    assert (failed["duration"] == 1.0).all()
    assert budgeted.best_name == "ease" and budgeted.elapsed <= 20


def test_the_report_is_json_without_nan(result: TuningResult) -> None:
    text = result.to_json()
    assert "NaN" not in text
    report = json.loads(text)
    assert report["best_name"] == result.best_name
    assert report["best_params"] == result.best_params
    assert math.isclose(report["best_score"], result.best_score)
    assert len(report["trials"]) == len(result.trials)
    assert len(report["second_fold"]) == 3
    assert report["validation"]["first"]["train_events"] == 128
    assert report["n_trials"] == 2 and report["budget_seconds"] is None


def test_leave_last_one_out_tuning_validates_on_earlier_events() -> None:
    data = checkerboard(n_users=40, n_items=40, seed=3)  # 10 events per user
    outer_split = leave_last_out_split(data)
    tuned = tune(outer_split.train, protocol="leave-last-one-out", models=["item_knn"],
                 n_trials=2)
    assert tuned.protocol == "leave-last-one-out"
    assert tuned.validation["second"]["train_events"] < tuned.validation["first"][
        "train_events"] < len(outer_split.train)
