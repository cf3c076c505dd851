"""Uncertainty of offline figures: bootstrap confidence intervals and paired model tests.

Both work on per-user values (``RankingMetric.values``, ``ListMetric.values``), so an
interval says how much a mean over these test users could move with other users, and
a paired test compares two models on the very same users.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import stats

#: Bootstrap resamples are drawn in blocks of at most this many values, to bound memory.
_BLOCK_VALUES = 1 << 22


class ConfidenceInterval(NamedTuple):
    """A mean with the bounds of its confidence interval; unpacks as ``mean, low, high``."""

    mean: float
    low: float
    high: float


def _as_values(values: Sequence[float] | npt.ArrayLike, name: str = "values") -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one value per user (1-D), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty; a mean needs at least one user's value")
    missing = int(np.isnan(array).sum())
    if missing:
        raise ValueError(
            f"{name} holds {missing} NaN of {array.size} values (users without a value, e.g. "
            "the diversity of a list shorter than two items); drop those users first")
    return array


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (e.g. 0.95), got {confidence}")


def bootstrap_ci(values: Sequence[float] | npt.ArrayLike, confidence: float = 0.95,
                 n_resamples: int = 2000, seed: int = 0) -> ConfidenceInterval:
    """The mean of ``values`` and its percentile-bootstrap confidence interval.

    Users are resampled with replacement ``n_resamples`` times; the bounds are the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the resampled
    means. The same ``seed`` gives the same interval.

    Parameters
    ----------
    values : sequence of float
        One value per user (no NaN).
    confidence : float, default 0.95
        Coverage of the interval, between 0 and 1.
    n_resamples : int, default 2000
        Bootstrap resamples; more give steadier bounds.
    seed : int, default 0
        Seed of the resampling.

    Returns
    -------
    ConfidenceInterval
        ``(mean, low, high)``.

    Examples
    --------
    >>> mean, low, high = bootstrap_ci([0.0, 0.5, 1.0, 0.25, 0.75], seed=1)
    >>> mean
    0.5
    >>> 0.15 < low < mean < high < 0.85
    True
    >>> bootstrap_ci([0.3, 0.3, 0.3])   # no spread, no uncertainty
    ConfidenceInterval(mean=0.3, low=0.3, high=0.3)
    """
    array = _as_values(values)
    _check_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    mean = float(array.mean())
    if np.ptp(array) == 0:
        return ConfidenceInterval(mean, mean, mean)
    rng = np.random.default_rng(seed)
    n = array.size
    block = max(1, _BLOCK_VALUES // n)
    means = np.concatenate([
        array[rng.integers(0, n, size=(min(block, n_resamples - start), n))].mean(axis=1)
        for start in range(0, n_resamples, block)
    ])
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return ConfidenceInterval(mean, float(low), float(high))


@dataclass(frozen=True)
class PairedTest:
    """Two models' per-user values on the same users, compared.

    ``difference`` is B minus A: its mean and bootstrap interval. ``verdict`` rests on
    the paired t-test; the Wilcoxon signed-rank p-value is there as a check that makes
    no normality assumption (per-user metrics are often mostly zeros).
    """

    name_a: str
    name_b: str
    n_users: int
    mean_a: float
    mean_b: float
    difference: ConfidenceInterval
    t_pvalue: float
    wilcoxon_pvalue: float
    confidence: float
    higher_is_better: bool = True

    @property
    def significant(self) -> bool:
        """Whether the paired t-test rejects "no difference" at ``confidence``."""
        return self.t_pvalue < 1 - self.confidence

    @property
    def verdict(self) -> str:
        """"B better than A at 95%", "A better than B at 95%" or "no significant difference"."""
        if not self.significant:
            return f"no significant difference at {self.confidence * 100:g}%"
        b_wins = (self.difference.mean > 0) == self.higher_is_better
        better, worse = (self.name_b, self.name_a) if b_wins else (self.name_a, self.name_b)
        return f"{better} better than {worse} at {self.confidence * 100:g}%"

    def __str__(self) -> str:
        mean, low, high = self.difference
        return (f"{self.name_b} - {self.name_a} = {mean:+.4f} "
                f"({self.confidence * 100:g}% CI {low:+.4f} to {high:+.4f}; "
                f"{self.n_users} users; paired t p={self.t_pvalue:.3g}, "
                f"Wilcoxon p={self.wilcoxon_pvalue:.3g}): {self.verdict}")


def paired_test(a_values: Sequence[float] | npt.ArrayLike,
                b_values: Sequence[float] | npt.ArrayLike, *, confidence: float = 0.95,
                n_resamples: int = 2000, seed: int = 0, name_a: str = "A", name_b: str = "B",
                higher_is_better: bool = True) -> PairedTest:
    """Compare two models' per-user values over the same users, in the same order.

    Parameters
    ----------
    a_values, b_values : sequence of float
        Model A's and model B's value for each user; position ``i`` is the same user.
    confidence : float, default 0.95
        Level of the interval and of the verdict (significant when p < 1 - confidence).
    n_resamples, seed : int
        Bootstrap resamples and seed for the interval of the mean difference.
    name_a, name_b : str
        Names used in the verdict.
    higher_is_better : bool, default True
        False for figures where lower is better (popularity, Gini).

    Returns
    -------
    PairedTest
        Means, the mean difference B - A with its interval, the paired t-test and
        Wilcoxon signed-rank p-values, and a verdict. Identical values give p = 1.

    Examples
    --------
    >>> a = [0.1, 0.2, 0.0, 0.3, 0.1, 0.2, 0.0, 0.1]
    >>> b = [0.3, 0.4, 0.2, 0.5, 0.2, 0.4, 0.1, 0.3]
    >>> result = paired_test(a, b, name_a="Popular", name_b="ALS")
    >>> round(result.difference.mean, 3), result.verdict
    (0.175, 'ALS better than Popular at 95%')
    >>> paired_test(a, a).verdict
    'no significant difference at 95%'
    """
    a = _as_values(a_values, "a_values")
    b = _as_values(b_values, "b_values")
    if a.size != b.size:
        raise ValueError(
            f"a_values has {a.size} users and b_values {b.size}; a paired test needs both "
            "models' values for the same users in the same order")
    if a.size < 2:
        raise ValueError(f"a paired test needs at least 2 users, got {a.size}")
    differences = b - a
    if np.ptp(differences) == 0:
        # No spread: the t statistic is 0/0 or ±inf; the answer is plain.
        t_pvalue = 1.0 if differences[0] == 0 else 0.0
    else:
        t_pvalue = float(stats.ttest_rel(b, a).pvalue)
    # With every difference 0, scipy warns and divides 0 by 0; the answer is p = 1.
    wilcoxon_pvalue = (float(stats.wilcoxon(differences).pvalue) if differences.any()
                       else 1.0)
    return PairedTest(
        name_a=name_a, name_b=name_b, n_users=int(a.size),
        mean_a=float(a.mean()), mean_b=float(b.mean()),
        difference=bootstrap_ci(differences, confidence, n_resamples, seed),
        t_pvalue=t_pvalue, wilcoxon_pvalue=wilcoxon_pvalue, confidence=confidence,
        higher_is_better=higher_is_better)
