"""Errors that tailored raises on purpose; each message says what, where and what to do."""

from __future__ import annotations


class TailoredError(Exception):
    """Base class for every error tailored raises deliberately."""


class NotFittedError(TailoredError, AttributeError):
    """A model method that needs learned state was called before ``fit``."""


class InvalidDataError(TailoredError, ValueError):
    """Input data (a file, a frame, a request body) failed validation."""


class ModelNotFoundError(TailoredError, LookupError):
    """No trained model version matches the request."""


class NotFoundError(TailoredError, LookupError):
    """A named user, item or resource does not exist."""
