"""API keys on every route: ``require_scope("read")`` and the typed ``ReadAccess``,
``WriteAccess`` and ``AdminAccess`` dependencies.

A router protects its routes with one line::

    router = APIRouter(dependencies=[Depends(require_scope("write"))],
                       responses=AUTH_RESPONSES)

or a route asks for the caller as a typed parameter (``caller: AdminAccess``).
Scopes are ordered: ``admin`` grants ``write``, which grants ``read``.

- ``read``: recommendations, similar items, item reads, metrics (a frontend's key).
- ``write``: events, catalog and user changes, user reads (a shop backend's key).
- ``admin``: models (promote, roll back) and keys (an operator's key).

A key is sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Until a store
holds its first key the service is *open* (every route answers without a key); it
serves open on 127.0.0.1 only, unless ``allow_open_access`` says otherwise. Once a key
exists, every route but ``/health`` (and the docs) needs one, revoked keys included in
the count, so revoking the last key never opens the service.

Verifying a key costs a store read, so verified keys are trusted for
``key_cache_seconds`` (5 s by default) by digest: a revocation applies within that time
in every process, and at once in the process that revoked it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from tailored.errors import TailoredError
from tailored.settings import Settings
from tailored.store import Store
from tailored.store.keys import SCOPES, ApiKey, Scope, secret_digest

from .security import is_loopback

#: At most this many verified keys are remembered (a process sees a handful).
_CACHE_SIZE = 1024

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKeyHeader",
                              description="An API key from `tailored keys create`.")
bearer = HTTPBearer(auto_error=False, scheme_name="BearerKey",
                    description="An API key from `tailored keys create`, as a bearer token.")

#: What the OpenAPI spec documents for every protected route.
AUTH_RESPONSES: dict[int | str, dict[str, str]] = {
    401: {"description": "No API key, or one that is unknown or revoked."},
    403: {"description": "The API key lacks the scope this route needs."},
}


class OpenAccessRefusedError(TailoredError, RuntimeError):
    """The service would listen beyond 127.0.0.1 with no API key to ask for."""


@dataclass(frozen=True)
class Caller:
    """Who is calling: their key, or None while the service is open (no key exists)."""

    key: ApiKey | None

    @property
    def name(self) -> str:
        return "open access" if self.key is None else f"{self.key.name} ({self.key.key_id})"


class KeyVerifier:
    """Checks keys against the store, remembering verified ones for a few seconds.

    Parameters
    ----------
    store
        Where the keys are.
    ttl_seconds
        How long a verified key, and the absence of any key, are trusted.
    """

    def __init__(self, store: Store, ttl_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._verified: dict[str, tuple[ApiKey, float]] = {}
        self._keys_exist = False
        self._checked_open_at = -float("inf")
        self._lock = threading.Lock()

    def is_open(self) -> bool:
        """Whether no key was ever created (then no route asks for one)."""
        known = self.known_open()
        if known is not None:
            return known
        self._keys_exist = self.store.keys.count() > 0
        self._checked_open_at = self._clock()
        return not self._keys_exist

    def known_open(self) -> bool | None:
        """:meth:`is_open` without reading the store: None when it is time to look."""
        if self._keys_exist:
            return False  # keys are never deleted, only revoked: no need to look again
        if self._clock() - self._checked_open_at < self.ttl_seconds:
            return True
        return None

    def cached(self, token: str) -> ApiKey | None:
        """The key for ``token`` if it was verified within the TTL (no store read)."""
        found = self._verified.get(secret_digest(token))
        if found is None or self._clock() >= found[1]:
            return None
        return found[0]

    def verify(self, token: str) -> ApiKey | None:
        """The active key ``token`` is, or None (reads the store unless cached)."""
        key = self.cached(token)
        if key is not None:
            return key
        key = self.store.keys.verify(token)
        if key is not None and self.ttl_seconds > 0:
            with self._lock:
                if len(self._verified) >= _CACHE_SIZE:
                    self._verified.clear()
                self._verified[secret_digest(token)] = (key, self._clock() + self.ttl_seconds)
        return key

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache (it was revoked here: refuse it from now on)."""
        with self._lock:
            self._verified = {digest: entry for digest, entry in self._verified.items()
                              if entry[0].key_id != key_id}

    def key_created(self) -> None:
        """A key was created here: the service stops being open at once."""
        self._keys_exist = True


