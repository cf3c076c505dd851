"""Soak: a steady mixed load for a long time. Does a worker's memory grow, does the tail
latency creep up as the store fills?

Data: a sample shop (2,000 users, 500 items, 100,000 events) imported into a new SQLite
store, with ALS trained and promoted on it (about 15 s to build, per run).

The service (``tailored serve --workers 2`` on 127.0.0.1, open access, no rate limits, no
access log) gets an open-loop load at ``--rate`` requests/s, 80 %
``GET /recommendations/{user}?k=10`` and 20 % ``POST /events`` (one event, now). Each
client thread sends at fixed times (a slow answer does not slow the load down; a request
sent more than a second after its time counts as late) and opens a new connection every
100 requests, so that both workers get connections. One user in ten is new: a user id
first seen in the run, so the set of users the workers know keeps growing, as in a shop.
Every window (a minute, or a tenth of a run shorter than 10 minutes) records each
worker's RSS and CPU seconds (``/proc/PID/status`` and ``stat``), the store's size on
disk, and the window's latency (p50, p99, max; from sending a request to the end of its
answer) and statuses.

Run: ``.venv/bin/python benchmarks/soak.py [--minutes 30] [--rate 100]``
(``--minutes 2`` for a quick check). Prints a table, writes
``benchmarks/results/soak.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from faults import EVENT_TYPES, Client, Service, free_port, sample_store

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
N_USERS, N_ITEMS, N_EVENTS = 2_000, 500, 100_000
READ_SHARE = 0.8
NEW_USER_SHARE = 0.1
LATE_S = 1.0
TREND_MINUTES = 5.0  # the shortest span a memory trend is fitted to
RECONNECT_EVERY = 100  # requests per connection: spreads the load over the workers


def _log(message: str) -> None:
    print(f"[soak bench] {message}", flush=True)


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` in MB (VmRSS), None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU time of ``pid`` so far, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _store_mb(store_url: str) -> float:
    path = store_url.removeprefix("sqlite:///")
    return sum(os.path.getsize(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")
               if os.path.exists(f"{path}{suffix}")) / 1e6


@dataclass(frozen=True)
class Sent:
    """One request: when it was due (seconds from the start), what, how long, the answer."""

    due: float
    kind: str
    ms: float
    status: int | None
    error: str | None
    late: bool


class OpenLoad:
    """``threads`` threads send ``rate`` requests/s between them at fixed times."""

    def __init__(self, port: int, rate: float, users: Sequence[str], items: Sequence[str],
                 threads: int, seed: int = 0) -> None:
        self.port, self.rate, self.threads = port, rate, threads
        self.users, self.items = list(users), list(items)
        self.new_users: list[str] = []  # appended by the threads: list.append is atomic
        self.sent: list[Sent] = []
        self.stop = threading.Event()
        self.seed = seed
        self.prefix = f"soak-{uuid.uuid4().hex[:8]}"
        self.started = 0.0
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.started = time.monotonic()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                         for n in range(self.threads)]
        for thread in self._threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(60)

    def _user(self, rng: random.Random) -> str:
        if self.new_users and rng.random() < NEW_USER_SHARE:
            return rng.choice(self.new_users)
        return rng.choice(self.users)

    def _run(self, number: int) -> None:
        rng = random.Random(f"{self.seed}-{number}")
        client = Client(self.port)
        for sequence in range(sys.maxsize):
            due = (number + sequence * self.threads) / self.rate
            wait = self.started + due - time.monotonic()
            if wait > 0 and self.stop.wait(wait):
                break
            if self.stop.is_set():
                break
            if sequence % RECONNECT_EVERY == RECONNECT_EVERY - 1:
                client.close()  # a new connection may go to the other worker
            sent_at = time.monotonic()
            if rng.random() < READ_SHARE:
                kind = "read"
                status, error, _ = client.request(
                    "GET", f"/recommendations/{self._user(rng)}?k=10")
            else:
                kind = "post"
                if rng.random() < NEW_USER_SHARE:
                    user = f"{self.prefix}-new-{number}-{sequence}"
                    self.new_users.append(user)
                else:
                    user = rng.choice(self.users)
                event = {"event_id": f"{self.prefix}-{number}-{sequence}", "user_id": user,
                         "item_id": rng.choice(self.items),
                         "event_type": rng.choice(EVENT_TYPES),
                         "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
                status, error, _ = client.request("POST", "/events", event)
            done = time.monotonic()
            self.sent.append(Sent(due, kind, (done - sent_at) * 1000, status, error,
                                  sent_at - self.started - due > LATE_S))
        client.close()


def _percentile(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def window_figures(sent: Sequence[Sent], start: float, end: float) -> dict[str, Any]:
    """Latency and statuses of the requests due in ``[start, end)``."""
    inside = [s for s in sent if start <= s.due < end]
    ms = [s.ms for s in inside]
    outcomes = Counter(str(s.status) if s.status is not None else s.error for s in inside)
    return {
        "minute": round(end / 60, 2), "requests": len(inside),
        "requests_per_second": round(len(inside) / (end - start), 1),
        "p50_ms": _percentile(ms, 50), "p99_ms": _percentile(ms, 99),
        "max_ms": round(max(ms), 1) if ms else None,
        "read_p99_ms": _percentile([s.ms for s in inside if s.kind == "read"], 99),
        "post_p99_ms": _percentile([s.ms for s in inside if s.kind == "post"], 99),
        "statuses": dict(sorted(outcomes.items())),
        "failed": sum(1 for s in inside if s.status is None or not 200 <= s.status < 300),
        "late": sum(1 for s in inside if s.late),
    }


def _slope_mb_per_hour(points: Sequence[tuple[float, float]]) -> float | None:
    """MB per hour of a line fitted to (minute, MB); None over less than 5 minutes."""
    if len(points) < 3 or points[-1][0] - points[0][0] < TREND_MINUTES:
        return None
    minutes, mb = zip(*points, strict=True)
    return round(float(np.polyfit(minutes, mb, 1)[0]) * 60, 1)


def memory_summary(windows: Sequence[dict[str, Any]],
                   before: dict[str, float | None]) -> dict[str, Any]:
    """Per worker: RSS before the load, after the first window, in the middle and at the
    end, the growth from the first window to the end, and the trend (a line fitted to the
    second half of the windows, on runs of 10 minutes or more)."""
    summary: dict[str, Any] = {}
    started_later = [name for w in windows for name in w["rss_mb"] if name not in before]
    for worker in [*before, *dict.fromkeys(started_later)]:
        mb_before = before.get(worker)
        points = [(w["minute"], w["rss_mb"][worker]) for w in windows
                  if w["rss_mb"].get(worker) is not None]
        if not points:
            summary[worker] = {"before_load": mb_before, "gone": True}
            continue
        summary[worker] = {
            "before_load": mb_before, "start": points[0][1],
            "middle": points[(len(points) - 1) // 2][1], "end": points[-1][1],
            "growth_mb": round(points[-1][1] - points[0][1], 1),
            # The trend over the second half: the first windows fill caches and pools.
            "slope_mb_per_hour": _slope_mb_per_hour(points[len(points) // 2:]),
            "windows": len(points),
        }
    return summary


def soak(store_url: str, directory: Path, minutes: float, rate: float, *,
         workers: int = 2, threads: int | None = None, users: Sequence[str] = (),
         items: Sequence[str] = (), model_dir: Path | None = None,
         on_window: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Serve ``store_url`` (a trained model in it) and load it for ``minutes``."""
    seconds = minutes * 60
    window_s = min(60.0, seconds / 10)
    n_windows = max(1, round(seconds / window_s))
    threads = threads or max(8, math.ceil(rate / 12.5))
    service = Service(store_url, free_port(), workers, directory, model_dir)
    service.start()
    try:
        ready_s = service.wait_ready(need_model=True)
        pids = service.worker_pids()
        names = {pid: f"worker {n + 1} (pid {pid})" for n, pid in enumerate(pids)}
        before = {names[pid]: _round(rss_mb(pid)) for pid in pids}
        supervisor = service.process.pid if service.process else 0
        _log(f"service ready in {ready_s:.1f} s; workers {pids}, RSS before load "
             f"{before}; {rate:g} requests/s for {minutes:g} min, windows of {window_s:g} s")
        last_cpu = {pid: cpu_seconds(pid) or 0.0 for pid in pids}
        load = OpenLoad(service.port, rate, users, items, threads)
        load.start()
        windows = []
        restarts: list[dict[str, Any]] = []
        try:
            for number in range(n_windows):
                end = (number + 1) * window_s
                time.sleep(max(0.0, load.started + end - time.monotonic()))
                now = service.worker_pids()
                for pid in now:
                    if pid not in names:  # uvicorn started a worker anew
                        names[pid] = f"worker {len(names) + 1} (pid {pid})"
                        restarts.append({"minute": round(end / 60, 2), "pid": pid})
                figures = window_figures(load.sent, end - window_s, end)
                figures["rss_mb"] = {names[pid]: _round(rss_mb(pid)) for pid in now}
                cpu = {pid: cpu_seconds(pid) for pid in now}
                figures["cpu_seconds"] = {
                    names[pid]: round(used - last_cpu.get(pid, 0.0), 1)
                    for pid, used in cpu.items() if used is not None}
                last_cpu.update({pid: used for pid, used in cpu.items() if used is not None})
                figures["supervisor_rss_mb"] = _round(rss_mb(supervisor))
                figures["store_mb"] = round(_store_mb(store_url), 1)
                windows.append(figures)
                if on_window is not None:
                    on_window(figures)
        finally:
            load.finish()
        alive = service.process is not None and service.process.poll() is None
    finally:
        service.stop()
    # Again, now that every request due in the last window has its answer.
    for number, figures in enumerate(windows):
        figures.update(window_figures(load.sent, number * window_s, (number + 1) * window_s))
    sent = [s for s in load.sent if s.due < n_windows * window_s]
    ms = [s.ms for s in sent]
    total = {
        "requests": len(sent), "reads": sum(1 for s in sent if s.kind == "read"),
        "posts": sum(1 for s in sent if s.kind == "post"),
        "p50_ms": _percentile(ms, 50), "p99_ms": _percentile(ms, 99),
        "max_ms": round(max(ms), 1) if ms else None,
        "statuses": dict(sorted(Counter(str(s.status) if s.status is not None else s.error
                                        for s in sent).items())),
        "failed": sum(w["failed"] for w in windows),
        "late": sum(w["late"] for w in windows), "new_users": len(load.new_users),
    }
    p99s = [w["p99_ms"] for w in windows if w["p99_ms"] is not None]
    return {
        "window_seconds": window_s, "threads": threads, "ready_seconds": round(ready_s, 1),
        "windows": windows, "total": total,
        "rss_mb": memory_summary(windows, before),
        "p99_ms_first_last_window": [p99s[0], p99s[-1]] if p99s else None,
        "p99_ms_median_of_windows": round(statistics.median(p99s), 2) if p99s else None,
        "worker_restarts": restarts, "service_alive_at_end": alive,
        "service_log": service.log_counts(),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def table(result: dict[str, Any]) -> str:
    workers = list(result["rss_mb"])
    lines = [f"{'minute':>7}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
             f"{'failed':>8}{'late':>6}" + "".join(f"{f'RSS w{n + 1} MB':>12}"
                                                     for n in range(len(workers)))
             + f"{'store MB':>10}"]
    for w in result["windows"]:
        rss = "".join(f"{w['rss_mb'].get(name) or 0:>12.1f}" for name in workers)
        lines.append(f"{w['minute']:>7.1f}{w['requests_per_second']:>8.1f}"
                     f"{w['p50_ms'] or 0:>9.2f}{w['p99_ms'] or 0:>9.2f}{w['max_ms'] or 0:>9.1f}"
                     f"{w['failed']:>8}{w['late']:>6}{rss}{w['store_mb']:>10.1f}")
    lines.append("")
    for name, memory in result["rss_mb"].items():
        if memory.get("gone"):
            lines.append(f"{name}: gone after the start (RSS before load "
                         f"{memory['before_load']} MB)")
            continue
        cpu = sum(w["cpu_seconds"].get(name, 0.0) for w in result["windows"])
        trend = (f"{memory['slope_mb_per_hour']:+} MB/hour"
                 if memory["slope_mb_per_hour"] is not None else "n/a: run 10 minutes or more")
        lines.append(f"{name}: {cpu:.0f} CPU s; RSS before load {memory['before_load']} MB, start "
                     f"{memory['start']}, middle {memory['middle']}, end {memory['end']} MB "
                     f"(growth {memory['growth_mb']:+} MB, trend over the second half "
                     f"{trend})")
    total = result["total"]
    lines.append(f"{total['requests']:,} requests ({total['reads']:,} reads, "
                 f"{total['posts']:,} posts): p50 {total['p50_ms']} ms, p99 {total['p99_ms']} "
                 f"ms, max {total['max_ms']} ms; statuses {total['statuses']}; late "
                 f"{total['late']}; worker restarts {len(result['worker_restarts'])}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None,
                        help="client threads (default: one per 12.5 requests/s, at least 8)")
    parser.add_argument("--note", default="", help="a remark for the results (load, machine)")
    args = parser.parse_args()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tailored-soak-") as scratch:
        directory = Path(scratch)
        store_url = f"sqlite:///{directory / 'store.db'}"
        _log(f"building the store: {N_USERS:,} users, {N_ITEMS:,} items, {N_EVENTS:,} "
             "events, ALS")
        started = time.perf_counter()
        users, items = sample_store(store_url, directory / "models", users=N_USERS,
                                    items=N_ITEMS, events=N_EVENTS)
        _log(f"built in {time.perf_counter() - started:.0f} s")

        def show(w: dict[str, Any]) -> None:
            _log(f"minute {w['minute']:.1f}: {w['requests_per_second']} req/s, p50 "
                 f"{w['p50_ms']} ms, p99 {w['p99_ms']} ms, failed {w['failed']}, "
                 f"RSS {w['rss_mb']}")

        run = soak(store_url, directory, args.minutes, args.rate, workers=args.workers,
                   threads=args.threads, users=users, items=items,
                   model_dir=directory / "models", on_window=show)
    result = {
        "command": "python benchmarks/soak.py " + " ".join(sys.argv[1:]),
        "machine": platform.platform(), "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M"), "minutes": args.minutes,
        "rate": args.rate, "workers": args.workers, "read_share": READ_SHARE,
        "new_user_share": NEW_USER_SHARE,
        "data": {"users": N_USERS, "items": N_ITEMS, "events": N_EVENTS, "model": "als",
                 "store": "sqlite"},
        "load_average": {"start": [round(x, 2) for x in load_start],
                         "end": [round(x, 2) for x in os.getloadavg()]},
        **run, "note": args.note,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"load average {result['load_average']['start']} -> "
          f"{result['load_average']['end']} ({result['cpus']} CPUs)")


if __name__ == "__main__":
    main()
