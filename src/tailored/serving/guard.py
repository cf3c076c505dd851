"""What every request goes through before a route runs, and before its body is read.

1. **Who is calling**: an API key, a user token, everyone (the service is *open*: no key
   exists yet), or no one. The :class:`~tailored.serving.auth.Caller` is left in the
   request's state for the routes' scope checks.
2. **No body from strangers**: once keys exist, a request with a body (POST, PUT, PATCH,
   DELETE) without a valid credential is refused with a 401 before one byte of its body
   is read, so an unauthenticated client cannot make the server parse large bodies.
3. **Open mode stays on this machine**: without keys, only requests that reached the
   service over loopback, for a loopback host name (a DNS-rebinding page sends its own
   name), from no other origin than a loopback one (a page elsewhere cannot drive the
   service from a visitor's browser), and with a body only as JSON (a form cannot post
   without a CORS preflight). ``allow_open_access`` (behind a proxy that
   authenticates) lifts the loopback rules, not the origin and JSON ones. An origin
   listed in ``cors_allowed_origins`` is trusted as a loopback one is (the operator
   named it); every other foreign origin stays refused.
4. **Rate limits** (:mod:`tailored.serving.rate_limit`): per API key at a backend's rate,
   per user token or address of a caller without a valid credential at a page's rate;
   429 with ``Retry-After`` beyond them.
"""

from __future__ import annotations

import logging
import math
import tempfile
from hashlib import blake2b
from pathlib import Path
from urllib.parse import urlsplit

import anyio.to_thread
from fastapi import status
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from tailored.settings import Settings

from . import user_tokens
from .auth import Caller, KeyVerifier
from .errors import RETRY_AFTER_SECONDS
from .rate_limit import Buckets, FileBuckets, MemoryBuckets
from .security import answer_early, is_loopback

logger = logging.getLogger("tailored.serving")

#: Methods that change state (and may carry a body).
CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def bearer_token(headers: Headers) -> str | None:
    """The credential of a request: ``Authorization: Bearer X`` or ``X-API-Key: X``."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    return headers.get("x-api-key") or None


def make_buckets(settings: Settings, rate: float) -> Buckets | None:
    """The rate limiter's buckets for callers of one ``rate`` (None when it is 0)."""
    if rate <= 0:
        return None
    burst = max(1, round(rate * settings.rate_limit_burst_seconds))
    if settings.workers <= 1:
        return MemoryBuckets(rate, burst)
    # One file per service on this host (its store and port), shared by its workers.
    name = blake2b(f"{settings.store_url}|{settings.port}".encode(), digest_size=8).hexdigest()
    path = Path(tempfile.gettempdir()) / f"tailored-rate-limit-{name}.sqlite3"
    return FileBuckets(path, rate, burst)


