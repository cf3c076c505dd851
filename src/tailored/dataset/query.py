"""What a model is asked: which users, what they have done so far, and in which context."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class UserQuery:
    """Users to recommend for, with their *current* histories.

    When ``events`` is given it is the users' whole history as of now (columns
    ``user_id``, ``item_id`` and optionally ``event_type``, ``value``); models score
    from it, so an event from a second ago counts without retraining. When it is
    ``None`` the histories seen at training time are used. ``profiles`` optionally
    carries user attributes (``user_id`` plus attribute columns) for users the model
    has not seen, and ``context`` describes the moment (device, location, hour, ...).

    Examples
    --------
    >>> q = UserQuery.from_histories({"anna": ["i1", "i2"], "new-user": []})
    >>> q.user_ids
    ('anna', 'new-user')
    >>> len(q.events)
    2
    """

    user_ids: tuple[str, ...]
    events: pd.DataFrame | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    profiles: pd.DataFrame | None = None

    @classmethod
    def of(cls, users: str | Sequence[str] | UserQuery) -> UserQuery:
        """Accept one id, many ids, or a query, and return a query."""
        if isinstance(users, UserQuery):
            return users
        if isinstance(users, str):
            return cls((users,))
        return cls(tuple(str(u) for u in users))

    @classmethod
    def from_histories(cls, histories: Mapping[str, Sequence[str]],
                       context: Mapping[str, Any] | None = None) -> UserQuery:
        """A query from item ids per user (each counted as one view)."""
        rows = [(user, item) for user, items in histories.items() for item in items]
        events = pd.DataFrame(rows, columns=["user_id", "item_id"], dtype=object)
        events["event_type"] = "view"
        return cls(tuple(histories), events, context or {})
