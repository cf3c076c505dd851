"""tailored's errors as HTTP answers: a 4xx (or 503) with ``{"detail": "..."}``, never a 500."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from tailored.errors import InvalidDataError, ModelNotFoundError, NotFittedError, TailoredError

from .state import ModelLoadError

#: The status for each error class; the most specific class that matches wins.
STATUS_BY_ERROR: dict[type[Exception], int] = {
    InvalidDataError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    ModelNotFoundError: status.HTTP_404_NOT_FOUND,
    NotFittedError: status.HTTP_503_SERVICE_UNAVAILABLE,
    ModelLoadError: status.HTTP_409_CONFLICT,
    TailoredError: status.HTTP_400_BAD_REQUEST,
}


def status_for(error: Exception) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return status.HTTP_400_BAD_REQUEST


async def _tailored_error(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=status_for(error))


def _json_safe(value: Any) -> Any:
    """``value`` with non-finite floats and exceptions as text (JSON has no NaN, and a body
    may hold one; a validator's exception is only useful as its message)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, BaseException):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's 422 answer (each error with its ``loc``), safe for any input echoed back.

    The default handler fails with a 500 when the refused input was ``NaN`` or
    ``Infinity`` (which Python's JSON parser accepts in a request body).
    """
    assert isinstance(error, RequestValidationError)
    return JSONResponse({"detail": jsonable_encoder(_json_safe(error.errors()))},
                        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    for error_class in STATUS_BY_ERROR:
        app.add_exception_handler(error_class, _tailored_error)
