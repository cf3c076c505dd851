"""User-level statistics: the delta method against the bootstrap and by hand, the A/A
false-positive rates of the impression-level and user-level tests, conversion and revenue."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tailored.monitoring.abtest import (
    aa_false_positive_rate,
    simulate_users,
    two_proportion_ztest,
)
from tailored.monitoring.clustered import (
    bootstrap_ratio_difference,
    conversion_test,
    delta_method_test,
    ratio_estimate,
    revenue_test,
)


def test_delta_method_variance_by_hand() -> None:
    # x = (1, 0, 5), y = (2, 4, 6): means 2 and 4, R = 0.5; plug-in var(x) = 14/3,
    # var(y) = 8/3, cov = (-1 * -2 + -2 * 0 + 3 * 2) / 3 = 8/3;
    # Var(R) = (14/3 - 2 * 0.5 * 8/3 + 0.25 * 8/3) / (3 * 4^2) = (8/3) / 48 = 1/18.
    x, y = np.array([1.0, 0.0, 5.0]), np.array([2.0, 4.0, 6.0])
    expected = (14 / 3 - 2 * 0.5 * 8 / 3 + 0.25 * 8 / 3) / (3 * 4 ** 2)
    estimate = ratio_estimate(x, y)
    assert estimate.ratio == pytest.approx(0.5)
    assert estimate.variance == pytest.approx(expected) == pytest.approx(1 / 18)
    assert estimate.users == 3
    # The same as the linearisation: the plug-in variance of (x - R y) / mean(y), over n.
    assert estimate.variance == pytest.approx(np.var((x - 0.5 * y) / 4) / 3)


def test_one_impression_per_user_gives_the_binomial_variance() -> None:
    rng = np.random.default_rng(0)
    clicks = (rng.random(800) < 0.07).astype(float)
    ones = np.ones_like(clicks)
    p = clicks.mean()
    assert ratio_estimate(clicks, ones).variance == pytest.approx(p * (1 - p) / len(clicks),
                                                                  rel=1e-12)
    # And the delta-method test is then the unpooled two-proportion z-test.
    other = (rng.random(900) < 0.09).astype(float)
    q = other.mean()
    test = delta_method_test(clicks, ones, other, np.ones_like(other))
    se = math.sqrt(p * (1 - p) / 800 + q * (1 - q) / 900)
    assert test.difference == pytest.approx(q - p)
    assert test.standard_error == pytest.approx(se)
    assert test.p_value == pytest.approx(2 * stats.norm.sf(abs(q - p) / se))
    assert test.ci_low == pytest.approx(q - p - 1.959963984540054 * se)


def test_delta_method_variance_matches_the_user_level_bootstrap() -> None:
    rng = np.random.default_rng(5)
    a, b = simulate_users(1500, rng=rng), simulate_users(1500, rng=rng)
    delta = delta_method_test(a.clicks, a.impressions, b.clicks, b.impressions)
    boot = bootstrap_ratio_difference(a.clicks, a.impressions, b.clicks, b.impressions,
                                      resamples=2000, seed=3)
    # The bootstrap variance of 2000 resamples is within a few percent of its limit.
    assert boot.standard_error ** 2 == pytest.approx(delta.standard_error ** 2, rel=0.1)
    assert boot.difference == pytest.approx(delta.difference)
    assert boot.ci_low == pytest.approx(delta.ci_low, abs=0.2 * delta.standard_error)
    assert boot.ci_high == pytest.approx(delta.ci_high, abs=0.2 * delta.standard_error)
    assert boot.p_value == pytest.approx(delta.p_value, abs=0.05)
    # Heterogeneous users: the binomial variance is far too small.
    ctr = a.clicks.sum() / a.impressions.sum()
    binomial = ctr * (1 - ctr) / a.impressions.sum()
    assert ratio_estimate(a.clicks, a.impressions).variance > 2 * binomial


def test_bootstrap_is_seeded_and_finds_a_real_difference() -> None:
    rng = np.random.default_rng(2)
    a = simulate_users(800, rng=rng, mean_ctr=0.05)
    b = simulate_users(800, rng=rng, mean_ctr=0.08)
    first = bootstrap_ratio_difference(a.clicks, a.impressions, b.clicks, b.impressions)
    again = bootstrap_ratio_difference(a.clicks, a.impressions, b.clicks, b.impressions)
    assert first == again
    assert first.p_value < 0.01 and first.ci_low > 0 and first.ci_low < first.difference
    assert first.p_value >= 2 / 1001  # never 0: (count + 1) / (resamples + 1)
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_ratio_difference(a.clicks, a.impressions, b.clicks, b.impressions,
                                   resamples=0)


def test_delta_method_needs_impressions_in_both_variants() -> None:
    with pytest.raises(ValueError, match="positive denominator"):
        delta_method_test([0, 0], [0, 0], [1, 2], [3, 4])
    with pytest.raises(ValueError, match="1-D of one length"):
        ratio_estimate([1, 2], [3])


def test_aa_false_positive_rate_of_the_delta_method_is_alpha() -> None:
    """1,000 A/A experiments of 1,000 heterogeneous users (about 0.5 s): the user-level
    test errs about 5% of the time, the impression-level one several times as often."""
    result = aa_false_positive_rate(1000, 1000, seed=0)
    assert 0.03 <= result.rates["delta method"] <= 0.07
    assert result.rates["impression z-test"] > 0.15
    low, high = result.intervals["impression z-test"]
    assert low > 0.05 and low < result.rates["impression z-test"] < high
    assert result.design_effect > 2
    assert result.experiments == {"impression z-test": 1000, "delta method": 1000}


def test_without_heterogeneity_both_tests_hold_alpha() -> None:
    # Every user the same CTR, one answer each: impressions are independent after all.
    result = aa_false_positive_rate(1000, 600, seed=1, ctr_concentration=1e7,
                                    mean_sessions=1.0)
    assert 0.03 <= result.rates["impression z-test"] <= 0.07
    assert 0.03 <= result.rates["delta method"] <= 0.07
    assert result.design_effect == pytest.approx(1.0, abs=0.05)


def test_aa_bootstrap_holds_alpha_roughly() -> None:
    result = aa_false_positive_rate(200, 400, seed=2, bootstrap_experiments=200,
                                    resamples=400)
    assert result.experiments["bootstrap"] == 200
    assert result.rates["bootstrap"] <= 0.1
    assert result.rates["impression z-test"] > result.rates["bootstrap"]


def test_conversion_test_by_hand() -> None:
    # 2 of 5 users bought in A, 4 of 5 in B: pooled 0.6, se sqrt(0.24 * 0.4).
    test = conversion_test(2, 5, 4, 5)
    z = 0.4 / math.sqrt(0.6 * 0.4 * (1 / 5 + 1 / 5))
    assert test.difference == pytest.approx(0.4)
    assert test.statistic == pytest.approx(z)
    assert test.p_value == pytest.approx(2 * stats.norm.sf(z))
    assert test.p_value == pytest.approx(two_proportion_ztest(2, 5, 4, 5).p_value)
    own = math.sqrt(0.4 * 0.6 / 5 + 0.8 * 0.2 / 5)
    assert (test.ci_low, test.ci_high) == pytest.approx((0.4 - 1.959964 * own,
                                                        0.4 + 1.959964 * own))
    assert conversion_test(0, 5, 0, 5).p_value == 1.0
    with pytest.raises(ValueError, match="conversions <= users"):
        conversion_test(6, 5, 0, 5)


def test_revenue_test_by_hand() -> None:
    # A: 0, 0, 10, 0 (mean 2.5, s^2 25); B: 0, 20, 30, 0 (mean 12.5, s^2 225).
    # se^2 = 25/4 + 225/4 = 62.5; Welch df = 62.5^2 / ((25/4)^2/3 + (225/4)^2/3).
    test = revenue_test([0, 0, 10, 0], [0, 20, 30, 0])
    se = math.sqrt(62.5)
    df = 62.5 ** 2 / ((25 / 4) ** 2 / 3 + (225 / 4) ** 2 / 3)
    assert test.difference == pytest.approx(10.0)
    assert test.standard_error == pytest.approx(se)
    assert test.statistic == pytest.approx(10 / se)
    assert test.p_value == pytest.approx(2 * stats.t.sf(10 / se, df))
    assert test.ci_low == pytest.approx(10 - stats.t.ppf(0.975, df) * se)
    assert revenue_test([0, 0], [0, 0]).p_value == 1.0
    with pytest.raises(ValueError, match="at least 2 users"):
        revenue_test([1.0], [1.0, 2.0])
