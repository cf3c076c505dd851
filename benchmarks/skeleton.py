"""Skeleton figures on MovieLens 100K: import speed, fit time, recommend latency, accuracy.

Run: ``.venv/bin/python benchmarks/skeleton.py [ML100K_DIR]``. Prints a table and writes
``benchmarks/results/skeleton.json`` and ``skeleton.md``.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from tailored.dataset import Dataset, temporal_split
from tailored.evaluation import evaluate_model
from tailored.ingest import import_movielens
from tailored.models import MODELS, create
from tailored.pipeline import LiveRecommender
from tailored.schema import Event
from tailored.store import open_store

warnings.filterwarnings("ignore", message="OpenBLAS")
RESULTS = Path(__file__).parent / "results"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"


def main(directory: Path) -> dict[str, object]:
    figures: dict[str, object] = {"machine": f"{platform.machine()}, {platform.python_version()}"}
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/bench.db")
        started = time.perf_counter()
        reports = import_movielens(store, directory)
        seconds = time.perf_counter() - started
        n_events = store.events.count()
        figures["import"] = {"events": n_events, "seconds": round(seconds, 2),
                             "rows_per_second": round(sum(r.rows_read for r in reports) / seconds)}

        data = Dataset.from_store(store)
        split = temporal_split(data)
        models = {}
        for name in MODELS:
            result = evaluate_model(create(name), split)
            started = time.perf_counter()
            model = create(name).fit(data)
            fit_seconds = time.perf_counter() - started
            users = data.user_vocab.ids
            started = time.perf_counter()
            model.recommend(users, k=10)
            batch_ms = 1000 * (time.perf_counter() - started) / len(users)
            single = []
            for user in users[:200]:
                started = time.perf_counter()
                model.recommend([user], k=10)
                single.append(1000 * (time.perf_counter() - started))
            models[name] = {
                **{key: round(value, 4) for key, value in result.metrics.items()},
                "fit_seconds_all_data": round(fit_seconds, 3),
                "recommend_ms_per_user_batch": round(batch_ms, 4),
                "recommend_ms_one_user_p50": round(float(np.percentile(single, 50)), 3),
                "recommend_ms_one_user_p95": round(float(np.percentile(single, 95)), 3),
            }
        figures["models"] = models
        figures["temporal_split_test_users"] = len(split.test_users)

        # Live path: the user's history from the store, then fold-in, as the API does it.
        store.models.register("als", "unused")
        live = LiveRecommender(store, create("als").fit(data))
        timings = []
        for user in data.user_vocab.ids[:200]:
            started = time.perf_counter()
            live.recommend([str(user)], k=10)
            timings.append(1000 * (time.perf_counter() - started))
        started = time.perf_counter()
        store.events.add([Event(user_id="1", item_id="50", event_type="rating", value=5.0)])
        figures["live_als_ms_p50"] = round(float(np.percentile(timings, 50)), 3)
        figures["live_als_ms_p95"] = round(float(np.percentile(timings, 95)), 3)
        figures["post_one_event_ms"] = round(1000 * (time.perf_counter() - started), 3)
        store.close()
    return figures


def _markdown(figures: dict[str, object]) -> str:
    models = figures["models"]
    assert isinstance(models, dict)
    lines = [f"MovieLens 100K, temporal split ({figures['temporal_split_test_users']} test users)",
             "", "| model | NDCG@10 | Recall@10 | fit s (all data) | ms/user (batch) | "
             "ms one user p50 |", "|---|---|---|---|---|---|"]
    for name, row in models.items():
        lines.append(f"| {name} | {row['ndcg@10']:.4f} | {row['recall@10']:.4f} | "
                     f"{row['fit_seconds_all_data']:.2f} | {row['recommend_ms_per_user_batch']:.3f}"
                     f" | {row['recommend_ms_one_user_p50']:.2f} |")
    lines += ["", f"import: {figures['import']}",
              f"live ALS from the store (history read + fold-in): p50 "
              f"{figures['live_als_ms_p50']} ms, p95 {figures['live_als_ms_p95']} ms; "
              f"one durable event write {figures['post_one_event_ms']} ms"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATA
    results = main(data_dir)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "skeleton.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "skeleton.md").write_text(_markdown(results))
    print(_markdown(results))
