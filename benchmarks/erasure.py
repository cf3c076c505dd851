"""Erasure on the 1M-event sample shop: how long from the request until no trace of the
user is left in the store and in the model artifacts, and until the serving process
answers from the rewritten models.

The shop (``tailored.sample.shop``: 20,000 users, 5,000 items, 1,000,000 events) is
imported into a SQLite store; three versions are trained and registered with
``train_model``: ALS (learned by optimisation: its item factors wait for a retraining),
item kNN with business rules (forgotten exactly: its similarities are updated) and
popularity (exact). Then, for ``--users`` users picked at random among those with
events, one at a time:

- ``erase_users`` (what ``tailored users erase`` runs): the store transaction (events,
  profile, consent history, served answers, audit) and every artifact rewritten; its
  time is *no trace*: when it returns, no table and no artifact file holds the id;
- ``ServiceState.erase`` (what ``POST /users/{id}/erase`` runs): the same, then the
  serving version reloaded from its rewritten artifact and cached lists dropped.

No peer does this to compare with side by side: Gorse deletes a user's rows only (its
models keep the user until the next training), Amazon Personalize promises deletion
within a day; the figures stand on their own, against the issue's target (under 1 s for
user-level state).

Run: ``.venv/bin/python benchmarks/erasure.py [--users 10] [--events 1000000]``; prints
a table and writes ``benchmarks/results/erasure.json`` and ``erasure.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tailored.ingest import import_file
from tailored.jobs import train_model
from tailored.jobs.erase import erase_users
from tailored.pipeline import Recipe, find_recipe
from tailored.sample import shop
from tailored.serving.state import ServiceState
from tailored.settings import Settings
from tailored.store import open_store

RESULTS = Path(__file__).resolve().parent / "results"


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {"median_ms": round(statistics.median(ordered) * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1),
            "min_ms": round(ordered[0] * 1000, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="tailored-erasure-"))
    settings = Settings(store_url=f"sqlite:///{root / 'shop.db'}", model_dir=root / "models")
    started = time.perf_counter()
    n_users, n_items = max(200, args.events // 50), max(100, args.events // 200)
    sample = shop(n_users=n_users, n_items=n_items, n_events=args.events, seed=0)
    store = open_store(settings.store_url)
    paths = {path.stem: path for path in sample.write(root / "data", format="csv")}
    for kind in ("items", "users", "events"):
        import_file(store, paths[kind], kind)
    print(f"shop: {store.events.count():,} events, {n_users:,} users, {n_items:,} items "
          f"({time.perf_counter() - started:.0f} s)", flush=True)
    recipes = [Recipe.of("popular"), find_recipe("shop-with-rules"),
               Recipe.of("als", factors=64, iterations=10)]
    for recipe in recipes:  # ALS last: the serving version
        began = time.perf_counter()
        train_model(store, settings, recipe, validate=False)
        print(f"trained {recipe.name} in {time.perf_counter() - began:.0f} s", flush=True)
    artifacts_mb = sum(p.stat().st_size for p in settings.model_dir.rglob("*")
                       if p.is_file()) / 2**20
    users = random.Random(1).sample(sorted(set(sample.events["user_id"])),
                                    2 * args.users + 3)
    directly, served_users = users[:args.users], users[args.users:2 * args.users]

    no_trace, store_part, exact = [], [], {}
    for user in directly:
        report = erase_users(store, settings, [user], erased_by="benchmark")
        no_trace.append(report.seconds)
        exact = {v: f.exact for v, f in report.versions.items()}
        assert all(f.known == 1 for f in report.versions.values()), report.versions
    for user in users[2 * args.users:]:  # the store's transaction alone
        began = time.perf_counter()
        store.privacy.erase([user], key="k" * 32, erased_by="benchmark",
                            retrain_within=None)
        store_part.append(time.perf_counter() - began)
    state = ServiceState(store, settings)
    state.load_active()
    served = []
    for user in served_users:
        began = time.perf_counter()
        state.erase([user], "benchmark")
        served.append(time.perf_counter() - began)
    state.close()
    store.close()

    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{sys.version.split()[0]}",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "shop": {"events": args.events, "users": n_users, "items": n_items},
        "versions": [r.name for r in recipes], "artifacts_mb": round(artifacts_mb, 1),
        "exact_by_version": exact,
        "erase_users (no trace in store and artifacts)": _percentiles(no_trace),
        "store transaction alone": _percentiles(store_part),
        "POST /users/{id}/erase (+ serving reload)": _percentiles(served),
        "users_per_figure": args.users,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "erasure.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Erasure on the {args.events:,}-event sample shop", "",
             f"{result['when']}, {result['machine']}, load average before "
             f"{result['load_average_before']}, after {result['load_average_after']}.",
             f"Versions registered: {', '.join(result['versions'])} "
             f"({artifacts_mb:.0f} MB of artifacts); exact per version: {exact}.", "",
             "| step | median | min | max |", "|---|---|---|---|"]
    for name in ("erase_users (no trace in store and artifacts)", "store transaction alone",
                 "POST /users/{id}/erase (+ serving reload)"):
        figures = result[name]
        lines.append(f"| {name} | {figures['median_ms']} ms | {figures['min_ms']} ms | "
                     f"{figures['max_ms']} ms |")
    text = "\n".join(lines) + "\n"
    (RESULTS / "erasure.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
