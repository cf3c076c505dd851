"""Statistics of A/B tests on rates (CTR, conversion) and the analysis of an experiment.

* Confidence intervals of a rate: **Wilson score** intervals (good coverage for small
  counts and rates near 0, unlike the normal "Wald" interval).
* Difference between two variants: a **two-proportion z-test** with pooled variance,
  two-sided.
* **Bayesian probability to beat control**: Beta(1 + clicks, 1 + misses) posteriors
  (uniform priors), estimated by Monte Carlo with a fixed seed.
* **Sample size** per variant for a baseline rate and a minimum detectable relative
  lift, at a significance level and power (two-sided, normal approximation).
* **Peeking guard**: the verdict names a winner by the fixed-horizon p-value only
  once every variant has its planned sample; before that only the **mSPRT**
  (mixture sequential probability ratio test, Johari et al. 2017, normal mixture on
  the difference of rates, averaged over mixing scales) may call it early, with an
  always-valid p-value that stays valid however often someone looks.
* With more than one challenger the significance level is split among them
  (Bonferroni).
* **User-level tests** (:mod:`tailored.monitoring.clustered`): users are what is
  randomised, and one user's impressions are correlated, so the per-impression z-test
  above is anti-conservative (an A/A test "finds" a difference more often than alpha
  when users differ; :func:`aa_false_positive_rate` shows by how much). Every challenger
  therefore also gets the CTR difference tested at the user level: the **delta method**
  on per-user sums of clicks and impressions (``user_p_value``, with an interval of the
  difference) and a **user-level bootstrap** (``bootstrap_p_value``), plus per-user
  **conversion** (two-proportion z-test over users) and **revenue per user** (Welch's
  t-test). The report shows both levels; **the fixed-horizon verdict rests on the
  user-level (delta-method) p-value**. The mSPRT, which may call a result early, still
  treats impressions as independent (so an early call needs a strong result).

:func:`analyze` puts it together for one stored experiment into an
:class:`ExperimentReport` (what ``tailored experiments show``, ``GET
/experiments/{id}`` and the dashboard show).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from tailored.errors import NotFoundError
from tailored.monitoring.clustered import (
    BOOTSTRAP_RESAMPLES,
    UserLevelTest,
    bootstrap_ratio_difference,
    conversion_test,
    delta_method_test,
    ratio_estimate,
    revenue_test,
)
from tailored.monitoring.online import (
    RETENTION_DAYS,
    Attributed,
    attribute,
    cumulative_ctr,
    curve_period,
    variant_metrics,
)
from tailored.schema import MAX_SAFE_INTEGER
from tailored.store import Experiment, Store
from tailored.store.experiments import HOLDOUT

# ---- statistics ----------------------------------------------------------------------


class Interval(NamedTuple):
    """Bounds of a confidence interval."""

    low: float
    high: float


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval of the rate ``successes / trials``.

    Examples
    --------
    >>> low, high = wilson_interval(50, 1000)
    >>> round(low, 4), round(high, 4)
    (0.0381, 0.0653)
    >>> wilson_interval(0, 0)
    Interval(low=0.0, high=1.0)
    """
    _check_counts(successes, trials)
    if trials == 0:
        return Interval(0.0, 1.0)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    rate = successes / trials
    denominator = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) \
        / denominator
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


class ZTest(NamedTuple):
    """A two-proportion z-test: statistic and two-sided p-value of rate B - rate A."""

    z: float
    p_value: float


def two_proportion_ztest(successes_a: int, trials_a: int, successes_b: int,
                         trials_b: int) -> ZTest:
    """Two-sided z-test of equal rates with the pooled variance.

    Examples
    --------
    >>> test = two_proportion_ztest(100, 1000, 130, 1000)
    >>> round(test.z, 3), round(test.p_value, 4)
    (2.103, 0.0355)
    """
    _check_counts(successes_a, trials_a)
    _check_counts(successes_b, trials_b)
    if trials_a == 0 or trials_b == 0:
        return ZTest(0.0, 1.0)
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    variance = pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b)
    difference = successes_b / trials_b - successes_a / trials_a
    if variance == 0:
        return ZTest(0.0, 1.0)
    z = difference / math.sqrt(variance)
    return ZTest(z, float(2 * stats.norm.sf(abs(z))))


