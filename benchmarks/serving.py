"""Serving speed over HTTP: throughput and latency of GET /recommendations, beside the raw
in-process scoring time, and how fast a posted event changes the next answer.

Data: a sample shop with a 100,000-item catalog and 1,000,000 events (50,000 users),
imported into SQLite with an ALS model trained on it: built once into
``benchmarks/.cache/serving/`` (gitignored; delete it to rebuild) and copied per run.

The server (``tailored serve --workers N``: uvicorn with uvloop and httptools, no access
log) runs in its own processes on 127.0.0.1 (port 18200 by default); ``wrk`` drives it
from another process with a Lua script that picks a user at random per request:

- ``warm``: the 1,000 most active users, after a warm-up that asks for each of them six
  times (so each worker has cached their lists); every request still
  checks the store for the user's newest event and the catalog version, so the answers
  are as fresh as uncached ones;
- ``cold``: all 50,000 users, no warm-up: most requests score the user afresh.

Then ``POST /events`` (a purchase of the user's top item) is followed at once by a GET
for the same user: the answer must already leave the purchased item out.

Run: ``.venv/bin/python benchmarks/serving.py [--workers 2] [--duration 20]``
(``make bench-serving``); needs ``wrk`` (``apt-get install wrk``). Writes
``benchmarks/results/serving.json`` and ``serving.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / ".cache" / "serving"
RESULTS = ROOT / "results"
VENV_BIN = Path(sys.executable).parent
N_USERS, N_ITEMS, N_EVENTS = 50_000, 100_000, 1_000_000
WARM_USERS = 5_000  # written to the cache; the warm scenario uses the first HOT_USERS
HOT_USERS = 1_000
TARGET_RPS, TARGET_P99_MS = 1_000, 25.0

LUA = """
local users = {}
for line in io.lines("%(users)s") do users[#users + 1] = line end
math.randomseed(%(seed)d)
request = function()
  local user = users[math.random(#users)]
  return wrk.format("GET", "/recommendations/" .. user .. "?k=10")
end
done = function(summary, latency, requests)
  local out = io.open("%(out)s", "w")
  out:write(string.format(
    '{"requests": %%d, "seconds": %%f, "errors": %%d, "non2xx": %%d, ' ..
    '"p50_us": %%d, "p95_us": %%d, "p99_us": %%d, "max_us": %%d, "mean_us": %%f}',
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write +
      summary.errors.timeout, summary.errors.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean))
  out:close()
end
"""


def _log(message: str) -> None:
    print(f"[serving bench] {message}", flush=True)


# ---- the data, built once -------------------------------------------------------------------


def build(cache: Path) -> dict[str, Any]:
    """Sample shop -> SQLite store -> ALS trained and promoted; once per cache dir."""
    marker = cache / "ready.json"
    if marker.exists():
        return dict(json.loads(marker.read_text()))
    from tailored.ingest import import_file
    from tailored.jobs import train_model
    from tailored.sample import shop
    from tailored.settings import Settings
    from tailored.store import open_store

    if cache.exists():
        shutil.rmtree(cache)
    cache.mkdir(parents=True)
    started = time.perf_counter()
    _log(f"building the data once: {N_ITEMS:,} items, {N_EVENTS:,} events (into {cache})")
    sample = shop(n_users=N_USERS, n_items=N_ITEMS, n_events=N_EVENTS, seed=0)
    files = {p.stem: p for p in sample.write(cache / "files", format="parquet")}
    settings = Settings(store_url=f"sqlite:///{cache / 'store.db'}",
                        model_dir=cache / "models")
    store = open_store(settings.store_url)
    for kind in ("items", "users", "events"):
        _log(f"importing {kind}")
        import_file(store, files[kind], kind)
    _log("training ALS")
    trained = train_model(store, settings, "als", validate=False, promote=True)
    store.close()
    shutil.rmtree(cache / "files")
    users = sample.users["user_id"].astype(str).tolist()
    counts = sample.events["user_id"].value_counts()
    active = counts.index[:WARM_USERS].astype(str).tolist()
    (cache / "users.txt").write_text("\n".join(users) + "\n")
    (cache / "warm_users.txt").write_text("\n".join(active) + "\n")
    info = {"items": N_ITEMS, "events": N_EVENTS, "users": len(users),
            "model": trained.version.name, "version": trained.version.version,
            "build_seconds": round(time.perf_counter() - started, 1)}
    marker.write_text(json.dumps(info, indent=2) + "\n")
    return info


# ---- in-process scoring -------------------------------------------------------------------


def in_process(store_url: str, users: list[str]) -> dict[str, float]:
    """Per-user times without HTTP: the model alone (history given), and the whole
    uncached request path (store reads, scoring, selection), and a cached answer."""
    from tailored.pipeline import LiveRecommender
    from tailored.store import open_store

    store = open_store(store_url)
    live = LiveRecommender.active(store)
    queries = {user: live.query([user]) for user in users}  # histories read beforehand
    model_ms = []
    for user in users:
        started = time.perf_counter()
        live.top_list(queries[user], 200)
        model_ms.append((time.perf_counter() - started) * 1000)
    uncached_ms, cached_ms = request_times(live, users)
    store.close()
    return {"model_score_ms_p50": statistics.median(model_ms),
            "uncached_path_ms_p50": statistics.median(uncached_ms),
            "cached_path_ms_p50": statistics.median(cached_ms)}


def request_times(live: Any, users: list[str]) -> tuple[list[float], list[float]]:
    """Milliseconds of the request path (store reads, scoring, selection) per user,
    uncached, then cached: the second pass finds every list cached."""
    from tailored.pipeline import NO_OVERRIDES
    from tailored.serving.cache import TopListCache, rank_user

    cache = TopListCache(len(users))
    uncached_ms: list[float] = []
    cached_ms: list[float] = []
    for timings in (uncached_ms, cached_ms):
        for user in users:
            started = time.perf_counter()
            rank_user(live, cache, user, 10, NO_OVERRIDES, {}, 200)
            timings.append((time.perf_counter() - started) * 1000)
    return uncached_ms, cached_ms


def _create_key(store_url: str) -> str:
    from tailored.store import open_store

    store = open_store(store_url)
    _, secret = store.keys.create("benchmark", ["write"])
    store.close()
    return secret


# ---- the server and the load ----------------------------------------------------------------


class Server:
    def __init__(self, store_url: str, port: int, workers: int, model_dir: Path) -> None:
        env = {**os.environ, "TAILORED_STORE_URL": store_url, "TAILORED_PORT": str(port),
               "TAILORED_HOST": "127.0.0.1", "TAILORED_WORKERS": str(workers),
               "TAILORED_MODEL_DIR": str(model_dir), "TAILORED_ACCESS_LOG": "false",
               # The limiter runs (its cost is measured) but never binds: one key here
               # stands for a whole shop's traffic.
               "TAILORED_RATE_LIMIT_PER_SECOND": os.environ.get("BENCH_RATE_LIMIT", "1000000")}
        self.base = f"http://127.0.0.1:{port}"
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (lives as long as the server)
            "w+", suffix=".log", delete=False)
        self.process = subprocess.Popen([str(VENV_BIN / "tailored"), "serve"], env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def wait_ready(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {Path(self.log.name).read_text()}")
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=2) as answer:
                    if json.loads(answer.read())["model"] is not None:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the server did not become ready: {Path(self.log.name).read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        os.unlink(self.log.name)


def wrk(base: str, users_file: Path, seconds: int, connections: int, threads: int,
        seed: int, key: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out.json"
        script = Path(scratch) / "users.lua"
        script.write_text(LUA % {"users": users_file, "seed": seed, "out": out})
        subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s",
                        "--timeout", "5s", "-H", f"Authorization: Bearer {key}",
                        "-s", str(script), base], check=True,
                       capture_output=True, text=True)
        raw = json.loads(out.read_text())
    return {"requests": raw["requests"], "errors": raw["errors"], "non_2xx": raw["non2xx"],
            "requests_per_second": raw["requests"] / raw["seconds"],
            "p50_ms": raw["p50_us"] / 1000, "p95_ms": raw["p95_us"] / 1000,
            "p99_ms": raw["p99_us"] / 1000, "max_ms": raw["max_us"] / 1000,
            "mean_ms": raw["mean_us"] / 1000}


def warm_up(port: int, users: list[str], key: str, rounds: int = 6,
            connections: int = 16) -> None:
    """Ask for every user ``rounds`` times, each time over another of the ``connections``
    (a kept-alive connection stays with one worker, so one connection per user would warm
    only its worker): a user then misses a worker with probability 2 * 0.5**rounds."""
    import http.client
    from concurrent.futures import ThreadPoolExecutor

    def drive(number: int) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        asked = 0
        for round_number in range(rounds):
            for user in users[(number + round_number) % connections::connections]:
                connection.request("GET", f"/recommendations/{user}?k=10",
                                   headers={"Authorization": f"Bearer {key}"})
                connection.getresponse().read()
                asked += 1
        connection.close()
        return asked

    started = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        done = sum(pool.map(drive, range(connections)))
    _log(f"warm-up: {done:,} requests in {time.perf_counter() - started:.0f} s")


def _get(base: str, path: str, key: str) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        body = json.loads(answer.read())
    return body, (time.perf_counter() - started) * 1000


def freshness(base: str, users: list[str], rounds: int, key: str) -> dict[str, Any]:
    """POST a purchase of the user's top item, then GET at once: is it gone?"""
    changed, next_ms, post_ms = 0, [], []
    for round_number, user in enumerate(users[:rounds]):
        before, _ = _get(base, f"/recommendations/{user}?k=10", key)
        top = before["items"][0]["item_id"]
        event = {"event_id": f"bench-{time.time_ns()}-{round_number}", "user_id": user,
                 "item_id": top, "event_type": "purchase"}
        request = urllib.request.Request(base + "/events", data=json.dumps(event).encode(),
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {key}"})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
        returned = time.perf_counter()
        post_ms.append((returned - started) * 1000)
        after, _ = _get(base, f"/recommendations/{user}?k=10", key)
        next_ms.append((time.perf_counter() - returned) * 1000)
        changed += top not in {item["item_id"] for item in after["items"]}
    return {"rounds": rounds, "changed_on_next_request": changed,
            "post_events_ms_p50": statistics.median(post_ms),
            "post_to_changed_answer_ms_p50": statistics.median(next_ms),
            "post_to_changed_answer_ms_max": max(next_ms)}


# ---- report ---------------------------------------------------------------------------------


def report(result: dict[str, Any]) -> str:
    inproc = result["in_process"]
    lines = [
        "# Serving benchmark",
        "",
        f"`{result['command']}` on {result['machine']} ({result['cpus']} CPUs), "
        f"{result['date']}. Catalog {result['data']['items']:,} items, "
        f"{result['data']['events']:,} events, {result['data']['users']:,} users; model "
        f"{result['data']['model']}; {result['workers']} uvicorn workers; wrk "
        f"{result['connections']} connections, {result['duration_s']} s per scenario.",
        "",
        "| scenario | requests/s | p50 ms | p95 ms | p99 ms | errors | HTTP p50 / "
        "in-process |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, run in result["load"].items():
        inside = inproc["cached_path_ms_p50" if name == "warm" else "uncached_path_ms_p50"]
        lines.append(
            f"| {name} | {run['requests_per_second']:,.0f} | {run['p50_ms']:.2f} | "
            f"{run['p95_ms']:.2f} | {run['p99_ms']:.2f} | {run['errors'] + run['non_2xx']} | "
            f"{run['p50_ms'] / inside:.1f}x |")
    fresh = result["freshness"]
    lines += [
        "",
        "In-process, per user (no HTTP): model scoring (100,000 items, top 200) "
        f"{inproc['model_score_ms_p50']:.2f} ms; the whole uncached request path (store "
        f"reads, scoring, selection) {inproc['uncached_path_ms_p50']:.2f} ms; a cached "
        f"answer (one store check, selection) {inproc['cached_path_ms_p50']:.2f} ms (p50).",
        "",
        f"Read-your-writes: after `POST /events` returned (p50 {fresh['post_events_ms_p50']:.1f}"
        f" ms, durable), the very next request reflected the event in "
        f"{fresh['changed_on_next_request']}/{fresh['rounds']} rounds; POST return to "
        f"changed answer p50 {fresh['post_to_changed_answer_ms_p50']:.1f} ms, max "
        f"{fresh['post_to_changed_answer_ms_max']:.1f} ms.",
        "",
        f"Target: at least {TARGET_RPS:,} requests/s with p99 under {TARGET_P99_MS:.0f} ms "
        f"(warm): {'met' if result['target_met'] else 'NOT met'} on this run. "
        f"{result.get('note', '')}",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=int, default=20, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--port", type=int, default=18200)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--note", default="", help="a remark for the report (load, machine)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    data = build(args.cache)
    all_users = (args.cache / "users.txt").read_text().split()
    warm_users = (args.cache / "warm_users.txt").read_text().split()
    with tempfile.TemporaryDirectory(prefix="tailored-bench-") as scratch:
        for suffix in ("", "-wal", "-shm"):  # each run starts from the same store
            if (args.cache / f"store.db{suffix}").exists():
                shutil.copyfile(args.cache / f"store.db{suffix}", f"{scratch}/store.db{suffix}")
        store_url = f"sqlite:///{scratch}/store.db"
        key = _create_key(store_url)  # as in production: every request sends a key
        _log("timing in-process scoring")
        rng = np.random.default_rng(0)
        sample = [str(u) for u in rng.choice(all_users, 200, replace=False)]
        hot_file = Path(scratch) / "hot_users.txt"
        hot_file.write_text("\n".join(warm_users[:HOT_USERS]) + "\n")
        inproc = in_process(store_url, sample)
        server = Server(store_url, args.port, args.workers, args.cache / "models")
        try:
            server.wait_ready()
            load: dict[str, Any] = {}
            _log("warm-up pass over the active users")
            warm_up(args.port, warm_users[:HOT_USERS], key)
            for name, users_file, seed in (("warm", hot_file, 2),
                                           ("cold", args.cache / "users.txt", 3)):
                _log(f"{name}: {args.duration} s of load")
                load[name] = wrk(server.base, users_file, args.duration, args.connections,
                                 args.threads, seed, key)
                _log(json.dumps(load[name]))
            _log("read-your-writes rounds")
            fresh = freshness(server.base, warm_users[:30], 30, key)  # cached users
        finally:
            server.stop()
    warm = load["warm"]
    result = {
        "command": "python benchmarks/serving.py " + " ".join(sys.argv[1:]),
        "machine": platform.platform(), "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M"), "data": data, "workers": args.workers,
        "connections": args.connections, "duration_s": args.duration,
        "in_process": inproc, "load": load, "freshness": fresh,
        "target_met": bool(warm["requests_per_second"] >= TARGET_RPS
                           and warm["p99_ms"] < TARGET_P99_MS and not warm["errors"]),
        "note": args.note,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serving.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "serving.md").write_text(report(result))
    print(report(result))


if __name__ == "__main__":
    main()
