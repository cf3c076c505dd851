"""Streaming ingest: events read from a stream (Redis Streams, NATS JetStream) into the store.

A stream message holds one event as a JSON object, or a batch as a JSON list of them,
as the body of ``POST /events`` does, and is checked the same way: the fields and bounds
of :func:`~tailored.ingest.validate.validate_json_events`, at most ``max_batch_events``
events in a batch, and (when the settings say ``events_without_consent = "discard"``)
the events of users without consent discarded. :func:`consume` repeats:

1. read up to ``batch`` messages from a :class:`StreamSource`;
2. validate each message; a message is stored whole or not at all, so one bad event makes
   its message a dead letter, with the reason for each bad event;
3. write the valid events of all the messages in one store transaction;
4. move the malformed messages to the dead letters (the raw message and the reason), then
   acknowledge the stored ones. Nothing is acknowledged before the commit.

Step 3 of one batch runs while steps 1 and 2 of the next do (the store works on one core
while this process validates on the other); a batch is settled (step 4) before the next
one is written, so the store's writes keep the stream's order.

Guarantees: delivery is at least once (a message read but not acknowledged, because the
process died or the store failed, is delivered again), and the store's writes are
idempotent by ``event_id``, so a message delivered twice is stored once: no loss, no
duplicates. An event without an ``event_id`` gets one derived from where it sits in the
stream (:func:`stream_event_id`: the stream, the message id, the position in the
message), so a redelivery maps to the same id; over REST such an id is derived from the
event's content instead. Producers that can should send their own ``event_id``.

Sources are picked by URL (:func:`open_source`): ``redis://host:6379/0?stream=events``
(:mod:`tailored.ingest.redis_streams`) or ``nats://host:4222?stream=EVENTS``
(:mod:`tailored.ingest.nats_jetstream`); both need the ``streams`` extra
(``pip install 'tailored[streams]'``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, fields
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import orjson
import pyarrow as pa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tailored.errors import TailoredError
from tailored.ingest.validate import Reject, validate_json_events
from tailored.schema import Event, EventWeights
from tailored.store import STORE_UNAVAILABLE, Store
from tailored.store.rows import event_rows

logger = logging.getLogger("tailored.ingest.streams")


#: How often the consumer's two threads may take turns (seconds; Python's default is 5 ms).
GIL_SWITCH_SECONDS = 0.0005

#: The reasons of at most this many bad events are named in a dead letter.
MAX_REASONS = 10


class StreamError(TailoredError):
    """A stream source is misconfigured or refused an operation."""


class StreamUnavailableError(StreamError):
    """The stream server cannot be reached now; :func:`consume` waits and tries again."""


#: What :func:`consume` waits out: the store's and the stream's "cannot answer now".
_RETRIED: tuple[type[Exception], ...] = (*STORE_UNAVAILABLE, StreamUnavailableError)


@dataclass(frozen=True)
class Message:
    """One message read from a stream.

    Attributes
    ----------
    id : str
        The source's id for the message, the same on every delivery: a Redis entry id
        (``"1714564800000-0"``), a JetStream stream sequence (``"42"``).
    data : bytes
        The payload: one event as a JSON object, or a JSON list of them.
    problem : str or None
        Why the source found no payload where it expects one (a Redis entry without a
        ``data`` field); such a message is a dead letter with this reason.
    """

    id: str
    data: bytes
    problem: str | None = None


class StreamSource(Protocol):
    """Where :func:`consume` reads messages from: a consumer group of a Redis stream, a
    durable consumer of a JetStream stream.

    Messages are read ahead: a batch is read while the one before it is being stored,
    so a read may come before the last batch is settled. After :meth:`retry` (a batch
    failed), the reads return every message read and not settled first.
    """

    @property
    def name(self) -> str:
        """The source as a person reads it in logs (no password)."""
        ...

    @property
    def origin(self) -> str:
        """What identifies the stream for :func:`stream_event_id`; stable for its life."""
        ...

    def read(self, max_count: int, block_ms: int) -> list[Message]:
        """Up to ``max_count`` messages: those left unsettled by an earlier reader first,
        then new ones, waiting up to ``block_ms`` for some (0: no wait)."""
        ...

    def ack(self, ids: Sequence[str]) -> None:
        """Acknowledge messages by id: they are never delivered again."""
        ...

    def retry(self) -> None:
        """Hand back every message read and neither acknowledged nor dead-lettered: the
        next reads return them first (called when none is being stored)."""
        ...

    def dead_letter(self, message: Message, reason: str) -> None:
        """Keep ``message`` and ``reason`` among the dead letters and settle it (it is
        never delivered again)."""
        ...

    def lag(self) -> int | None:
        """Messages in the stream not acknowledged yet (waiting or in flight); ``None``
        when the server cannot tell."""
        ...

    def close(self) -> None: ...


def stream_event_id(origin: str, message_id: str, position: int) -> str:
    """The id of an event sent without one: from the stream, the message and the event's
    position in it, so every delivery of the message gives the same id.

    Examples
    --------
    >>> stream_event_id("redis:events", "1714564800000-0", 0)
    's800572f49d00d634191f099f'
    >>> stream_event_id("redis:events", "1714564800000-0", 1) != _
    True
    """
    key = f"{origin}\x1f{message_id}\x1f{position}"
    return "s" + hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


# ---- one message: JSON in, events or a reason out -----------------------------------------


def _json_kind(value: Any) -> str:
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    return "null" if value is None else type(value).__name__


def _reject_text(reject: Reject, batch: bool) -> str:
    text = reject.reason if ", " in reject.field else f"field '{reject.field}': {reject.reason}"
    return f"event {reject.row}: {text}" if batch else text


def _reasons(rejects: list[Reject], batch: bool) -> str:
    text = "; ".join(_reject_text(reject, batch) for reject in rejects[:MAX_REASONS])
    if len(rejects) > MAX_REASONS:
        text += f"; and {len(rejects) - MAX_REASONS} more bad events"
    if batch:
        text += " (a batch is stored whole or not at all: fix these and send it again)"
    return text


def message_events(message: Message, origin: str, *, event_weights: EventWeights | None = None,
                   max_batch_events: int = 10_000) -> list[Event] | str:
    """The events of one message, or the reason it is a dead letter.

    Examples
    --------
    >>> message = Message("7-0", b'[{"user_id": "u1", "item_id": "i1"}, {"user_id": "u2"}]')
    >>> print(message_events(message, "redis:events"))
    event 2: field 'item_id': Field required (a batch is stored whole or not at all: ...)
    >>> events = message_events(Message("7-1", b'{"user_id": "u1", "item_id": "i1"}'), "r")
    >>> events[0].event_id == stream_event_id("r", "7-1", 0)
    True
    """
    if message.problem is not None:
        return message.problem
    try:
        payload = orjson.loads(message.data)
    except orjson.JSONDecodeError as error:
        return (f"not valid JSON ({error}); a message holds one event as a JSON object, or "
                "a batch as a JSON list of them")
    if isinstance(payload, dict):
        objects, batch = [payload], False
    elif isinstance(payload, list):
        if not payload:
            return "an empty batch: a batch holds at least one event"
        if len(payload) > max_batch_events:
            return (f"a batch holds at most {max_batch_events:,} events (max_batch_events), "
                    f"this one has {len(payload):,}; split it into smaller batches")
        objects, batch = payload, True
    else:
        return ("a message holds one event (a JSON object) or a batch (a JSON list of "
                f"them), got {_json_kind(payload)}")
    objects = [
        {**raw, "event_id": stream_event_id(origin, message.id, position)}
        if isinstance(raw, dict) and raw.get("event_id") is None else raw
        for position, raw in enumerate(objects)
    ]
    events, rejects = validate_json_events(objects, event_weights=event_weights)
    return _reasons(rejects, batch) if rejects else events


# ---- metrics and reports ------------------------------------------------------------------

#: Batch latency buckets in seconds: a batch of hundreds of events takes milliseconds to
#: a few hundred on a healthy store.
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                 10.0, 30.0)


class StreamMetrics:
    """Prometheus metrics of a consumer, in a registry of its own.

    - ``tailored_consume_messages_total``: messages read (a redelivery counts again);
    - ``tailored_consume_events_total{outcome}``: events in valid messages, by outcome:
      ``stored``, ``duplicate`` (its id was stored already), ``discarded`` (a user without
      consent, when the settings discard those);
    - ``tailored_consume_dead_letters_total``: messages moved to the dead letters;
    - ``tailored_consume_retries_total{cause}``: waits for the ``store`` or the ``stream``;
    - ``tailored_consume_lag``: messages not acknowledged yet (waiting or in flight);
    - ``tailored_consume_batch_duration_seconds``: from a batch read to its acknowledgement.

    Examples
    --------
    >>> from prometheus_client import generate_latest
    >>> metrics = StreamMetrics()
    >>> metrics.events.labels("stored").inc(3)
    >>> [line for line in generate_latest(metrics.registry).decode().splitlines()
    ...  if line.startswith('tailored_consume_events_total{outcome="stored"}')]
    ['tailored_consume_events_total{outcome="stored"} 3.0']
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter("tailored_consume_messages", "Messages read from the stream "
                                "(a redelivery counts again).", registry=self.registry)
        self.events = Counter(
            "tailored_consume_events", "Events in valid messages, by outcome: stored, "
            "duplicate (stored before), discarded (a user without consent).", ["outcome"],
            registry=self.registry)
        for outcome in ("stored", "duplicate", "discarded"):
            self.events.labels(outcome)
        self.dead_letters = Counter("tailored_consume_dead_letters",
                                    "Messages moved to the dead letters.",
                                    registry=self.registry)
        self.retries = Counter("tailored_consume_retries", "Waits for a store or a stream "
                               "that could not answer, by cause.", ["cause"],
                               registry=self.registry)
        for cause in ("store", "stream"):
            self.retries.labels(cause)
        self.lag = Gauge("tailored_consume_lag", "Messages in the stream not acknowledged "
                         "yet (waiting or in flight).", registry=self.registry)
        self.batch_seconds = Histogram(
            "tailored_consume_batch_duration_seconds", "From a batch read to its "
            "acknowledgement: validation, the store transaction, dead letters and acks.",
            buckets=BATCH_BUCKETS, registry=self.registry)


