"""tailored at scale: a shop of 10M events, 1M users and 1M items on PostgreSQL, in one run.

Phases, each in a process of its own so its peak memory (the process and everything it
waited for: the Spark JVM, the server's workers) is its own:

1. ``generate``: the shop as CSV files (``--events``, ``--users``, ``--items``): item
   popularity falling as a power law (Zipf, exponent 0.9), user activity log-normal,
   views, clicks, cart adds and purchases (70/15/10/5%) over 58 days, every event with
   an id.
2. ``import``: ``tailored import items`` then ``tailored import events`` into a new
   PostgreSQL database (the CLI as a user runs it: validation, one transaction, COPY).
3. ``train-memory`` and ``train-spark``: ``tailored train --model als --no-validate``,
   in this process's engine and with ``--engine spark --master local[2]``, at the same
   settings (the shipped ALS: 32 factors, 15 iterations, log1p confidence). The single
   node's fit builds the approximate item index (faiss), since the catalog is above
   ``ann_min_items``; the Spark-trained version is promoted last and serves.
4. ``recall``: for ``--probe-users`` users, recall@100 of the item index against exact
   scoring of every item, and the in-process time of an uncached and a cached request.
5. ``http``: ``tailored serve --workers 2`` on the store; ``wrk`` asks for 80% of its
   requests from ``HOT_USERS`` users whose lists each worker has cached and 20% from
   ``COLD_USERS`` users drawn from everyone (uncached, scored afresh), for ``--duration``
   seconds; requests/s and latency percentiles. Then, as long again, the hot users alone
   (every answer cached): the ceiling of this machine for any mix.
6. ``consume``: ``--consume-events`` events published to a Redis stream, read by
   ``tailored.ingest.streams.consume`` (as ``tailored consume`` does) into the same
   PostgreSQL store, now holding the 10M events, ``--consume-batch`` events a read.

Run: ``.venv/bin/python benchmarks/scale.py [--events 10000000 --users 1000000 --items
1000000] [--phases generate,import,...]``; needs PostgreSQL (``TAILORED_TEST_POSTGRES``,
default ``postgresql://postgres@127.0.0.1/test``), Redis, Java, ``wrk`` and the
``postgres,spark,ann,streams`` extras. Writes ``benchmarks/results/scale.json`` and
``scale.md``; the data lives in ``--workdir`` (default ``benchmarks/.cache/scale``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
VENV_BIN = Path(sys.executable).parent
POSTGRES_URL = os.environ.get("TAILORED_TEST_POSTGRES", "postgresql://postgres@127.0.0.1/test")
PHASES = ("generate", "import", "train-memory", "train-spark", "recall", "http", "consume")
EVENT_TYPES = ("view", "click", "add_to_cart", "purchase")
HOT_USERS, COLD_USERS = 2_000, 50_000
TARGETS = {"import_events_per_second": 100_000, "ann_recall_at_100": 0.95,
           "http_requests_per_second": 1_000, "http_p99_ms": 25.0,
           "consume_events_per_second": 20_000}


def _log(message: str) -> None:
    print(f"[scale bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---- phases, each run in a child process ---------------------------------------------------


def generate(work: Path, n_events: int, n_users: int, n_items: int) -> dict[str, Any]:
    import pandas as pd

    rng = np.random.default_rng(0)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    ranked = rng.permutation(n_items)  # item ids do not give their popularity away
    items = ranked[rng.choice(n_items, n_events, p=popularity / popularity.sum())]
    activity = rng.lognormal(0.0, 1.0, n_users)
    users = rng.choice(n_users, n_events, p=activity / activity.sum())
    start = int(datetime(2026, 9, 1, tzinfo=UTC).timestamp())
    seconds = np.sort(rng.integers(start, start + 58 * 86_400, n_events))
    frame = pd.DataFrame({
        "event_id": np.char.add("e", np.arange(n_events).astype(str)),
        "user_id": np.char.add("u", users.astype(str)),
        "item_id": np.char.add("i", items.astype(str)),
        "event_type": rng.choice(np.array(EVENT_TYPES), n_events, p=[0.7, 0.15, 0.1, 0.05]),
        "timestamp": seconds})
    frame.to_csv(work / "events.csv", index=False)
    categories = np.array(["books", "music", "garden", "kitchen", "toys", "sport", "beauty"])
    pd.DataFrame({"item_id": np.char.add("i", np.arange(n_items).astype(str)),
                  "title": np.char.add("Item ", np.arange(n_items).astype(str)),
                  "categories": categories[rng.integers(0, len(categories), n_items)],
                  "price": np.round(rng.lognormal(3.0, 0.8, n_items), 2)}
                 ).to_csv(work / "items.csv", index=False)
    counts = pd.Series(users).value_counts()
    (work / "hot_users.txt").write_text(
        "\n".join(f"u{u}" for u in counts.index[:HOT_USERS]) + "\n")
    cold = rng.choice(counts.index.to_numpy(), min(COLD_USERS, len(counts)), replace=False)
    (work / "cold_users.txt").write_text("\n".join(f"u{u}" for u in cold) + "\n")
    return {"events": n_events, "users_with_events": len(counts),
            "items_with_events": len(np.unique(items)),
            "csv_mb": round((work / "events.csv").stat().st_size / 1e6)}


def _tailored(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([str(VENV_BIN / "tailored"), *args], env=env, check=False,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"tailored {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def import_files(work: Path, env: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    _tailored("import", "items", str(work / "items.csv"), env=env)
    items_seconds = time.perf_counter() - started
    started = time.perf_counter()
    _tailored("import", "events", str(work / "events.csv"), env=env)
    seconds = time.perf_counter() - started
    events = sum(1 for _ in (work / "events.csv").open()) - 1
    return {"items_seconds": round(items_seconds, 1), "events_seconds": round(seconds, 1),
            "import_events_per_second": round(events / seconds)}


def train(engine: str, env: dict[str, str], settings: list[str]) -> dict[str, Any]:
    args = ["train", "--model", "als", "--no-validate"]
    for setting in settings:
        args += ["--set", setting]
    if engine == "spark":
        args += ["--engine", "spark", "--master", "local[2]"]
    started = time.perf_counter()
    _tailored(*args, env=env)
    return {"seconds": round(time.perf_counter() - started, 1)}


def recall(env: dict[str, str], n_users: int) -> dict[str, Any]:
    """Recall@100 of the single-node version's item index, and in-process request times."""
    from serving import request_times

    from tailored.pipeline import LiveRecommender, Pipeline
    from tailored.store import open_store

    store = open_store(env["TAILORED_STORE_URL"])
    memory = max((v for v in store.models.list() if "engine" not in v.details),
                 key=lambda v: v.version)
    pipeline = Pipeline.load(memory.path)
    model = pipeline.scorer
    index = model.item_index_
    if index is None:
        raise RuntimeError("the single-node fit built no item index: install the ann extra")
    rng = np.random.default_rng(1)
    users = rng.choice(model.user_vocab_.ids, n_users, replace=False).tolist()
    live = LiveRecommender(store, pipeline)
    queries = [live.query([user]) for user in users]
    found = [model.top_items(query, 100) for query in queries]
    model.item_index_ = None
    exact = [model.top_items(query, 100) for query in queries]
    model.item_index_ = index
    shares = [len(set(a["item_id"]) & set(b["item_id"])) / max(len(b), 1)
              for a, b in zip(found, exact, strict=True)]
    uncached, cached = request_times(live, users)
    store.close()
    return {"ann_recall_at_100": round(float(np.mean(shares)), 4),
            "ann_probes": index.probes, "ann_cells": int(index.index.nlist),
            "uncached_ms_p50": round(statistics.median(uncached), 2),
            "uncached_ms_p99": round(float(np.percentile(uncached, 99)), 2),
            "cached_ms_p50": round(statistics.median(cached), 3)}