def prob_beat_control(successes_control: int, trials_control: int, successes_variant: int,
                      trials_variant: int, *, draws: int = 100_000, seed: int = 0) -> float:
    """Posterior probability that the variant's rate exceeds the control's.

    Beta(1 + successes, 1 + failures) posteriors (uniform priors), ``draws`` Monte
    Carlo samples from a seeded generator (the same inputs give the same answer).

    Examples
    --------
    >>> round(prob_beat_control(100, 1000, 130, 1000), 2)
    0.98
    >>> prob_beat_control(10, 100, 10, 100) == prob_beat_control(10, 100, 10, 100)
    True
    """
    _check_counts(successes_control, trials_control)
    _check_counts(successes_variant, trials_variant)
    rng = np.random.default_rng(seed)
    control = rng.beta(1 + successes_control, 1 + trials_control - successes_control, draws)
    variant = rng.beta(1 + successes_variant, 1 + trials_variant - successes_variant, draws)
    return float(np.mean(variant > control))


def sample_size(baseline: float, minimum_detectable_lift: float, *, alpha: float = 0.05,
                power: float = 0.8) -> int:
    """Trials per variant to detect a relative lift of a rate (two-sided test).

    ``n = (z_(1-alpha/2) sqrt(2 p(1-p)) + z_power sqrt(p1(1-p1) + p2(1-p2)))^2 /
    (p2 - p1)^2`` with ``p2 = baseline (1 + lift)`` and ``p`` their mean; rounded up.

    Examples
    --------
    >>> sample_size(0.10, 0.20)
    3841
    >>> sample_size(0.05, 0.10, alpha=0.05, power=0.9)
    41813
    """
    if not 0 < baseline < 1:
        raise ValueError(f"baseline rate must be between 0 and 1, got {baseline}")
    target = baseline * (1 + minimum_detectable_lift)
    if minimum_detectable_lift == 0 or not 0 < target < 1:
        raise ValueError(
            f"minimum detectable lift {minimum_detectable_lift} must be non-zero and keep "
            f"the rate in (0, 1) (baseline {baseline} becomes {target})")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha} and {power}")
    z_alpha = float(stats.norm.ppf(1 - alpha / 2))
    z_power = float(stats.norm.ppf(power))
    mean = (baseline + target) / 2
    numerator = (z_alpha * math.sqrt(2 * mean * (1 - mean))
                 + z_power * math.sqrt(baseline * (1 - baseline) + target * (1 - target)))
    gap = (target - baseline) ** 2  # 0.0 for a lift below float precision
    trials = numerator ** 2 / gap if gap > 0 else math.inf
    if trials > MAX_SAFE_INTEGER:
        raise ValueError(
            f"a minimum detectable lift of {minimum_detectable_lift:g} needs more than "
            f"{MAX_SAFE_INTEGER:,} trials per variant; ask for a larger lift")
    return math.ceil(trials)


#: Mixing scales of the mSPRT, relative to the pooled rate: lifts from 5% to 100%.
MSPRT_RELATIVE_SCALES = (0.05, 0.1, 0.2, 0.5, 1.0)


