"""Search spaces: every sampled point is a valid config, starting points are the
models' defaults, and ranges scale with the data."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from tailored.evaluation.search_spaces import (
    EPOCH_FAMILIES,
    ITERATIVE_FAMILIES,
    REFERENCE_SHAPE,
    REQUIREMENTS,
    SEARCH_SPACES,
    STARTING_DEVIATIONS,
    STARTING_POINTS,
    DataShape,
    starting_point,
)
from tailored.evaluation.tuning import (
    available_families,
)
from tailored.evaluation.tuning import search as tuning_search
from tailored.models import MODELS, create


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
    real = tuning_search.importlib.util.find_spec
    monkeypatch.setattr(tuning_search.importlib.util, "find_spec",
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
