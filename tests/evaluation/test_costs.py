"""The cost model behind tune's budget: work scales with the data and parameters, rates
come from what was measured."""

from __future__ import annotations

import pytest

from tailored.evaluation.costs import (
    REFERENCES,
    SPEED_LIMIT,
    WORK,
    CostModel,
)
from tailored.evaluation.search_spaces import SEARCH_SPACES, DataShape
from tailored.testing import checkerboard

# MovieLens 100K's first temporal fold, and the same users with a ten times larger catalog.
FOLD = DataShape(users=751, items=1_616, events=80_000, pairs=80_000, scored_users=107)
WIDE = DataShape(users=751, items=16_160, events=80_000, pairs=80_000, scored_users=107)


def test_every_searched_family_has_a_work_formula_and_a_reference_rate() -> None:
    assert set(SEARCH_SPACES) <= set(WORK) == set(REFERENCES)


def test_the_shape_of_a_dataset_counts_pairs_and_their_weights() -> None:
    data = checkerboard(n_users=40, n_items=20)
    shape = DataShape.of(data, scored_users=7)
    matrix = data.matrix()
    assert (shape.users, shape.items, shape.pairs, shape.scored_users) == (
        40, 20, matrix.nnz, 7)
    assert shape.mean_square_weight == pytest.approx((matrix.data ** 2).mean())


def test_work_grows_with_iterations_factors_and_the_catalog() -> None:
    costs = CostModel()
    als = {"factors": 32, "iterations": 15}
    fifteen = costs.seconds("als", als, FOLD)
    assert costs.seconds("als", als, FOLD, steps=30) == pytest.approx(
        2 * fifteen - costs.overhead("als"), rel=0.05)  # the scoring is paid once
    assert costs.seconds("bpr", {"factors": 256}, FOLD) > costs.seconds(
        "bpr", {"factors": 32}, FOLD)
    # EASE inverts an items x items matrix: ten times the catalog, about a thousand times
    # the time; item-kNN's co-occurrences stay, its scoring grows with the catalog.
    assert costs.seconds("ease", {}, WIDE) / costs.seconds("ease", {}, FOLD) > 500
    assert costs.seconds("item_knn", {}, WIDE, scored=False) == pytest.approx(
        costs.seconds("item_knn", {}, FOLD, scored=False))
    assert costs.seconds("item_knn", {}, WIDE) > costs.seconds("item_knn", {}, FOLD)
    # A fit alone costs less than a check that also scores the validation users.
    assert costs.seconds("popular", {}, FOLD, scored=False) < costs.seconds("popular", {}, FOLD)


def test_a_measured_check_sets_the_familys_rate_and_predicts_other_data() -> None:
    costs = CostModel()
    params = {"factors": 32, "iterations": 15}
    costs.record("als", params, FOLD, seconds=3.0)
    assert costs.is_measured("als") and not costs.is_measured("bpr")
    assert costs.seconds("als", params, FOLD) == pytest.approx(3.0)
    # All the data (a quarter more users, items and events), fitted without scoring.
    full = DataShape(users=943, items=1_682, events=100_000, pairs=100_000)
    assert 3.0 < costs.seconds("als", params, full, scored=False) < 3.0 * 1.4
    # The slowest of the last few checks predicts: a busy machine makes it careful.
    costs.record("als", params, FOLD, seconds=6.0)
    costs.record("als", params, FOLD, seconds=2.0)
    assert costs.seconds("als", params, FOLD) == pytest.approx(6.0)


def test_a_check_far_smaller_than_the_largest_does_not_set_the_rate() -> None:
    costs = CostModel()
    small, large = {"factors": 8, "iterations": 1}, {"factors": 128, "iterations": 30}
    costs.record("als", large, FOLD, seconds=4.0)
    predicted = costs.seconds("als", large, FOLD)
    # A tiny fit spends most of its time on fixed costs: its rate is many times higher.
    costs.record("als", small, FOLD, seconds=1.0)
    assert costs.seconds("als", small, FOLD) / costs.seconds("als", large, FOLD) < 0.1
    assert costs.seconds("als", large, FOLD) == pytest.approx(predicted)
    # On its own, it counts.
    alone = CostModel()
    alone.record("als", small, FOLD, seconds=1.0)
    assert alone.seconds("als", small, FOLD) == pytest.approx(1.0)


def test_a_family_not_measured_yet_runs_at_the_machines_measured_speed_within_limits(
        ) -> None:
    costs = CostModel()
    reference = costs.seconds("ease", {}, FOLD)
    popular = costs.seconds("popular", {}, FOLD)
    fixed = costs.overhead("popular"), costs.overhead("ease")
    costs.record("popular", {}, FOLD, seconds=fixed[0] + 2 * (popular - fixed[0]))
    assert costs.speed() == pytest.approx(2.0)
    assert costs.seconds("ease", {}, FOLD) == pytest.approx(
        fixed[1] + 2 * (reference - fixed[1]))
    costs.record("popular", {}, FOLD, seconds=1000 * popular)  # a stalled machine
    assert costs.speed() == SPEED_LIMIT


def test_a_composite_costs_its_parts_unless_they_are_fitted_already() -> None:
    costs = CostModel()
    sources = [{"model": "ease", "n": 100}, {"model": "item_knn", "n": 50}]
    ranked = {"sources": sources, "n_estimators": 100}
    # It fits each source twice: on the events before its labels, and on all of them.
    parts = 2 * (costs.seconds("ease", {}, FOLD, scored=False) + costs.seconds(
        "item_knn", {}, FOLD, scored=False))
    assert costs.parts_seconds("ranked", ranked, FOLD) == pytest.approx(parts)
    own = costs.seconds("ranked", ranked, FOLD, with_parts=False)
    assert costs.seconds("ranked", ranked, FOLD) == pytest.approx(own + parts)
    # More trees cost more; a measured trial teaches the ranker's own rate, net of parts.
    assert costs.seconds("ranked", {**ranked, "n_estimators": 400}, FOLD,
                         with_parts=False) > own
    costs.record("ranked", ranked, FOLD, seconds=parts + 2 * own)
    assert costs.seconds("ranked", ranked, FOLD, with_parts=False) == pytest.approx(
        2 * own, rel=0.05)
    # A source family the tuner does not search (trending) costs like popular.
    assert costs.seconds("trending", {}, FOLD) == pytest.approx(costs.seconds("popular", {},
                                                                             FOLD))


def test_invalid_params_cost_like_the_defaults_instead_of_failing() -> None:
    costs = CostModel()
    assert costs.seconds("item_knn", {"neighbors": 0}, FOLD) == costs.seconds(
        "item_knn", {}, FOLD)
