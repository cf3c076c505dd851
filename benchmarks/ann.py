"""Recommendations on a large catalog: exact scoring against the approximate item index.

The sample shop with about 100,000 items that have events (the catalog is 1.75 times
that; the rest are never touched, so ALS does not learn them), ALS as the shipped recipe
trains it (32 factors, log1p confidence), with the item index its fit builds at
``ann_min_items`` (default 50,000). For 1,000 users, one at a time and in-process (no
HTTP, no store), from their histories (the service's fold-in path):

- the top list (the scorer's best 200, as ``cache_top_n`` asks), then the pipeline's
  selection of 10 from it: what an uncached request computes, exact (every item scored)
  and from the index, with the index at a few ``ann_probes``;
- recall@100: the share of the exact top 100 (items the user has left out) that the
  index's top 100 holds, and how many served top-10 lists are identical.

Run: ``.venv/bin/python benchmarks/ann.py [--items 100000] [--users 1000]``; needs the
``ann`` extra; writes ``benchmarks/results/ann.json`` and ``ann.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
TOP_N = 200
K = 10
#: Shares of the cells a search scans (the default: a fifth).
SHARES = (0.05, 0.1, 0.2, 0.4)


def _percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000,
                        help="items with events wanted (the catalog is 1.75 times it)")
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--factors", type=int, default=32)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from tailored.dataset import Dataset, UserQuery
    from tailored.models import ALS, ScoringBatch
    from tailored.pipeline import LiveRecommender, Pipeline, TopList
    from tailored.sample import shop
    from tailored.store import open_store

    load_start = os.getloadavg()
    started = time.perf_counter()
    sample = shop(n_users=args.items, n_items=args.items * 7 // 4, n_events=20 * args.items,
                  seed=0)
    data = Dataset.from_frame(sample.events, items=sample.items)
    data.matrix()
    print(f"data: {time.perf_counter() - started:.0f} s", flush=True)

    fit_started = time.perf_counter()
    model = ALS(factors=args.factors, confidence="log1p").fit(data)
    fit_seconds = time.perf_counter() - fit_started
    index = model.item_index_
    assert index is not None, "the fit built no index: install the `ann` extra"
    build_started = time.perf_counter()
    model._build_item_index()  # timed alone: what the index adds to the fit
    index_seconds = time.perf_counter() - build_started
    pipeline = Pipeline.of(model)
    store = open_store("sqlite://")
    live = LiveRecommender(store, pipeline)
    print(f"ALS: {len(model.item_ids):,} items, fit {fit_seconds:.1f} s "
          f"(the index {index_seconds:.1f} s of it)", flush=True)

    rng = np.random.default_rng(0)
    users = rng.choice(model.user_vocab_.ids, args.users, replace=False)
    events = data.events[data.events["user_id"].isin(set(users))]
    by_user = dict(tuple(events.groupby("user_id")))
    queries = [UserQuery((user,), by_user[user]) for user in users]

    def serve(query: UserQuery) -> list[str]:
        """An uncached request minus the store: top list, then the selection."""
        top = live.top_list(query, TOP_N)
        return live.rank(query, K, top=top, catalog=pipeline.items_).item_ids

    def top_list(batch: ScoringBatch) -> None:
        """The stage the index replaces: the top list from a resolved history."""
        if model._approximate_top(batch, TOP_N)[0] is None:
            TopList.of(pipeline._masked_scores(batch)[0][0], TOP_N)

    def answers(query: UserQuery) -> bool:
        """Whether the index's candidates gave the list (no exact scoring needed)."""
        found = model._approximate_top(model._resolve(query), TOP_N)[0]
        return found is not None and pipeline.select(
            TopList(found[0], found[1], complete=False), K, query,
            catalog=pipeline.items_) is not None

    def timed(label: str) -> tuple[list[float], list[float], list[list[str]]]:
        for query in queries[:50]:  # warm-up
            serve(query)
        times, stage, lists = [], [], []
        for query, batch in zip(queries, batches, strict=True):
            began = time.perf_counter()
            lists.append(serve(query))
            times.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            top_list(batch)
            stage.append((time.perf_counter() - began) * 1000)
        print(f"{label}: p50 {statistics.median(times):.3f} ms, the top list "
              f"{statistics.median(stage):.3f} ms", flush=True)
        return times, stage, lists

    batches = [model._resolve(query) for query in queries]
    model.item_index_ = None
    exact_times, exact_stage, exact_lists = timed("exact")
    everyone = UserQuery(tuple(users), events)
    exact_top = model.recommend(everyone, 100)
    model.item_index_ = index
    wanted = exact_top.groupby("user_id")["item_id"].apply(set)

    rows = []
    cells = int(index.index.nlist)
    default_probes = index.probes
    for share in SHARES:
        index.probes = max(1, round(cells * share))
        times, stage, lists = timed(f"index, {index.probes} probes")
        found = model.top_items(everyone, 100).groupby("user_id")["item_id"].apply(set)
        recall = float(np.mean([len(found.get(user, set()) & items) / len(items)
                                for user, items in wanted.items()]))
        shown = float(np.mean([len(set(a) & set(b)) / len(b)
                               for a, b in zip(lists, exact_lists, strict=True)]))
        identical = float(np.mean([a == b for a, b in zip(lists, exact_lists, strict=True)]))
        answered = float(np.mean([answers(query) for query in queries]))
        rows.append({"probes": index.probes, "p50_ms": _percentile(times, 50),
                     "p99_ms": _percentile(times, 99),
                     "top_list_p50_ms": _percentile(stage, 50),
                     "top_list_p99_ms": _percentile(stage, 99),
                     "recall_at_100": round(recall, 4), "recall_at_10_shown": round(shown, 4),
                     "identical_top10": round(identical, 4), "answered": round(answered, 4)})
        print(f"  recall@100 {recall:.3f}, shown {shown:.3f}, identical {identical:.3f}, "
              f"answered by the index {answered:.3f}", flush=True)
    index.probes = default_probes
    store.close()

    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(),
        "load_average": {"start": [round(x, 2) for x in load_start],
                         "end": [round(x, 2) for x in os.getloadavg()]},
        "catalog_items": args.items * 7 // 4, "model_items": len(model.item_ids),
        "users": args.users, "events": len(data.events), "factors": args.factors,
        "cells": cells, "default_probes": default_probes,
        "fit_seconds": round(fit_seconds, 1), "index_seconds": round(index_seconds, 2),
        "exact": {"p50_ms": _percentile(exact_times, 50),
                  "p99_ms": _percentile(exact_times, 99),
                  "top_list_p50_ms": _percentile(exact_stage, 50),
                  "top_list_p99_ms": _percentile(exact_stage, 99)},
        "index": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ann.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "ann.md").write_text(report(result))
    print(report(result))


