"""A webhook receiver for tests: an HTTP server on 127.0.0.1 in a thread that checks
every request's signature with :func:`~tailored.signing.verify_signature`, keeps
what it received and answers what the test says. It can be stopped and started again on
the same port, as a receiver that goes down for a while and comes back."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from tailored.signing import verify_signature


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    event: str
    delivery_id: str
    timestamp: str
    signature: str
    body: bytes
    verified: bool  # the signature matched the receiver's secret, within the tolerance
    answered: int

    @property
    def payload(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


class LoopbackReceiver:
    """Receives webhooks on ``127.0.0.1:port`` (a free port when 0).

    ``secret`` is what signatures are checked with; ``status`` what it answers;
    ``delay`` seconds it waits before answering (longer than the sender's timeout: no
    answer).
    """

    def __init__(self, secret: str = "", *, port: int = 0) -> None:
        self.secret = secret
        self.status = 200
        self.delay = 0.0
        self.port = port
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def start(self) -> Self:
        """Listen (again on the same port, after :meth:`stop`)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.status
                timestamp = self.headers.get("X-Tailored-Timestamp", "")
                signature = self.headers.get("X-Tailored-Signature", "")
                with receiver._lock:
                    receiver._received.append(Received(
                        self.path, self.headers.get("X-Tailored-Event", ""),
                        self.headers.get("X-Tailored-Delivery", ""), timestamp, signature,
                        body, verify_signature(receiver.secret, timestamp, body, signature),
                        status))
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender gave up waiting
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet tests

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.01}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: connections to the port are refused until :meth:`start`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Self:
        return self if self._server is not None else self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def wait_until(condition: Any, timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll ``condition()`` until it is truthy and return it; AssertionError after
    ``timeout`` seconds (a test that waits on a background thread)."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {condition}")
        time.sleep(interval)
