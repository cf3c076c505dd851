"""Webhook signatures: what the sender computes and what a receiver checks.

A module of its own (beside ``schema`` and ``errors``) because both sides use it: the
delivery job (:mod:`tailored.jobs.webhooks`) signs, and receivers, the test receiver of
:mod:`tailored.testing` included, verify.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_PREFIX = "sha256="
#: How long a receiver's clock may be from the sender's (and a retry's signature is new).
DEFAULT_TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: int | str, body: str | bytes) -> str:
    """The ``X-Tailored-Signature`` of ``body`` sent at ``timestamp`` (unix seconds):
    ``sha256=`` and the hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` keyed by ``secret``."""
    raw = body.encode() if isinstance(body, str) else body
    message = f"{timestamp}.".encode() + raw
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(secret: str, timestamp: str | int, body: str | bytes, signature: str,
                     tolerance: float | None = DEFAULT_TOLERANCE_SECONDS, *,
                     now: float | None = None) -> bool:
    """Whether a webhook request is genuine: ``signature`` (the ``X-Tailored-Signature``
    header) is the subscription's ``secret`` over ``timestamp`` (``X-Tailored-Timestamp``)
    and the raw ``body``, and the timestamp is within ``tolerance`` seconds of ``now``
    (this machine's clock by default; None: not checked), which refuses a replay.

    Compared in constant time, so the time taken says nothing about a guess."""
    text = str(timestamp).strip()
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        return False
    if tolerance is not None:
        clock = time.time() if now is None else now
        if abs(clock - int(text)) > tolerance:
            return False
    return hmac.compare_digest(sign(secret, text, body), signature.strip())


__all__ = ["DEFAULT_TOLERANCE_SECONDS", "SIGNATURE_PREFIX", "sign", "verify_signature"]