def _host_name(host: str) -> str:
    """``host`` (a Host header or an origin's netloc) without its port."""
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class AccessGuard:
    """The ASGI middleware that runs the checks above; see the module's docstring."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        # Keys (a backend's) and the open service's callers get the large rate; user
        # tokens (a page's) and callers without a valid credential the small one.
        self.key_buckets = make_buckets(settings, settings.rate_limit_per_second)
        self.user_buckets = make_buckets(settings, settings.rate_limit_per_user_per_second)
        secret = settings.user_token_secret
        self.token_secret = None if secret is None else secret.get_secret_value()
        # The operator listed these pages for CORS: trusted like this machine's own.
        self.trusted_origins = frozenset(settings.cors_allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        verifier = getattr(scope["app"].state, "keys", None)
        if not isinstance(verifier, KeyVerifier):  # the lifespan has not run
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            caller = await self._identify(verifier, bearer_token(headers))
        except Exception as error:  # the store does not answer: nobody can be checked
            logger.error("cannot check the caller's credentials: %s", type(error).__name__)
            await answer_early(scope, receive, send, status.HTTP_503_SERVICE_UNAVAILABLE,
                          "the store does not answer, so credentials cannot be checked; "
                          "try again shortly", {"Retry-After": str(RETRY_AFTER_SECONDS)})
            return
        method = scope["method"]
        refusal: tuple[int, str] | None = None
        if caller.is_open:
            refusal = self._open_mode_refusal(scope, headers)
        elif caller.key is None and caller.user_id is None and method in CHANGING_METHODS:
            refusal = (status.HTTP_401_UNAUTHORIZED, caller.refusal or (
                "this request needs an API key: send it as `Authorization: Bearer <key>` "
                "or `X-API-Key: <key>` (a page sends its user token the same way); the "
                "body of an anonymous request is not read"))
        if refusal is not None:
            extra = ({"WWW-Authenticate": "Bearer"}
                     if refusal[0] == status.HTTP_401_UNAUTHORIZED else {})
            await answer_early(scope, receive, send, *refusal, extra)
            return
        trusted = caller.key is not None or caller.is_open
        buckets = self.key_buckets if trusted else self.user_buckets
        if buckets is not None:
            identity = caller.identity or f"address:{(scope.get('client') or ('?',))[0]}"
            wait = buckets.take_cached(identity)
            if wait is None:  # the shared file must be asked: off the event loop
                wait = await anyio.to_thread.run_sync(buckets.take, identity)
            if wait > 0:
                await answer_early(scope, receive, send, status.HTTP_429_TOO_MANY_REQUESTS,
                              f"too many requests from this caller (at most "
                              f"{buckets.rate:g} per second on average); retry after the "
                              "time in Retry-After", {"Retry-After": str(math.ceil(wait))})
                return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)

    async def _identify(self, verifier: KeyVerifier, token: str | None) -> Caller:
        is_open = verifier.known_open()
        if is_open is None:
            is_open = await anyio.to_thread.run_sync(verifier.is_open)
        if is_open:
            return Caller(is_open=True)
        if token is None:
            return Caller()  # the route's scope check words the 401
        if user_tokens.is_user_token(token):
            if self.token_secret is None:
                return Caller(refusal="user tokens are not enabled on this service: set "
                                      "user_token_secret (TAILORED_USER_TOKEN_SECRET)")
            user_id = user_tokens.verify(self.token_secret, token)
            if user_id is None:
                return Caller(refusal="the user token is malformed, forged or expired; "
                                      "ask the shop's backend for a new one")
            return Caller(user_id=user_id)
        key = verifier.cached(token)
        if key is None:
            key = await anyio.to_thread.run_sync(verifier.verify, token)
        if key is None:
            return Caller(refusal="the API key is unknown or revoked; `tailored keys list` "
                                  "shows the keys there are")
        return Caller(key=key)

    def _open_mode_refusal(self, scope: Scope, headers: Headers) -> tuple[int, str] | None:
        """Why a request may not use the open service, or None."""
        forbidden = status.HTTP_403_FORBIDDEN
        if not self.settings.allow_open_access:
            server = scope.get("server") or ("", None)
            if not is_loopback(str(server[0])):
                return forbidden, (
                    "this service has no API key yet, so it answers only requests made on "
                    "this machine (127.0.0.1); create a key with `tailored keys create "
                    "--scope admin --name ops`")
            if not is_loopback(_host_name(headers.get("host", ""))):
                return forbidden, (
                    "this service has no API key yet, so it answers only requests for "
                    "localhost or 127.0.0.1 (the Host header names another host: a page "
                    "elsewhere may be trying to reach it); create a key to serve others")
        origin = headers.get("origin")
        if origin is not None and origin not in self.trusted_origins \
                and not self._same_machine(origin, headers):
            return forbidden, (
                f"requests from pages on other origins ({origin[:100]}) are refused while "
                "the service has no API key; create a key, and send it from your backend")
        if scope["method"] in CHANGING_METHODS:
            content_type = headers.get("content-type", "")
            has_body = headers.get("content-length", "0") != "0" or \
                "transfer-encoding" in headers
            if (content_type or has_body) and \
                    content_type.split(";")[0].strip().lower() != "application/json":
                return status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, (
                    "a request that changes something must send its body as JSON "
                    "(Content-Type: application/json)")
        return None

    def _same_machine(self, origin: str, headers: Headers) -> bool:
        try:
            origin_host = urlsplit(origin).netloc
        except ValueError:
            return False
        if not origin_host:  # "null": a sandboxed page or a file
            return False
        if self.settings.allow_open_access:
            return origin_host == headers.get("host")
        return is_loopback(_host_name(origin_host))
