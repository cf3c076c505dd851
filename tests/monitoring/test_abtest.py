"""A/B test statistics against SciPy and hand computation, and the analysis verdicts."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from tailored.monitoring.abtest import (
    analyze_frames,
    msprt_p_values,
    prob_beat_control,
    sample_size,
    two_proportion_ztest,
    wilson_interval,
)
from tailored.store import Experiment, Variant

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(("successes", "trials"), [(50, 1000), (0, 20), (20, 20), (3, 7),
                                                    (1234, 56789)])
def test_wilson_interval_matches_scipy(successes: int, trials: int) -> None:
    expected = stats.binomtest(successes, trials).proportion_ci(0.95, method="wilson")
    low, high = wilson_interval(successes, trials)
    assert low == pytest.approx(expected.low, abs=1e-12)
    assert high == pytest.approx(expected.high, abs=1e-12)


def test_wilson_interval_by_hand() -> None:
    # 50 of 1000, z = 1.959964: centre (0.05 + z^2/2000) / (1 + z^2/1000), half width
    # z sqrt(0.05 * 0.95 / 1000 + z^2 / 4e6) / (1 + z^2/1000).
    z = 1.959963984540054
    denominator = 1 + z * z / 1000
    centre = (0.05 + z * z / 2000) / denominator
    half = z * math.sqrt(0.05 * 0.95 / 1000 + z * z / 4e6) / denominator
    assert wilson_interval(50, 1000) == pytest.approx((centre - half, centre + half))
    assert wilson_interval(50, 1000, confidence=0.99)[0] < centre - half


def test_two_proportion_ztest_by_hand_and_against_chi_square() -> None:
    # pooled 230/2000 = 0.115; se = sqrt(0.115 * 0.885 * (2/1000)); z = 0.03 / se.
    se = math.sqrt(0.115 * 0.885 * 0.002)
    test = two_proportion_ztest(100, 1000, 130, 1000)
    assert test.z == pytest.approx(0.03 / se)
    assert test.p_value == pytest.approx(2 * stats.norm.sf(0.03 / se))
    # The z-test is the chi-square test of the 2x2 table without continuity correction.
    table = np.array([[100, 900], [130, 870]])
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    assert test.z ** 2 == pytest.approx(chi2)
    assert test.p_value == pytest.approx(p)
    assert two_proportion_ztest(130, 1000, 100, 1000).z == pytest.approx(-test.z)
    assert two_proportion_ztest(0, 100, 0, 100).p_value == 1.0
    with pytest.raises(ValueError, match="successes <= trials"):
        two_proportion_ztest(5, 4, 1, 10)


def test_prob_beat_control_matches_numerical_integration() -> None:
    a = stats.beta(1 + 12, 1 + 88)
    b = stats.beta(1 + 20, 1 + 80)
    exact, _ = integrate.quad(lambda x: a.pdf(x) * b.sf(x), 0, 1)
    assert prob_beat_control(12, 100, 20, 100) == pytest.approx(exact, abs=0.005)
    assert prob_beat_control(12, 100, 20, 100) == prob_beat_control(12, 100, 20, 100)
    assert prob_beat_control(50, 100, 50, 100) == pytest.approx(0.5, abs=0.01)


def test_sample_size_by_hand() -> None:
    # p1 0.10, p2 0.12, mean 0.11: (1.95996 sqrt(2 .11 .89) + 0.84162 sqrt(.09 + .1056))^2
    # / 0.02^2 = 3840.85, rounded up.
    assert sample_size(0.10, 0.20) == 3841
    assert sample_size(0.10, 0.20, power=0.9) > 3841
    assert sample_size(0.10, 0.20, alpha=0.01) > 3841
    assert sample_size(0.10, 0.10) > sample_size(0.10, 0.20)
    with pytest.raises(ValueError, match="baseline"):
        sample_size(0.0, 0.1)
    with pytest.raises(ValueError, match="lift"):
        sample_size(0.5, 1.5)
    # Lifts too small to detect (found by the API fuzzer as a 500: 1e-308 leaves the
    # rate unchanged in floating point, 1e-200 underflows the squared gap).
    for lift in (1.1125369292536007e-308, 1e-200, 1e-12):
        with pytest.raises(ValueError, match="larger lift"):
            sample_size(0.72, lift)


def test_sample_size_gives_the_power_it_promises() -> None:
    rng = np.random.default_rng(7)
    n = sample_size(0.10, 0.20)
    a = rng.binomial(n, 0.10, size=2000)
    b = rng.binomial(n, 0.12, size=2000)
    power = np.mean([two_proportion_ztest(int(x), n, int(y), n).p_value < 0.05
                     for x, y in zip(a, b, strict=True)])
    assert power == pytest.approx(0.8, abs=0.03)


def test_aa_tests_declare_a_difference_at_most_alpha_of_the_time() -> None:
    """Many cheap A/A tests on Bernoulli data: the fixed-horizon test and the mSPRT
    (looking 20 times) are wrong at most about alpha of the time."""
    rng = np.random.default_rng(11)
    runs, looks, per_look, rate = 2000, 20, 500, 0.05
    clicks_a = rng.binomial(per_look, rate, size=(runs, looks)).cumsum(axis=1)
    clicks_b = rng.binomial(per_look, rate, size=(runs, looks)).cumsum(axis=1)
    trials = np.arange(1, looks + 1) * per_look
    fixed = np.mean([two_proportion_ztest(int(a[-1]), int(trials[-1]), int(b[-1]),
                                          int(trials[-1])).p_value < 0.05
                     for a, b in zip(clicks_a, clicks_b, strict=True)])
    sequential = np.mean([msprt_p_values(a, trials, b, trials)[-1] < 0.05
                          for a, b in zip(clicks_a, clicks_b, strict=True)])
    peeking = np.mean([min(two_proportion_ztest(int(x), int(n), int(y), int(n)).p_value
                           for x, y, n in zip(a, b, trials, strict=True)) < 0.05
                       for a, b in zip(clicks_a[:500], clicks_b[:500], strict=True)])
    se = math.sqrt(0.05 * 0.95 / runs)
    assert fixed <= 0.05 + 3 * se
    assert sequential <= 0.05 + 3 * se
    assert peeking > 0.1  # what the guard is for: peeking at the z-test 20 times inflates


def test_msprt_finds_a_real_difference_and_never_rises() -> None:
    rng = np.random.default_rng(3)
    looks = np.arange(1, 21) * 1000
    a = rng.binomial(1000, 0.05, size=20).cumsum()
    b = rng.binomial(1000, 0.07, size=20).cumsum()
    p = msprt_p_values(a, looks, b, looks)
    assert p[-1] < 0.01
    assert np.all(np.diff(p) <= 0)


# ---- the analysis -----------------------------------------------------------------------


def _experiment(planned: int | None = None, holdout: float = 0.0) -> Experiment:
    return Experiment("exp1", "test", (Variant("A", 1, 0.5), Variant("B", 2, 0.5)),
                      status="running", holdout_share=holdout, planned_sample_size=planned,
                      started_at=T0)


def _frames(rates: dict[str, float], users: int, seed: int = 0, k: int = 10,
            days: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One answer of ``k`` items per user per variant; clicks Bernoulli(rate)."""
    rng = np.random.default_rng(seed)
    served, events = [], []
    for variant, rate in rates.items():
        for u in range(users):
            rid = f"{variant}-{u}"
            user = f"{variant}-u{u}"
            at = T0 + timedelta(days=int(rng.integers(days)), minutes=int(rng.integers(600)))
            items = [f"i{j}" for j in range(k)]
            served.append({"recommendation_id": rid, "user_id": user, "served_at": at,
                           "variant": variant, "item_ids": items, "scores": [1.0] * k,
                           "propensities": [1.0] * k})
            clicks = rng.random(k) < rate
            for position, (item, clicked) in enumerate(zip(items, clicks, strict=True), 1):
                context = {"recommendation_id": rid, "position": position}
                events.append((user, item, "impression", None, at, context))
                if clicked:
                    events.append((user, item, "click", None, at + timedelta(seconds=5),
                                   context))
    served_frame = pd.DataFrame(served)
    served_frame["served_at"] = pd.to_datetime(served_frame["served_at"], utc=True)
    event_frame = pd.DataFrame(events, columns=["user_id", "item_id", "event_type", "value",
                                                "timestamp", "context"])
    event_frame["timestamp"] = pd.to_datetime(event_frame["timestamp"], utc=True)
    event_frame["session_id"] = None
    return served_frame, event_frame


