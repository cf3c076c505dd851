"""Writes the served log in the background, in batches, so answering stays fast.

A request hands its :class:`~tailored.store.Served` record to :meth:`ServedLogWriter.submit`
(a queue put, microseconds) and answers; a writer thread stores what has queued up at
most every ``flush_seconds`` in one transaction. Shutdown flushes the rest.

The served log is not acknowledged data (unlike events): a crash (a kill, a power cut)
may lose the last ``flush_seconds`` or so of it. If the queue ever holds
``max_pending`` records (the store is down or far too slow), further records are dropped
and counted (``dropped``) rather than slowing down or failing requests.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from tailored.store import Served, Store

logger = logging.getLogger("tailored.serving")

_STOP = object()


class ServedLogWriter:
    """A background thread that records answers in batches."""

    def __init__(self, store: Store, *, flush_seconds: float = 1.0, max_batch: int = 5_000,
                 max_pending: int = 200_000) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        self.max_batch = max_batch
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_pending)
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition()
        self._pending = 0
        self.written = 0
        self.dropped = 0
        self.failed = 0

    def start(self) -> ServedLogWriter:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="served-log-writer",
                                            daemon=True)
            self._thread.start()
        return self

    def submit(self, served: Served) -> None:
        """Queue one answer for writing (never blocks; drops when the queue is full)."""
        try:
            with self._idle:
                self._pending += 1
            self._queue.put_nowait(served)
        except queue.Full:
            with self._idle:
                self._pending -= 1
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                logger.error("served log: %d answers dropped, the store does not keep up",
                             self.dropped)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued and stop the thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch = [first]
            deadline = time.monotonic() + self.flush_seconds
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = (self._queue.get(timeout=remaining) if remaining > 0
                            else self._queue.get_nowait())
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._write(batch)

    def _write(self, batch: list[object]) -> None:
        records = [item for item in batch if isinstance(item, Served)]
        try:
            self.store.served.record(records)
            self.written += len(records)
        except Exception as error:  # never take the service down for its log
            self.failed += len(records)
            logger.error("served log: %d answers not written: %s: %s", len(records),
                         type(error).__name__, error)
        finally:
            with self._idle:
                self._pending -= len(batch)
                self._idle.notify_all()
