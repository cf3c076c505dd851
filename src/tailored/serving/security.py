"""What the API exposes while it has no authentication, and what it never shows."""

from __future__ import annotations

import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

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


def open_access_warning(host: str = "127.0.0.1") -> str:
    """What to tell an operator at startup: the API has no authentication (yet)."""
    text = ("the tailored API has no authentication: anyone who can reach it can read "
            "recommendations, write events and promote models; let it listen on 127.0.0.1 "
            "only")
    if host not in _LOOPBACK:
        text += (f" (it is set to listen on {host}, which other machines may reach; "
                 "set TAILORED_HOST=127.0.0.1 or put it behind an authenticating proxy)")
    return text
