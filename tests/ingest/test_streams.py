"""Streaming ingest (``tailored consume``) against the real Redis and NATS JetStream servers.

Each test makes streams of its own (unique names) and deletes them afterwards. Without a
server the tests that need it are skipped with a warning that says so; set
``TAILORED_TEST_REDIS`` / ``TAILORED_TEST_NATS`` to point at other servers.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import closing, suppress
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import pytest
import sqlalchemy.exc

from tailored.ingest.streams import (
    ConsumeReport,
    Message,
    StreamError,
    consume,
    message_events,
    open_source,
    stream_event_id,
)
from tailored.schema import Event, User
from tailored.store import Store

REDIS_URL = os.environ.get("TAILORED_TEST_REDIS", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("TAILORED_TEST_NATS", "nats://127.0.0.1:4222")
TAILORED = Path(sys.executable).parent / "tailored"


def _skip_loudly(what: str, url: str, error: BaseException) -> None:
    warnings.warn(f"{what} stream tests SKIPPED: cannot reach {url}: {error}", stacklevel=2)
    pytest.skip(f"{what} unreachable at {url}: {error}")


def _event(n: int, **fields: Any) -> dict[str, Any]:
    return {"user_id": f"u{n % 7}", "item_id": f"i{n}", "event_type": "click",
            "timestamp": "2024-05-01T12:00:00Z", **fields}


def _payload(value: Any) -> bytes:
    return json.dumps(value).encode()


# ---- one helper per server: publish, look at dead letters and what is unacknowledged -------


class Kit(Protocol):
    kind: str

    def url(self, consumer: str = "c", **options: str) -> str: ...
    def publish(self, payloads: list[bytes]) -> None: ...
    def dead_letters(self) -> list[tuple[str, bytes]]: ...
    def unacknowledged(self) -> int: ...


class RedisKit:
    kind = "redis"

    def __init__(self, client: Any) -> None:
        self.client = client
        self.stream = f"tailored-test-{uuid.uuid4().hex[:10]}"

    def url(self, consumer: str = "c", **options: str) -> str:
        query = {"stream": self.stream, "group": "g", "consumer": consumer, **options}
        return f"{REDIS_URL}?{urlencode(query)}"

    def publish(self, payloads: list[bytes]) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            for payload in payloads:
                pipe.xadd(self.stream, {"data": payload})
            pipe.execute()

    def dead_letters(self) -> list[tuple[str, bytes]]:
        return [(fields[b"reason"].decode(), fields.get(b"data", b""))
                for _, fields in self.client.xrange(f"{self.stream}:dead")]

    def unacknowledged(self) -> int:
        for group in self.client.xinfo_groups(self.stream):
            if group["name"] == b"g":
                return int(group["lag"]) + int(group["pending"])
        return int(self.client.xlen(self.stream))

    def cleanup(self) -> None:
        self.client.delete(self.stream, f"{self.stream}:dead")


class NatsKit:
    kind = "nats"

    def __init__(self) -> None:
        token = uuid.uuid4().hex[:10]
        self.stream = f"TEST_{token}"
        self.prefix = f"test{token}"

    def make_stream(self) -> None:
        self._run(lambda js: js.add_stream(name=self.stream, subjects=[f"{self.prefix}.>"]))

    def _run(self, work: Callable[[Any], Any]) -> Any:
        import nats

        async def session() -> Any:
            nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
            try:
                return await work(nc.jetstream())
            finally:
                await nc.close()

        return asyncio.run(session())

    def url(self, consumer: str = "c", **options: str) -> str:
        """One durable for every consumer (``consumer`` is Redis's)."""
        query = {"stream": self.stream, "subject": f"{self.prefix}.>", "durable": "d",
                 "create": "true", **options}
        return f"{NATS_URL}?{urlencode(query)}"

    def publish(self, payloads: list[bytes]) -> None:
        async def publish(js: Any) -> None:
            for start in range(0, len(payloads), 500):
                await asyncio.gather(*(js.publish(f"{self.prefix}.web", payload)
                                       for payload in payloads[start:start + 500]))

        self._run(publish)

    def dead_letters(self) -> list[tuple[str, bytes]]:
        async def read(js: Any) -> list[tuple[str, bytes]]:
            sub = await js.pull_subscribe(f"tailored.dead.{self.stream}",
                                          stream=f"{self.stream}_DEAD")
            try:
                found = await sub.fetch(100, timeout=0.5)
            except TimeoutError:  # nats-py's own, or asyncio's: none there
                return []
            return [(msg.headers["Tailored-Reason"], msg.data) for msg in found]

        return self._run(read)

    def unacknowledged(self) -> int:
        async def count(js: Any) -> int:
            info = await js.consumer_info(self.stream, "d")
            return int(info.num_pending) + int(info.num_ack_pending)

        return self._run(count)

    def cleanup(self) -> None:
        async def delete(js: Any) -> None:
            import nats.js.errors

            for name in (self.stream, f"{self.stream}_DEAD"):
                with suppress(nats.js.errors.NotFoundError):
                    await js.delete_stream(name)

        self._run(delete)


@pytest.fixture(scope="module")
def redis_client() -> Iterator[Any]:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
    except Exception as error:  # no package or no server: say so loudly
        _skip_loudly("Redis", REDIS_URL, error)
    yield client
    client.close()


@pytest.fixture(scope="module")
def nats_server() -> None:
    try:
        NatsKit()._run(lambda js: js.account_info())
    except Exception as error:  # no package or no server: say so loudly
        _skip_loudly("NATS JetStream", NATS_URL, error)


@pytest.fixture(params=["redis", "nats"])
def kit(request: pytest.FixtureRequest) -> Iterator[Kit]:
    made: RedisKit | NatsKit
    if request.param == "redis":
        made = RedisKit(request.getfixturevalue("redis_client"))
    else:
        request.getfixturevalue("nats_server")
        made = NatsKit()
        made.make_stream()
    yield made
    made.cleanup()


def _consume(store: Store, url: str, **options: Any) -> ConsumeReport:
    with closing(open_source(url)) as source:
        return consume(store, source, block_ms=200, until_idle=True, **options)


# ---- against the servers --------------------------------------------------------------------


def test_valid_events_are_stored_and_acknowledged(kit: Kit, store: Store) -> None:
    kit.publish([
        _payload(_event(1, event_id="e1")),
        _payload([_event(2, event_id="e2"), _event(3, event_id="e3")]),  # a batch
        _payload(_event(4)),  # no id: one derived from the message
    ])

    report = _consume(store, kit.url())

    assert (report.messages, report.stored, report.duplicates, report.dead_letters) == \
        (3, 4, 0, 0)
    frame = store.events.frame()
    assert sorted(frame["item_id"]) == ["i1", "i2", "i3", "i4"]
    derived = frame.loc[frame["item_id"] == "i4", "event_id"].item()
    assert derived.startswith("s") and derived not in ("e1", "e2", "e3")
    assert kit.unacknowledged() == 0
    assert kit.dead_letters() == []


def test_a_redelivered_message_without_event_ids_maps_to_the_same_ids(
        kit: Kit, store: Store) -> None:
    kit.publish([_payload([_event(1), _event(2)])])
    with closing(open_source(kit.url())) as source:
        first = source.read(10, 200)
        assert len(first) == 1
        events = message_events(first[0], source.origin)
        assert not isinstance(events, str)
        # The same message read again (a redelivery) derives the same ids.
        again = message_events(Message(first[0].id, first[0].data), source.origin)
        assert not isinstance(again, str)
        assert [e.event_id for e in events] == [e.event_id for e in again]
        assert [e.event_id for e in events] == [
            stream_event_id(source.origin, first[0].id, position) for position in (0, 1)]


def test_malformed_messages_are_dead_lettered_with_their_reason_and_acknowledged(
        kit: Kit, store: Store) -> None:
    bad_batch = _payload([_event(2, event_id="e2"), _event(3, value="4.5")])
    kit.publish([
        _payload(_event(1, event_id="e1")),
        b"{not json",
        _payload(_event(4, colour="red")),
        bad_batch,
        _payload("just text"),
    ])

    report = _consume(store, kit.url())

    assert (report.stored, report.dead_letters) == (1, 4)
    assert list(store.events.frame()["event_id"]) == ["e1"]  # nothing of the bad batch
    dead = kit.dead_letters()
    assert [data for _, data in dead] == [b"{not json", _payload(_event(4, colour="red")),
                                          bad_batch, _payload("just text")]
    reasons = [reason for reason, _ in dead]
    assert "not valid JSON" in reasons[0]
    assert "field 'colour': is not a field of an event" in reasons[1]
    assert reasons[2].startswith("event 2: field 'value': should be a number")
    assert "stored whole or not at all" in reasons[2]
    assert "got text" in reasons[3]
    assert kit.unacknowledged() == 0  # dead letters are settled too


def test_the_same_event_id_twice_is_stored_once(kit: Kit, store: Store) -> None:
    once = _event(1, event_id="e1")
    kit.publish([_payload(once), _payload(once), _payload([once, _event(2, event_id="e2")])])

    first = _consume(store, kit.url())
    kit.publish([_payload(once)])  # later, in another batch
    second = _consume(store, kit.url())

    assert (first.stored, first.duplicates, second.stored, second.duplicates) == (2, 2, 0, 1)
    assert sorted(store.events.frame()["event_id"]) == ["e1", "e2"]
    assert kit.unacknowledged() == 0


class _FailingEvents:
    """``events.add_rows`` that raises ``error`` for the first ``failures`` calls."""

    def __init__(self, real: Store, error: Exception, failures: int) -> None:
        self.real, self.error, self.failures = real, error, failures
        self.seen: list[int] = []

    def add_rows(self, rows: Any) -> int:
        self.seen.append(len(rows))
        if len(self.seen) <= self.failures:
            raise self.error
        return self.real.events.add_rows(rows)


class _StoreWithFailingEvents:
    def __init__(self, real: Store, error: Exception, failures: int) -> None:
        self.events = _FailingEvents(real, error, failures)
        self.users = real.users


def test_nothing_is_acknowledged_before_the_commit(kit: Kit, store: Store) -> None:
    kit.publish([_payload(_event(n, event_id=f"e{n}")) for n in range(20)])
    broken = _StoreWithFailingEvents(store, RuntimeError("disk on fire"), failures=1)

    with pytest.raises(RuntimeError, match="disk on fire"):
        _consume(broken, kit.url())

    assert broken.events.seen == [20]  # read, then the store failed
    assert store.events.count() == 0
    assert kit.unacknowledged() == 20  # nothing acknowledged: delivered again below
    report = _consume(store, kit.url())  # the same consumer reads its pending ones first
    assert (report.stored, store.events.count()) == (20, 20)
    assert kit.unacknowledged() == 0


def test_a_store_that_cannot_answer_is_waited_for(kit: Kit, store: Store) -> None:
    kit.publish([_payload(_event(n, event_id=f"e{n}")) for n in range(10)])
    locked = sqlalchemy.exc.OperationalError("INSERT INTO events", {},
                                             Exception("database is locked"))
    flaky = _StoreWithFailingEvents(store, locked, failures=2)

    report = _consume(flaky, kit.url(), first_retry_wait=0.05)

    assert report.retries == 2
    assert flaky.events.seen == [10, 10, 10]  # the same messages, handed back each time
    assert (report.stored, store.events.count()) == (10, 10)
    assert kit.unacknowledged() == 0


def test_a_failure_with_the_next_batch_read_ahead_hands_both_back(kit: Kit, store: Store
                                                                  ) -> None:
    # Batches of 4: the second write fails while the third batch has been read already.
    kit.publish([_payload(_event(n, event_id=f"e{n}")) for n in range(12)])
    locked = sqlalchemy.exc.OperationalError("INSERT INTO events", {},
                                             Exception("database is locked"))

    class FailingSecond(_FailingEvents):
        def add_rows(self, rows: Any) -> int:
            self.seen.append(len(rows))
            if len(self.seen) == 2:
                raise self.error
            return self.real.events.add_rows(rows)

    flaky = _StoreWithFailingEvents(store, locked, failures=0)
    flaky.events = FailingSecond(store, locked, failures=0)
    report = _consume(flaky, kit.url(), batch=4, first_retry_wait=0.05)

    assert report.retries == 1
    # The failed batch is written again; the one read ahead, after it, once.
    assert flaky.events.seen == [4, 4, 4, 4]
    assert (report.stored, report.duplicates, store.events.count()) == (12, 0, 12)
    assert kit.unacknowledged() == 0
    assert sorted(store.events.frame()["event_id"]) == sorted(f"e{n}" for n in range(12))


def test_redis_messages_of_a_dead_consumer_are_claimed(redis_client: Any,
                                                       store: Store) -> None:
    kit = RedisKit(redis_client)
    try:
        kit.publish([_payload(_event(n, event_id=f"e{n}")) for n in range(30)])
        dead = open_source(kit.url(consumer="dies"))
        assert len(dead.read(100, 200)) == 30  # read, never acknowledged: it "died"
        time.sleep(0.1)

        report = _consume(store, kit.url(consumer="lives", claim_idle_ms="50"))

        assert (report.stored, store.events.count()) == (30, 30)
        assert kit.unacknowledged() == 0
        dead.close()
    finally:
        kit.cleanup()


def test_a_nats_stream_is_created_only_when_asked(nats_server: None, store: Store) -> None:
    kit = NatsKit()
    try:
        with pytest.raises(StreamError, match=f"stream '{kit.stream}' does not exist"):
            open_source(kit.url(create="false"))
        _consume(store, kit.url())  # create=true: the stream and its dead letters
        kit.publish([_payload(_event(1, event_id="e1"))])
        assert _consume(store, kit.url()).stored == 1
        assert kit.dead_letters() == []  # the dead-letter stream exists
    finally:
        kit.cleanup()


# ---- kill -9 of the command ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _counts(db: Path) -> tuple[int, int]:
    try:
        with closing(sqlite3.connect(db, timeout=5)) as conn:
            total, distinct = conn.execute(
                "SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
            return int(total), int(distinct)
    except sqlite3.OperationalError:  # not made yet
        return 0, 0


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.02)


def _start(url: str, db: Path, log: Path, *options: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(TAILORED), "consume", "--from", url, "--store", f"sqlite:///{db}",
         "--batch", "100", "--block-ms", "100", *options],
        cwd=db.parent, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def test_kill_9_midway_stores_every_event_exactly_once(kit: Kit, tmp_path: Path) -> None:
    """SIGKILL the command while it consumes; started again, every event is stored, once
    (half of them carry no event id: their ids derive from the message ids)."""
    n = 5_000
    payloads = [_payload(_event(i, **({"event_id": f"e{i}"} if i % 2 else {})))
                for i in range(4_000)]
    payloads += [_payload([_event(i + k, **({"event_id": f"e{i + k}"} if k % 2 else {}))
                           for k in range(10)]) for i in range(4_000, n, 10)]
    db = tmp_path / "kill.db"
    redis_only = {"claim_idle_ms": "300"} if kit.kind == "redis" else {}
    nats_only = {"ack_wait_s": "1"} if kit.kind == "nats" else {}
    backlog, rest = payloads[:3_000], payloads[3_000:]
    kit.publish(backlog)  # a backlog keeps the consumer busy: the kill lands mid-batch
    first_log = tmp_path / "first.log"
    first = _start(kit.url(consumer="first", **redis_only, **nats_only), db, first_log)
    try:
        _wait_for(lambda: b"Ctrl-C stops" in first_log.read_bytes(), 60,
                  "the first consumer to start")

        def publish() -> None:  # the rest steadily, while the first consumer lives or not
            for start in range(0, len(rest), 200):
                kit.publish(rest[start:start + 200])
                time.sleep(0.02)

        publisher = threading.Thread(target=publish)
        publisher.start()
        _wait_for(lambda: _counts(db)[0] >= n // 5, 30, "a fifth of the events")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = _counts(db)[0]
        publisher.join()
    finally:
        first.kill()
    assert killed_at < n, "the consumer finished before the kill: nothing was tested"

    port = _free_port()
    second_log = tmp_path / "second.log"
    second = _start(kit.url(consumer="second", **redis_only, **nats_only), db, second_log,
                    "--metrics-port", str(port))
    try:
        _wait_for(lambda: _counts(db)[0] >= n and kit.unacknowledged() == 0, 30,
                  f"all {n} events (stored at the kill: {killed_at})")
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                         timeout=5).read().decode()
        second.send_signal(signal.SIGTERM)
        assert second.wait(10) == 0  # a clean stop
    finally:
        second.kill()

    assert _counts(db) == (n, n)
    with closing(sqlite3.connect(db)) as conn:
        items = {row[0] for row in conn.execute("SELECT item_id FROM events")}
    assert items == {f"i{i}" for i in range(n)}
    assert 'tailored_consume_events_total{outcome="stored"}' in metrics
    assert "tailored_consume_lag " in metrics
    assert "tailored_consume_batch_duration_seconds_count" in metrics
    output = second_log.read_text()
    assert "SIGTERM: stopping" in output and "read " in output


# ---- no server needed ---------------------------------------------------------------------


class _Memory:
    name = origin = "memory"

    def __init__(self, *payloads: bytes) -> None:
        self.waiting = [Message(str(i), p) for i, p in enumerate(payloads)]
        self.acked: list[str] = []
        self.dead: list[tuple[str, str]] = []

        self.unsettled: dict[str, Message] = {}

    def read(self, max_count: int, block_ms: int) -> list[Message]:
        batch, self.waiting = self.waiting[:max_count], self.waiting[max_count:]
        self.unsettled.update((message.id, message) for message in batch)
        return batch

    def ack(self, ids: Any) -> None:
        self.acked.extend(ids)
        for message_id in ids:
            del self.unsettled[message_id]

    def dead_letter(self, message: Message, reason: str) -> None:
        self.dead.append((message.id, reason))
        del self.unsettled[message.id]

    def retry(self) -> None:
        self.waiting = [*self.unsettled.values(), *self.waiting]
        self.unsettled.clear()

    def lag(self) -> int:
        return len(self.waiting)

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("payload", "reason"), [
    (b"[]", "an empty batch"),
    (b"null", "got null"),
    (b"[1]", "event 1: field '(row)': should be a JSON object of fields, got int"),
    (_payload([_event(1)] * 3), "a batch holds at most 2 events (max_batch_events)"),
    (_payload(_event(1, event_type="teleport")), "unknown event type 'teleport'"),
    (_payload(_event(1, timestamp="2999-01-01T00:00:00Z")), "is in the future"),
])
def test_message_reasons(payload: bytes, reason: str) -> None:
    found = message_events(Message("1-0", payload), "memory", max_batch_events=2)
    assert isinstance(found, str) and reason in found


