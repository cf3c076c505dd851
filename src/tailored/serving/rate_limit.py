"""Token buckets per caller: each API key, user token or (unidentified) client address
may make ``rate`` requests per second on average, ``burst`` at once; beyond that it gets
a 429 with ``Retry-After``.

The buckets of one host are shared by all its workers: with one worker they live in
memory; with several, in a small SQLite file in the host's temporary directory, outside
the store. A worker leases tokens from the file a few at a time (a twentieth of a
second's worth) and spends them from memory, so the file is written once per lease,
not once per request; a caller may get at most a lease per worker more than its
bucket. A limiter that cannot get its file's lock in time lets the request through: it
bounds cost, it must never be a reason for an outage.

Examples
--------
>>> buckets = MemoryBuckets(rate=1.0, burst=2)
>>> [buckets.take("key", now=0.0) for _ in range(3)]   # 0: allowed; else seconds to wait
[0.0, 0.0, 1.0]
>>> buckets.take("key", now=1.0), buckets.take("other", now=1.0)
(0.0, 0.0)
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

#: Callers remembered at most (least recently seen forgotten: a full bucket again).
MAX_TRACKED = 100_000


class Buckets(Protocol):
    #: Tokens per second each caller gets back.
    rate: float

    def take(self, identity: str, now: float | None = None) -> float:
        """Take one token: 0 when the request may go on, else the seconds until it may.
        May wait on I/O (run it off the event loop)."""
        ...

    def take_cached(self, identity: str) -> float | None:
        """:meth:`take` from memory alone, never waiting; None when only :meth:`take`
        can tell."""
        ...


def _refill(tokens: float, updated: float, now: float, rate: float, burst: int) -> float:
    return min(float(burst), tokens + max(0.0, now - updated) * rate)


class MemoryBuckets:
    """The buckets of one process."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, identity: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, updated = self._buckets.pop(identity, (float(self.burst), now))
            tokens = _refill(tokens, updated, now, self.rate, self.burst)
            if len(self._buckets) >= MAX_TRACKED:
                self._buckets.popitem(last=False)
            if tokens < 1.0:
                self._buckets[identity] = (tokens, now)
                return (1.0 - tokens) / self.rate
            self._buckets[identity] = (tokens - 1.0, now)
            return 0.0

    def take_cached(self, identity: str) -> float:
        return self.take(identity)


class FileBuckets:
    """The buckets of every worker process of a host, in one SQLite file, leased to each
    worker ``lease`` tokens at a time.

    Wall-clock time, not a monotonic clock: the processes must agree on it.
    """

    def __init__(self, path: Path, rate: float, burst: int, lock_timeout: float = 0.05
                 ) -> None:
        self.rate = rate
        self.burst = burst
        self.path = path
        self.lease = max(1, min(burst // 10, math.ceil(rate / 20)))
        self._lock_timeout = lock_timeout
        self._local = threading.local()
        self._leased: OrderedDict[str, int] = OrderedDict()  # tokens this worker holds
        self._leased_lock = threading.Lock()

    def take_cached(self, identity: str) -> float | None:
        with self._leased_lock:
            held = self._leased.get(identity, 0)
            if held <= 0:
                return None
            self._leased[identity] = held - 1
            return 0.0

    def take(self, identity: str, now: float | None = None) -> float:
        if self.take_cached(identity) == 0.0:
            return 0.0
        granted, wait = self._lease(identity, time.time() if now is None else now)
        if granted > 1:
            with self._leased_lock:
                self._leased[identity] = self._leased.get(identity, 0) + granted - 1
                self._leased.move_to_end(identity)
                if len(self._leased) > MAX_TRACKED:
                    self._leased.popitem(last=False)
        return wait

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=self._lock_timeout,
                                         isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=OFF")  # losing a bucket costs nothing
            connection.execute("CREATE TABLE IF NOT EXISTS buckets (identity TEXT PRIMARY "
                               "KEY, tokens REAL NOT NULL, updated REAL NOT NULL)")
            self._local.connection = connection
        return connection

    def _lease(self, identity: str, now: float) -> tuple[int, float]:
        """Take up to ``lease`` whole tokens from the file: how many, and the wait when
        there was not even one."""
        try:
            connection = self._connection()
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return 1, 0.0  # busy beyond the lock timeout: let the request through
        try:
            row = connection.execute("SELECT tokens, updated FROM buckets WHERE identity = ?",
                                     (identity,)).fetchone()
            tokens = (float(self.burst) if row is None
                      else _refill(row[0], row[1], now, self.rate, self.burst))
            granted = min(self.lease, math.floor(tokens))
            connection.execute("INSERT OR REPLACE INTO buckets VALUES (?, ?, ?)",
                               (identity, tokens - granted, now))
            if row is None and connection.execute(
                    "SELECT count(*) FROM buckets").fetchone()[0] > MAX_TRACKED:
                # Forget the callers seen longest ago (their buckets would be full anyway).
                connection.execute("DELETE FROM buckets WHERE updated < ?",
                                   (now - self.burst / self.rate,))
            connection.execute("COMMIT")
        except sqlite3.OperationalError:
            connection.execute("ROLLBACK")
            return 1, 0.0
        return granted, 0.0 if granted else (1.0 - tokens) / self.rate
