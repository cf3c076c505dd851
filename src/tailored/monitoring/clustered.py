"""User-level (clustered) inference for A/B tests: the user, not the impression, is the unit.

Users are assigned to the variants, so users are the independent units of an experiment.
One user's impressions are not independent (a user who clicks a lot clicks a lot on every
list), so a test that counts impressions as independent trials (the two-proportion
z-test of :mod:`tailored.monitoring.abtest`) underestimates the variance of the CTR and
finds differences that are not there: its false-positive rate in an A/A test exceeds
alpha as soon as users differ (see :func:`tailored.monitoring.abtest.aa_false_positive_rate`
and ``benchmarks/aa_test.py``). This module tests at the user level:

* :func:`ratio_estimate`: the CTR as a **ratio of per-user sums** (clicks / impressions
  summed over users) with its variance by the **delta method** (Deng, Knoblich and Lu
  2018, "Applying the Delta Method in Metric Analytics"): with per-user clicks ``x`` and
  impressions ``y`` over ``n`` users, ``R = mean(x) / mean(y)`` and
  ``Var(R) = (var(x) - 2 R cov(x, y) + R^2 var(y)) / (n mean(y)^2)``, the (co)variances
  over users. Moments are plug-in ones (divided by ``n``): when every user has one
  impression this is exactly the binomial ``R (1 - R) / n``, and it is the variance the
  user-level bootstrap estimates.
* :func:`delta_method_test`: a two-sample z-test and interval on the difference of two
  such ratios (variants are independent, so the variances add).
* :func:`bootstrap_ratio_difference`: the same difference by a **user-level bootstrap**
  (users resampled with replacement within each variant, seeded, vectorised): percentile
  interval and a two-sided p-value from the share of resampled differences on either side
  of zero.
* :func:`conversion_test`: the share of exposed users with at least one purchase, a
  two-proportion z-test over users (each user one Bernoulli trial, so it is valid as is).
* :func:`revenue_test`: revenue per exposed user (zero for users who bought nothing),
  Welch's t-test.

Every comparison returns a :class:`UserLevelTest` of variant minus control.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

#: Resamples of the user-level bootstrap unless told otherwise.
BOOTSTRAP_RESAMPLES = 1000

# Resampled rows drawn at once (resamples x users), to bound the memory of the bootstrap.
_BOOTSTRAP_CELLS = 1 << 22


class RatioEstimate(NamedTuple):
    """A ratio of per-user sums, its delta-method variance and the number of users."""

    ratio: float
    variance: float
    users: int

    @property
    def standard_error(self) -> float:
        return math.sqrt(self.variance) if self.variance >= 0 else math.nan


class UserLevelTest(NamedTuple):
    """A user-level comparison of a variant against the control.

    ``difference`` is variant minus control, ``standard_error`` its standard error,
    ``statistic`` the z (or Welch t) statistic, ``p_value`` two-sided, ``ci_low`` ..
    ``ci_high`` the interval of the difference.
    """

    difference: float
    standard_error: float
    statistic: float
    p_value: float
    ci_low: float
    ci_high: float


def ratio_estimate(numerators: ArrayLike, denominators: ArrayLike) -> RatioEstimate:
    """``sum(numerators) / sum(denominators)`` over users with its delta-method variance.

    Parameters
    ----------
    numerators, denominators : array-like
        Per-user sums, one entry per user (e.g. clicks and impressions). Users with no
        impressions count (with zeros): they were assigned too.

    Examples
    --------
    Every user with one impression: the binomial variance ``p (1 - p) / n``.

    >>> estimate = ratio_estimate([1, 0, 0, 1], [1, 1, 1, 1])
    >>> estimate.ratio, estimate.variance, estimate.users
    (0.5, 0.0625, 4)

    Two users, one who always clicks and one who never does: the CTR varies with the mix
    of users far more than with the number of impressions.

    >>> round(ratio_estimate([10, 0], [10, 10]).variance, 4)
    0.125
    """
    x = np.asarray(numerators, dtype=float)
    y = np.asarray(denominators, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"numerators and denominators must be 1-D of one length, got shapes "
                         f"{x.shape} and {y.shape}")
    ratio, variance = _ratio_moments(x, y)
    return RatioEstimate(float(ratio), float(variance), len(x))


def _ratio_moments(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ratio of sums and delta-method variance along the last axis (NaN without data)."""
    n = x.shape[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_x, mean_y = x.mean(axis=-1), y.mean(axis=-1)
        ratio = mean_x / mean_y
        dx, dy = x - mean_x[..., None], y - mean_y[..., None]
        var_x, var_y = (dx * dx).mean(axis=-1), (dy * dy).mean(axis=-1)
        cov = (dx * dy).mean(axis=-1)
        variance = (var_x - 2 * ratio * cov + ratio * ratio * var_y) / (n * mean_y * mean_y)
    # Rounding can leave a tiny negative where the true value is 0.
    return ratio, np.maximum(variance, 0.0)


def delta_method_test(clicks_control: ArrayLike, impressions_control: ArrayLike,
                      clicks_variant: ArrayLike, impressions_variant: ArrayLike, *,
                      confidence: float = 0.95) -> UserLevelTest:
    """Two-sided z-test of equal ratios with per-user (delta-method) variances.

    Each argument holds one entry per user of its variant (per-user sums).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> impressions = rng.integers(1, 40, size=(2, 500))
    >>> clicks = rng.binomial(impressions, rng.beta(1, 19, size=(2, 500)))
    >>> test = delta_method_test(clicks[0], impressions[0], clicks[1], impressions[1])
    >>> bool(test.ci_low < test.difference < test.ci_high), bool(0 <= test.p_value <= 1)
    (True, True)
    """
    _check_confidence(confidence)
    control = ratio_estimate(clicks_control, impressions_control)
    variant = ratio_estimate(clicks_variant, impressions_variant)
    if not (math.isfinite(control.ratio) and math.isfinite(variant.ratio)):
        raise ValueError("each variant needs users with impressions (a positive "
                         "denominator sum) for a delta-method test")
    return _z_test(variant.ratio - control.ratio, control.variance + variant.variance,
                   confidence)


def bootstrap_ratio_difference(clicks_control: ArrayLike, impressions_control: ArrayLike,
                               clicks_variant: ArrayLike, impressions_variant: ArrayLike, *,
                               resamples: int = BOOTSTRAP_RESAMPLES,
                               confidence: float = 0.95, seed: int = 0) -> UserLevelTest:
    """The difference of two ratios of per-user sums by a user-level bootstrap.

    Users are resampled with replacement within each variant ``resamples`` times (a
    seeded generator: the same inputs give the same answer). The interval is the
    percentile interval of the resampled differences; the p-value is twice the smaller
    share of resampled differences at or beyond zero on either side, ``(count + 1) /
    (resamples + 1)`` so that it is never 0; ``statistic`` is the observed difference
    over the bootstrap standard error. Resamples where a variant has no impressions are
    dropped.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> impressions = rng.integers(1, 40, size=(2, 300))
    >>> clicks = rng.binomial(impressions, rng.beta(1, 19, size=(2, 300)))
    >>> boot = bootstrap_ratio_difference(clicks[0], impressions[0], clicks[1],
    ...                                   impressions[1], resamples=500)
    >>> delta = delta_method_test(clicks[0], impressions[0], clicks[1], impressions[1])
    >>> bool(abs(boot.standard_error / delta.standard_error - 1) < 0.15)
    True
    """
    _check_confidence(confidence)
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    rng = np.random.default_rng(seed)
    control = _bootstrap_ratios(np.asarray(clicks_control, float),
                                np.asarray(impressions_control, float), resamples, rng)
    variant = _bootstrap_ratios(np.asarray(clicks_variant, float),
                                np.asarray(impressions_variant, float), resamples, rng)
    observed = (float(np.sum(clicks_variant)) / float(np.sum(impressions_variant))
                - float(np.sum(clicks_control)) / float(np.sum(impressions_control)))
    differences = variant - control
    differences = differences[np.isfinite(differences)]
    if not len(differences):
        raise ValueError("no bootstrap resample had impressions in both variants")
    tail = (1 - confidence) / 2
    low, high = np.quantile(differences, [tail, 1 - tail])
    below = int(np.sum(differences <= 0))
    above = int(np.sum(differences >= 0))
    p_value = min(1.0, 2 * (min(below, above) + 1) / (len(differences) + 1))
    se = float(np.std(differences))
    statistic = observed / se if se > 0 else 0.0
    return UserLevelTest(observed, se, statistic, p_value, float(low), float(high))


def _bootstrap_ratios(x: np.ndarray, y: np.ndarray, resamples: int,
                      rng: np.random.Generator) -> np.ndarray:
    """``resamples`` ratios of sums, users drawn with replacement (chunks bound memory)."""
    n = len(x)
    if n == 0 or x.shape != y.shape:
        raise ValueError(f"each variant needs users (of one length for both arrays), got "
                         f"{x.shape} and {y.shape}")
    both = np.stack([x, y], axis=1)
    chunk = max(1, _BOOTSTRAP_CELLS // n)
    sums = np.empty((resamples, 2))
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        picks = rng.integers(0, n, size=(stop - start, n))
        sums[start:stop] = both[picks].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sums[:, 1] > 0, sums[:, 0] / sums[:, 1], np.nan)


def conversion_test(conversions_control: int, users_control: int, conversions_variant: int,
                    users_variant: int, *, confidence: float = 0.95) -> UserLevelTest:
    """Share of exposed users who converted: two-proportion z-test over users.

    The p-value uses the pooled variance (the test of equal shares); the interval of the
    difference uses each variant's own variance.

    Examples
    --------
    >>> test = conversion_test(100, 1000, 130, 1000)
    >>> round(test.difference, 3), round(test.statistic, 3), round(test.p_value, 4)
    (0.03, 2.103, 0.0355)
    """
    _check_confidence(confidence)
    for converted, users in ((conversions_control, users_control),
                             (conversions_variant, users_variant)):
        if users <= 0 or not 0 <= converted <= users:
            raise ValueError(f"need 0 <= conversions <= users and users > 0, got "
                             f"{converted} of {users}")
    rate_c, rate_v = conversions_control / users_control, conversions_variant / users_variant
    difference = rate_v - rate_c
    pooled = (conversions_control + conversions_variant) / (users_control + users_variant)
    pooled_variance = pooled * (1 - pooled) * (1 / users_control + 1 / users_variant)
    own_variance = rate_c * (1 - rate_c) / users_control + rate_v * (1 - rate_v) / users_variant
    z = difference / math.sqrt(pooled_variance) if pooled_variance > 0 else 0.0
    p_value = float(2 * stats.norm.sf(abs(z))) if pooled_variance > 0 else 1.0
    half = _z(confidence) * math.sqrt(own_variance)
    return UserLevelTest(difference, math.sqrt(own_variance), z, p_value, difference - half,
                         difference + half)


def revenue_test(revenue_control: ArrayLike, revenue_variant: ArrayLike, *,
                 confidence: float = 0.95) -> UserLevelTest:
    """Revenue per exposed user: Welch's t-test (unequal variances) on per-user revenue.

    Each argument holds one entry per exposed user of its variant, zero for users who
    bought nothing. With no spread in either variant the p-value is 1 (0 if the means
    differ).

    Examples
    --------
    >>> test = revenue_test([0, 0, 10, 0], [0, 20, 30, 0])
    >>> test.difference, round(test.p_value, 3)
    (10.0, 0.28)
    """
    _check_confidence(confidence)
    control = np.asarray(revenue_control, float)
    variant = np.asarray(revenue_variant, float)
    if len(control) < 2 or len(variant) < 2:
        raise ValueError(f"Welch's t-test needs at least 2 users per variant, got "
                         f"{len(control)} and {len(variant)}")
    difference = float(variant.mean() - control.mean())
    variance = control.var(ddof=1) / len(control) + variant.var(ddof=1) / len(variant)
    if variance == 0:
        p = 1.0 if difference == 0 else 0.0
        return UserLevelTest(difference, 0.0, 0.0, p, difference, difference)
    result = stats.ttest_ind(variant, control, equal_var=False)
    interval = result.confidence_interval(confidence)
    return UserLevelTest(difference, float(math.sqrt(variance)), float(result.statistic),
                         float(result.pvalue), float(interval.low), float(interval.high))


def _z_test(difference: float, variance: float, confidence: float) -> UserLevelTest:
    if variance <= 0:
        return UserLevelTest(difference, 0.0, 0.0, 1.0, difference, difference)
    se = math.sqrt(variance)
    z = difference / se
    half = _z(confidence) * se
    return UserLevelTest(difference, se, z, float(2 * stats.norm.sf(abs(z))),
                         difference - half, difference + half)


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
