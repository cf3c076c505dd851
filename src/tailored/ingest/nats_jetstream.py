"""A NATS JetStream stream as a :class:`~tailored.ingest.streams.StreamSource`: a durable
pull consumer.

Producers publish one message per event (a JSON object) or batch (a JSON list) to a
subject the stream holds (``nats pub events.web '{"user_id": "u42", "item_id": "i7"}'``).
The durable consumer is created if missing (explicit acks, from the start of the stream);
with ``create=true`` the stream is too. Messages are fetched in batches and acknowledged
only once the store has committed their events (the acks are flushed to the server before
the next read). What was fetched and never acknowledged is delivered again after
``ack_wait_s`` (the consumer died), or at once when the consumer hands it back (``nak``)
on closing; after a failed batch the next read returns the same messages again (telling
JetStream they are in progress, which restarts their ``ack_wait``). A dead letter is
published, with JetStream's confirmation, to ``dead_subject`` (headers
``Tailored-Reason``, ``Tailored-Stream``, ``Tailored-Sequence``, ``Tailored-Subject``;
the raw message as the body, deduplicated by ``Nats-Msg-Id``), then terminated
(``term``: never delivered again).

nats-py is asynchronous; the source runs its client on an event loop in a thread of its
own, so the connection answers the server's pings while the store is busy.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tailored.ingest.streams import (
    Message,
    StreamError,
    StreamUnavailableError,
    masked,
    split_source_url,
)

logger = logging.getLogger("tailored.ingest.nats")

#: Messages a consumer may hold unacknowledged, when this source creates it.
MAX_ACK_PENDING = 20_000
#: Seconds to wait for the server beyond a read's own wait.
REQUEST_TIMEOUT_S = 10.0
#: Seconds to wait for the first connection (later ones are retried for ever).
CONNECT_TIMEOUT_S = 5.0
#: The longest header value sent with a dead letter (its reason is cut there).
MAX_REASON_HEADER = 4_000

if TYPE_CHECKING:
    from nats.aio.msg import Msg

_T = TypeVar("_T")


@functools.cache
def _unavailable_errors() -> tuple[type[BaseException], ...]:
    """What the client raises when the server cannot answer now (the `streams` extra is
    imported where used)."""
    import nats.errors
    import nats.js.errors

    return (nats.errors.ConnectionClosedError, nats.errors.NoServersError,
            nats.errors.StaleConnectionError, nats.errors.TimeoutError,
            nats.errors.NoRespondersError, nats.errors.ConnectionReconnectingError,
            nats.errors.OutboundBufferLimitError, nats.js.errors.ServiceUnavailableError,
            OSError, TimeoutError)


class NatsStreamConfig(BaseModel):
    """Where and how to read a JetStream stream; the query options of the source URL.

    ``nats://[user:password@]host:4222?stream=EVENTS&subject=events.>&durable=tailored``

    Attributes
    ----------
    url : str
        The server, without the query (``tls://`` for TLS).
    stream : str
        The JetStream stream.
    subject : str
        The subjects to read (the consumer's filter; wildcards allowed). With ``create``,
        the new stream holds these.
    durable : str
        The durable consumer; consumers bound to one durable share the messages.
    create : bool
        Create the stream (and the dead-letter stream) if missing; without it a missing
        stream is an error.
    ack_wait_s : float
        Seconds after which JetStream delivers again what was fetched and not
        acknowledged (set when this source creates the consumer).
    dead_subject : str
        Where dead letters are published (default ``tailored.dead.<stream>``); a stream
        other than ``stream`` must hold it (``create`` makes ``<stream>_DEAD``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    stream: str = Field("EVENTS", pattern=r"^[^.*>\s]+$")
    subject: str = Field("events.>", min_length=1)
    durable: str = Field("tailored", pattern=r"^[^.*>\s]+$")
    create: bool = False
    ack_wait_s: float = Field(30.0, gt=0)
    dead_subject: str = ""

    @model_validator(mode="after")
    def _dead_subject(self) -> NatsStreamConfig:
        if not self.dead_subject:
            object.__setattr__(self, "dead_subject", f"tailored.dead.{self.stream}")
        return self

    @classmethod
    def from_url(cls, url: str) -> NatsStreamConfig:
        """The configuration a source URL spells.

        Examples
        --------
        >>> config = NatsStreamConfig.from_url(
        ...     "nats://127.0.0.1:4222?stream=EVENTS&subject=events.>&create=true")
        >>> config.url, config.subject, config.durable, config.create, config.dead_subject
        ('nats://127.0.0.1:4222', 'events.>', 'tailored', True, 'tailored.dead.EVENTS')
        """
        options = [name for name in cls.model_fields if name != "url"]
        server, given = split_source_url(url, options)
        return cls.model_validate({"url": server, **given})


class NatsStreamSource:
    """Messages of a JetStream stream, fetched through a durable pull consumer."""

    def __init__(self, config: NatsStreamConfig) -> None:
        _unavailable_errors()  # no `streams` extra: ImportError before any thread starts
        self.config = config
        self.name = (f"{masked(config.url)} stream {config.stream!r}, subject "
                     f"{config.subject!r}, durable {config.durable!r}")
        self.origin = f"nats:{config.stream}"
        self._unsettled: dict[str, Msg] = {}
        self._again: list[str] = []  # unsettled ones to read again (after retry())
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats-client",
                                        daemon=True)
        self._thread.start()
        self._nc: Any = None
        self._last_error: Exception | None = None
        try:
            self._run(self._open(), CONNECT_TIMEOUT_S + REQUEST_TIMEOUT_S * 3)
        except BaseException:
            self.close()
            raise

    # ---- plumbing: run a coroutine on the client's loop --------------------------------------

    def _run(self, coroutine: Coroutine[Any, Any, _T], timeout: float = REQUEST_TIMEOUT_S,
             ) -> _T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        with self._unavailable():
            try:
                return future.result(timeout)
            except TimeoutError:
                future.cancel()
                raise

    @contextmanager
    def _unavailable(self) -> Iterator[None]:
        try:
            yield
        except _unavailable_errors() as error:
            raise StreamUnavailableError(
                f"NATS at {masked(self.config.url)} cannot answer: "
                f"{type(error).__name__} {error}".strip()) from error

    async def _log_error(self, error: Exception) -> None:
        self._last_error = error
        logger.warning("NATS: %s: %s", type(error).__name__, error)

    async def _open(self) -> None:
        import nats
        import nats.js.errors

        config = self.config
        try:
            self._nc = await asyncio.wait_for(nats.connect(
                config.url, connect_timeout=2, max_reconnect_attempts=-1,
                reconnect_time_wait=0.5, error_cb=self._log_error,
                name=f"tailored consume {config.durable}"), CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise StreamUnavailableError(
                f"cannot connect to NATS at {masked(config.url)} within "
                f"{CONNECT_TIMEOUT_S:g} s ({self._last_error or 'no answer'}); is the server "
                "running, with JetStream on (nats-server -js)?") from None
        self._js = self._nc.jetstream()
        try:
            info = await self._js.stream_info(config.stream)
        except nats.js.errors.NotFoundError:
            if not config.create:
                raise StreamError(
                    f"the JetStream stream {config.stream!r} does not exist: create it "
                    "(nats stream add), or add create=true to the source URL") from None
            info = await self._js.add_stream(name=config.stream, subjects=[config.subject])
        created = info.created.isoformat() if info.created else ""
        # A stream deleted and made again numbers from 1 again: its ids must differ.
        self.origin = f"nats:{config.stream}:{created}"
        await self._check_dead_letters()
        try:
            consumer = await self._js.consumer_info(config.stream, config.durable)
        except nats.js.errors.NotFoundError:
            from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

            await self._js.add_consumer(config.stream, ConsumerConfig(
                name=config.durable, durable_name=config.durable,
                ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
                ack_wait=config.ack_wait_s, max_ack_pending=MAX_ACK_PENDING,
                filter_subject=config.subject))
        else:
            if consumer.config.filter_subject != config.subject:
                raise StreamError(
                    f"the durable consumer {config.durable!r} of {config.stream!r} reads "
                    f"{consumer.config.filter_subject!r}, not {config.subject!r}: name "
                    "another durable, or delete this one (nats consumer rm)")
        self._sub = await self._js.pull_subscribe_bind(
            consumer=config.durable, stream=config.stream)

    async def _check_dead_letters(self) -> None:
        import nats.js.errors

        config = self.config
        try:
            holder = await self._js.find_stream_name_by_subject(config.dead_subject)
        except nats.js.errors.NotFoundError:
            if not config.create:
                raise StreamError(
                    f"no JetStream stream holds the dead-letter subject "
                    f"{config.dead_subject!r}: create one (nats stream add "
                    f"{config.stream}_DEAD --subjects '{config.dead_subject}'), or add "
                    "create=true to the source URL") from None
            await self._js.add_stream(name=f"{config.stream}_DEAD",
                                      subjects=[config.dead_subject])
            return
        if holder == config.stream:
            raise StreamError(
                f"the dead-letter subject {config.dead_subject!r} is in the stream "
                f"{config.stream!r} itself: dead letters would be read again; pick another "
                "with dead_subject=")

    # ---- the source ---------------------------------------------------------------------------

    def read(self, max_count: int, block_ms: int) -> list[Message]:
        wait = max(block_ms / 1000, 0.01)
        return self._run(self._read(max_count, wait), wait + REQUEST_TIMEOUT_S)

    async def _read(self, max_count: int, wait: float) -> list[Message]:
        if self._again:  # a batch failed: read its messages again, still ours
            ids, self._again = self._again[:max_count], self._again[max_count:]
            again = [(i, self._unsettled[i]) for i in ids if i in self._unsettled]
            for _, msg in again:
                await msg.in_progress()  # the ack_wait clock starts again
            await self._nc.flush(REQUEST_TIMEOUT_S)
            return [Message(message_id, msg.data) for message_id, msg in again]
        try:
            fetched = await self._sub.fetch(max_count, timeout=wait)
        except TimeoutError:  # nats-py raises its own and asyncio's (both these): none came
            return []
        messages = []
        for msg in fetched:
            message_id = str(msg.metadata.sequence.stream)
            self._unsettled[message_id] = msg
            messages.append(Message(message_id, msg.data))
        return messages

    async def _hand_back(self) -> None:
        while self._unsettled:  # one at a time: a message is never nak'ed twice
            _, msg = self._unsettled.popitem()
            await msg.nak()  # if this fails, JetStream delivers it again after ack_wait
        await self._nc.flush(REQUEST_TIMEOUT_S)

    def ack(self, ids: Sequence[str]) -> None:
        if ids:
            self._run(self._ack(ids))

    def retry(self) -> None:
        self._again = list(self._unsettled)

    async def _ack(self, ids: Sequence[str]) -> None:
        for message_id in ids:
            msg = self._unsettled.pop(message_id, None)
            if msg is not None:
                await msg.ack()
        await self._nc.flush(REQUEST_TIMEOUT_S)  # the server has the acks on return

    def dead_letter(self, message: Message, reason: str) -> None:
        self._run(self._dead_letter(message, reason))

    async def _dead_letter(self, message: Message, reason: str) -> None:
        msg = self._unsettled.pop(message.id, None)
        one_line = " ".join(reason.split())[:MAX_REASON_HEADER]
        headers = {
            "Nats-Msg-Id": f"{self.origin}:{message.id}",  # a redelivery is dead once
            "Tailored-Reason": one_line,
            "Tailored-Stream": self.config.stream,
            "Tailored-Sequence": message.id,
            "Tailored-Subject": msg.subject if msg is not None else "",
        }
        await self._js.publish(self.config.dead_subject, message.data, headers=headers,
                               timeout=REQUEST_TIMEOUT_S)  # confirmed: it is stored
        if msg is not None:
            await msg.term()
            await self._nc.flush(REQUEST_TIMEOUT_S)

    def lag(self) -> int | None:
        info = self._run(self._sub.consumer_info())
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    def close(self) -> None:
        """Hand back what is unsettled, close the connection and stop the loop."""
        try:
            if self._nc is not None and not self._nc.is_closed:
                if self._unsettled and self._nc.is_connected:
                    self._run(self._hand_back())
                self._run(self._nc.close())
        except StreamUnavailableError as error:
            logger.warning("closing the NATS connection: %s", error)
        finally:
            with suppress(Exception):  # whatever the client left running
                asyncio.run_coroutine_threadsafe(_cancel_tasks(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            if not self._thread.is_alive():
                self._loop.close()


async def _cancel_tasks() -> None:
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
