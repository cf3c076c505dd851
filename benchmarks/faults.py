"""Faults under load: an acknowledged event survives a kill -9 of the service, and a
PostgreSQL restart costs fast 503s, never a 500, a hang or an acknowledged event.

``POST /events`` answers 2xx only once the store has committed; these scenarios check that
promise from outside, against ``tailored serve --workers 2`` on 127.0.0.1 (open access, no
rate limits, no access log), with client threads that keep every acknowledged event id:

- ``kill``: 4 clients post single events and batches (2 to 50 events) with unique ids
  for 2 to 5 s, then the whole service (the uvicorn supervisor and its workers, one process
  group) gets SIGKILL. It is started again on the same store, and every acknowledged id
  must be in the store (read directly with ``open_store(url).events.frame()``): *lost*
  must be 0; ids sent but not acknowledged may be there or not (at least once). The next
  round's load goes to the restarted service. Rounds on SQLite and on PostgreSQL (a
  throwaway database per run).
- ``postgres restart``: 4 clients each read (60 %: ``GET /recommendations/{user}``, an
  ALS model trained on a small sample shop) and post (40 %) while PostgreSQL is stopped,
  held down ``--down-seconds`` and started again (``pg_ctlcluster``), ``--restarts``
  times, 3 s apart once the service answers again. The service is not restarted.
  Figures per restart: the 503s while the store was away and how fast they came (max
  latency: fail fast), any other 5xx or request without an answer (must be 0), the
  seconds from PostgreSQL being back to the service's first 2xx (read and write) and to
  its last failure; over all, the acknowledged events lost (must be 0). PostgreSQL is
  started again whatever happens.

Run: ``.venv/bin/python benchmarks/faults.py [--rounds 5] [--restarts 3]
[--backends sqlite,postgres]``;
the PostgreSQL server at ``TAILORED_TEST_POSTGRES`` (default
``postgresql://postgres@127.0.0.1/postgres``, the database new ones are created from)
with ``pg_ctlcluster`` on this machine. Prints a table, writes
``benchmarks/results/faults.json``, and exits with status 1 when a check failed.
``tests/serving/test_faults.py`` runs one kill round through :func:`kill_rounds`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
VENV_BIN = Path(sys.executable).parent
POSTGRES_ADMIN_URL = os.environ.get("TAILORED_TEST_POSTGRES",
                                    "postgresql://postgres@127.0.0.1/postgres")
CLIENTS = 4
MAX_BATCH = 50
EVENT_TYPES = ("view", "click", "add_to_cart", "purchase")
REQUEST_TIMEOUT_S = 30.0  # a request without an answer by then counts as a hang


def _log(message: str) -> None:
    print(f"[faults bench] {message}", flush=True)


# ---- the service ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _alive_in_group(pgid: int) -> list[int]:
    """Processes of the process group ``pgid`` that are not zombies (from /proc)."""
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            alive.append(int(entry))
    return alive


class Service:
    """``tailored serve --workers N`` on 127.0.0.1 in a process group of its own, so that
    it can be killed whole; started again on the same port and store."""

    def __init__(self, store_url: str, port: int, workers: int, directory: Path,
                 model_dir: Path | None = None) -> None:
        self.store_url, self.port, self.workers = store_url, port, workers
        self.directory = directory
        self.log_path = directory / "service.log"
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("TAILORED_")},
                    "TAILORED_STORE_URL": store_url, "TAILORED_PORT": str(port),
                    "TAILORED_HOST": "127.0.0.1", "TAILORED_WORKERS": str(workers),
                    "TAILORED_MODEL_DIR": str(model_dir or directory / "models"),
                    "TAILORED_RATE_LIMIT_PER_SECOND": "0", "TAILORED_ACCESS_LOG": "false"}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n==== start {self.starts} at {time.strftime('%H:%M:%S')} ====\n"
                      .encode())
            log.flush()
            # cwd: a tailored.toml in the caller's directory must not change the settings.
            self.process = subprocess.Popen([str(VENV_BIN / "tailored"), "serve"],
                                            env=self.env, cwd=self.directory, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 180.0, need_model: bool = False) -> float:
        """Seconds until ``GET /health`` answers 200 (with a model, if ``need_model``)."""
        assert self.process is not None
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited ({self.process.returncode}):\n"
                                   f"{self.log_tail()}")
            probe = Client(self.port, timeout=5)
            status, _, body = probe.request("GET", "/health")
            probe.close()
            if status == 200 and (not need_model or json.loads(body)["model"] is not None):
                return time.monotonic() - started
            time.sleep(0.1)
        raise RuntimeError(f"the service was not ready in {timeout:.0f} s:\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        """The uvicorn worker processes (children of the supervisor running the app)."""
        assert self.process is not None
        workers = []
        for pid in _alive_in_group(self.process.pid):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if pid != self.process.pid and b"spawn_main" in command:
                workers.append(pid)
        return sorted(workers)

    def kill(self) -> int:
        """SIGKILL to the whole process group; returns once every process in it is gone
        (how many there were: supervisor, workers, multiprocessing's resource tracker)."""
        assert self.process is not None
        pgid = self.process.pid
        members = len(_alive_in_group(pgid))
        os.killpg(pgid, signal.SIGKILL)
        self.process.wait()
        deadline = time.monotonic() + 30
        while _alive_in_group(pgid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes of group {pgid} survived SIGKILL: "
                                   f"{_alive_in_group(pgid)}")
            time.sleep(0.02)
        return members

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def log_counts(self) -> dict[str, int]:
        """Lines of the service's log that tell of trouble."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return {"tracebacks": text.count("Traceback (most recent call last)"),
                "store_unavailable": text.count("store unavailable"),
                "exception_in_asgi": text.count("Exception in ASGI application")}


# ---- clients --------------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP connection to 127.0.0.1 (open access needs a loopback Host)."""

    def __init__(self, port: int, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.port, self.timeout = port, timeout
        self.connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str,
                body: Any = None) -> tuple[int | None, str | None, bytes]:
        """(status, None, body) for an answer, (None, error class name, b"") without one."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        data = json.dumps(body).encode() if body is not None else None
        try:
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port,
                                                             timeout=self.timeout)
            self.connection.request(method, path, body=data, headers=headers)
            answer = self.connection.getresponse()
            content = answer.read()
            # uvicorn closes the connection after an unhandled exception (a 500) without
            # saying so: the next request on it would fail without reaching the service.
            if answer.status == 500 or answer.getheader("connection", "").lower() == "close":
                self.close()
            return answer.status, None, content
        except (OSError, http.client.HTTPException) as error:
            self.close()
            return None, type(error).__name__, b""

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


@dataclass(frozen=True)
class Outcome:
    """One request: what, when (monotonic seconds), and its status or its error."""

    kind: str  # "post" or "read"
    started: float
    ended: float
    status: int | None
    error: str | None
    event_ids: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def ms(self) -> float:
        return (self.ended - self.started) * 1000


@dataclass
class LoadPlan:
    """What each client thread sends: the share of reads, which users and items."""

    prefix: str  # event ids are f"{prefix}-c{client}-{n}": unique per run
    users: Sequence[str]
    items: Sequence[str]
    read_share: float = 0.0
    batch_share: float = 0.5
    max_batch: int = MAX_BATCH


def _events(plan: LoadPlan, client: int, first: int, size: int,
            rng: random.Random) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return [{"event_id": f"{plan.prefix}-c{client}-{n}", "user_id": rng.choice(plan.users),
             "item_id": rng.choice(plan.items), "event_type": rng.choice(EVENT_TYPES),
             "timestamp": now}
            for n in range(first, first + size)]


def client_loop(port: int, plan: LoadPlan, client: int, stop: threading.Event,
                outcomes: list[Outcome], seed: int = 0) -> None:
    """Send requests one after another until ``stop``; append each :class:`Outcome`."""
    rng = random.Random(f"{seed}-{client}")
    connection = Client(port)
    sent = 0
    while not stop.is_set():
        started = time.monotonic()
        if rng.random() < plan.read_share:
            user = rng.choice(plan.users)
            status, error, _ = connection.request("GET", f"/recommendations/{user}?k=10")
            outcomes.append(Outcome("read", started, time.monotonic(), status, error))
        else:
            size = rng.randint(2, plan.max_batch) if rng.random() < plan.batch_share else 1
            events = _events(plan, client, sent, size, rng)
            sent += size
            status, error, _ = connection.request(
                "POST", "/events", events if size > 1 else events[0])
            outcomes.append(Outcome("post", started, time.monotonic(), status, error,
                                    tuple(e["event_id"] for e in events)))
        if error is not None:
            time.sleep(0.05)  # the service is down: do not spin
    connection.close()


@contextmanager
def running_clients(port: int, plan: LoadPlan, clients: int = CLIENTS,
                    seed: int = 0) -> Iterator[list[Outcome]]:
    """``clients`` threads run :func:`client_loop` for as long as the block runs."""
    outcomes: list[Outcome] = []
    stop = threading.Event()
    threads = [threading.Thread(target=client_loop, args=(port, plan, n, stop, outcomes, seed),
                                daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield outcomes
    finally:
        stop.set()
        for thread in threads:
            thread.join(REQUEST_TIMEOUT_S + 5)


def stored_event_ids(store_url: str) -> set[str]:
    """Every event id in the store, read directly (not through the service)."""
    from tailored.store import open_store

    store = open_store(store_url)
    try:
        return set(store.events.frame()["event_id"])
    finally:
        store.close()


def _statuses(outcomes: Sequence[Outcome]) -> dict[str, int]:
    counts = Counter(str(o.status) if o.status is not None else o.error or "no answer"
                     for o in outcomes)
    return dict(sorted(counts.items()))


def _durability(outcomes: Sequence[Outcome], stored: set[str]) -> dict[str, int]:
    acknowledged = {i for o in outcomes if o.kind == "post" and o.ok for i in o.event_ids}
    unacknowledged = {i for o in outcomes if o.kind == "post" and not o.ok
                      for i in o.event_ids}
    return {"acknowledged": len(acknowledged), "found": len(acknowledged & stored),
            "lost": len(acknowledged - stored), "unacknowledged": len(unacknowledged),
            "unacknowledged_stored": len(unacknowledged & stored)}


# ---- scenario 1: kill -9 of the service -----------------------------------------------------


def kill_rounds(store_url: str, rounds: int, directory: Path, *,
                load_seconds: tuple[float, float] = (2.0, 5.0), clients: int = CLIENTS,
                workers: int = 2, port: int | None = None, seed: int = 0,
                on_round: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """``rounds`` times: load, SIGKILL of the whole service, start it again, check that
    every acknowledged event is in the store.

    The service runs on ``store_url`` (files in ``directory``) from the first round to the
    end; each round's load goes to the service restarted by the round before.
    """
    rng = random.Random(seed)
    service = Service(store_url, port or free_port(), workers, directory)
    users = [f"fault-u{n}" for n in range(200)]
    items = [f"fault-i{n}" for n in range(100)]
    results: list[dict[str, Any]] = []
    service.start()
    try:
        first_start_s = service.wait_ready()
        for number in range(1, rounds + 1):
            plan = LoadPlan(f"kill-{uuid.uuid4().hex[:8]}-r{number}", users, items)
            seconds = rng.uniform(*load_seconds)
            with running_clients(service.port, plan, clients, seed + number) as outcomes:
                time.sleep(seconds)
                killed_at = time.monotonic()
                processes = service.kill()
                time.sleep(0.2)  # the clients see the service gone
            service.start()
            restart_s = service.wait_ready()
            stored = stored_event_ids(store_url)
            before = [o for o in outcomes if o.ended < killed_at]
            result = {
                "round": number, "load_seconds": round(seconds, 2),
                "processes_killed": processes, "requests": len(outcomes),
                **_durability(outcomes, stored),
                "statuses_before_kill": _statuses(before),
                "unavailable_before_kill": sum(1 for o in before if o.status == 503),
                "server_errors_before_kill": sum(  # 5xx but 503: never right
                    1 for o in before if o.status is not None and o.status >= 500
                    and o.status != 503),
                "no_answer_before_kill": sum(1 for o in before if o.status is None),
                "restart_seconds": round(restart_s, 2),
            }
            results.append(result)
            if on_round is not None:
                on_round(result)
    finally:
        service.stop()
    keys = ("requests", "acknowledged", "found", "lost", "unacknowledged",
            "unacknowledged_stored", "unavailable_before_kill", "server_errors_before_kill",
            "no_answer_before_kill")
    total = {key: sum(r[key] for r in results) for key in keys}
    return {"rounds": results, "total": total, "first_start_seconds": round(first_start_s, 2),
            "restart_seconds_max": max((r["restart_seconds"] for r in results), default=None),
            "service_log": service.log_counts(),
            "passed": total["lost"] == 0 and total["server_errors_before_kill"] == 0
            and total["no_answer_before_kill"] == 0}


# ---- scenario 2: PostgreSQL restarted under load --------------------------------------------


def _pg_cluster() -> list[str]:
    version = sorted(os.listdir("/etc/postgresql"), key=lambda v: float(v))[-1]
    return [version, "main"]


def postgres_control(action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *_pg_cluster(),
                           action], capture_output=True, text=True, timeout=120)


def ensure_postgres_running() -> None:
    if postgres_control("status").returncode != 0:
        _log("starting PostgreSQL again")
        started = postgres_control("start")
        if started.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start: {started.stderr}")


@contextmanager
def postgres_database(prefix: str = "tailored_faults") -> Iterator[str]:
    """A new, empty database on the PostgreSQL server; dropped afterwards."""
    import psycopg

    admin = POSTGRES_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://", 1)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        ensure_postgres_running()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sample_store(store_url: str, model_dir: Path, *, users: int = 300, items: int = 100,
                 events: int = 5_000) -> tuple[list[str], list[str]]:
    """Import a small sample shop into the store and train and promote ALS on it;
    returns its user and item ids."""
    from tailored.ingest import import_file
    from tailored.jobs import train_model
    from tailored.sample import shop
    from tailored.settings import Settings
    from tailored.store import open_store

    sample = shop(n_users=users, n_items=items, n_events=events, seed=0)
    store = open_store(store_url)
    with tempfile.TemporaryDirectory() as scratch:
        files = {p.stem: p for p in sample.write(Path(scratch), format="parquet")}
        for kind in ("items", "users", "events"):
            import_file(store, files[kind], kind)
    train_model(store, Settings(store_url=store_url, model_dir=model_dir), "als",
                validate=False, promote=True)
    store.close()
    return ([str(u) for u in sample.users["user_id"]],
            [str(i) for i in sample.items["item_id"]])


def _first_ok_after(outcomes: Sequence[Outcome], kind: str, moment: float) -> float | None:
    ends = [o.ended for o in outcomes if o.kind == kind and o.ok and o.started >= moment]
    return min(ends) - moment if ends else None


@dataclass(frozen=True)
class Outage:
    """When (monotonic seconds) PostgreSQL was told to stop, had stopped, was told to
    start, and answered again."""

    stopping: float
    stopped: float
    restarting: float
    back: float


def _restart_postgres(down_seconds: float) -> Outage:
    stopping = time.monotonic()
    stopped = postgres_control("stop")
    stopped_at = time.monotonic()
    try:
        time.sleep(down_seconds)
    finally:
        restarting = time.monotonic()
        started = postgres_control("start")
    if stopped.returncode != 0 or started.returncode != 0:
        raise RuntimeError(f"pg_ctlcluster failed: {stopped.stderr} {started.stderr}")
    return Outage(stopping, stopped_at, restarting, time.monotonic())


def outage_figures(outcomes: Sequence[Outcome], outage: Outage,
                   until: float) -> dict[str, Any]:
    """What the clients saw from the stop command to ``until`` (the next stop, or the
    end): failures, how fast they came, how soon 2xx came back."""
    seen = [o for o in outcomes if outage.stopping <= o.ended < until]
    # Surely down: from the stop command's return to the start command.
    during = [o for o in seen if o.started >= outage.stopped and o.ended <= outage.restarting]
    unavailable = [o for o in seen if o.status == 503]
    other_5xx = [o for o in seen if o.status is not None and o.status >= 500
                 and o.status != 503]
    failed = [o for o in seen if not o.ok]
    failures_after = [o.ended for o in failed if o.ended >= outage.back]
    return {
        "down_seconds": round(outage.back - outage.stopping, 2),
        "stop_seconds": round(outage.stopped - outage.stopping, 2),
        "start_seconds": round(outage.back - outage.restarting, 2),
        "requests": len(seen),
        "statuses": _statuses(seen),
        "statuses_while_down": _statuses(during),  # between stop and start
        "unavailable_503": len(unavailable),
        "unavailable_503_by_kind": dict(Counter(o.kind for o in unavailable)),
        "unavailable_503_ms_p50": (round(statistics.median(o.ms for o in unavailable), 1)
                                   if unavailable else None),
        "unavailable_503_ms_max": round(max((o.ms for o in unavailable), default=0), 1),
        "failed_ms_max": round(max((o.ms for o in failed), default=0), 1),
        "other_5xx": len(other_5xx),
        "other_5xx_statuses": _statuses(other_5xx),
        "other_5xx_by_kind": dict(Counter(o.kind for o in other_5xx)),
        "no_answer": sum(1 for o in seen if o.status is None),
        "first_read_ok_after_s": _rounded(_first_ok_after(outcomes, "read", outage.back)),
        "first_post_ok_after_s": _rounded(_first_ok_after(outcomes, "post", outage.back)),
        "last_failure_after_s": _rounded(max(failures_after) - outage.back
                                         if failures_after else 0.0),
    }


def postgres_restart(store_url: str, directory: Path, *, restarts: int = 1,
                     down_seconds: float = 3.0, warm_seconds: float = 3.0,
                     after_seconds: float = 3.0, clients: int = CLIENTS, workers: int = 2,
                     port: int | None = None, seed: int = 0,
                     on_restart: Callable[[dict[str, Any]], None] | None = None,
                     ) -> dict[str, Any]:
    """Reads and writes while PostgreSQL is stopped, held down ``down_seconds`` and
    started again, ``restarts`` times, ``after_seconds`` apart once the service answers
    2xx again; one service all along."""
    model_dir = directory / "models"
    users, items = sample_store(store_url, model_dir)
    service = Service(store_url, port or free_port(), workers, directory, model_dir)
    plan = LoadPlan(f"pg-{uuid.uuid4().hex[:8]}", users, items, read_share=0.6)
    outages: list[Outage] = []
    service.start()
    try:
        service.wait_ready(need_model=True)
        with running_clients(service.port, plan, clients, seed) as outcomes:
            time.sleep(warm_seconds)
            for number in range(1, restarts + 1):
                outage = _restart_postgres(down_seconds)
                outages.append(outage)
                deadline = outage.back + 60
                while time.monotonic() < deadline:  # until both answer 2xx again
                    if all(_first_ok_after(outcomes, kind, outage.back) is not None
                           for kind in ("read", "post")):
                        break
                    time.sleep(0.1)
                time.sleep(after_seconds)
                if on_restart is not None:
                    on_restart({"restart": number, **outage_figures(
                        outcomes, outage, time.monotonic())})
        service_alive = service.process is not None and service.process.poll() is None
        workers_after = len(service.worker_pids())
    finally:
        service.stop()
    stored = stored_event_ids(store_url)
    outcomes = list(outcomes)
    ends = [o.stopping for o in outages[1:]] + [float("inf")]
    per_restart = [{"restart": n + 1, **outage_figures(outcomes, outage, until)}
                   for n, (outage, until) in enumerate(zip(outages, ends, strict=True))]
    ok_before = [o.ms for o in outcomes if o.ok and o.ended < outages[0].stopping]

    def worst(key: str) -> Any:
        values = [r[key] for r in per_restart]
        return None if None in values else max(values)

    total = {
        "requests": len(outcomes), "statuses": _statuses(outcomes),
        **{key: sum(r[key] for r in per_restart)
           for key in ("unavailable_503", "other_5xx", "no_answer")},
        "other_5xx_statuses": dict(sum((Counter(r["other_5xx_statuses"])
                                        for r in per_restart), Counter())),
        "other_5xx_by_kind": dict(sum((Counter(r["other_5xx_by_kind"])
                                       for r in per_restart), Counter())),
        **{key: worst(key) for key in (
            "down_seconds", "unavailable_503_ms_max", "failed_ms_max",
            "first_read_ok_after_s", "first_post_ok_after_s", "last_failure_after_s")},
        "ok_ms_p50_before": round(statistics.median(ok_before), 1) if ok_before else None,
    }
    result = {
        "restarts": per_restart, "total": total, "down_seconds_held": down_seconds,
        "service_alive": service_alive, "workers_after": workers_after,
        **_durability(outcomes, stored), "service_log": service.log_counts(),
    }
    result["passed"] = bool(
        result["lost"] == 0 and total["other_5xx"] == 0 and total["no_answer"] == 0
        and total["first_read_ok_after_s"] is not None
        and total["first_post_ok_after_s"] is not None and service_alive)
    return result


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# ---- report ---------------------------------------------------------------------------------


def table(result: dict[str, Any]) -> str:
    lines = ["kill -9 of the service (supervisor and workers) under write load",
             f"{'backend':<9}{'round':>6}{'acked':>8}{'found':>8}{'lost':>6}"
             f"{'unacked':>9}{'unacked stored':>16}{'503 before':>12}{'other 5xx':>11}"
             f"{'restart s':>11}"]
    for backend, run in result["kill"].items():
        for r in run["rounds"]:
            lines.append(f"{backend:<9}{r['round']:>6}{r['acknowledged']:>8}{r['found']:>8}"
                         f"{r['lost']:>6}{r['unacknowledged']:>9}"
                         f"{r['unacknowledged_stored']:>16}{r['unavailable_before_kill']:>12}"
                         f"{r['server_errors_before_kill']:>11}{r['restart_seconds']:>11.1f}")
        t = run["total"]
        lines.append(f"{backend:<9}{'all':>6}{t['acknowledged']:>8}{t['found']:>8}"
                     f"{t['lost']:>6}{t['unacknowledged']:>9}{t['unacknowledged_stored']:>16}"
                     f"{t['unavailable_before_kill']:>12}{t['server_errors_before_kill']:>11}"
                     f"{run['restart_seconds_max'] or 0:>11.1f}")
    pg = result.get("postgres_restart")
    if pg:
        lines += [
            "",
            f"PostgreSQL stopped, held down {pg['down_seconds_held']:g} s and started, "
            f"{len(pg['restarts'])} times under load (reads and writes); the service is not "
            "restarted",
            f"{'restart':>8}{'down s':>8}{'503':>7}{'503 p50 ms':>12}{'503 max ms':>12}"
            f"{'other 5xx':>11}{'no answer':>11}{'read ok s':>11}{'write ok s':>12}"
            f"  between stop and start",
        ]
        for r in pg["restarts"]:
            lines.append(
                f"{r['restart']:>8}{r['down_seconds']:>8.1f}{r['unavailable_503']:>7}"
                f"{r['unavailable_503_ms_p50'] or 0:>12.1f}{r['unavailable_503_ms_max']:>12.1f}"
                f"{r['other_5xx']:>11}{r['no_answer']:>11}"
                f"{_show(r['first_read_ok_after_s']):>11}"
                f"{_show(r['first_post_ok_after_s']):>12}  {r['statuses_while_down']}")
        t = pg["total"]
        lines += [
            f"  all {t['requests']:,} requests: {t['statuses']}; other 5xx by kind "
            f"{t['other_5xx_by_kind'] or 0}; slowest failure {t['failed_ms_max']} ms (2xx p50 "
            f"before the first stop {t['ok_ms_p50_before']} ms); last failure "
            f"+{t['last_failure_after_s']} s after PostgreSQL was back",
            f"  acknowledged events {pg['acknowledged']:,}, lost {pg['lost']}, unacknowledged "
            f"{pg['unacknowledged']:,} of which stored {pg['unacknowledged_stored']:,}; "
            f"service alive at the end: {pg['service_alive']}",
        ]
    return "\n".join(lines)


def _show(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.2f}"


def failures(result: dict[str, Any]) -> list[str]:
    found = []
    for backend, run in result["kill"].items():
        total = run["total"]
        if total["lost"]:
            found.append(f"{backend}: {total['lost']} acknowledged events lost after kill -9")
        if total["server_errors_before_kill"] or total["no_answer_before_kill"]:
            found.append(f"{backend}: {total['server_errors_before_kill']} 5xx and "
                         f"{total['no_answer_before_kill']} unanswered requests before the "
                         "kill")
    pg = result.get("postgres_restart")
    if pg and not pg["passed"]:
        t = pg["total"]
        found.append(f"postgres restart: lost {pg['lost']}, other 5xx {t['other_5xx']} "
                     f"{t['other_5xx_by_kind']}, no answer {t['no_answer']}, 2xx back after "
                     f"read {_show(t['first_read_ok_after_s'])} s / write "
                     f"{_show(t['first_post_ok_after_s'])} s, service alive "
                     f"{pg['service_alive']}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="kill -9 rounds per backend")
    parser.add_argument("--backends", default="sqlite,postgres",
                        help="comma-separated: sqlite, postgres (postgres adds the restart)")
    parser.add_argument("--restarts", type=int, default=3,
                        help="PostgreSQL restarts under load (postgres backend)")
    parser.add_argument("--down-seconds", type=float, default=3.0,
                        help="how long PostgreSQL stays stopped each time")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--note", default="", help="a remark for the results (load, machine)")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"sqlite", "postgres"}
    if unknown:
        sys.exit(f"unknown backends {sorted(unknown)}: use sqlite, postgres")
    load_start = os.getloadavg()
    result: dict[str, Any] = {
        "command": "python benchmarks/faults.py " + " ".join(sys.argv[1:]),
        "machine": platform.platform(), "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M"), "rounds": args.rounds,
        "postgres_restarts": args.restarts if "postgres" in backends else 0,
        "clients": CLIENTS, "workers": args.workers, "kill": {},
    }

    def show(backend: str) -> Any:
        return lambda r: _log(f"{backend} round {r['round']}: acknowledged "
                              f"{r['acknowledged']:,}, lost {r['lost']}, statuses "
                              f"{r['statuses_before_kill']}, restart {r['restart_seconds']} s")

    # Kept when a check fails: the stores and the service's logs are the evidence.
    scratch = tempfile.mkdtemp(prefix="tailored-faults-")
    try:
        for backend in backends:
            directory = Path(scratch) / backend
            directory.mkdir()
            _log(f"{backend}: {args.rounds} kill -9 rounds")
            if backend == "sqlite":
                result["kill"][backend] = kill_rounds(
                    f"sqlite:///{directory / 'store.db'}", args.rounds, directory,
                    workers=args.workers, on_round=show(backend))
                continue
            with postgres_database() as url:
                result["kill"][backend] = kill_rounds(url, args.rounds, directory,
                                                      workers=args.workers,
                                                      on_round=show(backend))
            restart_dir = Path(scratch) / "postgres-restart"
            restart_dir.mkdir()
            _log("postgres: restart under load")
            with postgres_database() as url:
                result["postgres_restart"] = postgres_restart(
                    url, restart_dir, restarts=args.restarts, down_seconds=args.down_seconds,
                    workers=args.workers, on_restart=lambda r: _log(
                        f"postgres restart {r['restart']}: {r['statuses']}, back to 2xx "
                        f"after {r['first_read_ok_after_s']} s (read), "
                        f"{r['first_post_ok_after_s']} s (write)"))
    finally:
        if "postgres" in backends:
            ensure_postgres_running()
    result["load_average"] = {"start": [round(x, 2) for x in load_start],
                              "end": [round(x, 2) for x in os.getloadavg()]}
    result["failures"] = failures(result)
    result["passed"] = not result["failures"]
    result["note"] = args.note
    if result["passed"]:
        shutil.rmtree(scratch)
    else:
        result["evidence"] = scratch  # the stores and each service's log
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "faults.json").write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"load average {result['load_average']['start']} -> {result['load_average']['end']}"
          f" ({result['cpus']} CPUs)")
    for failure in result["failures"]:
        print(f"FAILED: {failure}")
    if not result["passed"]:
        print(f"stores and service logs kept in {scratch}")
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