@dataclass
class ConsumeReport:
    """What :func:`consume` did: messages read, and what became of their events."""

    messages: int = 0
    batches: int = 0
    stored: int = 0
    duplicates: int = 0
    discarded: int = 0
    dead_letters: int = 0
    retries: int = 0
    seconds: float = 0.0

    def add(self, other: ConsumeReport) -> None:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def __str__(self) -> str:
        batches = "batch" if self.batches == 1 else "batches"
        return (f"read {self.messages:,} messages in {self.batches:,} {batches}: stored "
                f"{self.stored:,} events, {self.duplicates:,} duplicates, {self.discarded:,} "
                f"discarded, {self.dead_letters:,} dead letters, {self.retries:,} retries")


# ---- the loop -----------------------------------------------------------------------------


@dataclass
class _Batch:
    """One batch read: its valid events, the ids to acknowledge once they are stored,
    and the dead letters."""

    messages: Sequence[Message]
    rows: pa.Table  # the events, as the store takes them (built here, not by the writer)
    valid: list[str]
    dead: list[tuple[Message, str]]
    received: int
    started: float


def _check(store: Store, source: StreamSource, messages: Sequence[Message], *,
           event_weights: EventWeights | None, max_batch_events: int,
           discard_without_consent: bool) -> _Batch:
    started = time.perf_counter()
    events: list[Event] = []
    valid: list[str] = []
    dead: list[tuple[Message, str]] = []
    for message in messages:
        found = message_events(message, source.origin, event_weights=event_weights,
                               max_batch_events=max_batch_events)
        if isinstance(found, str):
            dead.append((message, found))
        else:
            events.extend(found)
            valid.append(message.id)
    received = len(events)
    if discard_without_consent and events:
        withheld = set(store.users.without_consent(list({e.user_id for e in events})))
        events = [event for event in events if event.user_id not in withheld]
    return _Batch(messages, event_rows(events), valid, dead, received, started)


