"""Pseudonymous user ids: a store that never holds a raw user id.

With ``pseudonymize_user_ids`` on (and ``privacy_secret`` set), the store is opened
through :class:`PseudonymousStore`, which replaces each user id by its *pseudonym* on
the way in: a keyed HMAC no one can compute or reverse without the secret. The
database, and so every model artifact trained from it, the served log and what batch
jobs write, name users by pseudonym only; REST requests and answers, imports and the
command line keep using the raw ids.

The pseudonym scheme, version 1 (what :func:`pseudonym` computes)::

    "p1_" + hex(HMAC-SHA256(key=secret, message=b"tailored.pseudonym\\0" + utf8(user_id)))[:32]

``user_id`` as tailored stores it (in NFC, surrounding blanks stripped, as the schema
cleans ids). The message's prefix keeps a pseudonym apart from the audit hash of an
erasure (:func:`~tailored.store.keyed_hash`: the same key over the bare id), so the two
never coincide; an erasure through this store audits the keyed hash of the pseudonym,
which ``privacy.erasures_of`` finds again from the raw id. A shop joins batch outputs
(``tailored recommend --all`` writes pseudonyms) back to its users by computing the
pseudonyms of its own ids.

Which reads answer in which ids:

- a read that names users (``events.frame(user_ids=...)``, ``users.get``,
  ``served.frame(user_id=...)``, ``without_consent(among)``, ...) answers in the ids it
  was given: serving asks with raw ids and gets raw ids back;
- a read of everyone (``events.frame()``, ``users.frame()``, ``served.frame()`` without
  ``user_id``, ``without_consent()``, ``served.get``) answers in pseudonyms, as
  :class:`Pseudonym` strings: training, batch jobs and monitors see nothing else. Given
  back to the store (a monitor reading the events of the users of the served log), a
  :class:`Pseudonym` is taken as the stored id it is and not pseudonymised again.

Examples
--------
>>> from tailored.schema import Event
>>> from tailored.store import open_store
>>> store = open_store("sqlite://", pseudonym_secret="s" * 32)
>>> store.events.add([Event(user_id="alice", item_id="i1")])
1
>>> store.events.frame(user_ids=["alice"])["user_id"].tolist()
['alice']
>>> stored = store.events.frame()["user_id"].tolist()
>>> stored == [pseudonym("s" * 32, "alice")], stored[0][:7]
(True, 'p1_a615')
>>> store.events.frame(user_ids=stored)["user_id"].tolist() == stored
True
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, ClassVar

import pandas as pd
import pyarrow as pa

from tailored.schema import PERSONALIZATION, Event, User
from tailored.store.base import (
    Catalog,
    EventLog,
    Store,
    Transaction,
    UserDirectory,
)
from tailored.store.changes import Freshness
from tailored.store.privacy import ConsentChange, Erasure
from tailored.store.served import Served

#: What every pseudonym starts with: the scheme's version.
PSEUDONYM_PREFIX = "p1_"
_DOMAIN = b"tailored.pseudonym\0"
#: The HMAC's first 128 bits (32 hex digits): the odds that two of a billion ids share a
#: pseudonym are about 1e-21, at half the bytes of the whole HMAC in every row and index.
_HEX_DIGITS = 32


def pseudonym(secret: str, user_id: str) -> str:
    """The pseudonym a store opened with ``secret`` keeps for ``user_id`` (the scheme is
    in the module's docstring): 35 characters, the same for the same id and secret.

    Examples
    --------
    >>> from tailored.store import keyed_hash
    >>> name = pseudonym("s" * 32, "alice")
    >>> name.startswith("p1_"), len(name), name == pseudonym("s" * 32, "alice")
    (True, 35, True)
    >>> name == pseudonym("t" * 32, "alice"), name[3:] == keyed_hash("s" * 32, "alice")
    (False, False)
    """
    message = _DOMAIN + user_id.encode("utf-8", "surrogatepass")
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:_HEX_DIGITS]


class Pseudonym(str):
    """A user id as a :class:`PseudonymousStore` holds it, as reads of every user answer
    it: given back to the store, it is used as it is, not pseudonymised again.

    Only the store makes them (a request's or a file's id is a plain ``str``, and the
    schema's models make any id a plain ``str``), so a raw id can never pass for a
    stored one. Text made from it (``str()``, a CSV) is a plain ``str`` again.
    """

    __slots__ = ()


class _Ids:
    """The mapping between the ids callers use and those the store holds."""

    def __init__(self, secret: str) -> None:
        if len(secret) < 32:
            raise ValueError("the pseudonym secret must be at least 32 characters "
                             "(privacy_secret, from TAILORED_PRIVACY_SECRET)")
        # Bulk writes name the same users again and again, and so do requests.
        self._pseudonym = functools.lru_cache(maxsize=2**16)(
            functools.partial(pseudonym, secret))

    def stored(self, user_id: str) -> str:
        """The id the store holds for ``user_id`` (a :class:`Pseudonym` is one)."""
        return user_id if isinstance(user_id, Pseudonym) else self._pseudonym(user_id)

    def asked(self, user_ids: Iterable[str]) -> dict[str, str]:
        """Stored id -> the id asked with, for answering a read in the ids asked."""
        return {self.stored(user_id): user_id for user_id in user_ids}

    @staticmethod
    def tagged(stored: Iterable[str | None]) -> list[Any]:
        """Stored ids as :class:`Pseudonym` (None stays None), one object per id."""
        made: dict[str, Pseudonym] = {}
        tagged: list[Pseudonym | None] = []
        for user_id in stored:
            if user_id is None:
                tagged.append(None)
            elif (found := made.get(user_id)) is not None:
                tagged.append(found)
            else:
                tagged.append(made.setdefault(user_id, Pseudonym(user_id)))
        return tagged

    @staticmethod
    def column(frame: pd.DataFrame, values: list[Any]) -> pd.DataFrame:
        """``frame`` with its ``user_id`` column replaced (kept as Python objects)."""
        frame["user_id"] = pd.Series(values, index=frame.index, dtype=object)
        return frame


class _Role:
    """One role of the inner store seen through pseudonyms.

    The methods a subclass defines map user ids (going in, and coming out where a read
    answers any). The names in ``passes`` take and give no user id: they are the inner
    role's own. Any other name is refused, so a method added to a role later cannot
    carry raw ids past the wrapper unnoticed (``tests/store/test_pseudonymous.py``
    checks that the two lists cover each protocol).
    """

    passes: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, inner: Any, ids: _Ids) -> None:
        self._inner = inner
        self._ids = ids

    def __getattr__(self, name: str) -> Any:
        if name in type(self).passes:
            return getattr(self._inner, name)
        raise AttributeError(
            f"{type(self).__name__} neither maps user ids in {name!r} nor lists it as "
            "passing through; add it to tailored.store.pseudonymous")


class PseudonymousEvents(_Role):
    passes = frozenset({"count", "delete_before", "count_before", "item_counts",
                        "bought_together", "vacuum", "loading"})

    def add(self, events: Iterable[Event]) -> int:
        return int(self._inner.add(self._stored(event) for event in events))

    def add_rows(self, rows: pa.Table) -> int:
        # A null event id is derived when stored, so from the stored user id.
        users = rows.column("user_id").to_pylist()
        stored = {user: self._ids.stored(user) for user in set(users)}
        mapped = pa.array([stored[user] for user in users], pa.string())
        return int(self._inner.add_rows(
            rows.set_column(rows.schema.get_field_index("user_id"), "user_id", mapped)))

    def _stored(self, event: Event) -> Event:
        stored = event.model_copy(update={"user_id": self._ids.stored(event.user_id)})
        if event.event_id == event.content_id():
            # Derived from the content, raw id included: derived again from the stored
            # one (as stable, so a re-sent event is still recognised). Set as the schema
            # sets it, on the copy only this call holds.
            object.__setattr__(stored, "event_id", stored.content_id())
        return stored

    def delete_users(self, user_ids: Sequence[str]) -> int:
        return int(self._inner.delete_users(list(self._ids.asked(user_ids))))

    def frame(self, *, user_ids: Sequence[str] | None = None,
              consenting: bool = False) -> pd.DataFrame:
        if user_ids is None:
            frame = self._inner.frame(consenting=consenting)
            return self._ids.column(frame, self._ids.tagged(frame["user_id"]))
        asked = self._ids.asked(user_ids)
        frame = self._inner.frame(user_ids=list(asked), consenting=consenting)
        return self._ids.column(frame, [asked[user_id] for user_id in frame["user_id"]])


class PseudonymousUsers(_Role):
    passes = frozenset({"count"})

    def upsert(self, users: Iterable[User]) -> int:
        return int(self._inner.upsert(
            user.model_copy(update={"user_id": self._ids.stored(user.user_id)})
            for user in users))

    def get(self, user_id: str) -> User | None:
        return self._as_asked(self._inner.get(self._ids.stored(user_id)), user_id)

    def update(self, user_id: str, changes: dict[str, Any]) -> User | None:
        return self._as_asked(self._inner.update(self._ids.stored(user_id), changes), user_id)

    def delete(self, user_id: str) -> bool:
        return bool(self._inner.delete(self._ids.stored(user_id)))

    def consent_history(self, user_id: str) -> list[ConsentChange]:
        return list(self._inner.consent_history(self._ids.stored(user_id)))

    def without_consent(self, among: Sequence[str] | None = None, *,
                        purpose: str = PERSONALIZATION) -> list[str]:
        if among is None:
            return self._ids.tagged(self._inner.without_consent(purpose=purpose))
        asked = self._ids.asked(among)
        return [asked[user_id]
                for user_id in self._inner.without_consent(list(asked), purpose=purpose)]

    def frame(self) -> pd.DataFrame:
        frame = self._inner.frame()
        return self._ids.column(frame, self._ids.tagged(frame["user_id"]))

    @staticmethod
    def _as_asked(user: User | None, user_id: str) -> User | None:
        return None if user is None else user.model_copy(update={"user_id": user_id})


class PseudonymousServedLog(_Role):
    passes = frozenset({"count", "delete_before", "count_before"})

    def record(self, served: Iterable[Served]) -> int:
        return int(self._inner.record(
            answer if answer.user_id is None
            else dataclasses.replace(answer, user_id=self._ids.stored(answer.user_id))
            for answer in served))

    def get(self, recommendation_id: str) -> Served | None:
        answer: Served | None = self._inner.get(recommendation_id)
        if answer is None or answer.user_id is None:
            return answer
        return dataclasses.replace(answer, user_id=Pseudonym(answer.user_id))

    def frame(self, *, since: datetime | None = None, experiment_id: str | None = None,
              user_id: str | None = None, placement: str | None = None) -> pd.DataFrame:
        if user_id is None:
            frame = self._inner.frame(since=since, experiment_id=experiment_id,
                                      placement=placement)
            return self._ids.column(frame, self._ids.tagged(frame["user_id"]))
        frame = self._inner.frame(since=since, experiment_id=experiment_id,
                                  user_id=self._ids.stored(user_id), placement=placement)
        return self._ids.column(frame, [user_id] * len(frame))


class PseudonymousChanges(_Role):
    passes = frozenset({"catalog_version", "items_since"})

    def check(self, user_id: str) -> Freshness:
        freshness: Freshness = self._inner.check(self._ids.stored(user_id))
        return freshness


class PseudonymousPrivacy(_Role):
    passes = frozenset({"audit_key", "erasures", "last_erasure_id", "mark_pending",
                        "mark_retrained", "record_retention", "deletions"})

    def erase(self, user_ids: Iterable[str], *, key: str, erased_by: str,
              retrain_within: timedelta | None) -> list[Erasure]:
        # The audit record keeps the keyed hash of the stored id (the pseudonym), which
        # erasures_of finds again from the raw id.
        return list(self._inner.erase([self._ids.stored(user_id) for user_id in user_ids],
                                      key=key, erased_by=erased_by,
                                      retrain_within=retrain_within))

    def erasures_of(self, user_id: str, *, key: str) -> list[Erasure]:
        return list(self._inner.erasures_of(self._ids.stored(user_id), key=key))


@dataclasses.dataclass(frozen=True)
class _PseudonymousTransaction:
    events: EventLog
    items: Catalog
    users: UserDirectory


class PseudonymousStore(_Role):
    """``store`` with every user id replaced by its :func:`pseudonym` under ``secret``
    (at least 32 characters), at every entry (see the module's docstring).

    ``events``, ``users``, ``served``, ``changes``, ``privacy`` and ``transaction()``
    map ids; the roles without user ids (``items``, ``models``, ``keys``, ``alerts``,
    ``experiments``, ``placements``, ``webhooks``), ``url`` and ``close`` are the inner
    store's.
    """

    passes = frozenset({"url", "items", "models", "keys", "alerts", "experiments",
                        "placements", "webhooks", "close"})

    def __init__(self, store: Store, secret: str) -> None:
        super().__init__(store, _Ids(secret))
        self.events = PseudonymousEvents(store.events, self._ids)
        self.users = PseudonymousUsers(store.users, self._ids)
        self.served = PseudonymousServedLog(store.served, self._ids)
        self.changes = PseudonymousChanges(store.changes, self._ids)
        self.privacy = PseudonymousPrivacy(store.privacy, self._ids)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._inner.transaction() as inner:
            yield _PseudonymousTransaction(PseudonymousEvents(inner.events, self._ids),
                                           inner.items,
                                           PseudonymousUsers(inner.users, self._ids))

    def stored_user_id(self, user_id: str) -> Pseudonym:
        """The id this store holds for ``user_id``: its pseudonym (which the store takes
        back as it is)."""
        return Pseudonym(self._ids.stored(user_id))

    def __repr__(self) -> str:
        return f"PseudonymousStore({self._inner.url!r})"


def stored_user_id(store: Store, user_id: str) -> str:
    """The id ``store`` holds for ``user_id``, and so the one model artifacts trained from
    it name the user by: its pseudonym when the store is pseudonymous (a
    :class:`Pseudonym`, which the store reads by as it is), else ``user_id``.

    Examples
    --------
    >>> from tailored.store import open_store, stored_user_id
    >>> stored_user_id(open_store("sqlite://"), "alice")
    'alice'
    >>> stored_user_id(open_store("sqlite://", pseudonym_secret="s" * 32), "alice")[:3]
    'p1_'
    """
    if isinstance(store, PseudonymousStore):
        return store.stored_user_id(user_id)
    return user_id


__all__ = [
    "PSEUDONYM_PREFIX",
    "Pseudonym",
    "PseudonymousChanges",
    "PseudonymousEvents",
    "PseudonymousPrivacy",
    "PseudonymousServedLog",
    "PseudonymousStore",
    "PseudonymousUsers",
    "pseudonym",
    "stored_user_id",
]