def open_access_warning(host: str, port: int | None = None) -> str:
    """What the log says, loudly, when the service starts without any API key."""
    where = host if port is None else f"{host}:{port}"
    return (f"OPEN ACCESS: no API key exists in the store, so anyone who can reach "
            f"{where} can read recommendations, write events and promote models without a "
            "key. Create one and every route but /health requires it: "
            "`tailored keys create --scope admin --name ops`")


def check_open_access(settings: Settings, keys_exist: bool) -> str | None:
    """None when keys are required; the warning to log when serving open is allowed.

    Raises
    ------
    OpenAccessRefusedError
        Open access on a host other machines may reach, without ``allow_open_access``.
    """
    if keys_exist:
        return None
    if not is_loopback(settings.host) and not settings.allow_open_access:
        raise OpenAccessRefusedError(
            f"refusing to serve on {settings.host} without API keys: anyone who can reach "
            "it could read and change everything. Create a key first with "
            "`tailored keys create --scope admin --name ops` (then every request needs "
            "one), listen on 127.0.0.1, or, behind a proxy that authenticates, set "
            "TAILORED_ALLOW_OPEN_ACCESS=true")
    return open_access_warning(settings.host, settings.port)


def get_verifier(request: Request) -> KeyVerifier:
    verifier = getattr(request.app.state, "keys", None)
    if not isinstance(verifier, KeyVerifier):
        raise RuntimeError("the app's lifespan has not run (in tests, use "
                           "`with TestClient(app) as client:`)")
    return verifier


def _missing(scope: Scope) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail=f"this route needs an API key with scope {scope!r}: send it as "
               "`Authorization: Bearer <key>` or `X-API-Key: <key>` (an operator creates "
               f"one with `tailored keys create --scope {scope} --name NAME`)",
        headers={"WWW-Authenticate": "Bearer"})


def _make_dependency(scope: Scope) -> Callable[..., Awaitable[Caller]]:
    async def require(
        request: Request,
        header_key: Annotated[str | None, Security(api_key_header)],
        bearer_key: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> Caller:
        verifier = get_verifier(request)
        token = bearer_key.credentials if bearer_key is not None else header_key
        key = None if token is None else verifier.cached(token)
        if key is None:
            # Store reads run in a worker thread; what is cached is answered on the loop.
            is_open = verifier.known_open()
            if is_open is None:
                is_open = await anyio.to_thread.run_sync(verifier.is_open)
            if is_open:
                return Caller(None)
            if not token:
                raise _missing(scope)
            key = await anyio.to_thread.run_sync(verifier.verify, token)
            if key is None:
                raise HTTPException(
                    status.HTTP_401_UNAUTHORIZED,
                    detail="the API key is unknown or revoked; `tailored keys list` shows "
                           "the keys there are", headers={"WWW-Authenticate": "Bearer"})
        if not key.grants(scope):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"the API key {key.name!r} ({key.key_id}) has scope "
                       f"{', '.join(key.scopes)}; this route needs {scope!r}")
        return Caller(key)

    require.__name__ = f"require_{scope}"
    return require


_DEPENDENCIES = {scope: _make_dependency(scope) for scope in SCOPES}


def require_scope(scope: Scope) -> Callable[..., Awaitable[Caller]]:
    """The dependency that lets a request through with a key granting ``scope`` (or while
    the service is open); 401 without a valid key, 403 with too weak a one.

    Examples
    --------
    >>> from fastapi import APIRouter, Depends
    >>> router = APIRouter(dependencies=[Depends(require_scope("read"))],
    ...                    responses=AUTH_RESPONSES)
    """
    return _DEPENDENCIES[scope]


ReadAccess = Annotated[Caller, Depends(require_scope("read"))]
WriteAccess = Annotated[Caller, Depends(require_scope("write"))]
AdminAccess = Annotated[Caller, Depends(require_scope("admin"))]
