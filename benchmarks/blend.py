"""The blend's starting point: the plain mean of the best tuned families against the best alone.

``tailored.tune`` stacks the weighted hybrid on the single families it tuned, starting
from the plain mean (z-scores, equal weights) of the three best
(``tailored.evaluation.tuning.blended_parts``). This checks that starting point, one row
(dataset and protocol of ``benchmarks/accuracy.py``) at a time:

1. the test split is held out (``tailored.dataset.split_by_name``);
2. ``tailored.tune`` searches the single families only (no composite) for the budget;
3. the winner and the plain mean of the best configurations of the three best families
   are scored on the second validation fold (the tuner's) and on the held-out test.

Rows default to the *choosing* ones of ``benchmarks/accuracy.py`` (where the tuner's
constants may be chosen); ``--rows`` takes others, reported with their role.

Run: ``.venv/bin/python benchmarks/blend.py [--budget 60] [--rows ml-100k/temporal,...]``.
Writes ``benchmarks/results/blend.json`` and ``blend.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from accuracy import DATASETS, load
from peers import DEFAULT_DATA

from tailored.dataset import split_by_name
from tailored.evaluation import evaluate_model, validation_folds
from tailored.evaluation.tuning import COMPOSITES, available_families, blended_parts, tune
from tailored.models import create

RESULTS = Path(__file__).parent / "results"
CHOOSING_ROWS = [f"{name}/{protocol}" for name, spec in DATASETS.items()
                 if spec.role == "choosing" for protocol in spec.protocols]


def _ndcg(model: Any, split: Any, *, fit: bool = True) -> float:
    return float(evaluate_model(model, split, fit=fit, beyond_accuracy=False)
                 .metrics["ndcg@10"])


def run_row(row: str, directory: Path, budget: float, seed: int) -> dict[str, Any]:
    name, protocol = row.split("/")
    outer = split_by_name(load(name, directory), protocol)
    _, second = validation_folds(outer.train, protocol)
    singles = [family for family in available_families() if family not in COMPOSITES]
    started = time.perf_counter()
    result = tune(outer.train, budget_seconds=budget, models=singles, protocol=protocol,
                  seed=seed)
    tuned = time.perf_counter() - started
    parts = blended_parts(result.trials, singles)
    blend = {"parts": [{**part, "weight": 1.0} for part in parts], "normalisation": "zscore"}
    winner = {"family": result.best_name, "params": result.best_params}
    return {
        "row": row, "role": DATASETS[name].role, "test_users": len(outer.test_users),
        "tune_seconds": round(tuned, 1), "winner": winner,
        "parts": [part["model"] for part in parts],
        "second_fold": {
            "winner": _ndcg(create(result.best_name, **result.best_params), second),
            "blend": _ndcg(create("weighted", **blend), second)},
        "test": {"winner": _ndcg(result.best_model, outer, fit=False),
                 "blend": _ndcg(create("weighted", **blend), outer)},
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# The blend's starting point",
        "",
        f"`tailored.tune` on the single families ({report['budget']:g} s), then the plain "
        "mean (z-scores, equal weights) of the best configuration of its three best "
        "families against its winner, NDCG@10 on the second validation fold and on the "
        "held-out test.",
        "",
        f"Machine: {report['machine']}; load average before: {report['load']}. "
        f"Command: `{report['command']}`.",
        "",
        "| row | role | winner | blended | 2nd fold: winner / blend | test: winner / blend "
        "| test ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['row']} | {r['role']} | {r['winner']['family']} | {', '.join(r['parts'])} "
            f"| {r['second_fold']['winner']:.4f} / {r['second_fold']['blend']:.4f} "
            f"| {r['test']['winner']:.4f} / {r['test']['blend']:.4f} "
            f"| {r['test']['blend'] / r['test']['winner']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--rows", default=",".join(CHOOSING_ROWS),
                        help="dataset/protocol pairs of benchmarks/accuracy.py")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the ml-100k folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    report: dict[str, Any] = {
        "budget": args.budget, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load": " ".join(f"{value:.2f}" for value in os.getloadavg()),
        "command": " ".join(["python benchmarks/blend.py", *argv]), "rows": []}
    for row in args.rows.split(","):
        result = run_row(row, args.data, args.budget, args.seed)
        print(json.dumps(result), flush=True)
        report["rows"].append(result)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "blend.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.results_dir / "blend.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