def report(result: dict[str, Any]) -> str:
    load = result["load_average"]
    lines = [
        "# Recommendations on a large catalog: exact scoring and the item index",
        "",
        f"Written by `benchmarks/ann.py` on {result['date']} ({result['cores']} cores; load "
        f"average {load['start'][0]:.2f} at the start, {load['end'][0]:.2f} at the end). "
        f"The sample shop: {result['catalog_items']:,} catalog items, "
        f"{result['events']:,} events; ALS ({result['factors']} factors, the recipe's "
        f"log1p confidence) learns the {result['model_items']:,} items that have events, "
        f"in {result['fit_seconds']:.1f} s, of which building the item index "
        f"({result['cells']:,} cells) takes {result['index_seconds']:.2f} s.",
        "",
        f"Per user, one at a time, in-process, for {result['users']:,} users from their "
        f"histories (ALS fold-in): the scorer's top {TOP_N} (as the service's cache asks) "
        f"and the pipeline's selection of {K} from it, without HTTP or the store. "
        "recall@100: the share of the exact top 100 (the user's items left out) that the "
        f"index's top 100 holds; recall@10 shown: the share of the {K} items exact scoring "
        f"shows that the index's path shows; identical: the share of users whose {K} shown "
        "items are exactly those of exact scoring, in the same order; answered: the share "
        "of users whose list came from the index's candidates (the others, too few "
        "candidates, were scored exactly). The request column times the whole path "
        "(history to matrix, fold-in, top list, selection); the top-list column only the "
        "stage the index replaces, from the resolved history (fold-in included).",
        "",
        "| top list from | request p50 ms | p99 ms | top list p50 ms | p99 ms | "
        "recall@100 | recall@10 shown | identical top-10 | answered |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| every item scored (exact) | {result['exact']['p50_ms']:.3f} | "
        f"{result['exact']['p99_ms']:.3f} | {result['exact']['top_list_p50_ms']:.3f} | "
        f"{result['exact']['top_list_p99_ms']:.3f} | 1 | 1 | 1 | |",
    ]
    for row in result["index"]:
        default = " (default)" if row["probes"] == result["default_probes"] else ""
        lines.append(
            f"| the index, {row['probes']} probes{default} | {row['p50_ms']:.3f} | "
            f"{row['p99_ms']:.3f} | {row['top_list_p50_ms']:.3f} | "
            f"{row['top_list_p99_ms']:.3f} | {row['recall_at_100']:.3f} | "
            f"{row['recall_at_10_shown']:.3f} | {row['identical_top10']:.3f} | "
            f"{row['answered']:.3f} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
