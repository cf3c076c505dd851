"""Automatic tuning: search spaces, early stopping, the overfitting guard, no test leakage."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import optuna
import pandas as pd
import pytest

from tailored.dataset import SPLITS, Dataset, Split, leave_last_out_split, temporal_split
from tailored.errors import InvalidDataError, TailoredError
from tailored.evaluation import NDCG, Revenue, evaluate_model, tuning
from tailored.evaluation.beyond import IntraListDiversity
from tailored.evaluation.costs import CostModel
from tailored.evaluation.search_spaces import (
    EPOCH_FAMILIES,
    ITERATIVE_FAMILIES,
    REFERENCE_SHAPE,
    REQUIREMENTS,
    SEARCH_SPACES,
    STACKED_STARTING_POINTS,
    STARTING_DEVIATIONS,
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
    early_stopping_epochs,
    early_stopping_iterations,
    iteration_checkpoints,
    measure,
    tune,
    validation_folds,
)
from tailored.models import MODELS, ItemKNN, Popular, SASRec, create
from tailored.pipeline import Pipeline
from tailored.ranking import RerankerStage
from tailored.ranking.parts import Part
from tailored.sample import shop
from tailored.testing import checkerboard

KEYS = ["user_id", "item_id", "timestamp"]


@pytest.fixture(scope="module")
def outer() -> Split:
    """The held-out test split: tuning only ever gets ``outer.train``."""
    return temporal_split(checkerboard(n_users=40, n_items=20, seed=1))


# Every family but the epoch-checked ones (SASRec trains for seconds even on tiny data);
# test_epoch_families_are_tuned_with_early_stopping covers those.
FAMILIES = [family for family in SEARCH_SPACES if family not in EPOCH_FAMILIES]


def tiny_sasrec_space(trial: optuna.Trial, shape: DataShape = REFERENCE_SHAPE
                      ) -> dict[str, Any]:
    return {"factors": 8, "blocks": 1, "max_length": 5, "threads": 1,
            "learning_rate": trial.suggest_float("learning_rate", 1e-3, 1e-2, log=True),
            "epochs": 12}


class FakeClock:
    """A clock for :func:`tune` whose time passes only while a model fits.

    Every fit of a model ``tune`` creates (trials, early-stopping checkpoints, re-checks
    and the final fit) advances it by ``seconds[family]`` (else ``default``), so a
    budgeted search takes the same course whatever the machine's speed. With ``parts``,
    so does every fit of a composite's parts (a hybrid's, the ranker's sources), as on a
    real clock. ``fits`` records each fit's family, number of events fitted on and start
    time.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch,
                 seconds: dict[str, float] | None = None, default: float = 1.0,
                 parts: bool = False) -> None:
        self.now = 0.0
        self.fits: list[tuple[str, int, float]] = []
        real_create, real_build = tuning.search.create, Part.build

        def charged(model: Any, family: str) -> Any:
            real_fit = model.fit

            def fit(data: Dataset, **kwargs: Any) -> Any:
                self.fits.append((family, len(data), self.now))
                fitted = real_fit(data, **kwargs)
                self.now += (seconds or {}).get(family, default)
                return fitted

            model.fit = fit
            return model

        monkeypatch.setattr(tuning.search, "create", lambda family, **params: charged(
            real_create(family, **params), family))
        if parts:
            monkeypatch.setattr(Part, "build", lambda part: charged(real_build(part),
                                                                    part.model))

    def __call__(self) -> float:
        return self.now


# Fits take 1 s of a fake clock; popular's 0.5 s and the ranker's 2 s.
FIT_SECONDS = {"popular": 0.5, "ranked": 2.0}


@pytest.fixture(scope="module")
def result_clock(outer: Split) -> tuple[TuningResult, FakeClock]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        clock = FakeClock(monkeypatch, seconds=FIT_SECONDS)
        tuned = tune(outer.train, models=FAMILIES, n_trials=2, seed=0, clock=clock)
    return tuned, clock


@pytest.fixture(scope="module")
def result(result_clock: tuple[TuningResult, FakeClock]) -> TuningResult:
    return result_clock[0]


# ---- search spaces ---------------------------------------------------------------------

@pytest.mark.parametrize("family", sorted(SEARCH_SPACES))
def test_every_sampled_point_is_a_valid_config(family: str) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        trial = study.ask()
        params = SEARCH_SPACES[family](trial)
        model = create(family, **params)  # the pydantic Config validates every value
        assert model.config.model_dump(include=set(params)) == params
        study.tell(trial, 0.0)


def test_search_spaces_name_registered_models_and_iterative_ones_sample_iterations() -> None:
    assert set(SEARCH_SPACES) <= set(MODELS)
    tables = (STARTING_POINTS, STARTING_DEVIATIONS, ITERATIVE_FAMILIES, EPOCH_FAMILIES,
              REQUIREMENTS)
    assert all(set(table) <= set(SEARCH_SPACES) for table in tables)
    assert not set(ITERATIVE_FAMILIES) & set(EPOCH_FAMILIES)
    for family in ITERATIVE_FAMILIES:
        trial = optuna.create_study().ask()
        assert "iterations" in SEARCH_SPACES[family](trial)
    for family in EPOCH_FAMILIES:
        trial = optuna.create_study().ask()
        assert SEARCH_SPACES[family](trial)["epochs"] >= 1


