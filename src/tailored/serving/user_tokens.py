"""User tokens: the credential a web page or an app holds, bound to one user id.

An API key is a server's credential; a page must not ship one, since whoever reads the
page could then ask for any user's recommendations and explanations. Instead the shop's
backend, once its visitor has signed in, issues a short-lived token for that visitor
(``POST /users/{user_id}/token`` with a ``write`` key, or offline with the shared
secret) and hands it to the page. The page sends it like a key
(``Authorization: Bearer tu1...``). A user token may only:

- read recommendations for its own user (explanations included),
- ask for session recommendations and similar items, and read items,
- send events whose ``user_id`` is its own user.

The scheme, for a backend that signs tokens itself (any language with HMAC-SHA256)::

    payload   = base64url(JSON {"sub": USER_ID, "exp": UNIX_SECONDS})   # no padding
    signature = base64url(HMAC-SHA256(SECRET, "tu1." + payload))       # no padding
    token     = "tu1." + payload + "." + signature

where ``SECRET`` is the ``user_token_secret`` setting (``TAILORED_USER_TOKEN_SECRET``,
at least 32 characters). Tokens carry no server state: rotating the secret revokes every
token at once; otherwise a token is good until ``exp``.

Examples
--------
>>> token = issue("s" * 32, "u42", ttl_seconds=60, now=1_700_000_000)
>>> token.startswith("tu1.")
True
>>> verify("s" * 32, token, now=1_700_000_030)
'u42'
>>> verify("s" * 32, token, now=1_700_000_061) is None   # expired
True
>>> verify("t" * 32, token, now=1_700_000_030) is None   # another secret
True
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time

from tailored.errors import TailoredError

PREFIX = "tu1."
#: Longest lifetime a token may be issued for (a day): a page asks again when it expires.
MAX_TTL_SECONDS = 86_400
MIN_SECRET_LENGTH = 32
#: Longer tokens are not parsed at all (an id is at most 256 characters).
_MAX_TOKEN_LENGTH = 1024


class UserTokensDisabledError(TailoredError):
    """No ``user_token_secret`` is set, so user tokens can be neither issued nor checked."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, signed: str) -> str:
    return _b64(hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest())


def issue(secret: str, user_id: str, *, ttl_seconds: int = 3600,
          now: float | None = None) -> str:
    """A token for ``user_id``, valid for ``ttl_seconds`` (at most a day)."""
    if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise ValueError(f"ttl_seconds must be between 1 and {MAX_TTL_SECONDS}, got "
                         f"{ttl_seconds}")
    expires = int(time.time() if now is None else now) + ttl_seconds
    payload = _b64(json.dumps({"sub": user_id, "exp": expires},
                              separators=(",", ":")).encode())
    signed = PREFIX + payload
    return f"{signed}.{_signature(secret, signed)}"


def expires_at(token: str) -> int:
    """The expiry (Unix seconds) of a token this module issued."""
    return int(json.loads(_unb64(token.split(".")[1]))["exp"])


def is_user_token(token: str) -> bool:
    return token.startswith(PREFIX)


def verify(secret: str, token: str, *, now: float | None = None) -> str | None:
    """The user id ``token`` is bound to, or None when it is forged, malformed or expired.

    The signature is compared in constant time before anything in the payload is read.
    """
    if len(token) > _MAX_TOKEN_LENGTH or not token.startswith(PREFIX):
        return None
    signed, _, signature = token.rpartition(".")
    if not hmac.compare_digest(_signature(secret, signed), signature):
        return None
    try:
        claims = json.loads(_unb64(signed.removeprefix(PREFIX)))
        user_id, expires = claims["sub"], claims["exp"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    if not isinstance(user_id, str) or not isinstance(expires, int):
        return None
    return user_id if (time.time() if now is None else now) < expires else None
