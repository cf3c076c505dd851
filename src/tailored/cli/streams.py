"""`tailored consume`: events from a Redis stream or a NATS JetStream stream into the store."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from tailored.cli.common import StoreOption, _settings, _store, console

SOURCE_HELP = (
    "The stream, as a URL: redis://host:6379/0?stream=events&group=tailored "
    "[&consumer=NAME&claim_idle_ms=60000&dead_stream=events:dead] (rediss:// for TLS), or "
    "nats://host:4222?stream=EVENTS&subject=events.>&durable=tailored "
    "[&create=true&ack_wait_s=30&dead_subject=tailored.dead.EVENTS] (tls:// for TLS). "
    "Quote it in a shell.")


def consume(
    source: Annotated[str, typer.Option("--from", help=SOURCE_HELP, show_default=False)],
    batch: Annotated[int, typer.Option(
        min=1, max=10_000, help="Messages per read; their events are stored in one "
        "transaction, then acknowledged.")] = 500,
    block_ms: Annotated[int, typer.Option(
        min=0, max=60_000, help="How long a read waits for new messages (also the longest "
        "wait for a stop).")] = 1_000,
    metrics_port: Annotated[int | None, typer.Option(
        min=1, max=65_535, help="Serve Prometheus metrics on this port (default: none).")]
        = None,
    metrics_host: Annotated[str, typer.Option(
        help="The interface the metrics listen on.")] = "127.0.0.1",
    until_idle: Annotated[bool, typer.Option(
        "--until-idle", help="Stop once a read finds nothing new (drain and exit).")] = False,
    store: StoreOption = None,
) -> None:
    """Consume events from a Redis stream or NATS JetStream into the store, until Ctrl-C or
    SIGTERM.

    A message holds one event (a JSON object) or a batch (a JSON list), checked as
    POST /events checks them. Acknowledged only after the store commits (at least once;
    idempotent by event_id, derived from the message id when missing); malformed
    messages go to the dead letters with their reason.
    """
    from tailored.ingest.streams import StreamMetrics, open_source
    from tailored.ingest.streams import consume as consume_stream

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = _settings(store)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():  # a second signal: stop now
            raise KeyboardInterrupt
        console.print(f"{signal.Signals(signum).name}: stopping after this batch")
        stop.set()

    metrics = StreamMetrics()
    if metrics_port is not None:
        from prometheus_client import start_http_server

        try:
            start_http_server(metrics_port, addr=metrics_host, registry=metrics.registry)
        except OSError as error:
            raise typer.BadParameter(f"cannot serve metrics on {metrics_host}:{metrics_port}: "
                                     f"{error}", param_hint="--metrics-port") from None
        console.print(f"metrics on http://{metrics_host}:{metrics_port}/metrics")
    handlers = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with _store(settings) as opened:
            opened_source = open_source(source)
            try:
                console.print(f"consuming {opened_source.name} into {opened.url}; "
                              "Ctrl-C stops", soft_wrap=True)
                report = consume_stream(
                    opened, opened_source, batch=batch, block_ms=block_ms,
                    event_weights=settings.event_weights,
                    max_batch_events=settings.max_batch_events,
                    discard_without_consent=settings.events_without_consent == "discard",
                    stop=stop, until_idle=until_idle, metrics=metrics)
            finally:
                opened_source.close()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    console.print(f"{report} in {report.seconds:.1f}s", soft_wrap=True)