def http(work: Path, env: dict[str, str], duration: int) -> dict[str, Any]:
    """Mixed load on two workers: 80% cached users, 20% users scored afresh."""
    from serving import Server, _create_key, warm_up, wrk

    hot = (work / "hot_users.txt").read_text().split()
    cold = (work / "cold_users.txt").read_text().split()
    key = _create_key(env["TAILORED_STORE_URL"])
    mixed = work / "mixed_users.txt"
    # Each hot user repeated so that a uniform pick is hot four times in five.
    repeats = max(1, round(4 * len(cold) / len(hot)))
    mixed.write_text("\n".join(hot * repeats + cold) + "\n")
    server = Server(env["TAILORED_STORE_URL"], 18300, 2, Path(env["TAILORED_MODEL_DIR"]))
    try:
        server.wait_ready(timeout=900)
        warm_up(18300, hot, key)
        # The mixed load first, while its cold users are cached in neither worker.
        load = wrk(server.base, mixed, duration, 8, 2, 0, key)
        cached = wrk(server.base, work / "hot_users.txt", duration, 8, 2, 0, key)
    finally:
        server.stop()
    return {"hot_share": round(len(hot) * repeats / (len(hot) * repeats + len(cold)), 3),
            "http_requests_per_second": round(load["requests_per_second"]),
            "http_p50_ms": round(load["p50_ms"], 2), "http_p99_ms": round(load["p99_ms"], 2),
            "errors": load["errors"], "non_2xx": load["non_2xx"],
            "cached_only_requests_per_second": round(cached["requests_per_second"]),
            "cached_only_p99_ms": round(cached["p99_ms"], 2)}