@pytest.mark.parametrize("family", sorted(STARTING_POINTS))
def test_each_starting_point_is_the_models_defaults_but_the_deviations(family: str) -> None:
    params = SEARCH_SPACES[family](optuna.trial.FixedTrial(STARTING_POINTS[family]))
    stopped = {"epochs"} if family in EPOCH_FAMILIES else set()  # an upper bound there
    deviations = STARTING_DEVIATIONS.get(family, {})
    expected = MODELS[family].Config(**deviations).model_dump(exclude=stopped)
    assert create(family, **params).config.model_dump(exclude=stopped) == expected


def test_families_that_need_a_missing_module_are_left_out_by_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert available_families() == list(SEARCH_SPACES)  # torch is installed for the tests
    real = tuning.search.importlib.util.find_spec
    monkeypatch.setattr(tuning.search.importlib.util, "find_spec",
                        lambda name: None if name == "torch" else real(name))
    assert "sasrec" not in available_families()
    assert "ease" in available_families()


# Shapes far from MovieLens 100K's: a tiny log, and a large sparse catalog of play counts.
TINY = DataShape(users=30, items=12, events=90, pairs=80)
LARGE = DataShape(users=2_000, items=17_000, events=400_000, pairs=90_000,
                  mean_square_weight=5e4)


def _range(family: str, name: str, shape: DataShape) -> Any:
    """The distribution a family's space samples ``name`` from, at ``shape``."""
    study = optuna.create_study()
    trial = study.ask()
    SEARCH_SPACES[family](trial, shape)
    return trial.distributions[name]


def test_at_movielens_100ks_shape_the_spaces_and_starts_are_the_constants_they_replace(
        ) -> None:
    assert (_range("als", "factors", REFERENCE_SHAPE).high,
            _range("bpr", "factors", REFERENCE_SHAPE).high) == (256, 256)
    assert (_range("item_knn", "neighbors", REFERENCE_SHAPE).high,
            _range("user_knn", "neighbors", REFERENCE_SHAPE).high) == (500, 300)
    ease = _range("ease", "regularization", REFERENCE_SHAPE)
    assert (ease.low, ease.high) == pytest.approx((1.0, 10_000.0))
    assert list(_range("sasrec", "max_length", REFERENCE_SHAPE).choices) == [20, 50, 100, 200]
    assert list(_range("sasrec", "batch_size", REFERENCE_SHAPE).choices) == [32, 64, 128, 256]
    for family in STARTING_POINTS:
        assert starting_point(family, REFERENCE_SHAPE) == STARTING_POINTS[family]
    # ... and about there on the data tune sees from it (the training part of a split).
    near = DataShape(users=943, items=1_680, events=99_057, pairs=99_057,
                     mean_square_weight=13.7)
    assert starting_point("sasrec", near) == STARTING_POINTS["sasrec"]
    assert starting_point("ease", near)["regularization"] == pytest.approx(2000, rel=0.02)


def test_the_search_ranges_scale_with_the_data() -> None:
    # Factors and item neighbours grow with the catalog, user neighbours with the users.
    assert (_range("als", "factors", TINY).high < 256
            < _range("als", "factors", LARGE).high == _range("bpr", "factors", LARGE).high)
    assert _range("item_knn", "neighbors", LARGE).high > 500
    assert _range("user_knn", "neighbors", LARGE).high > 300
    # EASE's penalty follows the Gram diagonal: few users per item (a long tail) lower the
    # binary end, heavy play counts raise the weighted end and the starting point.
    ease = _range("ease", "regularization", LARGE)
    assert ease.low < 1.0 and ease.high > 10_000.0
    assert starting_point("ease", LARGE)["regularization"] > 2000
    assert starting_point("ease", TINY)["regularization"] < 2000
    # SASRec reads windows about its users' histories and takes larger batches of more data.
    assert max(_range("sasrec", "max_length", TINY).choices) <= 20
    large_batches = _range("sasrec", "batch_size", LARGE).choices
    assert min(large_batches) == 64 and starting_point("sasrec", LARGE)["batch_size"] == 64


@pytest.mark.parametrize("shape", [TINY, LARGE], ids=["tiny", "large"])
@pytest.mark.parametrize("family", sorted(SEARCH_SPACES))
def test_every_point_sampled_at_any_shape_is_a_valid_config(family: str,
                                                           shape: DataShape) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    start = starting_point(family, shape)
    if start is not None:
        study.enqueue_trial(start)
    for _ in range(20):
        trial = study.ask()
        params = SEARCH_SPACES[family](trial, shape)
        assert create(family, **params).config.model_dump(include=set(params)) == params
        if start is not None and trial.number == 0:  # the start lies inside the ranges
            assert trial.params == {k: start[k] for k in trial.params}
        study.tell(trial, 0.0)


# ---- metric, folds, checkpoints --------------------------------------------------------

