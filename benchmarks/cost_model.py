"""The tuner's cost model against the clock: predicted and measured seconds of a check.

A *check* (``tailored.evaluation.costs``) fits a family at a configuration and scores
the validation users once. For each family at its starting point, this times one check
on validation folds of several sizes, from MovieLens 100K's (where fixed costs weigh
most) to a sample shop with a 50,000-item catalog (a size none of ``accuracy.py``'s
datasets has), and its fit alone, and prints beside them what ``CostModel`` predicts before it
has timed anything (its references). It then fits each family's overhead, rate and
scoring weight to the measurements (least squares on the log of the ratio, so each fold counts
alike), its fits alone and its checks together: the figures of ``REFERENCES``.

Run: ``.venv/bin/python benchmarks/cost_model.py`` (about 3 minutes on two cores).
Writes ``benchmarks/results/cost_model.json`` and ``cost_model.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from tailored.dataset import Dataset, Split, split_by_name
from tailored.evaluation.costs import CostModel
from tailored.evaluation.search_spaces import EPOCH_FAMILIES, DataShape
from tailored.evaluation.tuning.objective import Objective, validation_folds
from tailored.evaluation.tuning.search import shape_of, start_params
from tailored.models import create

RESULTS = Path(__file__).parent / "results"
ML100K = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"
FAMILIES = ("popular", "item_knn", "user_knn", "ease", "als", "bpr", "sasrec", "lightgcn",
            "transitions")
SEED = 7  # not accuracy.py's data seed: other shops than the benchmark's
MAX_SECONDS = 90.0  # a family predicted slower than this on a fold is not timed there
NOISE = 0.02  # seconds: shorter fits and checks count as this long in the fit
EASE_MAX_ITEMS = 8_000  # EASE's dense inverse beyond this takes minutes


def _movielens(directory: Path) -> Dataset:
    import pandas as pd

    ratings = pd.read_csv(directory / "u.data", sep="\t",
                          names=["user_id", "item_id", "value", "timestamp"])
    ratings["timestamp"] = pd.to_datetime(ratings["timestamp"], unit="s")
    return Dataset.from_frame(ratings.astype({"user_id": str, "item_id": str}))


def _shop(users: int, items: int, events: int) -> Dataset:
    from tailored.sample import shop

    frame = shop(n_users=users, n_items=items, n_events=events, seed=SEED).events
    return Dataset.from_frame(frame[["user_id", "item_id", "event_type", "value", "timestamp"]])


def folds(ml100k: Path) -> dict[str, Split]:
    """First validation folds of several sizes, as ``tune`` carves them."""
    movielens = _movielens(ml100k)
    made = {
        "ml-100k temporal": (movielens, "temporal"),
        "ml-100k leave-last-one-out": (movielens, "leave-last-one-out"),
        "shop 3k items": (_shop(8_000, 3_000, 150_000), "temporal"),
        "shop 12k items": (_shop(15_000, 12_000, 250_000), "leave-last-one-out"),
        "shop 50k items": (_shop(25_000, 50_000, 350_000), "temporal"),
    }
    return {name: validation_folds(split_by_name(data, protocol).train, protocol)[0]
            for name, (data, protocol) in made.items()}


def measure(family: str, fold: Split, shape: DataShape, repeats: int
            ) -> tuple[dict, float, float]:
    """Seconds of the family's starting point's fit and of its check (the fit, then
    scoring the validation users; one epoch for an epoch family): the fastest of
    ``repeats``."""
    params = start_params(family, shape)
    if family in EPOCH_FAMILIES:
        params["epochs"] = 1
    objective = Objective.parse("ndcg@10")
    fit = check = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        model = create(family, **params).fit(fold.train)
        fitted = time.perf_counter()
        objective.evaluate(model, fold)
        fit, check = min(fit, fitted - began), min(check, time.perf_counter() - began)
    return params, fit, check


def calibrate(works: np.ndarray, seconds: np.ndarray) -> tuple[float, float, float]:
    """Overhead, rate and scoring weight minimising the squared log ratios of predicted
    to measured seconds; ``works`` holds each measurement's fit and scoring work (zero
    scoring work for a fit alone)."""
    def predicted(x: np.ndarray) -> np.ndarray:
        overhead, rate, weight = np.exp(x)
        return overhead + rate * (works[:, 0] + weight * works[:, 1])

    def loss(x: np.ndarray) -> float:  # below a fiftieth of a second, timing is noise
        return float(np.sum(np.log(np.maximum(predicted(x), NOISE)
                                   / np.maximum(seconds, NOISE)) ** 2))

    start = np.log([max(seconds.min() / 2, 1e-3), seconds.max() / works.sum(axis=1).max(), 1])
    best = minimize(loss, start, method="Nelder-Mead",
                    options={"xatol": 1e-4, "fatol": 1e-8, "maxiter": 8000})
    overhead, rate, weight = np.exp(best.x)
    return float(overhead), float(rate), float(weight)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ML100K)
    parser.add_argument("--families", default=",".join(FAMILIES))
    args = parser.parse_args()
    costs = CostModel()
    families = args.families.split(",")
    made = folds(args.data)
    smallest = next(iter(made.values()))
    for family in families:  # first calls pay for imports and thread pools: not counted
        measure(family, smallest, shape_of(smallest), repeats=1)
    rows = []
    for fold_name, fold in made.items():
        shape = shape_of(fold)
        print(f"{fold_name}: {shape}", flush=True)
        for family in families:
            if family == "ease" and shape.items > EASE_MAX_ITEMS:
                continue
            params = start_params(family, shape)
            steps = 1 if family in EPOCH_FAMILIES else None
            predicted = costs.seconds(family, params, shape, steps=steps)
            if predicted > MAX_SECONDS and not fold_name.startswith("ml-100k"):
                print(f"  {family:12s} skipped: predicted {predicted:.0f} s", flush=True)
                continue
            small = shape.events <= 100_000  # noisier: the fastest of three
            params, fit_seconds, seconds = measure(family, fold, shape, 3 if small else 1)
            fit_predicted = costs.seconds(family, params, shape, scored=False)
            work = costs.split_work(family, params, shape, steps=steps)
            rows.append({"fold": fold_name, "family": family, "fit_work": work.fit,
                         "score_work": work.score, "fit_predicted": fit_predicted,
                         "fit_seconds": fit_seconds, "predicted": predicted,
                         "seconds": seconds})
            print(f"  {family:12s} fit: predicted {fit_predicted:6.2f} s, took "
                  f"{fit_seconds:6.2f} s; check: predicted {predicted:6.2f} s, took "
                  f"{seconds:6.2f} s (ratio {predicted / seconds:5.2f})", flush=True)
    fitted = {}
    for family in dict.fromkeys(row["family"] for row in rows):
        mine = [row for row in rows if row["family"] == family]
        works = np.array([[r["fit_work"], 0.0] for r in mine]
                         + [[r["fit_work"], r["score_work"]] for r in mine])
        seconds = np.array([r["fit_seconds"] for r in mine] + [r["seconds"] for r in mine])
        overhead, rate, weight = calibrate(works, seconds)
        fitted[family] = {"overhead": overhead, "rate": rate, "scoring_weight": weight}
        errors = (overhead + rate * (works[:, 0] + weight * works[:, 1])) / seconds
        print(f"{family:12s} overhead {overhead:.3f} s  rate {rate:.2e}  scoring weight "
              f"{weight:.2f}  fitted/measured {', '.join(f'{e:.2f}' for e in errors)}")
    RESULTS.mkdir(exist_ok=True)
    load = os.getloadavg()
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
            "cores": os.cpu_count(), "load_average": load,
            "command": "python benchmarks/cost_model.py"}
    (RESULTS / "cost_model.json").write_text(json.dumps(
        {**meta, "checks": rows, "fitted": fitted}, indent=1))
    lines = ["# The cost model against the clock", "",
             f"{meta['date']}, {meta['machine']}, {meta['cores']} cores, load average "
             f"{load[0]:.2f} at the end. Command: `{meta['command']}`.", "",
             "Predicted: by the reference overheads and rates, before any check is timed.", "",
             "| fold | family | fit predicted s | fit measured s | check predicted s | "
             "check measured s | check predicted / measured |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['fold']} | {r['family']} | {r['fit_predicted']:.2f} | "
              f"{r['fit_seconds']:.2f} | {r['predicted']:.2f} | {r['seconds']:.2f} | "
              f"{r['predicted'] / r['seconds']:.2f} |" for r in rows]
    lines += ["", "Fitted per family (seconds = overhead + rate x (fit work + scoring weight x "
              "scoring work), the scoring work zero for a fit alone):", "",
              "| family | overhead s | rate s/unit | scoring weight |", "|---|---|---|---|"]
    lines += [f"| {f} | {v['overhead']:.3f} | {v['rate']:.2e} | {v['scoring_weight']:.2f} |"
              for f, v in fitted.items()]
    (RESULTS / "cost_model.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
