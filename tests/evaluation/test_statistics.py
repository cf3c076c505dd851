from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from tailored.evaluation.statistics import ConfidenceInterval, bootstrap_ci, paired_test


def test_bootstrap_ci_agrees_with_scipy_percentile_bootstrap() -> None:
    values = np.random.default_rng(7).exponential(0.2, size=150)
    mean, low, high = bootstrap_ci(values, confidence=0.9, n_resamples=20_000, seed=1)
    reference = stats.bootstrap((values,), np.mean, confidence_level=0.9, n_resamples=20_000,
                                method="percentile", rng=np.random.default_rng(2))
    assert mean == pytest.approx(values.mean())
    # Different resamples, same estimator: the bounds agree up to Monte Carlo error.
    assert low == pytest.approx(reference.confidence_interval.low, abs=0.002)
    assert high == pytest.approx(reference.confidence_interval.high, abs=0.002)


def test_bootstrap_ci_of_two_values_by_hand() -> None:
    # Resampled means of [0, 1] are 0, 0.5 and 1 with chances 1/4, 1/2, 1/4.
    assert bootstrap_ci([0.0, 1.0], n_resamples=5000) == (0.5, 0.0, 1.0)
    # At 40% the central interval lies inside the middle mass at 0.5.
    assert bootstrap_ci([0.0, 1.0], confidence=0.4, n_resamples=5000) == (0.5, 0.5, 0.5)


def test_bootstrap_ci_is_reproducible_by_seed() -> None:
    values = np.random.default_rng(0).random(40)
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)


def test_bootstrap_ci_without_spread_has_no_width() -> None:
    assert bootstrap_ci([0.5] * 7) == ConfidenceInterval(0.5, 0.5, 0.5)
    assert bootstrap_ci([0.25]) == (0.25, 0.25, 0.25)


def test_bootstrap_ci_covers_the_true_mean_about_as_often_as_it_says() -> None:
    rng = np.random.default_rng(11)
    covered = sum(
        low <= 0.5 <= high
        for _, low, high in (bootstrap_ci(rng.random(60), n_resamples=500, seed=s)
                             for s in range(300)))
    assert 0.89 <= covered / 300 <= 0.99


def test_bootstrap_ci_resamples_in_blocks_without_changing_the_shape_of_the_answer() -> None:
    values = np.random.default_rng(1).random(3000)  # 2000 x 3000 draws span several blocks
    mean, low, high = bootstrap_ci(values)
    standard_error = values.std(ddof=1) / np.sqrt(values.size)
    assert low == pytest.approx(mean - 1.96 * standard_error, abs=0.003)
    assert high == pytest.approx(mean + 1.96 * standard_error, abs=0.003)


@pytest.mark.parametrize(("values", "kwargs", "message"), [
    ([], {}, "empty"),
    ([0.1, float("nan")], {}, "1 NaN of 2 values"),
    ([[0.1, 0.2]], {}, "1-D"),
    ([0.1, 0.2], {"confidence": 95}, "confidence must be between 0 and 1"),
    ([0.1, 0.2], {"n_resamples": 0}, "n_resamples must be at least 1"),
])
def test_bootstrap_ci_refuses_bad_input(values: list, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bootstrap_ci(values, **kwargs)


def test_paired_test_reports_scipys_p_values_and_the_mean_difference() -> None:
    rng = np.random.default_rng(5)
    a = rng.random(80)
    b = a + rng.normal(0.05, 0.2, size=80)
    result = paired_test(a, b, name_a="Popular", name_b="ALS")
    assert result.n_users == 80
    assert result.mean_a == pytest.approx(a.mean())
    assert result.mean_b == pytest.approx(b.mean())
    assert result.t_pvalue == pytest.approx(stats.ttest_rel(b, a).pvalue)
    assert result.wilcoxon_pvalue == pytest.approx(stats.wilcoxon(b - a).pvalue)
    assert result.difference == bootstrap_ci(b - a)


def test_paired_test_verdict_names_the_better_model() -> None:
    a = [0.1, 0.2, 0.0, 0.3, 0.1, 0.2, 0.0, 0.1, 0.2, 0.3]
    b = [0.3, 0.4, 0.1, 0.5, 0.2, 0.4, 0.1, 0.3, 0.3, 0.6]
    assert paired_test(a, b).verdict == "B better than A at 95%"
    assert paired_test(b, a).verdict == "A better than B at 95%"
    assert paired_test(b, a, name_a="ALS", name_b="Popular").verdict == (
        "ALS better than Popular at 95%")
    # For a figure where lower is better (popularity), the lower model wins.
    assert paired_test(a, b, higher_is_better=False).verdict == "A better than B at 95%"
    assert paired_test(a, b, confidence=0.99).verdict.endswith("at 99%")


def test_paired_test_without_a_clear_difference() -> None:
    rng = np.random.default_rng(2)
    a = rng.random(30)
    b = a + rng.normal(0, 0.3, size=30)
    result = paired_test(a, b)
    assert result.t_pvalue > 0.05
    assert not result.significant
    assert result.verdict == "no significant difference at 95%"
    assert result.difference.low < 0 < result.difference.high
    assert "no significant difference" in str(result)


def test_paired_test_of_identical_models_says_p_is_one_without_warnings() -> None:
    values = [0.0, 0.5, 0.25, 0.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = paired_test(values, values)
    assert (result.t_pvalue, result.wilcoxon_pvalue) == (1.0, 1.0)
    assert result.difference == (0.0, 0.0, 0.0)
    assert result.verdict == "no significant difference at 95%"


def test_paired_test_of_a_constant_shift_is_certain() -> None:
    a = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    b = [value + 0.125 for value in a]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = paired_test(a, b)
    assert result.t_pvalue == 0.0
    assert result.wilcoxon_pvalue == pytest.approx(stats.wilcoxon([0.125] * 7).pvalue)
    assert result.verdict == "B better than A at 95%"


def test_paired_test_needs_the_same_users() -> None:
    with pytest.raises(ValueError, match="same users in the same order"):
        paired_test([0.1, 0.2, 0.3], [0.1, 0.2])
    with pytest.raises(ValueError, match="at least 2 users"):
        paired_test([0.1], [0.2])
    with pytest.raises(ValueError, match="b_values holds 1 NaN"):
        paired_test([0.1, 0.2], [0.1, float("nan")])
