"""tailored's errors as HTTP answers: a 4xx (or 503) with ``{"detail": "..."}``, never a 500."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from tailored.errors import InvalidDataError, ModelNotFoundError, NotFittedError, TailoredError
from tailored.store import STORE_UNAVAILABLE

from .security import describe_failure
from .state import ModelLoadError

logger = logging.getLogger("tailored.serving")

#: The status for each error class; the most specific class that matches wins.
STATUS_BY_ERROR: dict[type[Exception], int] = {
    InvalidDataError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    ModelNotFoundError: status.HTTP_404_NOT_FOUND,
    NotFittedError: status.HTTP_503_SERVICE_UNAVAILABLE,
    ModelLoadError: status.HTTP_409_CONFLICT,
    TailoredError: status.HTTP_400_BAD_REQUEST,
}


def check_batch_size(size: int, limit: int, what: str) -> None:
    """413 for a batch of more than ``limit`` (the ``max_batch_events`` setting) ``what``."""
    if size > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"a batch holds at most {limit:,} {what} (max_batch_events), this one has "
                   f"{size:,}; split it into smaller batches")


def status_for(error: Exception) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return status.HTTP_400_BAD_REQUEST


async def _tailored_error(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=status_for(error))


#: How much of a refused input a 422 repeats: the start of long texts, the first entries
#: of large mappings and lists (a 20 MB context is not sent back whole).
ECHO_TEXT = 200
ECHO_ENTRIES = 20


def _json_safe(value: Any, *, clip: bool = False) -> Any:
    """``value`` with non-finite floats and exceptions as text (JSON has no NaN, and a body
    may hold one; a validator's exception is only useful as its message), and lone
    surrogates (``"\\ud800"`` is valid JSON, not valid UTF-8) escaped, in keys too.
    With ``clip``, long texts and large containers are cut short."""
    if isinstance(value, str):
        if clip and len(value) > ECHO_TEXT:
            value = f"{value[:ECHO_TEXT]}... ({len(value):,} characters)"
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, BaseException):
        return str(value)
    if isinstance(value, dict):
        entries = list(value.items())
        if clip and len(entries) > ECHO_ENTRIES:
            entries = [*entries[:ECHO_ENTRIES], ("...", f"{len(value):,} keys in all")]
        return {_json_safe(key, clip=clip): _json_safe(item, clip=clip)
                for key, item in entries}
    if isinstance(value, list | tuple):
        items = list(value)
        if clip and len(items) > ECHO_ENTRIES:
            items = [*items[:ECHO_ENTRIES], f"... {len(value):,} entries in all"]
        return [_json_safe(item, clip=clip) for item in items]
    return value


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's 422 answer (each error with its ``loc``), safe for any input echoed back,
    and the refused ``input`` cut short.

    The default handler fails with a 500 when the refused input was ``NaN`` or
    ``Infinity`` (which Python's JSON parser accepts in a request body).
    """
    assert isinstance(error, RequestValidationError)
    errors = [{key: _json_safe(item, clip=key == "input") for key, item in found.items()}
              for found in error.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)},
                        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


#: Seconds a client is told to wait when the store is busy or down.
RETRY_AFTER_SECONDS = 1


async def _store_unavailable(request: Request, error: Exception) -> JSONResponse:
    """503 with ``Retry-After`` when the store is locked (SQLite under a long write),
    restarting or unreachable: nothing was written, and the same request may be sent
    again. The log names the failure, never the statement's parameters (user and item
    ids are personal data)."""
    logger.error("store unavailable on %s %s: %s", request.method,
                 getattr(request.scope.get("route"), "path", "?"), describe_failure(error))
    return JSONResponse(
        {"detail": "the store is busy or unreachable, and nothing of this request was "
                   f"stored; send it again in {RETRY_AFTER_SECONDS} s or so"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def allowed_methods(app: Any, path: str) -> list[str]:
    """Every method the API documents for ``path`` (HEAD along with GET)."""
    table = getattr(app.state, "allow_table", None)
    if table is None:  # built once, from the spec: the routes' own nesting is FastAPI's
        table = [(compile_path(template)[0], {method.upper() for method in operations})
                 for template, operations in app.openapi().get("paths", {}).items()]
        app.state.allow_table = table
    methods: set[str] = set()
    for pattern, documented in table:
        if pattern.match(path):
            methods |= documented
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


async def _http_error(request: Request, error: Exception) -> Any:
    """FastAPI's answer, with an ``Allow`` header on a 405 that lists the methods of every
    route for the path (Starlette names only the first route's)."""
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        allowed = allowed_methods(request.app, request.url.path)
        if allowed:
            error = StarletteHTTPException(error.status_code, error.detail,
                                           headers={"Allow": ", ".join(allowed)})
    return await http_exception_handler(request, error)


_ERROR_MESSAGE = {"title": "ErrorMessage", "type": "object", "required": ["detail"],
                  "properties": {"detail": {"type": "string",
                                            "description": "What is wrong and what to do."}}}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/ErrorMessage"}}}}


def document_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI ``spec`` with the errors every route may answer spelled out.

    A 422 holds either pydantic's list of errors or one message (a
    :class:`~tailored.errors.InvalidDataError`); a route with an id in its path may answer
    404; a route with a body may answer 413 (``max_body_bytes``).
    """
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorMessage", _ERROR_MESSAGE)
    validation = schemas.get("HTTPValidationError", {}).get("properties", {})
    if "detail" in validation and "anyOf" not in validation["detail"]:
        detail = validation["detail"]
        validation["detail"] = {"title": "Detail", "anyOf": [
            {key: value for key, value in detail.items() if key != "title"},
            {"type": "string"}]}
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if any(p.get("in") == "path" for p in operation.get("parameters", [])):
                responses.setdefault("404", _error_response("Not found."))
            if "requestBody" in operation:
                responses.setdefault("400", _error_response(
                    "The body cannot be parsed (not UTF-8 JSON)."))
                responses.setdefault("413", _error_response(
                    "The body is larger than `max_body_bytes`."))
    return spec


def documented_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi`` with :func:`document_errors` applied once."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(original())
        return app.openapi_schema

    return openapi


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for unavailable in STORE_UNAVAILABLE:
        app.add_exception_handler(unavailable, _store_unavailable)
    app.openapi = documented_openapi(app)  # type: ignore[method-assign]
    for error_class in STATUS_BY_ERROR:
        app.add_exception_handler(error_class, _tailored_error)
