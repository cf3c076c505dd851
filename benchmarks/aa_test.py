"""A/A false-positive rates: impressions as independent trials against users as units.

Many A/A experiments (two identical variants) on users who differ as a shop's do: a CTR
of their own (Beta, mean 5%, concentration 20, so clicks of one user correlate by
1/21) and heavy-tailed activity (log-normal with the sample shop's sigma 1.2; 1 +
Poisson answers of 10 impressions each, about 30 impressions per user on average). Each
user goes to A or B by a fair coin. At alpha = 0.05 a test should find a difference in
5% of them; the table gives each test's rate with its 95% Clopper-Pearson interval.

Two paths:

- **statistics** (:func:`tailored.monitoring.abtest.aa_false_positive_rate`): the
  shipped test functions (impression-level two-proportion z-test, delta method,
  user-level bootstrap) called directly on per-user counts; many experiments;
- **analysis**: the whole :func:`tailored.monitoring.abtest.analyze_frames` (what
  ``tailored experiments show``, the API and the dashboard run) on generated served-log
  and event frames (one served answer per session, one impression event per item shown,
  one click event per click), fewer experiments since building and attributing the
  frames is slower; it also counts how often the verdict names a winner.

Run: ``.venv/bin/python benchmarks/aa_test.py [--experiments 2000] [--users 2000]
[--bootstrap-experiments 500] [--analysis-experiments 300] [--analysis-users 1000]``;
prints a table and writes ``benchmarks/results/aa_test.json`` and ``aa_test.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from tailored.monitoring.abtest import aa_false_positive_rate, analyze_frames, simulate_users
from tailored.store import Experiment, Variant

RESULTS = Path(__file__).parent / "results"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
ALPHA = 0.05
ITEMS_PER_ANSWER = 10


def frames(users: int, rng: np.random.Generator, run: int) -> tuple[pd.DataFrame,
                                                                     pd.DataFrame]:
    """The served log and the events of one A/A experiment of ``users`` simulated users."""
    sample = simulate_users(users, rng=rng, items_per_answer=ITEMS_PER_ANSWER)
    variant = np.where(rng.random(users) < 0.5, "B", "A")
    user_of_answer = np.repeat(np.arange(users), sample.sessions)
    answers = len(user_of_answer)
    rids = np.array([f"e{run}-r{a}" for a in range(answers)], dtype=object)
    user_ids = np.array([f"u{u}" for u in range(users)], dtype=object)
    served_at = pd.Timestamp(T0) + pd.to_timedelta(rng.integers(0, 7 * 24 * 60, answers),
                                                   unit="min")
    items = [f"i{j}" for j in range(ITEMS_PER_ANSWER)]
    served = pd.DataFrame({
        "recommendation_id": rids, "user_id": user_ids[user_of_answer],
        "served_at": served_at, "variant": variant[user_of_answer],
        "item_ids": [items] * answers, "scores": [[1.0] * ITEMS_PER_ANSWER] * answers,
        "propensities": [[1.0] * ITEMS_PER_ANSWER] * answers})
    # One impression per item shown; a click with the user's own probability.
    answer_of = np.repeat(np.arange(answers), ITEMS_PER_ANSWER)
    position = np.tile(np.arange(1, ITEMS_PER_ANSWER + 1), answers)
    clicked = rng.random(len(answer_of)) < sample.ctr[user_of_answer[answer_of]]
    contexts = [{"recommendation_id": rids[a], "position": int(p)}
                for a, p in zip(answer_of, position, strict=True)]
    shown = pd.DataFrame({
        "user_id": user_ids[user_of_answer[answer_of]],
        "item_id": np.array(items, dtype=object)[position - 1],
        "event_type": "impression", "value": None,
        "timestamp": served_at[answer_of] + timedelta(minutes=1),
        "session_id": rids[answer_of], "context": contexts})
    clicks = shown[clicked].assign(event_type="click",
                                   timestamp=shown["timestamp"][clicked] + timedelta(seconds=5))
    return served, pd.concat([shown, clicks], ignore_index=True)


def analysis_path(experiments: int, users: int, seed: int, resamples: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    experiment = Experiment("aa", "A/A", (Variant("A", 1, 0.5), Variant("B", 1, 0.5)),
                            status="running", started_at=T0)
    found: dict[str, list[bool]] = {"impression z-test": [], "delta method": [],
                                    "bootstrap": [], "verdict names a winner": []}
    impressions = []
    for run in range(experiments):
        served, events = frames(users, rng, run)
        report = analyze_frames(experiment, served, events, alpha=ALPHA, seed=run,
                                resamples=resamples)
        b = report.variant("B")
        found["impression z-test"].append((b.p_value or 1.0) < ALPHA)
        found["delta method"].append((b.user_p_value or 1.0) < ALPHA)
        found["bootstrap"].append((b.bootstrap_p_value or 1.0) < ALPHA)
        found["verdict names a winner"].append(report.winner is not None)
        impressions.append((report.variant("A").impressions + b.impressions) / users)
    return {"experiments": experiments, "users": users, "resamples": resamples,
            "impressions_per_user": float(np.mean(impressions)),
            "tests": {name: _rate(flags) for name, flags in found.items()}}


def _rate(flags: list[bool]) -> dict[str, Any]:
    hits = int(np.sum(flags))
    ci = stats.binomtest(hits, len(flags)).proportion_ci(0.95, method="exact")
    return {"rate": hits / len(flags), "ci_low": float(ci.low), "ci_high": float(ci.high),
            "experiments": len(flags), "false_positives": hits}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=2000)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--bootstrap-experiments", type=int, default=500)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--analysis-experiments", type=int, default=300)
    parser.add_argument("--analysis-users", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    load_before = list(os.getloadavg())

    start = time.perf_counter()
    direct = aa_false_positive_rate(args.experiments, args.users, seed=args.seed,
                                    alpha=ALPHA,
                                    bootstrap_experiments=args.bootstrap_experiments,
                                    resamples=args.resamples,
                                    items_per_answer=ITEMS_PER_ANSWER)
    direct_seconds = time.perf_counter() - start
    start = time.perf_counter()
    analysis = (analysis_path(args.analysis_experiments, args.analysis_users, args.seed + 1,
                              args.resamples) if args.analysis_experiments else None)
    analysis_seconds = time.perf_counter() - start

    statistics = {
        "experiments": direct.experiments, "users": direct.users,
        "impressions_per_user": direct.impressions_per_user,
        "design_effect": direct.design_effect, "resamples": args.resamples,
        "tests": {name: {"rate": direct.rates[name], "ci_low": direct.intervals[name].low,
                         "ci_high": direct.intervals[name].high,
                         "experiments": direct.experiments[name],
                         "false_positives": round(direct.rates[name]
                                                  * direct.experiments[name])}
                  for name in direct.rates},
        "seconds": direct_seconds}
    if analysis is not None:
        analysis["seconds"] = analysis_seconds
    result = {
        "benchmark": "aa_test", "generated_at": datetime.now(UTC).isoformat(),
        "command": "python benchmarks/aa_test.py " + " ".join(sys.argv[1:] if argv is None
                                                              else argv),
        "machine": {"platform": platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "load_before": load_before,
                    "load_after": list(os.getloadavg())},
        "alpha": ALPHA,
        "population": {"mean_ctr": 0.05, "ctr_concentration": 20.0, "mean_sessions": 3.0,
                       "activity_sigma": 1.2, "items_per_answer": ITEMS_PER_ANSWER},
        "statistics": statistics, "analysis": analysis}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "aa_test.json").write_text(json.dumps(result, indent=2) + "\n")
    markdown = _markdown(result)
    (RESULTS / "aa_test.md").write_text(markdown)
    print(markdown)
    return result


def _markdown(result: dict[str, Any]) -> str:
    machine, stats_ = result["machine"], result["statistics"]
    lines = [
        "# A/A false-positive rates: per impression against per user", "",
        f"{result['generated_at']}, {machine['platform']}, {machine['cores']} cores, "
        f"Python {machine['python']}, load average before "
        f"{[round(x, 2) for x in machine['load_before']]}, after "
        f"{[round(x, 2) for x in machine['load_after']]}.",
        f"Command: `{result['command'].strip()}`.", "",
        "Users differ: own CTR ~ Beta (mean 5%, concentration 20), 1 + Poisson answers of "
        "10 impressions with log-normal activity (sigma 1.2, the sample shop's). Each user "
        "to A or B by a fair coin; alpha 0.05, so every rate should be 5%. Intervals: 95% "
        "Clopper-Pearson.", "",
        f"## Statistics on per-user counts ({stats_['users']:,} users per experiment, "
        f"{stats_['impressions_per_user']:.1f} impressions per user, design effect "
        f"{stats_['design_effect']:.2f}; {stats_['seconds']:.1f} s)", "",
        "| test | experiments | false positives | rate | 95% CI |", "|---|---|---|---|---|"]
    lines += [_row(name, row) for name, row in stats_["tests"].items()]
    analysis = result["analysis"]
    if analysis:
        lines += [
            "", f"## Through `analyze_frames` on generated served log and events "
            f"({analysis['users']:,} users per experiment, "
            f"{analysis['impressions_per_user']:.1f} impressions per user, "
            f"{analysis['resamples']} bootstrap resamples; {analysis['seconds']:.0f} s)", "",
            "| test | experiments | false positives | rate | 95% CI |",
            "|---|---|---|---|---|"]
        lines += [_row(name, row) for name, row in analysis["tests"].items()]
    lines += ["", "The design effect is the mean ratio of the delta-method variance of the "
              "CTR difference to the binomial one the impression-level z-test assumes.", ""]
    return "\n".join(lines)


def _row(name: str, row: dict[str, Any]) -> str:
    return (f"| {name} | {row['experiments']:,} | {row['false_positives']:,} | "
            f"{100 * row['rate']:.1f}% | {100 * row['ci_low']:.1f}%-"
            f"{100 * row['ci_high']:.1f}% |")


if __name__ == "__main__":
    main()