def msprt_p_values(successes_a: np.ndarray, trials_a: np.ndarray, successes_b: np.ndarray,
                   trials_b: np.ndarray, tau: float | None = None) -> np.ndarray:
    """Always-valid p-values of the mSPRT after each look (cumulative counts per look).

    The likelihood ratio of a normal mixture N(0, tau^2) over the difference of the
    rates against "no difference", with the difference estimated at each look:
    ``L = sqrt(V / (V + tau^2)) exp(tau^2 d^2 / (2 V (V + tau^2)))`` where ``d`` is the
    observed difference and ``V`` its (pooled) variance; the p-value is the running
    minimum of ``1 / L``. Without ``tau`` the ratio is averaged over several mixing
    scales (:data:`MSPRT_RELATIVE_SCALES` times the pooled rate at the last look), itself
    a mixture, so the test stays valid and finds large and small lifts alike.

    Examples
    --------
    >>> looks = np.array([1000, 2000, 4000])
    >>> p = msprt_p_values(looks * 0.10, looks, looks * 0.13, looks)
    >>> bool(p[-1] < 0.05), bool(np.all(np.diff(p) <= 0))
    (True, True)
    """
    sa_, na = np.asarray(successes_a, float), np.asarray(trials_a, float)
    sb, nb = np.asarray(successes_b, float), np.asarray(trials_b, float)
    if not len(sa_):
        return np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        pooled = (sa_ + sb) / (na + nb)
        variance = pooled * (1 - pooled) * (1 / na + 1 / nb)
        difference = sb / nb - sa_ / na
        if tau is None:
            last = float(pooled[-1])
            base = last if np.isfinite(last) and last > 0 else 0.01
            taus = np.array(MSPRT_RELATIVE_SCALES) * base
        else:
            taus = np.array([tau])
        tau2 = taus[:, None] ** 2
        log_ratios = (0.5 * np.log(variance / (variance + tau2))
                      + tau2 * difference ** 2 / (2 * variance * (variance + tau2)))
        # The mean of the ratios over the scales, in logs (they can be large).
        top = np.max(log_ratios, axis=0)
        log_ratio = top + np.log(np.mean(np.exp(log_ratios - top), axis=0))
    p = np.where(np.isfinite(log_ratio), np.minimum(1.0, np.exp(-log_ratio)), 1.0)
    return np.minimum.accumulate(p)


def _check_counts(successes: int, trials: int) -> None:
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")


# ---- the report ----------------------------------------------------------------------


@dataclass(frozen=True)
class VariantResult:
    """One variant's figures; rates are ``None`` where there is no data yet.

    ``ctr`` with its Wilson interval ``ci_low``..``ci_high``; ``lift`` is the relative
    CTR change against the control (``0.12`` = +12%), ``p_value`` the fixed-horizon
    z-test against the control, ``sequential_p_value`` the always-valid mSPRT p-value,
    ``prob_beat_control`` the Bayesian probability of a higher CTR than the control.
    The control's comparison fields are ``None``. ``retention`` maps a day offset (as
    a string, e.g. ``"1"``) to the share of users back that day.

    User-level figures (users are the independent units; see
    :mod:`tailored.monitoring.clustered`): ``user_ci_low``..``user_ci_high`` is the
    delta-method interval of the CTR (wider than the Wilson one when users differ);
    ``difference`` the CTR minus the control's, ``difference_ci_low``..
    ``difference_ci_high`` its delta-method interval and ``user_p_value`` its
    delta-method z-test (the p-value the verdict uses); ``bootstrap_ci_low``..
    ``bootstrap_ci_high`` and ``bootstrap_p_value`` the same difference by a user-level
    bootstrap (``None`` when it was not run); ``conversion_p_value`` tests the share of
    users who bought (z-test over users), ``revenue_per_user_p_value`` the revenue per
    user (Welch's t-test).
    """

    variant: str
    version: int | None
    share: float
    is_control: bool
    users: int
    recommendations: int
    impressions: int
    clicks: int
    ctr: float | None
    ci_low: float | None
    ci_high: float | None
    conversions: int
    conversion: float | None
    revenue: float
    revenue_per_user: float | None
    engagement: float | None
    retention: dict[str, float | None]
    lift: float | None
    p_value: float | None
    sequential_p_value: float | None
    prob_beat_control: float | None
    user_ci_low: float | None = None
    user_ci_high: float | None = None
    difference: float | None = None
    difference_ci_low: float | None = None
    difference_ci_high: float | None = None
    user_p_value: float | None = None
    bootstrap_ci_low: float | None = None
    bootstrap_ci_high: float | None = None
    bootstrap_p_value: float | None = None
    conversion_p_value: float | None = None
    revenue_per_user_p_value: float | None = None