def consume_into(env: dict[str, str], n: int, batch: int) -> dict[str, Any]:
    from consume import RedisBench, payloads, run_one

    bench = RedisBench()
    try:
        bench.publish(payloads(n, tag=uuid.uuid4().hex[:6]))  # new to the store each run
        figures = run_one(bench, "postgres", n, batch, into=env["TAILORED_STORE_URL"])
    finally:
        bench.cleanup()
    return {"consume_events_per_second": figures["events_per_s"], "consume_batch": batch,
            "consume_exactly_once": all(figures["checks"].values())}


# ---- the parent: one child per phase ------------------------------------------------------


def _tree_rss_mb(pid: int) -> float:
    """The resident memory of a process and all its descendants, from /proc."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += next((int(line.split()[1]) for line in status.splitlines()
                       if line.startswith("VmRSS:")), 0)
    return total / 1024


def _child(phase: str, env: dict[str, str]) -> dict[str, Any]:
    """Run one phase in a child process; its figures and the peak memory of its process
    tree (the Spark JVM and the server's workers included), sampled twice a second."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        process = subprocess.Popen(
            [sys.executable, __file__, "--child", phase, "--out", out.name,
             *sys.argv[1:]], env=env)
        peak = 0.0
        while process.poll() is None:
            peak = max(peak, _tree_rss_mb(process.pid))
            time.sleep(0.5)
        if process.returncode != 0:
            raise RuntimeError(f"phase {phase} failed")
        figures = json.loads(Path(out.name).read_text())
    return {**figures, "peak_rss_mb": round(peak)}