def test_a_clearly_better_variant_wins() -> None:
    served, events = _frames({"A": 0.05, "B": 0.08}, users=400)
    report = analyze_frames(_experiment(planned=3000), served, events)
    assert report.winner == "B"
    assert report.verdict.startswith("variant B wins (B CTR +")
    b = report.variant("B")
    assert b.p_value is not None and b.p_value < 0.001
    assert b.prob_beat_control is not None and b.prob_beat_control > 0.99
    assert b.ci_low is not None and b.ci_high is not None and b.ci_low < b.ctr < b.ci_high
    assert report.sample_progress == pytest.approx(4000 / 3000)
    assert b.lift == pytest.approx(b.ctr / report.variant("A").ctr - 1)


def test_no_winner_before_the_planned_sample_without_a_strong_sequential_result() -> None:
    served, events = _frames({"A": 0.05, "B": 0.055}, users=100, seed=2)
    report = analyze_frames(_experiment(planned=20_000), served, events)
    assert report.winner is None
    assert report.verdict.startswith("no winner yet: 5% of planned sample")


@pytest.mark.slow
def test_an_aa_analysis_rarely_names_a_winner() -> None:
    winners = 0
    runs = 20
    for seed in range(runs):
        served, events = _frames({"A": 0.05, "B": 0.05}, users=60, seed=seed, days=1)
        report = analyze_frames(_experiment(planned=600), served, events, seed=seed)
        winners += report.winner is not None
    assert winners <= 3  # alpha 0.05 of 20 runs is 1; 3 is beyond 2 standard errors