@dataclass(frozen=True)
class CurvePoint:
    """Cumulative CTR of one variant at the end of one period (the dashboard's curve)."""

    at: datetime
    variant: str
    impressions: int
    clicks: int
    ctr: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class ExperimentReport:
    """The analysis of one experiment, ready to print, serve as JSON or plot.

    Attributes
    ----------
    experiment : dict
        The stored experiment (:meth:`Experiment.to_dict`): id, name, status,
        variants with versions and shares, holdout, start/stop times.
    control : str
        Name of the control variant (the first).
    metric : str
        The primary metric the verdict is about (``"ctr"``).
    alpha, confidence : float
        Significance level of the tests and confidence of the intervals.
    interval_method, test_method, sequential_method : str
        ``"wilson"``, ``"two-proportion z-test"`` (impression level), ``"mSPRT"``.
    planned_sample_size : int or None
        Impressions per variant the test was sized for.
    sample_progress : float or None
        Impressions of the smallest variant / planned (``1.0`` = reached).
    variants : list of VariantResult
        The control first, then the other variants, then ``holdout`` if any.
    curve : list of CurvePoint
        Cumulative CTR per variant per ``curve_period``.
    curve_period : str
        ``"day"``, ``"hour"`` or ``"minute"`` (the coarsest giving a few points).
    winner : str or None
        The variant the verdict names, if any.
    verdict : str
        One line for a person, e.g. ``"variant B wins (B CTR +12.0%, user-level
        p=0.003)"`` or ``"no winner yet: 40% of planned sample"``. Once the planned
        sample is reached it rests on the user-level (delta-method) p-value, before
        that on the mSPRT.
    generated_at : datetime
        When the analysis ran (UTC).
    user_test_method : str
        ``"delta method"``: the user-level test the verdict uses.
    bootstrap_resamples : int
        Resamples of the user-level bootstrap (``0``: not run).
    """

    experiment: dict[str, Any]
    control: str
    metric: str
    alpha: float
    confidence: float
    interval_method: str
    test_method: str
    sequential_method: str
    planned_sample_size: int | None
    sample_progress: float | None
    variants: list[VariantResult]
    curve: list[CurvePoint]
    curve_period: str
    winner: str | None
    verdict: str
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    user_test_method: str = "delta method"
    bootstrap_resamples: int = BOOTSTRAP_RESAMPLES

    @property
    def experiment_id(self) -> str:
        return str(self.experiment["experiment_id"])

    def variant(self, name: str) -> VariantResult:
        return next(v for v in self.variants if v.variant == name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (datetimes as ISO-8601 strings, NaN as ``None``)."""
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


_PERIOD_NAMES = {"D": "day", "h": "hour", "min": "minute"}


def analyze(store: Store, experiment_id: str, *, alpha: float = 0.05,
            confidence: float = 0.95, seed: int = 0,
            resamples: int = BOOTSTRAP_RESAMPLES) -> ExperimentReport:
    """Analyse a stored experiment from the served log and the events.

    Reads the experiment's served answers (``store.served``), the events of the
    users served, attributes impressions, clicks and purchases through their
    recommendation ids, and tests every variant's CTR against the control, per
    impression and per user (``resamples`` user-level bootstrap resamples; ``0`` skips
    the bootstrap).
    """
    experiment = store.experiments.get(experiment_id)
    if experiment is None:
        raise NotFoundError(f"no experiment {experiment_id!r}; `tailored experiments list` "
                            "shows the experiments there are")
    served = store.served.frame(experiment_id=experiment_id)
    users = served["user_id"].unique().tolist() if len(served) else []
    events = store.events.frame(user_ids=users) if users else store.events.frame(
        user_ids=[])
    return analyze_frames(experiment, served, events, alpha=alpha, confidence=confidence,
                          seed=seed, resamples=resamples)


def analyze_frames(experiment: Experiment, served: pd.DataFrame, events: pd.DataFrame, *,
                   alpha: float = 0.05, confidence: float = 0.95, seed: int = 0,
                   resamples: int = BOOTSTRAP_RESAMPLES) -> ExperimentReport:
    """:func:`analyze` on frames already read (the served log and the users' events)."""
    if not 0 < alpha < 1 or not 0 < confidence < 1:
        raise ValueError(f"alpha and confidence must be in (0, 1), got {alpha}, {confidence}")
    if resamples < 0:
        raise ValueError(f"resamples must be 0 (no bootstrap) or more, got {resamples}")
    names = [v.name for v in experiment.variants]
    served = served[served["variant"].notna()] if len(served) else served
    found = attribute(served, events) if len(served) else None
    metrics = (variant_metrics(served, events, found) if found is not None
               else pd.DataFrame())
    control = experiment.control.name
    order = names + ([HOLDOUT] if experiment.holdout_share > 0 or (
        len(metrics) and HOLDOUT in metrics.index) else [])

    period = curve_period(found.impressions["timestamp"]) if found is not None else "D"
    curve_counts = (cumulative_ctr(found.impressions, period) if found is not None
                    else pd.DataFrame(columns=["at", "variant", "impressions", "clicks"]))
    sequential = _sequential(curve_counts, control, names)
    per_user = _per_user(served, found) if found is not None else {}

    table: dict[Any, dict[Any, Any]] = metrics.to_dict("index")

    def count(name: str, column: str) -> int:
        return int(table[name][column]) if name in table else 0

    def rate(name: str, column: str) -> float | None:
        if name not in table:
            return None
        value = float(table[name][column])
        return value if math.isfinite(value) else None

    control_clicks, control_impressions = count(control, "clicks"), count(control,
                                                                            "impressions")
    rows: list[VariantResult] = []
    for name in order:
        variant = experiment.variant(name)
        impressions, clicks = count(name, "impressions"), count(name, "clicks")
        interval = wilson_interval(clicks, impressions, confidence) if impressions else None
        ctr = clicks / impressions if impressions else None
        comparable = (name != control and name != HOLDOUT and impressions > 0
                      and control_impressions > 0)
        control_ctr = control_clicks / control_impressions if control_impressions else None
        lift = (ctr / control_ctr - 1 if comparable and ctr is not None and control_ctr
                else None)
        users_level = _user_level(per_user.get(name), per_user.get(control), confidence,
                                  resamples, seed, comparable)
        rows.append(VariantResult(
            variant=name,
            version=variant.version if variant else experiment.holdout_version,
            share=(variant.share * (1 - experiment.holdout_share) if variant
                   else experiment.holdout_share),
            is_control=name == control,
            users=count(name, "users"), recommendations=count(name, "recommendations"),
            impressions=impressions, clicks=clicks, ctr=ctr,
            ci_low=interval.low if interval else None,
            ci_high=interval.high if interval else None,
            conversions=count(name, "conversions"), conversion=rate(name, "conversion"),
            revenue=float(table[name]["revenue"]) if name in table else 0.0,
            revenue_per_user=rate(name, "revenue_per_user"),
            engagement=rate(name, "engagement"),
            retention={str(d): rate(name, f"retention_d{d}") for d in RETENTION_DAYS},
            lift=lift,
            p_value=(two_proportion_ztest(control_clicks, control_impressions, clicks,
                                          impressions).p_value if comparable else None),
            sequential_p_value=sequential.get(name) if comparable else None,
            prob_beat_control=(prob_beat_control(control_clicks, control_impressions, clicks,
                                                 impressions, seed=seed)
                               if comparable else None),
            **users_level,
        ))

    curve = [
        CurvePoint(at=pd.Timestamp(at).to_pydatetime(), variant=str(variant),
                   impressions=int(shown), clicks=int(clicked),
                   ctr=int(clicked) / int(shown) if shown else None,
                   **_bounds(int(clicked), int(shown), confidence))
        for at, variant, shown, clicked in zip(
            curve_counts["at"], curve_counts["variant"], curve_counts["impressions"],
            curve_counts["clicks"], strict=True)
    ]
    planned = experiment.planned_sample_size
    smallest = min((r.impressions for r in rows if r.variant in names), default=0)
    progress = smallest / planned if planned else None
    winner, verdict = _verdict(rows, control, alpha, progress)
    return ExperimentReport(
        experiment=experiment.to_dict(), control=control, metric="ctr", alpha=alpha,
        confidence=confidence, interval_method="wilson",
        test_method="two-proportion z-test", sequential_method="mSPRT",
        planned_sample_size=planned, sample_progress=progress, variants=rows, curve=curve,
        curve_period=_PERIOD_NAMES[period], winner=winner, verdict=verdict,
        bootstrap_resamples=resamples)


def _per_user(served: pd.DataFrame, found: Attributed) -> dict[str, pd.DataFrame]:
    """Per variant, one row per exposed user: impressions, clicks, purchases, revenue.

    Exposed users without impressions or purchases have zeros: they were assigned too.
    """
    exposed = served[["variant", "user_id"]].drop_duplicates()
    keys = ["variant", "user_id"]
    shown = found.impressions.assign(clicked=found.impressions["clicked"].astype("int64"))
    counts = shown.groupby(keys).agg(impressions=("item_id", "size"),
                                     clicks=("clicked", "sum"))
    bought = found.purchases.assign(value=pd.to_numeric(found.purchases["value"],
                                                        errors="coerce").fillna(0.0))
    outcomes = bought.groupby(keys).agg(purchases=("item_id", "size"),
                                        revenue=("value", "sum"))
    frame = (exposed.set_index(keys).join(counts).join(outcomes)
             .fillna({"impressions": 0, "clicks": 0, "purchases": 0, "revenue": 0.0}))
    return {str(variant): group.droplevel("variant")
            for variant, group in frame.groupby(level="variant")}


def _user_level(users: pd.DataFrame | None, control: pd.DataFrame | None, confidence: float,
                resamples: int, seed: int, comparable: bool) -> dict[str, float | None]:
    """The user-level fields of one variant (the comparisons only for a challenger)."""
    out: dict[str, float | None] = {}
    if users is None or not users["impressions"].sum():
        return out
    own = ratio_estimate(users["clicks"], users["impressions"])
    half = float(stats.norm.ppf(0.5 + confidence / 2)) * own.standard_error
    out["user_ci_low"] = max(0.0, own.ratio - half)
    out["user_ci_high"] = min(1.0, own.ratio + half)
    if not comparable or control is None:
        return out
    arrays = (control["clicks"].to_numpy(float), control["impressions"].to_numpy(float),
              users["clicks"].to_numpy(float), users["impressions"].to_numpy(float))
    delta = delta_method_test(*arrays, confidence=confidence)
    out |= {"difference": delta.difference, "difference_ci_low": delta.ci_low,
            "difference_ci_high": delta.ci_high, "user_p_value": delta.p_value}
    if resamples:
        boot = bootstrap_ratio_difference(*arrays, resamples=resamples,
                                          confidence=confidence, seed=seed)
        out |= {"bootstrap_ci_low": boot.ci_low, "bootstrap_ci_high": boot.ci_high,
                "bootstrap_p_value": boot.p_value}
    converted_c = int((control["purchases"] > 0).sum())
    converted_v = int((users["purchases"] > 0).sum())
    out["conversion_p_value"] = conversion_test(converted_c, len(control), converted_v,
                                                len(users), confidence=confidence).p_value
    if len(control) >= 2 and len(users) >= 2:
        out["revenue_per_user_p_value"] = revenue_test(
            control["revenue"], users["revenue"], confidence=confidence).p_value
    return out


# ---- A/A simulation --------------------------------------------------------------------


class SimulatedUsers(NamedTuple):
    """Users of a simulated experiment, one entry each: answers served (``sessions``),
    ``impressions``, their own click probability ``ctr`` and their ``clicks``."""

    sessions: np.ndarray
    impressions: np.ndarray
    ctr: np.ndarray
    clicks: np.ndarray


def simulate_users(users: int, *, rng: np.random.Generator, mean_ctr: float = 0.05,
                   ctr_concentration: float = 20.0, mean_sessions: float = 3.0,
                   activity_sigma: float = 1.2, items_per_answer: int = 10) -> SimulatedUsers:
    """Users who differ, as in a shop: heavy-tailed activity and a CTR of their own.

    Activity is log-normal with ``activity_sigma`` (the sample shop's, 1.2: a few heavy
    users, many light ones), scaled to mean 1; a user gets ``1 + Poisson((mean_sessions -
    1) * activity)`` answers of ``items_per_answer`` impressions each. A user's CTR is
    Beta with mean ``mean_ctr`` and concentration ``ctr_concentration`` (``a + b``; the
    intra-user correlation of clicks is ``1 / (1 + concentration)``), clicks Binomial.
    """
    if users < 1 or items_per_answer < 1 or mean_sessions < 1:
        raise ValueError(f"need users >= 1, items_per_answer >= 1 and mean_sessions >= 1, "
                         f"got {users}, {items_per_answer}, {mean_sessions}")
    if not 0 < mean_ctr < 1 or ctr_concentration <= 0:
        raise ValueError(f"mean_ctr must be in (0, 1) and ctr_concentration positive, got "
                         f"{mean_ctr} and {ctr_concentration}")
    activity = rng.lognormal(0.0, activity_sigma, users) / math.exp(activity_sigma ** 2 / 2)
    sessions = 1 + rng.poisson((mean_sessions - 1) * activity)
    impressions = sessions * items_per_answer
    ctr = rng.beta(mean_ctr * ctr_concentration, (1 - mean_ctr) * ctr_concentration, users)
    return SimulatedUsers(sessions, impressions, ctr, rng.binomial(impressions, ctr))


@dataclass(frozen=True)
class AAResult:
    """False-positive rates of simulated A/A experiments, per test.

    ``rates`` maps a test (``"impression z-test"``, ``"delta method"``, ``"bootstrap"``)
    to the share of experiments where it found a difference at ``alpha``; ``intervals``
    the 95% Clopper-Pearson interval of that share; ``experiments`` how many experiments
    each test ran on (the bootstrap may run on fewer). ``design_effect`` is the mean
    ratio of the delta-method variance to the binomial variance of the difference (how
    much the per-impression test underestimates it).
    """

    users: int
    alpha: float
    experiments: dict[str, int]
    rates: dict[str, float]
    intervals: dict[str, Interval]
    impressions_per_user: float
    design_effect: float

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def aa_false_positive_rate(n_experiments: int = 1000, users: int = 2000, *, seed: int = 0,
                           alpha: float = 0.05, bootstrap_experiments: int = 0,
                           resamples: int = BOOTSTRAP_RESAMPLES,
                           **population: Any) -> AAResult:
    """How often each test declares a difference between two identical variants.

    Each of ``n_experiments`` A/A experiments draws ``users`` users by
    :func:`simulate_users` (``population`` passes its parameters), assigns each user to
    A or B by a fair coin and tests B against A at ``alpha`` with the statistics
    :func:`analyze_frames` uses: the impression-level :func:`two_proportion_ztest` and
    the user-level :func:`~tailored.monitoring.clustered.delta_method_test`, and on the
    first ``bootstrap_experiments`` the user-level bootstrap. The functions are called
    directly on per-user counts (``benchmarks/aa_test.py`` also runs the whole
    :func:`analyze_frames` on generated frames).

    Examples
    --------
    >>> result = aa_false_positive_rate(200, 400, seed=1)
    >>> result.rates["impression z-test"] > result.rates["delta method"]
    True
    """
    if n_experiments < 1 or users < 4:
        raise ValueError(f"need n_experiments >= 1 and users >= 4, got {n_experiments}, "
                         f"{users}")
    rng = np.random.default_rng(seed)
    found: dict[str, list[bool]] = {"impression z-test": [], "delta method": [],
                                    "bootstrap": []}
    ratios, per_user = [], []
    for run in range(n_experiments):
        sample = simulate_users(users, rng=rng, **population)
        in_b = rng.random(users) < 0.5
        if in_b.all() or not in_b.any():
            in_b[0] = not in_b[0]
        a, b = ~in_b, in_b
        x, y = sample.clicks, sample.impressions
        naive = two_proportion_ztest(int(x[a].sum()), int(y[a].sum()), int(x[b].sum()),
                                     int(y[b].sum()))
        delta: UserLevelTest = delta_method_test(x[a], y[a], x[b], y[b])
        found["impression z-test"].append(naive.p_value < alpha)
        found["delta method"].append(delta.p_value < alpha)
        if run < bootstrap_experiments:
            boot = bootstrap_ratio_difference(x[a], y[a], x[b], y[b], resamples=resamples,
                                              seed=seed + run)
            found["bootstrap"].append(boot.p_value < alpha)
        rate = x.sum() / y.sum()
        binomial = rate * (1 - rate) * (1 / y[a].sum() + 1 / y[b].sum())
        if binomial > 0:
            ratios.append(delta.standard_error ** 2 / binomial)
        per_user.append(y.mean())
    rates, intervals, counts = {}, {}, {}
    for test, flags in found.items():
        if not flags:
            continue
        hits = int(np.sum(flags))
        ci = stats.binomtest(hits, len(flags)).proportion_ci(0.95, method="exact")
        rates[test] = hits / len(flags)
        intervals[test] = Interval(float(ci.low), float(ci.high))
        counts[test] = len(flags)
    return AAResult(users=users, alpha=alpha, experiments=counts, rates=rates,
                    intervals=intervals, impressions_per_user=float(np.mean(per_user)),
                    design_effect=float(np.mean(ratios)) if ratios else math.nan)


def _bounds(clicks: int, impressions: int, confidence: float) -> dict[str, float | None]:
    if not impressions:
        return {"ci_low": None, "ci_high": None}
    low, high = wilson_interval(clicks, impressions, confidence)
    return {"ci_low": low, "ci_high": high}


def _sequential(curve: pd.DataFrame, control: str, names: list[str]) -> dict[str, float]:
    """The mSPRT p-value of each challenger, looking once per curve point."""
    if curve.empty:
        return {}
    wide = curve.pivot_table(index="at", columns="variant", values=["impressions", "clicks"],
                             aggfunc="sum").fillna(0)
    out: dict[str, float] = {}
    if control not in wide["impressions"].columns:
        return out
    for name in names:
        if name == control or name not in wide["impressions"].columns:
            continue
        both = (wide["impressions"][control] > 0) & (wide["impressions"][name] > 0)
        if not both.any():
            continue
        p = msprt_p_values(wide["clicks"][control][both].to_numpy(),
                           wide["impressions"][control][both].to_numpy(),
                           wide["clicks"][name][both].to_numpy(),
                           wide["impressions"][name][both].to_numpy())
        out[name] = float(p[-1])
    return out


def _verdict(rows: list[VariantResult], control: str, alpha: float,
             progress: float | None) -> tuple[str | None, str]:
    challengers = [r for r in rows if not r.is_control and r.variant != HOLDOUT]
    if not challengers or any(r.impressions == 0 for r in [*challengers, *(
            r for r in rows if r.is_control)]):
        return None, "no data yet: every variant needs impressions (send impression events " \
                     "with context.recommendation_id)"
    level = alpha / len(challengers)  # Bonferroni over the challengers
    reached = progress is None or progress >= 1
    # Fixed horizon: the user-level test (users are the independent units).
    key = "user_p_value" if reached else "sequential_p_value"
    significant = [r for r in challengers if (getattr(r, key) or 1.0) < level]
    best = max(challengers, key=lambda r: r.lift or 0.0)
    summary = _summary(best, "p")
    if significant:
        better = [r for r in significant if (r.lift or 0) > 0]
        if better:
            winner = max(better, key=lambda r: r.lift or 0.0)
            if reached:
                return winner.variant, f"variant {winner.variant} wins ({_summary(winner, 'p')})"
            return winner.variant, (
                f"variant {winner.variant} wins early ({_summary(winner, 'sequential')} by "
                f"mSPRT, always valid; {_percent(progress)} of planned sample)")
        if len(significant) == len(challengers):
            loser = max(significant, key=lambda r: r.lift or 0.0)
            kind = "p" if reached else "sequential"
            return control, f"control {control} wins ({_summary(loser, kind)})"
    if not reached:
        return None, (f"no winner yet: {_percent(progress)} of planned sample "
                      f"(best {summary}; do not stop before the plan)")
    note = "" if progress is not None else "; no planned sample size, so beware of peeking"
    return None, f"no significant difference ({summary}){note}"


def _summary(row: VariantResult, kind: str) -> str:
    lift = 100 * (row.lift or 0.0)
    if kind == "p":
        return f"{row.variant} CTR {lift:+.1f}%, user-level p={_p(row.user_p_value)}"
    return f"{row.variant} CTR {lift:+.1f}%, p={_p(row.sequential_p_value)}"


def _p(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _percent(progress: float | None) -> str:
    return "?" if progress is None else f"{100 * min(progress, 1.0):.0f}%"