def _settle(source: StreamSource, batch: _Batch, stored: int) -> ConsumeReport:
    """Dead-letter, then acknowledge, a batch whose events are stored."""
    for message, reason in batch.dead:
        logger.warning("dead letter %s from %s: %s", message.id, source.name, reason)
        source.dead_letter(message, reason)
    if batch.valid:
        source.ack(batch.valid)
    events = len(batch.rows)
    return ConsumeReport(messages=len(batch.messages), batches=1, stored=stored,
                         duplicates=events - stored, discarded=batch.received - events,
                         dead_letters=len(batch.dead),
                         seconds=time.perf_counter() - batch.started)


def _store(store: Store, rows: pa.Table) -> int:
    return store.events.add_rows(rows) if len(rows) else 0  # durable on return


def consume(store: Store, source: StreamSource, *, batch: int = 500, block_ms: int = 1_000,
            event_weights: EventWeights | None = None, max_batch_events: int = 10_000,
            discard_without_consent: bool = False, stop: threading.Event | None = None,
            until_idle: bool = False, metrics: StreamMetrics | None = None,
            first_retry_wait: float = 0.5, max_retry_wait: float = 30.0,
            lag_every: float = 1.0) -> ConsumeReport:
    """Read batches from ``source`` into ``store`` until ``stop`` is set (or, with
    ``until_idle``, until a read waits ``block_ms`` and finds nothing).

    A store or stream that cannot answer now (:data:`STORE_UNAVAILABLE`,
    :class:`StreamUnavailableError`) is waited for, ``first_retry_wait`` seconds doubling
    up to ``max_retry_wait``; the batch in hand stays unacknowledged and is read again.
    Any other error propagates, with nothing of the failed batch acknowledged. The lag
    is read into ``metrics`` every ``lag_every`` seconds.

    Examples
    --------
    A source in memory shows the loop (see ``tests/ingest/test_streams.py`` for Redis
    and NATS):

    >>> from tailored.store import open_store
    >>> class Memory:
    ...     name = origin = "memory"
    ...     def __init__(self, *payloads):
    ...         self.waiting = [Message(str(i), p) for i, p in enumerate(payloads)]
    ...         self.acked, self.dead = [], []
    ...     def read(self, max_count, block_ms):
    ...         batch, self.waiting = self.waiting[:max_count], self.waiting[max_count:]
    ...         return batch
    ...     def ack(self, ids): self.acked.extend(ids)
    ...     def retry(self): pass  # (nothing fails here)
    ...     def dead_letter(self, message, reason): self.dead.append((message.id, reason))
    ...     def lag(self): return len(self.waiting)
    ...     def close(self): pass
    >>> source = Memory(b'{"event_id": "e1", "user_id": "u1", "item_id": "i1"}',
    ...                 b'{"event_id": "e1", "user_id": "u1", "item_id": "i1"}',
    ...                 b'{"user_id": "u1", "item_id": "i2", "value": "much"}')
    >>> report = consume(open_store("sqlite://"), source, until_idle=True)
    >>> report.messages, report.stored, report.duplicates, report.dead_letters
    (3, 1, 1, 1)
    >>> source.acked, source.dead
    (['0', '1'], [('2', "field 'value': should be a number such as 4.5, not the text 'much'...")])
    """
    stop = stop or threading.Event()
    report = ConsumeReport()
    wait = first_retry_wait
    next_lag = 0.0
    started = time.perf_counter()

    def record(done: ConsumeReport) -> None:
        report.add(done)
        if metrics is not None:
            metrics.messages.inc(done.messages)
            metrics.events.labels("stored").inc(done.stored)
            metrics.events.labels("duplicate").inc(done.duplicates)
            metrics.events.labels("discarded").inc(done.discarded)
            metrics.dead_letters.inc(done.dead_letters)
            metrics.batch_seconds.observe(done.seconds)

    # One batch is stored (by the writer thread, mostly waiting on the store) while the
    # next is read and validated here; it is acknowledged after its commit, before the
    # next one is stored. The writer needs the interpreter only for moments between the
    # store's round trips; at the default switch interval each could wait 5 ms for it.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, GIL_SWITCH_SECONDS))
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="tailored-consume-store") as writer:
            writing: tuple[_Batch, Future[int]] | None = None  # a batch, its write
            while not stop.is_set():
                try:
                    if metrics is not None and time.monotonic() >= next_lag:
                        lag = source.lag()
                        if lag is not None:
                            metrics.lag.set(lag)
                        next_lag = time.monotonic() + lag_every
                    idle = writing is None  # nothing being stored: the read may wait
                    messages = source.read(batch, block_ms if idle else 0)
                    checked = (_check(store, source, messages, event_weights=event_weights,
                                      max_batch_events=max_batch_events,
                                      discard_without_consent=discard_without_consent)
                               if messages else None)
                    if writing is not None:
                        (written, stored), writing = writing, None
                        record(_settle(source, written, stored.result()))
                    if checked is not None:
                        writing = checked, writer.submit(_store, store, checked.rows)
                    elif until_idle and idle:
                        break
                except _RETRIED as error:
                    if writing is not None:
                        wait_for([writing[1]])  # it failed, or is left unacknowledged
                    writing = None
                    cause = "stream" if isinstance(error, StreamUnavailableError) else "store"
                    logger.warning("the %s cannot answer (%s: %s); nothing of this batch is "
                                   "acknowledged, trying again in %.1f s", cause,
                                   type(error).__name__, str(error).splitlines()[0], wait)
                    report.retries += 1
                    if metrics is not None:
                        metrics.retries.labels(cause).inc()
                    if stop.wait(wait):
                        break
                    wait = min(wait * 2, max_retry_wait)
                    source.retry()
                    continue
                wait = first_retry_wait
            if writing is not None:  # stopped: settle it
                with contextlib.suppress(*_RETRIED):
                    record(_settle(source, writing[0], writing[1].result()))
    finally:
        sys.setswitchinterval(interval)
    report.seconds = time.perf_counter() - started
    return report