@pytest.mark.parametrize("name", ["auc", "ndcg", "ndcg@0", "ndcg@x", "auc@10", "ndcg@-1", ""])
def test_a_bad_metric_name_is_refused_with_the_choices(name: str) -> None:
    with pytest.raises(ValueError, match=r"unknown metric .*ndcg@K"):
        ValidationMetric.parse(name)


def test_metric_names_parse_case_insensitively() -> None:
    assert ValidationMetric.parse("NDCG@5").name == "ndcg@5"
    assert ValidationMetric.parse("hit_rate@3").k == 3
    assert ValidationMetric.parse("mrr@20").metric.label == "mrr"
    assert ValidationMetric.parse("Revenue@10") == ValidationMetric(Revenue, 10)
    assert ValidationMetric.parse("diversity@5") == ValidationMetric(IntraListDiversity, 5)


# ---- objectives: weighted sums of metrics ------------------------------------------------

def test_an_objective_is_a_weighted_sum_in_one_spelling() -> None:
    objective = Objective.parse("ndcg@10 + 0.5*revenue@10")
    assert objective.terms == ((1.0, ValidationMetric(NDCG, 10)),
                               (0.5, ValidationMetric(Revenue, 10)))
    assert objective.name == "ndcg@10 + 0.5*revenue@10" and objective.knobs == ("revenue",)
    assert Objective.parse(" NDCG@10+.5 * Revenue@10 ") == objective
    assert Objective.parse("ndcg@10").name == "ndcg@10" and Objective.parse("ndcg@10").knobs == ()
    both = Objective.parse("2*recall@20 + 0.1*diversity@20 + 1.0*revenue@20")
    assert both.name == "2*recall@20 + 0.1*diversity@20 + revenue@20"
    assert both.knobs == ("revenue", "diversity")


CHOICES = r"diversity@K, f1@K, hit_rate@K, map@K, mrr@K, ndcg@K, precision@K, recall@K, revenue@K"


@pytest.mark.parametrize(("text", "message"), [
    ("ndcg@10 - 0.5*revenue@10", rf"cannot read 'ndcg@10 - 0.5\*revenue@10'.*{CHOICES}"),
    ("ndcg@10 +", rf"cannot read '' in the objective 'ndcg@10 \+'.*{CHOICES}"),
    ("ndcg@10 * 0.5", rf"cannot read 'ndcg@10 \* 0.5'.*{CHOICES}"),
    ("-1*ndcg@10", rf"cannot read '-1\*ndcg@10'.*{CHOICES}"),
    ("1e3*ndcg@10", rf"cannot read '1e3\*ndcg@10'.*{CHOICES}"),
    ("__import__('os').getcwd()", rf"unknown metric .*{CHOICES}"),
    ("ndcg@10 + 0.5*auc@10", rf"unknown metric 'auc@10'; use one of {CHOICES}.*in the "
                             r"objective 'ndcg@10 \+ 0.5\*auc@10'"),
    ("ndcg@10 + 0.5*revenue", r"unknown metric 'revenue'.*revenue@K"),
    ("ndcg@10 + 0*revenue@10", "weight of 'revenue@10' .* is 0; weights must be above 0"),
    ("ndcg@10 + 0.5*NDCG@10", "names ndcg@10 twice"),
])
def test_a_bad_objective_says_what_and_names_the_metrics(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Objective.parse(text)


def test_the_objective_counts_revenue_in_units_of_the_mean_price(outer: Split) -> None:
    objective = Objective.parse("ndcg@10 + 0.5*revenue@10")
    assert objective.value({"ndcg@10": 0.2, "revenue@10": 30.0}, unit_price=20.0) == \
        pytest.approx(0.2 + 0.5 * 30.0 / 20.0)
    # On the checkerboard, prices are 10, 11, ..., 29: a mean of 19.5.
    figures = measure(objective.metrics, ItemKNN(), outer)
    assert figures["revenue@10"] > 0
    assert objective.score(ItemKNN(), outer) == pytest.approx(
        figures["ndcg@10"] + 0.5 * figures["revenue@10"] / 19.5)
    # A single metric is its own figure, as a ValidationMetric scores it.
    assert Objective.parse("ndcg@10").score(ItemKNN(), outer) == pytest.approx(
        evaluate_model(ItemKNN(), outer).metrics["ndcg@10"])


def test_revenue_needs_prices_and_diversity_categories(outer: Split) -> None:
    bare = Dataset.from_frame(outer.train.events)  # no items table
    with pytest.raises(InvalidDataError, match=r"counts revenue@10, but no item .* has a price"):
        tune(bare, metric="ndcg@10 + 0.5*revenue@10", models=["popular"], n_trials=1)
    with pytest.raises(InvalidDataError, match=r"diversity@K .* item categories"):
        tune(bare, metric="ndcg@10 + 0.5*diversity@10", models=["popular"], n_trials=1)
    tuned = tune(bare, metric="ndcg@10", models=["popular"], n_trials=1)  # relevance: fine
    assert tuned.best_reranker == {}


# ---- tuning the re-ranker's knobs --------------------------------------------------------

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


def test_epoch_early_stopping_checks_a_pipeline_around_the_model(outer: Split) -> None:
    pipeline = Pipeline(_tiny_sasrec(4), rerankers=[{"revenue": 0.5}])
    objective = "ndcg@10 + 0.5*revenue@10"
    stop = early_stopping_epochs(pipeline, outer, objective, first=2)
    assert sorted(stop.curve) == [2, 3, 4] and stop.score == max(stop.curve.values())
    assert pipeline.is_fitted  # its catalog was learnt for the first check
    assert stop.curve[4] == pytest.approx(Objective.parse(objective).evaluate(pipeline, outer))


@pytest.mark.parametrize("protocol", sorted(SPLITS))
def test_both_folds_come_from_the_given_data_alone(protocol: str) -> None:
    data = checkerboard(n_users=40, n_items=40, seed=2)  # 10 events per user
    first, second = validation_folds(data, protocol)
    given = data.events[KEYS]
    for fold in (first, second):
        assert len(fold.train.events[KEYS].merge(given, on=KEYS)) == len(fold.train)
        assert fold.truth.merge(given[["user_id", "item_id"]]).shape[0] >= len(fold.truth)
        assert len(fold.train) < len(data) and not fold.truth.empty
    # The second fold trains on less and validates on other events than the first.
    assert len(second.train) < len(first.train)
    first_pairs = set(map(tuple, first.truth.to_numpy()))
    second_pairs = set(map(tuple, second.truth.to_numpy()))
    assert first_pairs != second_pairs


def test_the_temporal_second_fold_cuts_at_70_percent_and_validates_before_the_first() -> None:
    data = checkerboard(n_users=40, n_items=20, seed=2)
    first, second = validation_folds(data, "temporal")
    assert (len(data), len(first.train), len(second.train)) == (200, 160, 140)
    # Second-fold test events lie in the first fold's training period, before its cut.
    assert second.train.events["timestamp"].max() < first.train.events["timestamp"].max()


def test_the_leave_last_one_out_second_fold_holds_each_users_second_to_last_event() -> None:
    data = checkerboard(n_users=40, n_items=40, seed=2)  # no repeated user-item pairs
    first, second = validation_folds(data, "leave-last-one-out")
    ordered = data.events.sort_values(["user_id", "timestamp"])
    from_end = ordered.groupby("user_id").cumcount(ascending=False)
    for fold, position in ((first, 0), (second, 1)):
        expected = ordered.loc[from_end == position, ["user_id", "item_id"]]
        pd.testing.assert_frame_equal(fold.truth, expected.reset_index(drop=True))


def test_folds_without_test_users_are_refused_clearly() -> None:
    tiny = Dataset.from_frame(pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"],
                                            "timestamp": [1, 2]}))
    with pytest.raises(ValueError, match=r"validation fold .* has no test users"):
        validation_folds(tiny, "temporal")


