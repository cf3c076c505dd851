"""A Redis stream as a :class:`~tailored.ingest.streams.StreamSource`: a consumer group.

Producers add one entry per message, its JSON in the field ``data``::

    XADD events * data '{"user_id": "u42", "item_id": "i7", "event_type": "click"}'

The consumer group is created if missing (``MKSTREAM``, reading from the start of the
stream, so nothing added before the first consumer started is skipped). Messages are
read with ``XREADGROUP`` and acknowledged with ``XACK`` only once the store has
committed their events. What a consumer read but never acknowledged stays in the group's
pending list: the same consumer (same ``consumer`` name) reads it again first when it
starts or after a failed batch, and any consumer takes it over with ``XAUTOCLAIM`` once
it has been idle ``claim_idle_ms`` (its consumer died). A dead letter is an entry of the
stream ``<stream>:dead`` (fields ``reason``, ``id``, ``stream``, ``group``,
``consumer``, ``data``), added and acknowledged in one ``MULTI`` transaction.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tailored.ingest.streams import (
    Message,
    StreamError,
    StreamUnavailableError,
    masked,
    split_source_url,
)

#: The entry field that holds a message's JSON.
DATA_FIELD = b"data"
#: How often, at most, to look for messages idle past ``claim_idle_ms`` (seconds).
CLAIM_EVERY_S = 1.0

_T = TypeVar("_T")


def default_consumer() -> str:
    """The consumer name when none is given: the host's name, so a consumer restarted on
    the same host reads what it left unacknowledged at once."""
    return socket.gethostname() or f"pid-{os.getpid()}"


class RedisStreamConfig(BaseModel):
    """Where and how to read a Redis stream; the query options of the source URL.

    ``redis://[:password@]host:6379/0?stream=events&group=tailored&consumer=web-1``

    Attributes
    ----------
    url : str
        The server, without the query (``rediss://`` for TLS).
    stream : str
        The stream's key.
    group : str
        The consumer group; consumers of one group share the messages.
    consumer : str
        This consumer's name in the group (default: the host's name). Give each process
        on one host a name of its own.
    claim_idle_ms : int
        Take over the messages another consumer of the group read but left
        unacknowledged this long (it died).
    dead_stream : str
        Where dead letters go (default ``<stream>:dead``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    stream: str = Field("events", min_length=1)
    group: str = Field("tailored", min_length=1)
    consumer: str = Field(default_factory=default_consumer, min_length=1)
    claim_idle_ms: int = Field(60_000, ge=1)
    dead_stream: str = ""

    @model_validator(mode="after")
    def _dead_stream(self) -> RedisStreamConfig:
        if not self.dead_stream:
            object.__setattr__(self, "dead_stream", f"{self.stream}:dead")
        if self.dead_stream == self.stream:
            raise ValueError("dead_stream must differ from stream: dead letters would be "
                             "read again")
        return self

    @classmethod
    def from_url(cls, url: str) -> RedisStreamConfig:
        """The configuration a source URL spells.

        Examples
        --------
        >>> config = RedisStreamConfig.from_url(
        ...     "redis://127.0.0.1:6379/0?stream=clicks&consumer=web-1")
        >>> config.url, config.stream, config.group, config.consumer, config.dead_stream
        ('redis://127.0.0.1:6379/0', 'clicks', 'tailored', 'web-1', 'clicks:dead')
        """
        options = [name for name in cls.model_fields if name != "url"]
        server, given = split_source_url(url, options)
        return cls.model_validate({"url": server, **given})


@contextmanager
def _unavailable(name: str) -> Iterator[None]:
    import redis  # the `streams` extra, imported where used

    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as error:
        raise StreamUnavailableError(f"Redis at {name} cannot be reached: {error}") from error


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisStreamSource:
    """Messages of a Redis stream, read as one consumer of a consumer group."""

    def __init__(self, config: RedisStreamConfig) -> None:
        import redis  # the `streams` extra, imported where used

        self.config = config
        self.origin = f"redis:{config.stream}"
        self.name = (f"{masked(config.url)} stream {config.stream!r}, group {config.group!r}, "
                     f"consumer {config.consumer!r}")
        self.client = redis.Redis.from_url(config.url)
        # What this consumer left unacknowledged is read first, from this id on (None:
        # all read); a batch in flight is pending too, so the reads go past it.
        self._pending_after: str | None = "0"
        self._claim_cursor = "0-0"
        self._next_claim = 0.0
        with _unavailable(self.name):
            try:
                self.client.xgroup_create(config.stream, config.group, id="0", mkstream=True)
            except redis.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise StreamError(f"cannot create the consumer group {config.group!r} "
                                      f"of {config.stream!r}: {error}") from error

    def _call(self, call: Callable[[], _T]) -> _T:
        with _unavailable(self.name):
            return call()

    def read(self, max_count: int, block_ms: int) -> list[Message]:
        config = self.config
        while (after := self._pending_after) is not None:
            entries = self._entries(self._call(lambda: self.client.xreadgroup(
                config.group, config.consumer, {config.stream: after}, count=max_count)))
            self._pending_after = _text(entries[-1][0]) if entries else None
            if messages := self._messages(entries):
                return messages
        if time.monotonic() >= self._next_claim:
            cursor, claimed, *_ = self._call(lambda: self.client.xautoclaim(
                config.stream, config.group, config.consumer,
                min_idle_time=config.claim_idle_ms, start_id=self._claim_cursor,
                count=max_count))
            self._claim_cursor = _text(cursor)
            if self._claim_cursor == "0-0":  # looked through the whole pending list
                self._next_claim = time.monotonic() + CLAIM_EVERY_S
            if messages := self._messages(claimed):
                return messages
        return self._messages(self._entries(self._call(lambda: self.client.xreadgroup(
            config.group, config.consumer, {config.stream: ">"}, count=max_count,
            block=block_ms or None))))

    @staticmethod
    def _entries(response: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
        return list(response[0][1]) if response else []

    def _messages(self, entries: Sequence[tuple[bytes, dict[bytes, bytes] | None]],
                  ) -> list[Message]:
        messages = []
        deleted = []
        for raw_id, entry in entries:
            message_id = _text(raw_id)
            if not entry:  # deleted from the stream (XDEL, trimmed) while pending
                deleted.append(message_id)
                continue
            data = entry.get(DATA_FIELD)
            if data is None:
                names = ", ".join(sorted(_text(key) for key in entry))
                messages.append(Message(message_id, b"", problem=(
                    f"the entry has no 'data' field (its fields: {names}); put the event's "
                    "JSON, or a JSON list of events, in a field named 'data'")))
            else:
                messages.append(Message(message_id, data))
        if deleted:  # nothing left to store: settle them
            self._call(lambda: self.client.xack(self.config.stream, self.config.group,
                                                *deleted))
        return messages

    def ack(self, ids: Sequence[str]) -> None:
        if ids:
            self._call(lambda: self.client.xack(self.config.stream, self.config.group, *ids))

    def retry(self) -> None:
        self._pending_after = "0"

    def dead_letter(self, message: Message, reason: str) -> None:
        config = self.config
        fields: dict[str, str | bytes] = {
            "reason": reason, "id": message.id, "stream": config.stream, "group": config.group,
            "consumer": config.consumer, "at": datetime.now(UTC).isoformat(timespec="seconds")}
        if message.problem is None:
            fields["data"] = message.data

        def move() -> None:
            with self.client.pipeline(transaction=True) as pipe:  # both or neither
                pipe.xadd(config.dead_stream, fields)  # type: ignore[arg-type]
                pipe.xack(config.stream, config.group, message.id)
                pipe.execute()

        self._call(move)

    def lag(self) -> int | None:
        groups = self._call(lambda: self.client.xinfo_groups(self.config.stream))
        for group in groups:
            if _text(group["name"]) == self.config.group:
                waiting = group.get("lag")  # None when Redis cannot tell (after XDEL)
                return None if waiting is None else int(waiting) + int(group["pending"])
        return None

    def close(self) -> None:
        self.client.close()