def test_report_is_json_with_a_curve_per_variant() -> None:
    served, events = _frames({"A": 0.05, "B": 0.08}, users=200, days=10)
    report = analyze_frames(_experiment(planned=1000, holdout=0.1), served, events)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["experiment"]["experiment_id"] == "exp1"
    assert data["interval_method"] == "wilson" and data["sequential_method"] == "mSPRT"
    assert [v["variant"] for v in data["variants"]] == ["A", "B", "holdout"]
    assert data["curve_period"] == "day"
    curve = pd.DataFrame(data["curve"])
    assert set(curve["variant"]) == {"A", "B"}
    last = curve.groupby("variant").last()
    assert last.loc["A", "impressions"] == 2000 and last.loc["B", "impressions"] == 2000
    assert (curve.groupby("variant")["impressions"].diff().dropna() >= 0).all()
    assert data["variants"][2]["impressions"] == 0 and data["variants"][2]["ctr"] is None


def test_no_data_yet() -> None:
    empty = pd.DataFrame(columns=["recommendation_id", "user_id", "served_at", "variant",
                                  "item_ids", "scores", "propensities"])
    events = pd.DataFrame(columns=["user_id", "item_id", "event_type", "value", "timestamp",
                                   "session_id", "context"])
    report = analyze_frames(_experiment(), empty, events)
    assert report.verdict.startswith("no data yet") and report.winner is None
    assert [v.impressions for v in report.variants] == [0, 0]


# ---- user-level figures in the report ---------------------------------------------------


