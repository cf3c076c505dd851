"""BLAS thread limits that cost microseconds, not milliseconds.

``threadpoolctl.threadpool_limits`` scans the process's loaded libraries on every call
(about 5 ms); a request path cannot pay that. One controller, built on first use,
remembers them.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import cache
from typing import Any

from threadpoolctl import ThreadpoolController


@cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


def blas_threads(limit: int | None) -> AbstractContextManager[Any]:
    """Limit BLAS to ``limit`` threads inside the block (``None``: leave as is).

    Examples
    --------
    >>> with blas_threads(1):
    ...     pass
    """
    return _controller().limit(limits=limit, user_api="blas")


def all_threads(limit: int | None) -> AbstractContextManager[Any]:
    """Limit every known thread pool (BLAS and OpenMP) inside the block."""
    return _controller().limit(limits=limit)
