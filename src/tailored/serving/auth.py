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
    """Who is calling, as :class:`~tailored.serving.guard.AccessGuard` found out before
    the route ran: an API key, a user token's user, everyone (while the service is open),
    or no one (``refusal`` says why)."""

    key: ApiKey | None = None
    user_id: str | None = None
    is_open: bool = False
    refusal: str | None = None

    @property
    def name(self) -> str:
        if self.key is not None:
            return f"{self.key.name} ({self.key.key_id})"
        if self.user_id is not None:
            return f"user token of {self.user_id!r}"
        return "open access" if self.is_open else "anonymous"

    @property
    def identity(self) -> str | None:
        """What rate limits count by: the key or the token's user (None: the address)."""
        if self.key is not None:
            return f"key:{self.key.key_id}"
        return None if self.user_id is None else f"user:{self.user_id}"

    def grants(self, scope: Scope) -> bool:
        """Whether an API key of ``scope`` (or open access) backs this caller."""
        return self.is_open or (self.key is not None and self.key.grants(scope))

    def may_act_for(self, user_id: str) -> bool:
        """Whether the caller may read ``user_id``'s history or send their events: a
        ``write`` key, or that user's own token."""
        return self.grants("write") or self.user_id == user_id


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


def get_caller(request: Request) -> Caller:
    """The caller the guard identified (it runs before every route)."""
    caller = request.scope.get("state", {}).get("caller")
    if not isinstance(caller, Caller):
        raise RuntimeError("no AccessGuard in front of the app: build it with create_app")
    return caller


def _missing(scope: Scope, caller: Caller) -> HTTPException:
    if caller.refusal is not None:
        detail = caller.refusal
    else:
        detail = (f"this route needs an API key with scope {scope!r}: send it as "
                  "`Authorization: Bearer <key>` or `X-API-Key: <key>` (an operator "
                  f"creates one with `tailored keys create --scope {scope} --name NAME`)")
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail,
                         headers={"WWW-Authenticate": "Bearer"})


def _make_dependency(scope: Scope, user_tokens: bool) -> Callable[..., Awaitable[Caller]]:
    async def require(
        request: Request,
        # Declared for the OpenAPI spec (the security schemes); the guard read them.
        header_key: Annotated[str | None, Security(api_key_header)],
        bearer_key: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> Caller:
        caller = get_caller(request)
        if caller.grants(scope):
            return caller
        if caller.user_id is not None:
            if not user_tokens:
                raise HTTPException(
                    status.HTTP_403_FORBIDDEN,
                    detail="a user token may read its own user's recommendations, similar "
                           "items and items and send its own user's events; this route "
                           f"needs an API key with scope {scope!r}")
            path_user = request.path_params.get("user_id")
            if path_user is not None and path_user.strip() != caller.user_id:
                raise HTTPException(
                    status.HTTP_403_FORBIDDEN,
                    detail=f"this user token is bound to user {caller.user_id!r}; it may "
                           "not act for another user")
            return caller
        if caller.key is None:
            raise _missing(scope, caller)
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"the API key {caller.key.name!r} ({caller.key.key_id}) has scope "
                   f"{', '.join(caller.key.scopes)}; this route needs {scope!r}")

    require.__name__ = f"require_{scope}" + ("_or_user_token" if user_tokens else "")
    return require


_DEPENDENCIES = {(scope, users): _make_dependency(scope, users)
                 for scope in SCOPES for users in (False, True)}


def require_scope(scope: Scope, *, user_tokens: bool = False
                  ) -> Callable[..., Awaitable[Caller]]:
    """The dependency that lets a request through with a key granting ``scope`` (or while
    the service is open); 401 without a valid key, 403 with too weak a one.

    With ``user_tokens`` a user token gets through as well, as long as the path's
    ``user_id`` (if any) is its own; the route checks anything else it carries (the
    users of posted events).

    Examples
    --------
    >>> from fastapi import APIRouter, Depends
    >>> router = APIRouter(dependencies=[Depends(require_scope("read"))],
    ...                    responses=AUTH_RESPONSES)
    """
    return _DEPENDENCIES[(scope, user_tokens)]


ReadAccess = Annotated[Caller, Depends(require_scope("read"))]
WriteAccess = Annotated[Caller, Depends(require_scope("write"))]
AdminAccess = Annotated[Caller, Depends(require_scope("admin"))]
#: A ``read`` key, or a user token (for its own user only).
UserReadAccess = Annotated[Caller, Depends(require_scope("read", user_tokens=True))]
#: A ``write`` key, or a user token (the route checks the users it writes for).
UserWriteAccess = Annotated[Caller, Depends(require_scope("write", user_tokens=True))]