def test_events_of_users_without_consent_are_discarded_when_the_settings_say_so(
        store: Store) -> None:
    store.users.upsert([User(user_id="u1", consent={"personalization": False})])
    source = _Memory(_payload(_event(1, event_id="e1")), _payload(_event(2, event_id="e2")))

    report = consume(store, source, until_idle=True, discard_without_consent=True)

    assert (report.stored, report.discarded) == (1, 1)
    assert list(store.events.frame()["user_id"]) == ["u2"]
    assert source.acked == ["0", "1"]  # discarded, like over REST, and settled


@pytest.mark.parametrize(("url", "message"), [
    ("kafka://host:9092", "must start with redis://"),
    ("redis://127.0.0.1:6379/0?stream=events&topic=x", "unknown option 'topic'"),
    ("redis://127.0.0.1:6379/0?stream=a&stream=b", "given twice"),
    ("nats://127.0.0.1:4222?durable=a.b", "durable"),
])
def test_bad_source_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises((StreamError, ValueError), match=message):
        open_source(url)


def test_an_event_id_from_the_producer_wins_over_a_derived_one() -> None:
    events = message_events(Message("9-0", _payload(_event(1, event_id="mine"))), "memory")
    assert isinstance(events, list) and isinstance(events[0], Event)
    assert events[0].event_id == "mine"
