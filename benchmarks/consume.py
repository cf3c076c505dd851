"""Streaming ingest throughput: ``tailored.ingest.streams.consume`` from Redis Streams and
NATS JetStream into SQLite and PostgreSQL.

``--events`` events (one per message; half carry an ``event_id``, half get one derived
from the message id) are published once to a fresh Redis stream and once to a fresh
JetStream stream; then, for each store, a consumer group (Redis) or durable consumer
(NATS) of its own reads the whole stream from the start, in batches of ``--batch``, the
way ``tailored consume`` does (validation as ``POST /events``, one store transaction per
batch, acknowledgements after the commit). Figures per source and store: events/s from
the first read to the last acknowledgement, the batch latency (read to acknowledgement)
at the median and 99th percentile, and checks: every event stored exactly once, no dead
letter, nothing left unacknowledged. Publishing rates are reported too (they are not the
consumer's).

The streams, the SQLite file and the PostgreSQL database (created fresh, from the server
at ``TAILORED_TEST_POSTGRES``, default ``postgresql://postgres@127.0.0.1/test``) are
deleted afterwards. Redis at ``TAILORED_TEST_REDIS`` (default
``redis://127.0.0.1:6379/0``), NATS at ``TAILORED_TEST_NATS`` (default
``nats://127.0.0.1:4222``).

Run: ``.venv/bin/python benchmarks/consume.py [--events 200000] [--batch 500]
[--sources redis,nats] [--stores sqlite,postgres]``; prints a table and writes
``benchmarks/results/consume.json`` and ``consume.md``; exits with status 1 when a check
failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager, nullcontext, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa

from tailored.ingest.streams import Message, StreamSource, consume, open_source
from tailored.store import open_store

RESULTS = Path(__file__).resolve().parent / "results"
REDIS_URL = os.environ.get("TAILORED_TEST_REDIS", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("TAILORED_TEST_NATS", "nats://127.0.0.1:4222")
POSTGRES_URL = os.environ.get("TAILORED_TEST_POSTGRES", "postgresql://postgres@127.0.0.1/test")
EVENT_TYPES = ("view", "click", "add_to_cart", "purchase")


def _log(message: str) -> None:
    print(f"[consume bench] {message}", flush=True)


def payloads(n: int, tag: str = "") -> list[bytes]:
    """``n`` events as JSON messages: 1,000 users, 5,000 items, half with an id; a
    ``tag`` makes them new to a store that took another tag's."""
    base = 1_714_564_800
    return [json.dumps({
        **({"event_id": f"bench{tag}-{i}"} if i % 2 else {}),
        "user_id": f"u{i % 1_000}", "item_id": f"i{tag}{(i * 7) % 5_000}",
        "event_type": EVENT_TYPES[i % 4], "timestamp": base + i,
        "context": {"device": "mobile" if i % 3 else "web"},
    }).encode() for i in range(n)]


# ---- the sources ----------------------------------------------------------------------------


class RedisBench:
    kind = "redis"

    def __init__(self) -> None:
        import redis

        self.client = redis.Redis.from_url(REDIS_URL)
        self.stream = f"tailored-bench-{uuid.uuid4().hex[:8]}"

    def publish(self, messages: Sequence[bytes]) -> None:
        for start in range(0, len(messages), 2_000):
            with self.client.pipeline(transaction=False) as pipe:
                for message in messages[start:start + 2_000]:
                    pipe.xadd(self.stream, {"data": message})
                pipe.execute()

    def url(self, reader: str) -> str:
        return f"{REDIS_URL}?" + urlencode({"stream": self.stream, "group": reader,
                                            "consumer": "bench"})

    def cleanup(self) -> None:
        self.client.delete(self.stream, f"{self.stream}:dead")
        self.client.close()


class NatsBench:
    kind = "nats"

    def __init__(self) -> None:
        token = uuid.uuid4().hex[:8]
        self.stream, self.subject = f"BENCH_{token}", f"bench{token}.events"
        self._run(lambda js: js.add_stream(name=self.stream, subjects=[self.subject]))

    def _run(self, work: Any) -> Any:
        import nats

        async def session() -> Any:
            nc = await nats.connect(NATS_URL, max_reconnect_attempts=0)
            try:
                return await work(nc.jetstream())
            finally:
                await nc.close()

        return asyncio.run(session())

    def publish(self, messages: Sequence[bytes]) -> None:
        async def publish(js: Any) -> None:
            for start in range(0, len(messages), 1_000):
                await asyncio.gather(*(js.publish(self.subject, message)
                                       for message in messages[start:start + 1_000]))

        self._run(publish)

    def url(self, reader: str) -> str:
        return f"{NATS_URL}?" + urlencode({"stream": self.stream, "subject": self.subject,
                                           "durable": reader, "create": "true"})

    def cleanup(self) -> None:
        async def delete(js: Any) -> None:
            for name in (self.stream, f"{self.stream}_DEAD"):
                with suppress(Exception):  # the dead-letter stream may never have been made
                    await js.delete_stream(name)

        self._run(delete)


