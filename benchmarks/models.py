"""Fit time, recommend time per 1,000 users and peak memory of every model.

Datasets: MovieLens 100K (with its movie and user tables) and a sample shop of 1M
events. Each model runs in a fresh process, so its peak memory is its own.

Run: ``.venv/bin/python benchmarks/models.py [--models a,b] [--datasets ml-100k,shop-1m]``;
writes ``benchmarks/results/models.json`` and ``models.md``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from movielens import movielens_100k

RESULTS = Path(__file__).parent / "results"
TIMEOUT_SECONDS = 900


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    """Start the peak (VmHWM) afresh, so loading the data does not count (Linux)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def _prepare(name: str, directory: Path) -> Path:
    """Write the dataset's frames as Parquet once; workers read them back."""
    from tailored.dataset import Dataset

    target = directory / name
    target.mkdir()
    if name == "ml-100k":
        data = movielens_100k()
    else:
        from tailored.sample import shop

        sample = shop(n_users=20_000, n_items=5_000, n_events=1_000_000, seed=0)
        data = Dataset.from_frame(sample.events, items=sample.items, users=sample.users)
    data.events.drop(columns=["context"], errors="ignore").to_parquet(target / "events.parquet")
    for table in ("items", "users"):
        frame = getattr(data, table)
        if frame is not None:
            frame.to_parquet(target / f"{table}.parquet")
    return target


def _worker(model_name: str, directory: str, queue: Any) -> None:
    warnings.filterwarnings("ignore")
    try:
        from tailored.dataset import Dataset
        from tailored.models import create

        path = Path(directory)
        tables = {t: pd.read_parquet(path / f"{t}.parquet") if (path / f"{t}.parquet").exists()
                  else None for t in ("items", "users")}
        if tables["items"] is not None and "categories" in tables["items"]:
            tables["items"]["categories"] = tables["items"]["categories"].map(list)
        data = Dataset.from_frame(pd.read_parquet(path / "events.parquet"), **tables)
        data.matrix()
        baseline = _status_mb("VmRSS")
        _reset_peak()
        started = time.perf_counter()
        model = create(model_name).fit(data)
        fit_seconds = time.perf_counter() - started
        users = data.user_vocab.ids[: 1000]
        started = time.perf_counter()
        model.recommend(users, k=10)
        recommend_seconds = time.perf_counter() - started
        queue.put({"fit_s": fit_seconds, "recommend_s_per_1000_users":
                   recommend_seconds * 1000 / len(users),
                   "peak_mb_above_data": _status_mb("VmHWM") - baseline,
                   "events": len(data), "users": data.n_users, "items": data.n_items})
    except Exception as error:  # reported in the table, not fatal to the run
        queue.put({"error": f"{type(error).__name__}: {error}"})


def run_one(model_name: str, directory: Path) -> dict[str, Any]:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_worker, args=(model_name, str(directory), queue))
    process.start()
    process.join(TIMEOUT_SECONDS)
    if process.is_alive():
        process.kill()
        return {"error": f"timed out after {TIMEOUT_SECONDS}s"}
    return queue.get() if not queue.empty() else {"error": f"exit code {process.exitcode}"}


def markdown(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = []
    for dataset, rows in results.items():
        sizes = next((r for r in rows.values() if "events" in r), {})
        lines += [f"### {dataset} ({sizes.get('events', 0):,} events, "
                  f"{sizes.get('users', 0):,} users, {sizes.get('items', 0):,} items)", "",
                  "| model | fit s | recommend s / 1,000 users | peak MB above data |",
                  "|---|---|---|---|"]
        for model, row in rows.items():
            if "error" in row:
                lines.append(f"| {model} | {row['error']} | | |")
            else:
                lines.append(f"| {model} | {row['fit_s']:.2f} | "
                             f"{row['recommend_s_per_1000_users']:.3f} | "
                             f"{row['peak_mb_above_data']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    from tailored.models import MODELS

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--datasets", default="ml-100k,shop-1m")
    args = parser.parse_args()
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets.split(","):
            directory = _prepare(dataset, Path(tmp))
            results[dataset] = {}
            for model in args.models.split(","):
                results[dataset][model] = run_one(model, directory)
                print(dataset, model, results[dataset][model], flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "models.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    (RESULTS / "models.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