def _run_child(phase: str, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    work = Path(args.workdir)
    if phase == "generate":
        return generate(work, args.events, args.users, args.items)
    if phase == "import":
        return import_files(work, env)
    if phase in ("train-memory", "train-spark"):
        return train(phase.split("-")[1], env, args.set)
    if phase == "recall":
        return recall(env, args.probe_users)
    if phase == "http":
        return http(work, env, args.duration)
    if phase == "consume":
        return consume_into(env, args.consume_events, args.consume_batch)
    raise ValueError(phase)


def _fresh_database(name: str) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"),
                              isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return POSTGRES_URL.rsplit("/", 1)[0] + "/" + name


def markdown(result: dict[str, Any]) -> str:
    phases = result["phases"]
    lines = [
        f"# At scale: {result['events']:,} events, {result['users']:,} users, "
        f"{result['items']:,} items",
        "",
        f"{result['date']}, {result['machine']}; load average before {result['load_before']}"
        f", after {result['load_after']}. Command: `{result['command']}`.",
        "",
        "| phase | seconds | figure | target | peak memory | load average after |",
        "|---|---:|---|---|---:|---|",
    ]
    rows = {
        "generate": lambda p: f"{p.get('csv_mb', '?')} MB of CSV",
        "import": lambda p: f"{p['import_events_per_second']:,} events/s "
                            f"(items {p['items_seconds']} s)",
        "train-memory": lambda p: "ALS in this process, item index included",
        "train-spark": lambda p: "ALS on Spark local[2]",
        "recall": lambda p: (f"recall@100 {p['ann_recall_at_100']} ({p['ann_probes']} of "
                             f"{p['ann_cells']} cells); in-process uncached p50 "
                             f"{p['uncached_ms_p50']} ms, p99 {p['uncached_ms_p99']} ms; "
                             f"cached p50 {p['cached_ms_p50']} ms"),
        "http": lambda p: (f"{p['http_requests_per_second']:,} requests/s, p50 "
                           f"{p['http_p50_ms']} ms, p99 {p['http_p99_ms']} ms "
                           f"({p['hot_share']:.0%} cached users; {p['errors']} errors, "
                           f"{p['non_2xx']} non-2xx); cached users alone "
                           f"{p['cached_only_requests_per_second']:,} requests/s, p99 "
                           f"{p['cached_only_p99_ms']} ms"),
        "consume": lambda p: (f"{p['consume_events_per_second']:,} events/s Redis -> "
                              f"PostgreSQL in batches of {p['consume_batch']:,} (exactly "
                              f"once: {p['consume_exactly_once']})"),
    }
    targets = {"import": ">= 100,000 events/s", "recall": "recall >= 0.95",
               "http": ">= 1,000 requests/s, p99 < 25 ms", "consume": ">= 20,000 events/s"}
    for phase in PHASES:
        if phase in phases:
            p = phases[phase]
            lines.append(f"| {phase} | {p['wall_seconds']} | {rows[phase](p)} | "
                         f"{targets.get(phase, '')} | {p['peak_rss_mb']:,} MB | "
                         f"{p.get('load_average', '')} |")
    lines += ["", "Each phase's command:", ""]
    lines += [f"- {phase}: `{phases[phase].get('command', result['command'])}`"
              for phase in PHASES if phase in phases]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--workdir", default=str(ROOT / ".cache" / "scale"))
    parser.add_argument("--probe-users", type=int, default=1_000)
    parser.add_argument("--duration", type=int, default=30, help="seconds of HTTP load")
    parser.add_argument("--consume-events", type=int, default=200_000)
    parser.add_argument("--consume-batch", type=int, default=2_000,
                        help="events per read (tailored consume --batch)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an ALS parameter for both trainings (e.g. ann_min_items=1000)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.workdir)
    env = {**os.environ, "TAILORED_STORE_URL": POSTGRES_URL.rsplit("/", 1)[0] + "/tailored_scale",
           "TAILORED_MODEL_DIR": str(work / "models"), "TAILORED_SPARK_DRIVER_MEMORY": "12g",
           "TAILORED_RATE_LIMIT_PER_SECOND": "1000000"}
    if args.child:
        Path(args.out).write_text(json.dumps(_run_child(args.child, args, env)))
        return

    phases = [p for p in args.phases.split(",") if p]
    unknown = set(phases) - set(PHASES)
    if unknown:
        sys.exit(f"unknown phases {sorted(unknown)}; choose from {', '.join(PHASES)}")
    work.mkdir(parents=True, exist_ok=True)
    if "import" in phases:
        _fresh_database("tailored_scale")
    result: dict[str, Any] = {
        "events": args.events, "users": args.users, "items": args.items,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "command": "python benchmarks/scale.py " + " ".join(sys.argv[1:]), "phases": {}}
    previous = RESULTS / "scale.json"
    if previous.exists():  # a run of some phases keeps the others' figures at this size
        kept = json.loads(previous.read_text())
        if all(kept.get(key) == result[key] for key in ("events", "users", "items")):
            result["phases"] = {phase: {"command": kept["command"], **figures}
                                for phase, figures in kept["phases"].items()}
    for phase in phases:
        _log(f"{phase} ...")
        started = time.perf_counter()
        figures = _child(phase, env)
        figures["wall_seconds"] = round(time.perf_counter() - started, 1)
        figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
        figures["command"] = result["command"]
        result["phases"][phase] = figures
        _log(f"{phase}: {figures}")
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "scale.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
