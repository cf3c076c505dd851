"""tailored's errors as HTTP answers: a 4xx (or 503) with ``{"detail": "..."}``, never a 500."""

from __future__ import annotations

from fastapi import FastAPI, Request, status
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


def add_error_handlers(app: FastAPI) -> None:
    for error_class in STATUS_BY_ERROR:
        app.add_exception_handler(error_class, _tailored_error)
