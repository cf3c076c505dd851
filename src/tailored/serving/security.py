"""What the API never shows (passwords), where it may listen open, and how much it reads
(the request body limit)."""

from __future__ import annotations

import ipaddress
import logging
import re

from fastapi import HTTPException, status
from fastapi.responses import JSONResponse
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

_PASSWORD = re.compile(r"^([^:/?#]+://[^:/?#@]*):[^@]*@")


def mask_password(url: str) -> str:
    """``url`` with any password replaced by ``***``.

    Examples
    --------
    >>> mask_password("postgresql://tailored:s3cret@db:5432/tailored")
    'postgresql://tailored:***@db:5432/tailored'
    >>> mask_password("sqlite:///tailored.db")
    'sqlite:///tailored.db'
    """
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _PASSWORD.sub(r"\1:***@", url)


def describe_failure(error: BaseException) -> str:
    """A store failure in one line fit for a log: the driver's error class and first line.

    SQLAlchemy's own text ends with the statement and its parameters, which hold user and
    item ids (personal data): never logged.

    Examples
    --------
    >>> import sqlalchemy.exc
    >>> error = sqlalchemy.exc.OperationalError("INSERT ...", {"user_id": "alice"},
    ...                                         Exception("database is locked"))
    >>> describe_failure(error)
    'Exception: database is locked'
    """
    cause = getattr(error, "orig", None) or error
    first_line = (str(cause).splitlines() or [""])[0][:200]
    return f"{type(cause).__name__}: {first_line}"


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host``.

    Examples
    --------
    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("::1")
    (True, True, True)
    >>> is_loopback("0.0.0.0"), is_loopback("192.168.1.5"), is_loopback("example.org")
    (False, False, False)
    """
    if host in _LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def body_too_large(limit: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        detail=f"the request body is larger than {limit:,} bytes (max_body_bytes); send "
               "less at once, e.g. smaller batches")


class BodyLimitMiddleware:
    """Refuses request bodies over ``limit`` bytes with a 413, before they are read whole.

    A declared ``Content-Length`` over the limit is refused at once; a body sent without
    one (chunked) is counted as it arrives and refused when it passes the limit.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await answer_early(scope, receive, send, status.HTTP_413_CONTENT_TOO_LARGE,
                               str(body_too_large(self.limit).detail))
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # An HTTPException: FastAPI answers it as it is, wherever the body is read.
                    raise body_too_large(self.limit)
            return message

        await self.app(scope, receive if declared == 0 else counting_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def answer_early(scope: Scope, receive: Receive, send: Send, status_code: int,
                       detail: str, headers: dict[str, str] | None = None) -> None:
    """Answer from a middleware, without reading the body (the connection closes after
    it, so an unread body is not taken for the next request)."""
    response = JSONResponse({"detail": detail}, status_code=status_code,
                            headers={**(headers or {}), "Connection": "close"})
    await response(scope, receive, send)


#: Paths that name a user: their id is personal data, and an access log outlives any
#: erasure, so the log shows the route instead.
_USER_PATH = re.compile(r"^(/recommendations/|/users/)(?!\{user_id\})[^/?]+")


class RedactUserIds(logging.Filter):
    """Writes ``{user_id}`` for the user id in logged request paths (uvicorn's access
    log passes the path as the third argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            redacted = _USER_PATH.sub(r"\1{user_id}", args[2])
            if redacted != args[2]:
                record.args = (*args[:2], redacted, *args[3:])
        return True


def redact_access_log(logger: logging.Logger) -> None:
    """Add :class:`RedactUserIds` to ``logger`` once."""
    if not any(isinstance(f, RedactUserIds) for f in logger.filters):
        logger.addFilter(RedactUserIds())