def test_checkpoints_double_from_the_first_and_end_at_the_maximum() -> None:
    assert iteration_checkpoints(100, first=25) == [25, 50, 100]
    assert iteration_checkpoints(40, first=25) == [25, 40]
    assert iteration_checkpoints(16) == [2, 4, 8, 16]
    with pytest.raises(ValueError, match="max_iterations"):
        iteration_checkpoints(0)


# ---- early stopping --------------------------------------------------------------------

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
    # Every single family is screened at its starting point, then the ranker is stacked
    # on them; with the guard and the final fit, within the budget. The ranker leaves the
    # blend too little time here (each part's fit costs 1 s), and a note says so.
    singles = [family for family in available_families() if family not in tuning.COMPOSITES]
    first_trials = tuned.trials[tuned.trials["number"] == 0].set_index("family")["state"]
    assert first_trials.to_dict() == dict.fromkeys([*singles, "ranked"], "COMPLETE")
    assert any(note.startswith("weighted left out: stacked on the best families it would "
                               "need more than the ") for note in tuned.notes)
    fitted = list(dict.fromkeys(family for family, _, _ in clock.fits))
    assert fitted == [*singles, "ranked"]
    assert tuned.elapsed == clock.now <= 45
    assert 0 < tuned.best_score <= 1 and math.isfinite(tuned.best_score)
    winner = tuned.second_fold.loc[tuned.second_fold["mean"].idxmax()]
    assert winner["family"] == tuned.best_name and winner["mean"] == tuned.best_score
    test = evaluate_model(tuned.best_model, outer_split, fit=False).metrics["ndcg@10"]
    assert 0 <= test <= 1


# ---- tune ------------------------------------------------------------------------------

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
    # is the one for the protocol (temporal here), the blend's its parts at equal weights.
    shape = DataShape.of(outer.train)
    for family, rows in trials.groupby("family"):
        first = rows.loc[rows["number"] == 0, "params"].iloc[0]
        if family == "weighted":
            assert [part["weight"] for part in first["parts"]] == [1.0] * BLENDED_FAMILIES
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

    monkeypatch.setattr(tuning.objective, "evaluate_model", spy)
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