# ---- sources by URL -----------------------------------------------------------------------


def split_source_url(url: str, options: Sequence[str]) -> tuple[str, dict[str, str]]:
    """The server URL without its query, and the query's options (each one of
    ``options``, else :class:`StreamError`).

    Examples
    --------
    >>> split_source_url("redis://127.0.0.1:6379/0?stream=events&group=tailored",
    ...                  ["stream", "group"])
    ('redis://127.0.0.1:6379/0', {'stream': 'events', 'group': 'tailored'})
    """
    parts = urlsplit(url)
    given: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in options:
            raise StreamError(f"unknown option {key!r} in the source URL; the options are "
                              f"{', '.join(options)}")
        if key in given:
            raise StreamError(f"option {key!r} is given twice in the source URL")
        given[key] = value
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), given


def masked(url: str) -> str:
    """``url`` with its password hidden, for logs.

    >>> masked("redis://:secret@host:6379/0?stream=events")
    'redis://:***@host:6379/0?stream=events'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query,
                       parts.fragment))


def open_source(url: str) -> StreamSource:
    """The stream source ``url`` names, connected (consumer group or durable consumer
    created if missing).

    - ``redis://[:password@]host:6379/0?stream=events&group=tailored`` (or ``rediss://``):
      a Redis stream, see :class:`~tailored.ingest.redis_streams.RedisStreamConfig`;
    - ``nats://host:4222?stream=EVENTS&subject=events.>&durable=tailored`` (or
      ``tls://``): a NATS JetStream stream, see
      :class:`~tailored.ingest.nats_jetstream.NatsStreamConfig`.
    """
    scheme = urlsplit(url).scheme
    try:
        if scheme in ("redis", "rediss"):
            from tailored.ingest.redis_streams import RedisStreamConfig, RedisStreamSource

            return RedisStreamSource(RedisStreamConfig.from_url(url))
        if scheme in ("nats", "tls"):
            from tailored.ingest.nats_jetstream import NatsStreamConfig, NatsStreamSource

            return NatsStreamSource(NatsStreamConfig.from_url(url))
    except ImportError as error:
        missing = (error.name or "").partition(".")[0]
        package = {"nats": "nats-py"}.get(missing, missing)
        raise StreamError(f"reading from {scheme}:// needs the {package!r} package: "
                          "pip install 'tailored[streams]'") from None
    raise StreamError(f"the source URL must start with redis://, rediss://, nats:// or "
                      f"tls://, got {masked(url)!r}")