class Timed:
    """A source that notes when each batch was read and acknowledged."""

    def __init__(self, source: StreamSource) -> None:
        self.source = source
        self.name, self.origin = source.name, source.origin
        self.first_read: float | None = None
        self.last_ack = 0.0
        self._read_at = 0.0
        self.batch_seconds: list[float] = []
        self.dead = 0

    def read(self, max_count: int, block_ms: int) -> list[Message]:
        messages = self.source.read(max_count, block_ms)
        if messages:
            self._read_at = time.perf_counter()
            self.first_read = self.first_read or self._read_at
        return messages

    def ack(self, ids: Sequence[str]) -> None:
        self.source.ack(ids)
        self.last_ack = time.perf_counter()
        self.batch_seconds.append(self.last_ack - self._read_at)

    def dead_letter(self, message: Message, reason: str) -> None:
        self.dead += 1
        self.source.dead_letter(message, reason)

    def lag(self) -> int | None:
        return self.source.lag()

    def close(self) -> None:
        self.source.close()


# ---- the stores -----------------------------------------------------------------------------


@contextmanager
def store_url(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/bench.db"
        return
    admin = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1),
                             isolation_level="AUTOCOMMIT")
    name = f"tailored_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def stored_counts(url: str) -> tuple[int, int]:
    """Rows in the events table, and distinct event ids among them."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            total, distinct = conn.execute(sa.text(
                "SELECT count(*), count(DISTINCT event_id) FROM events")).one()
    finally:
        engine.dispose()
    return int(total), int(distinct)


def run_one(bench: RedisBench | NatsBench, store_kind: str, n: int, batch: int,
            into: str | None = None) -> dict[str, Any]:
    """One consumer group's pass over the stream, into a new store of ``store_kind`` or
    into the store at ``into`` (which may hold events already)."""
    with nullcontext(into) if into else store_url(store_kind) as url:
        before = stored_counts(url) if into else (0, 0)
        store = open_store(url)
        try:
            timed = Timed(open_source(bench.url(f"bench-{store_kind}")))
            with closing(timed):
                report = consume(store, timed, batch=batch, block_ms=500, until_idle=True)
                unacknowledged = timed.lag()
            total, distinct = (now - then for now, then in
                               zip(stored_counts(url), before, strict=True))
        finally:
            store.close()
    seconds = timed.last_ack - (timed.first_read or timed.last_ack)
    latencies = sorted(timed.batch_seconds)
    checks = {"stored_exactly_once": total == distinct == n, "no_dead_letters": timed.dead == 0,
              "all_acknowledged": unacknowledged == 0}
    row = {"source": bench.kind, "store": store_kind, "events": n, "batch": batch,
           "seconds": round(seconds, 3), "events_per_s": round(n / seconds) if seconds else None,
           "batches": report.batches,
           "batch_ms_p50": round(statistics.median(latencies) * 1000, 1),
           "batch_ms_p99": round(latencies[min(len(latencies) - 1,
                                               int(0.99 * len(latencies)))] * 1000, 1),
           "stored_rows": int(total), "distinct_ids": int(distinct),
           "unacknowledged": unacknowledged, "checks": checks}
    _log(f"{bench.kind} -> {store_kind}: {n:,} events in {seconds:.2f} s = "
         f"{row['events_per_s']:,} events/s; checks {checks}")
    return row


def markdown(result: dict[str, Any]) -> str:
    meta = result["machine"]
    lines = [
        f"# Streaming ingest: {result['events']:,} events, batches of {result['batch']}", "",
        f"{result['started']}, {meta['machine']}, {meta['cores']} cores, Python "
        f"{meta['python']}, load average before {result['load_average']['before']}, after "
        f"{result['load_average']['after']}.",
        "One event per message (half with an `event_id`, half derived from the message id); "
        "validation as `POST /events`, one store transaction per batch, acknowledgements "
        "after the commit. Events/s from the first read to the last acknowledgement.", "",
        "| source | store | events/s | seconds | batch p50 | batch p99 | exactly once | "
        "dead letters | unacked |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for row in result["runs"]:
        lines.append(
            f"| {row['source']} | {row['store']} | {row['events_per_s']:,} | "
            f"{row['seconds']:.2f} | {row['batch_ms_p50']} ms | {row['batch_ms_p99']} ms | "
            f"{'yes' if row['checks']['stored_exactly_once'] else '**NO**'} | "
            f"{0 if row['checks']['no_dead_letters'] else '**some**'} | "
            f"{row['unacknowledged']} |")
    lines += ["", "Publishing (the producer's side, for scale): " + ", ".join(
        f"{kind} {rate:,} messages/s" for kind, rate in result["publish_per_s"].items()), ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--sources", default="redis,nats")
    parser.add_argument("--stores", default="sqlite,postgres")
    args = parser.parse_args()
    sources = [s for s in args.sources.split(",") if s]
    stores = [s for s in args.stores.split(",") if s]
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = [round(x, 2) for x in os.getloadavg()]
    messages = payloads(args.events)
    runs: list[dict[str, Any]] = []
    publish_per_s: dict[str, int] = {}
    for kind in sources:
        bench: RedisBench | NatsBench = RedisBench() if kind == "redis" else NatsBench()
        try:
            begun = time.perf_counter()
            bench.publish(messages)
            publish_per_s[kind] = round(args.events / (time.perf_counter() - begun))
            _log(f"published {args.events:,} messages to {kind} "
                 f"({publish_per_s[kind]:,} messages/s)")
            for store_kind in stores:
                runs.append(run_one(bench, store_kind, args.events, args.batch))
        finally:
            bench.cleanup()
    result = {
        "benchmark": "consume", "started": started, "events": args.events,
        "batch": args.batch,
        "machine": {"machine": platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "load_average": {"before": load_before,
                         "after": [round(x, 2) for x in os.getloadavg()]},
        "publish_per_s": publish_per_s, "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "consume.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "consume.md").write_text(markdown(result))
    print(markdown(result))
    failed = [row for row in runs if not all(row["checks"].values())]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