def test_a_time_budget_screens_every_family_then_searches_the_leader_most(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    clock = FakeClock(monkeypatch)  # every fit takes 1 s
    tuned = tune(outer.train, models=["popular", "ease"], budget_seconds=30, clock=clock)
    trials = tuned.trials
    assert tuned.budget_seconds == 30 and tuned.n_trials is None
    assert (trials["state"] == "COMPLETE").all() and (trials["duration"] == 1.0).all()
    # The screen: each family's starting point, one after the other, before any search.
    assert [family for family, _, _ in clock.fits[:2]] == ["popular", "ease"]
    # Held back from the search: 5% of the budget (1.5 s) and what the cost model predicts,
    # from the 1 s checks scaled to each fold's size, for the three re-checks on the
    # second fold (112 events: under 1 s each) and the final fit (160 events: under
    # 1.25 s), with a 25% margin. So the search ends at about 24 s, and no trial starts
    # that would end past that: the last one ends at 24 s.
    assert len(trials) == 24
    # Then three re-checks and the final fit.
    assert [events for _, events, _ in clock.fits[24:]] == [112, 112, 112, 160]
    assert tuned.elapsed == clock.now == 28 <= tuned.budget_seconds
    # The runner-up searches first, for a third of the search time left after the 2 s
    # screen (its share 0.5 against the leader's 1.0): until about 2 + (24 - 2) / 3 =
    # 9.3 s, so 7 trials after its screen (an eighth would end at 10 s); the leader
    # searches last, with the rest.
    best = trials.groupby("family")["value"].max()
    leader, runner_up = best.idxmax(), best.idxmin()
    counts = trials.groupby("family").size()
    assert (counts[runner_up], counts[leader]) == (1 + 7, 24 - 8)
    assert [family for family, _, _ in clock.fits[:24]] == (
        ["popular", "ease"] + [runner_up] * 7 + [leader] * 15)
    # The time split says so: no phase ran past the time it was given.
    split = tuned.time_split.set_index(["phase", "family"])
    assert split.loc[("search", runner_up), "trials"] == 7
    assert (split.loc["search", "spent"] <= split.loc["search", "planned"]).all()
    assert split["spent"].sum() == tuned.elapsed and tuned.notes == []


def test_the_search_order_ends_with_the_leader_and_unscored_families_come_first() -> None:
    studies = {}
    for family, value in (("a", 0.2), ("b", 0.5), ("c", None), ("d", 0.3)):
        study = optuna.create_study(direction="maximize")
        trial = study.ask()
        if value is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, value)
        studies[family] = study
    assert tuning.search.search_order(studies) == ["c", "a", "d", "b"]


def _study_with(value: float, seconds: float, *more: tuple[float, float],
                clock_seconds: float | None = None) -> optuna.Study:
    """A study of complete trials, each a (value, wall-clock seconds) pair; the first
    timed by the tuner's clock at ``clock_seconds`` if given."""
    start = datetime(2024, 1, 1)
    study = optuna.create_study(direction="maximize")
    for number, (score, wall) in enumerate([(value, seconds), *more]):
        timed = {"duration": clock_seconds} if number == 0 and clock_seconds else {}
        study.add_trial(optuna.trial.FrozenTrial(
            number=number, trial_id=number, state=optuna.trial.TrialState.COMPLETE,
            value=score, datetime_start=start, datetime_complete=start + timedelta(seconds=wall),
            params={}, distributions={}, user_attrs=timed, system_attrs={},
            intermediate_values={}))
    return study


def test_the_finishing_estimate_counts_the_leaders_refits() -> None:
    studies = {"fast": _study_with(0.1, 1.0), "slow": _study_with(0.4, 10.0),
               "mid": _study_with(0.3, 2.0)}
    # The two leaders (slow, mid) are re-checked once each; the slowest of them is
    # then fitted on 1.25 times the data.
    assert tuning.budget.finishing_seconds(studies, recheck=2, growth=1.25) == pytest.approx(
        10.0 + 2.0 + 1.25 * 10.0)
    assert tuning.budget.finishing_seconds(studies, recheck=1, growth=1.0) == pytest.approx(20.0)


def test_the_finishing_estimate_counts_every_recheck_the_guard_will_make() -> None:
    # With fewer families than re-checks, the guard re-checks the next best trials too.
    studies = {"a": _study_with(0.5, 3.0, (0.2, 7.0), (0.4, 1.0)), "b": _study_with(0.3, 2.0)}
    assert tuning.budget.finishing_seconds(studies, recheck=3, growth=1.0) == pytest.approx(
        3.0 + 2.0 + 1.0 + 3.0)
    # With fewer trials done than re-checks, the missing ones count like the slowest.
    studies = {"a": _study_with(0.5, 3.0, (0.4, 1.0))}
    assert tuning.budget.finishing_seconds(studies, recheck=3, growth=1.0) == pytest.approx(
        3.0 + 1.0 + 3.0 + 3.0)
    # A trial timed by the tuner's clock counts by that clock, not by Optuna's wall time.
    studies = {"a": _study_with(0.5, 10.0, clock_seconds=4.0)}
    assert tuning.budget.finishing_seconds(studies, recheck=1, growth=1.0) == pytest.approx(8.0)


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
    assert len(failed) == tuning.search.FAILURES_TO_GIVE_UP and (failed["state"] == "FAIL").all()
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


# ---- the stacked ranker ----------------------------------------------------------------

