"""Writes the served log in the background, in batches, so answering stays fast.

A request hands its :class:`~tailored.store.Served` record to :meth:`ServedLogWriter.submit`
(a queue put, microseconds) and answers; a writer thread stores what has queued up at
most every ``flush_seconds`` in one transaction. Shutdown flushes the rest.

The served log is not acknowledged data (unlike events): a crash (a kill, a power cut)
may lose the last ``flush_seconds`` or so of it. A batch the store refuses (busy,
restarting) is retried with exponential backoff, ``retries`` times, then dropped and
counted (``failed``); the log line names the failure, never the records. If the queue
ever holds ``max_pending`` records (the store is down or far too slow), further records
are dropped and counted (``dropped``) rather than slowing down or failing requests.

Answers to users who withhold ``analytics`` consent are never written: no experiment,
CTR, dashboard or bandit counts them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from tailored.schema import ANALYTICS
from tailored.store import Served, Store

from .security import describe_failure

logger = logging.getLogger("tailored.serving")


class ServedLogWriter:
    """A background thread that records answers in batches."""

    def __init__(self, store: Store, *, flush_seconds: float = 1.0, max_batch: int = 5_000,
                 max_pending: int = 200_000, retries: int = 5, backoff_seconds: float = 0.5,
                 max_backoff_seconds: float = 30.0) -> None:
        self.store = store
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.flush_seconds = flush_seconds
        self.max_batch = max_batch
        self.max_pending = max_pending
        # A deque, not a queue.Queue: appending is atomic and wakes no one, so requests
        # never hand the GIL to the writer; the writer wakes once per flush interval.
        self._records: deque[Served] = deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._writing = False
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0
        self.failed = 0

    def start(self) -> ServedLogWriter:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="served-log-writer",
                                            daemon=True)
            self._thread.start()
        return self

    def submit(self, served: Served) -> None:
        """Queue one answer for writing (never blocks; drops when too much is pending)."""
        if len(self._records) >= self.max_pending:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                logger.error("served log: %d answers dropped, the store does not keep up",
                             self.dropped)
            return
        self._records.append(served)

    def flush(self, timeout: float = 10.0) -> bool:
        """Write everything submitted so far now, and wait for it (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._records or self._writing:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    return False
                self._wake.set()
                self._idle.wait(min(remaining, 0.05))
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is pending and stop the thread."""
        if self._thread is None:
            return
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            stopping = self._stopping.is_set()
            while self._records:
                with self._idle:
                    self._writing = True
                batch = [self._records.popleft()
                         for _ in range(min(self.max_batch, len(self._records)))]
                self._write(batch)
            with self._idle:
                self._writing = False
                self._idle.notify_all()
            if stopping:
                return

    def _consented(self, records: list[Served]) -> list[Served]:
        """The records of users who do not withhold analytics: only theirs are kept."""
        users = list({r.user_id for r in records if r.user_id is not None})
        withheld = set(self.store.users.without_consent(users, purpose=ANALYTICS))
        return [r for r in records if r.user_id not in withheld]

    def _write(self, records: list[Served]) -> None:
        """Store one batch, retrying with backoff while the store is busy or down; a batch
        that still fails after ``retries`` tries is dropped and counted (``failed``)."""
        for attempt in range(self.retries + 1):
            try:
                self.store.served.record(self._consented(records))
                self.written += len(records)
                return
            except Exception as error:  # never take the service down for its log
                if attempt == self.retries:
                    self.failed += len(records)
                    logger.error("served log: %d answers not written after %d tries: %s",
                                 len(records), attempt + 1, describe_failure(error))
                    return
                wait = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** attempt)
                logger.warning("served log: %d answers not written (%s); retrying in "
                               "%.1f s", len(records), describe_failure(error), wait)
                self._stopping.wait(wait)  # at shutdown: the tries that are left, at once
