"""API keys: who may call the service, with which scopes, stored hashed.

A key reads ``tk_<key_id>_<secret>``. ``key_id`` is public (it names the key in lists
and logs); the secret is 32 random bytes shown once, at creation, and only its SHA-256
is stored. A fast hash is enough here: the secret is random with 256 bits of entropy,
so there is nothing to brute-force, and every request can afford to check it.

Examples
--------
>>> from tailored.store import open_store
>>> store = open_store("sqlite://")
>>> key, secret = store.keys.create("backend", ["write"])
>>> key.scopes, secret.startswith(f"tk_{key.key_id}_")
(('write',), True)
>>> store.keys.verify(secret) == key
True
>>> store.keys.verify(secret[:-1] + "x") is None
True
>>> store.keys.revoke(key.key_id).revoked_at is not None
True
>>> store.keys.verify(secret) is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import sqlalchemy as sa

from tailored.errors import InvalidDataError, NotFoundError
from tailored.store.sqlbase import SqlTables, from_micros, metadata, micros

Scope = Literal["read", "write", "admin"]
#: Every scope, weakest first; each grants the ones before it (admin can write and read).
SCOPES: tuple[Scope, ...] = get_args(Scope)

KEY_PREFIX = "tk_"
_KEY = re.compile(r"^tk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
MAX_NAME_LENGTH = 100
_NAME = re.compile(r"^[^\x00-\x1f\x7f]+$")

keys_table = sa.Table(
    "api_keys", metadata,
    sa.Column("key_id", sa.String(12), primary_key=True),
    sa.Column("name", sa.String(MAX_NAME_LENGTH), nullable=False),
    sa.Column("scopes", sa.String(64), nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("revoked_us", sa.BigInteger, nullable=True),
)


@dataclass(frozen=True)
class ApiKey:
    """A key as listed: everything but its secret."""

    key_id: str
    name: str
    scopes: tuple[Scope, ...]
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def grants(self, scope: Scope) -> bool:
        """Whether this key may do what ``scope`` allows (a stronger scope grants weaker ones).

        >>> ApiKey("0" * 12, "ops", ("admin",), datetime.now(UTC)).grants("read")
        True
        >>> ApiKey("0" * 12, "web", ("read",), datetime.now(UTC)).grants("write")
        False
        """
        return self.active and any(SCOPES.index(own) >= SCOPES.index(scope)
                                   for own in self.scopes)


def secret_digest(token: str) -> str:
    """The SHA-256 (hex) of a whole key, as stored and as cached by the service."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_key(token: str) -> str | None:
    """The key id of a well-formed key, or None."""
    match = _KEY.match(token)
    return None if match is None else match.group(1)


def check_scopes(scopes: Sequence[str]) -> tuple[Scope, ...]:
    """``scopes`` validated and deduplicated, in :data:`SCOPES` order."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise InvalidDataError(
            f"unknown scope(s) {unknown}; a key needs at least one of {', '.join(SCOPES)}"
            if unknown else f"a key needs at least one scope: {', '.join(SCOPES)}")
    return tuple(scope for scope in SCOPES if scope in scopes)


class SqlKeyStore(SqlTables):
    """The ``api_keys`` table: create, verify, list and revoke keys."""

    def create(self, name: str, scopes: Sequence[str]) -> tuple[ApiKey, str]:
        """A new key and its secret; the secret is not stored and cannot be shown again."""
        name = name.strip()
        if not _NAME.match(name) or len(name) > MAX_NAME_LENGTH:
            raise InvalidDataError(f"a key's name is 1 to {MAX_NAME_LENGTH} characters "
                                   f"without control characters, got {name!r}")
        checked = check_scopes(scopes)
        key_id = secrets.token_hex(6)
        token = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        created = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(keys_table.insert().values(
                key_id=key_id, name=name, scopes=",".join(checked),
                secret_sha256=secret_digest(token), created_us=micros(created)))
        return ApiKey(key_id, name, checked, from_micros(micros(created))), token

    def verify(self, token: str) -> ApiKey | None:
        """The active key ``token`` is, or None (malformed, unknown, wrong or revoked)."""
        key_id = parse_key(token)
        if key_id is None:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(keys_table)
                               .where(keys_table.c.key_id == key_id)).first()
        # Constant time: the response time says nothing about how much of a guess matched.
        if row is None or not hmac.compare_digest(row.secret_sha256, secret_digest(token)):
            return None
        key = self._key(row)
        return key if key.active else None

    def get(self, key_id: str) -> ApiKey | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(keys_table)
                               .where(keys_table.c.key_id == key_id)).first()
        return None if row is None else self._key(row)

    def list(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(keys_table)
                                .order_by(keys_table.c.created_us, keys_table.c.key_id)).all()
        return [self._key(row) for row in rows]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key for good (revoking twice keeps the first time)."""
        with self.engine.begin() as conn:
            conn.execute(keys_table.update()
                         .where(keys_table.c.key_id == key_id,
                                keys_table.c.revoked_us.is_(None))
                         .values(revoked_us=micros(datetime.now(UTC))))
        key = self.get(key_id)
        if key is None:
            raise NotFoundError(f"no API key {key_id!r}; `tailored keys list` shows the keys")
        return key

    def count(self) -> int:
        """How many keys were ever created (revoked ones too: revoking the last key must not
        open the service)."""
        return self._count(keys_table)

    @staticmethod
    def _key(row: Any) -> ApiKey:
        scopes = tuple(s for s in row.scopes.split(",") if s in SCOPES)
        return ApiKey(row.key_id, row.name, scopes, from_micros(row.created_us),
                      None if row.revoked_us is None else from_micros(row.revoked_us))