def _best_single_families(trials: pd.DataFrame) -> pd.Series:
    """Each single family's best first-fold value, best first."""
    singles = [family for family in FAMILIES if family not in tuning.COMPOSITES]
    return (trials[trials["family"].isin(singles)].groupby("family")["value"].max()
            .sort_values(ascending=False, kind="stable"))


def test_the_ranker_is_stacked_on_the_best_configurations_of_the_best_families(
        result: TuningResult) -> None:
    trials = result.trials
    best = _best_single_families(trials)
    sources = trials.loc[trials["family"] == "ranked", "params"].iloc[0]["sources"]
    tuned = [source for source in sources if "name" not in source]
    assert [source["model"] for source in tuned] == best.index[:tuning.STACKED_FAMILIES].tolist()
    for source in tuned:
        done = trials[(trials["family"] == source["model"]) & (trials["value"] == best[
            source["model"]])]
        leader = done.iloc[0]
        expected = dict(leader["params"])
        if not pd.isna(leader["iterations"]):
            expected["iterations"] = int(leader["iterations"])
        assert source["params"] == expected
    if "seed" in tuned[0]["params"]:  # a random leader is fitted twice, with two seeds
        again = sources[1]
        assert again["name"] == f"{tuned[0]['model']}_reseeded"
        assert again["params"] == {**tuned[0]["params"], "seed": tuned[0]["params"]["seed"] + 1}
    assert sources[-1]["recent_items"] == 5 and sources[-1]["model"] == "item_knn"
    # Every ranked trial stacks on the same sources; only its own parameters vary.
    ranked = trials.loc[trials["family"] == "ranked", "params"]
    assert all(params["sources"] == sources for params in ranked)
    assert len({params["num_leaves"] for params in ranked}) > 1


def test_the_hybrid_blends_the_best_configurations_of_the_best_families(
        result: TuningResult) -> None:
    trials = result.trials
    best = _best_single_families(trials)
    blends = trials.loc[trials["family"] == "weighted", "params"].tolist()
    first = blends[0]["parts"]
    assert [part["model"] for part in first] == best.index[:BLENDED_FAMILIES].tolist()
    sources = trials.loc[trials["family"] == "ranked", "params"].iloc[0]["sources"]
    tuned = {source["model"]: source["params"] for source in sources if "name" not in source}
    for part in first:  # the same tuned configurations as the ranker's sources
        assert part["params"] == tuned[part["model"]]
    # First the plain mean; then other weights of the same parts (a part at 0 is left out).
    assert [part["weight"] for part in first] == [1.0] * BLENDED_FAMILIES
    assert len(blends) == 2 and blends[1]["parts"] != first
    for part in blends[1]["parts"]:
        assert 0 < part["weight"] <= 1 and part["params"] == tuned[part["model"]]
    # The blend is a candidate like any family: re-checkable and refittable from its params.
    assert create("weighted", **blends[1]).config.normalisation == blends[1]["normalisation"]


def test_to_fit_the_time_left_a_blend_drops_its_weakest_part_when_that_is_enough() -> None:
    families = ["ease", "als", "popular"]  # best first
    trials = pd.DataFrame({"family": families, "number": 0, "params": [{}, {}, {}],
                           "iterations": None, "value": [0.3, 0.2, 0.1],
                           "state": "COMPLETE"})
    costs = CostModel()
    fold = REFERENCE_SHAPE
    for family, seconds in (("ease", 4.0), ("als", 3.0), ("popular", 1.0)):
        costs.record(family, {}, fold, seconds)
    search = SimpleNamespace(trials=lambda families=None: trials, singles=families,
                             costs=costs, fold_shape=fold, shape=fold, protocol="temporal")

    def affordable(left: float) -> tuple[list[str], list[str]]:
        parts, dropped = tuning.stacking.affordable_parts(search, "weighted", left,
                                                 lambda family, params: (0.0, 0.0))
        return [part["model"] for part in parts], dropped

    def cost(models: list[str]) -> float:
        return tuning.stacking._stack_cost(search, "weighted", [{"model": m, "params": {}}
                                                       for m in models],
                                  lambda family, params: (0.0, 0.0))

    assert affordable(cost(families)) == (families, [])
    # Leaving out popular (the weakest) is enough: ALS (costlier, better) stays.
    assert affordable(cost(["ease", "als"])) == (["ease", "als"], ["popular"])
    assert affordable(cost(["ease", "popular"])) == (["ease", "popular"], ["als"])
    # When no one part's absence is enough, the costliest goes first; the leader stays,
    # and a blend needs two parts.
    assert affordable(cost(["ease", "popular"]) / 2) == ([], ["als", "popular"])


def test_with_one_other_family_the_hybrid_keeps_its_default_parts(outer: Split) -> None:
    tuned = tune(outer.train, models=["popular", "weighted"], n_trials=1)
    first = tuned.trials.loc[tuned.trials["family"] == "weighted", "params"].iloc[0]
    assert [part["model"] for part in first["parts"]] == ["als", "item_knn", "popular"]
    assert tuning.stacked_composites(["popular", "weighted", "ranked"]) == ["ranked"]
    assert tuning.stacked_composites(["popular", "ease", "weighted", "ranked"]) == [
        "ranked", "weighted"]