def _user_frames(users: list[tuple[str, int, int, list[float]]]
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One answer per user: (variant, impressions, clicks, purchase values)."""
    served, events = [], []
    for u, (variant, shown, clicked, purchases) in enumerate(users):
        rid, user = f"r{u}", f"u{u}"
        items = [f"i{j}" for j in range(shown)]
        served.append({"recommendation_id": rid, "user_id": user, "served_at": T0,
                       "variant": variant, "item_ids": items, "scores": [1.0] * shown,
                       "propensities": [1.0] * shown})
        at = T0 + timedelta(minutes=1)
        for position, item in enumerate(items, 1):
            context = {"recommendation_id": rid, "position": position}
            events.append((user, item, "impression", None, at, context))
            if position <= clicked:
                events.append((user, item, "click", None, at, context))
        for value in purchases:
            events.append((user, "i0", "purchase", value, at, {"recommendation_id": rid}))
    served_frame = pd.DataFrame(served)
    served_frame["served_at"] = pd.to_datetime(served_frame["served_at"], utc=True)
    event_frame = pd.DataFrame(events, columns=["user_id", "item_id", "event_type", "value",
                                                "timestamp", "context"])
    event_frame["timestamp"] = pd.to_datetime(event_frame["timestamp"], utc=True)
    event_frame["session_id"] = None
    return served_frame, event_frame


def test_report_carries_the_user_level_figures_of_a_hand_made_example() -> None:
    from tailored.monitoring.clustered import (
        bootstrap_ratio_difference,
        conversion_test,
        delta_method_test,
        revenue_test,
    )

    users = [("A", 4, 1, []), ("A", 2, 0, [10.0]), ("A", 6, 2, []), ("A", 3, 0, []),
             ("B", 5, 3, [20.0, 5.0]), ("B", 2, 1, []), ("B", 4, 2, [30.0]), ("B", 1, 0, [])]
    served, events = _user_frames(users)
    report = analyze_frames(_experiment(planned=10), served, events, resamples=300, seed=4)
    a, b = report.variant("A"), report.variant("B")
    assert (a.impressions, a.clicks, b.impressions, b.clicks) == (15, 3, 12, 6)
    delta = delta_method_test([1, 0, 2, 0], [4, 2, 6, 3], [3, 1, 2, 0], [5, 2, 4, 1])
    assert b.difference == pytest.approx(6 / 12 - 3 / 15) == pytest.approx(delta.difference)
    assert b.user_p_value == pytest.approx(delta.p_value)
    assert (b.difference_ci_low, b.difference_ci_high) == pytest.approx(
        (delta.ci_low, delta.ci_high))
    boot = bootstrap_ratio_difference([1, 0, 2, 0], [4, 2, 6, 3], [3, 1, 2, 0], [5, 2, 4, 1],
                                      resamples=300, seed=4)
    assert (b.bootstrap_ci_low, b.bootstrap_ci_high, b.bootstrap_p_value) == pytest.approx(
        (boot.ci_low, boot.ci_high, boot.p_value))
    # Conversion over users: 1 of 4 in A, 2 of 4 in B; revenue per user 2.5 and 13.75.
    assert (a.conversions, b.conversions) == (1, 2)
    assert b.conversion_p_value == pytest.approx(conversion_test(1, 4, 2, 4).p_value)
    assert b.revenue_per_user == pytest.approx(55 / 4)
    assert b.revenue_per_user_p_value == pytest.approx(
        revenue_test([0, 10, 0, 0], [25, 0, 30, 0]).p_value)
    # The control has its own user-level interval of the CTR, no comparison.
    assert a.user_ci_low is not None and a.user_ci_high is not None
    assert a.user_ci_low < a.ctr < a.user_ci_high
    assert a.difference is None and a.user_p_value is None and a.bootstrap_p_value is None
    data = report.to_dict()
    assert data["user_test_method"] == "delta method" and data["bootstrap_resamples"] == 300
    assert data["variants"][1]["user_p_value"] == pytest.approx(delta.p_value)
    assert analyze_frames(_experiment(planned=10), served, events,
                          resamples=0).variant("B").bootstrap_p_value is None


def test_the_verdict_rests_on_the_user_level_test() -> None:
    """One heavy user who clicks everything makes B's CTR look better per impression;
    per user there are 60 users a side and the difference is one user's."""
    rng = np.random.default_rng(0)
    users = [(variant, 10, int(rng.binomial(10, 0.05)), []) for variant in "AB"
             for _ in range(60)]
    users.append(("B", 120, 100, []))
    served, events = _user_frames(users)
    report = analyze_frames(_experiment(planned=100), served, events)
    b = report.variant("B")
    assert b.p_value is not None and b.p_value < 0.001  # impressions as independent trials
    assert b.user_p_value is not None and b.user_p_value > 0.05
    assert report.winner is None
    assert report.verdict.startswith("no significant difference (B CTR +")
    assert "user-level p=" in report.verdict
    # Wider than the Wilson interval: users, not impressions, are the units.
    assert b.user_ci_high is not None and b.ci_high is not None
    assert b.user_ci_high - b.user_ci_low > b.ci_high - b.ci_low