def test_with_a_budget_the_blend_comes_after_the_families_it_blends(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    clock = FakeClock(monkeypatch, parts=True)  # every fit takes 1 s, each part's too
    tuned = tune(outer.train, models=["popular", "ease", "item_knn", "weighted"],
                 budget_seconds=40, clock=clock)
    order = tuned.trials.sort_values("number", kind="stable")
    searched = [family for family, events, _ in clock.fits
                if events == tuned.validation["first"]["train_events"]]
    first_blend = searched.index("weighted")
    assert set(searched[:first_blend]) == {"popular", "ease", "item_knn"}
    # Its parts are fitted once, for its first trial; later trials only re-weigh them.
    blends = order[order["family"] == "weighted"]
    assert (blends["state"] == "COMPLETE").sum() >= 2
    blended = searched[first_blend:]
    assert blended.count("weighted") == len(blends[blends["state"] != "WAITING"])
    assert sorted(family for family in blended if family != "weighted") == sorted(
        part["model"] for part in blends["params"].iloc[0]["parts"])
    stack = tuned.time_split.set_index(["phase", "family"]).loc[("stack", "weighted")]
    assert stack["spent"] <= stack["planned"]
    assert tuned.elapsed == clock.now <= 40


def test_time_the_stack_leaves_unused_goes_back_to_the_search(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    ranked_space = SEARCH_SPACES["ranked"]

    def failing(trial: optuna.Trial, shape: Any) -> dict[str, Any]:
        if isinstance(trial, optuna.trial.FixedTrial):  # the cost model's plans
            return ranked_space(trial, shape)
        raise RuntimeError("no ranker today")

    # The stacked ranker's trials all fail, so it gives up at once and leaves the time
    # kept for it.
    monkeypatch.setitem(SEARCH_SPACES, "ranked", failing)
    clock = FakeClock(monkeypatch)
    tuned = tune(outer.train, models=["popular", "item_knn", "ranked"], budget_seconds=40,
                 clock=clock)
    split = tuned.time_split
    stack = split[split["phase"] == "stack"].set_index("family").loc["ranked"]
    assert stack["spent"] < stack["planned"] / 2
    leftover = split[split["phase"] == "leftover"]
    assert set(leftover["family"]) <= {"popular", "item_knn"}
    assert leftover["trials"].sum() >= 2
    assert (leftover["spent"] <= leftover["planned"]).all()
    assert tuned.elapsed == clock.now <= 40
    assert tuned.best_name in {"popular", "item_knn"}


def test_the_stacked_rankers_first_trial_mirrors_the_protocol() -> None:
    data = leave_last_out_split(checkerboard(n_users=40, n_items=40, seed=3)).train
    tuned = tune(data, models=["popular", "ranked"], n_trials=1,
                 protocol="leave-last-one-out")
    first = tuned.trials.loc[tuned.trials["family"] == "ranked", "params"].iloc[0]
    assert (first["label_split"], first["label_fraction"]) == ("per-user", 0.01)
    assert first["num_leaves"] == 7


def test_alone_the_ranker_keeps_its_default_sources(outer: Split) -> None:
    tuned = tune(outer.train, models=["ranked"], n_trials=1)
    assert "sources" not in tuned.trials["params"].iloc[0]
    assert tuned.best_name == "ranked" and tuned.best_model.is_fitted


def test_with_a_budget_the_ranker_is_searched_after_the_families_it_stacks_on(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    clock = FakeClock(monkeypatch)  # every fit takes 1 s (the ranker's sources are reused)
    tuned = tune(outer.train, models=["popular", "ease", "ranked"], budget_seconds=16,
                 clock=clock)
    counts = tuned.trials.groupby("family").size()
    assert counts["popular"] > 1 and counts["ease"] > 1
    # Stacked on both families, it would need more than the time left for its trials,
    # re-check and final fit (the cost model counts its sources' fits, which this clock
    # does not charge): the leader's source stays, popular's is left out, and a note says so.
    sources = tuned.trials.loc[tuned.trials["family"] == "ranked", "params"].iloc[0]["sources"]
    assert [source["model"] for source in sources] == ["ease"]
    assert tuned.notes == ["ranked: stacked without the parts ['popular'] to fit the 4.7 s "
                           "left"]
    # Every trial of the ranker comes after those of the families it stacks on.
    searched = [family for family, events, _ in clock.fits
                if events == tuned.validation["first"]["train_events"]]
    assert searched == sorted(searched, key=lambda family: family == "ranked")
    # Held back for the guard and the final fit: 5% of the budget (0.8 s) and their
    # predicted time (about 3.6 s). The ranker gets its turn: the search keeps half of the
    # time left after the screen for it, as the cost model predicts its trials, re-check
    # and final fit fit in that (it counts the sources' fits too, which this clock does
    # not charge). So popular makes one trial after its screen and ease three, and the
    # ranker three, until the time its own re-check and final fit need is held back.
    assert len(searched) == 9 and counts["ranked"] == 3
    assert [events for _, events, _ in clock.fits[len(searched):]] == [112, 112, 112, 160]
    stack = tuned.time_split.set_index(["phase", "family"]).loc[("stack", "ranked")]
    assert stack["trials"] == 3 and stack["spent"] <= stack["planned"]
    assert tuned.elapsed == clock.now <= 16



# ---- the budget is a promise ------------------------------------------------------------

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


def test_a_final_fit_that_would_overrun_is_made_with_fewer_iterations(outer: Split) -> None:
    costs = CostModel()
    shape = DataShape.of(outer.train)
    params = {"factors": 8, "iterations": 40, "seed": 0}
    # Measured: a 40-iteration fit takes 10 s; 4 s are left.
    costs.record("als", params, shape, seconds=10.0, scored=False)
    budget = tuning.budget.Budget(started=0.0, seconds=20.0, clock=lambda: 16.0,
                            finishing=lambda: 0.0)
    ledger = tuning.budget.Ledger(progress=None)
    candidate = {"family": "als", "number": 3, "params": params, "reranker": {},
                 "first_fold": 0.3, "second_fold": 0.2, "mean": 0.25}
    best, model = tuning.tuner._fit_winner([candidate], outer.train, shape, costs, budget, ledger,
                                     fallback=None, progress=None)
    assert best["family"] == "als" and 1 <= best["params"]["iterations"] < 16
    assert model.config.iterations == best["params"]["iterations"] and model.is_fitted
    assert ledger.notes == [f"als refitted on all data with {best['params']['iterations']} "
                            "iterations instead of 40 to end within the budget"]
    # A family without iterations that would overrun gives way to the next candidate.
    costs.record("ease", {}, shape, seconds=30.0, scored=False)
    slow = {**candidate, "family": "ease", "params": {}, "mean": 0.3}
    best, model = tuning.tuner._fit_winner([slow, candidate], outer.train, shape, costs, budget,
                                     ledger, fallback=None, progress=None)
    assert best["family"] == "als" and any("ease not fitted on all data" in note
                                           for note in ledger.notes)


def test_the_stacked_ranker_gets_its_turn_when_time_allows(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    # Every fit takes 1 s, the ranker's sources too (once per label period).
    clock = FakeClock(monkeypatch, parts=True)
    tuned = tune(outer.train, models=["popular", "item_knn", "ranked"], budget_seconds=30,
                 clock=clock)
    stack = tuned.time_split.set_index(["phase", "family"]).loc[("stack", "ranked")]
    ranked = tuned.trials[tuned.trials["family"] == "ranked"]
    assert stack["trials"] >= 1 and (ranked["state"] == "COMPLETE").sum() == stack["trials"]
    assert stack["spent"] <= stack["planned"]
    # Its sources are the families searched before it, each fitted once for its trials.
    sources = ranked["params"].iloc[0]["sources"]
    assert {source["model"] for source in sources} == {"popular", "item_knn"}
    assert "ranked" in set(tuned.second_fold["family"])  # and it was re-checked
    assert tuned.elapsed == clock.now <= 30
    # With too little time for its sources, re-check and final fit, it is left out, and
    # says so; the others use the time.
    clock = FakeClock(monkeypatch, parts=True)
    short = tune(outer.train, models=["popular", "item_knn", "ranked"], budget_seconds=8,
                 clock=clock)
    assert (short.trials["family"] == "ranked").sum() == 1  # its starting point, unused
    assert short.trials.loc[short.trials["family"] == "ranked", "state"].iloc[0] == "WAITING"
    assert any(note.startswith("ranked left out") for note in short.notes)
    assert short.elapsed == clock.now <= 8


def test_a_screen_too_long_for_the_budget_runs_on_a_subsample_rechecked_at_full_size(
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = temporal_split(checkerboard(n_users=80, n_items=20, seed=4)).train
    monkeypatch.setattr(tuning.phases, "PROXY_SHARE", 0.0)  # any screen is too long
    monkeypatch.setattr(tuning.phases, "MIN_PROXY_USERS", 20)
    clock = FakeClock(monkeypatch)
    tuned = tune(data, models=["popular", "item_knn"], budget_seconds=30, clock=clock)
    first, searched = tuned.validation["first"], tuned.validation["searched"]
    assert searched["train_events"] < first["train_events"]
    assert searched["name"].endswith(" users)")  # e.g. "temporal (20 of 80 users)"
    assert any("the search runs on" in note for note in tuned.notes)
    # Every trial fits the subsample; the re-checks fit the whole first fold, then the
    # second, and the winner is fitted on all the data.
    trial_fits = len(tuned.trials)
    assert {events for _, events, _ in clock.fits[:trial_fits]} == {searched["train_events"]}
    rechecks = [events for _, events, _ in clock.fits[trial_fits:-1]]
    assert rechecks == [first["train_events"], tuned.validation["second"]["train_events"]] * (
        len(tuned.second_fold))
    assert clock.fits[-1][1] == len(data)
    # The first fold's score of a candidate is its score on the whole fold.
    winner = tuned.second_fold.iloc[0]
    trial_value = tuned.trials.loc[(tuned.trials["family"] == winner["family"])
                                   & (tuned.trials["number"] == winner["number"]), "value"]
    assert winner["first_fold"] != trial_value.iloc[0]
    assert tuned.elapsed == clock.now <= 30
