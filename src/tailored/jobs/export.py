"""Everything the store holds about one user, as one JSON document (a data subject's
access request: ``GET /users/{user_id}/export``, ``tailored users export``).

The document, field by field (format ``tailored.user-export/1``):

- ``format``: ``"tailored.user-export/1"``; ``exported_at``: when (UTC, ISO 8601);
  ``user_id``: the id asked for.
- ``profile``: the stored profile, or null when there is none: ``attributes`` (what the
  shop sent: age band, location, ...) and ``consent`` (purpose to granted or not; a
  purpose not listed is granted).
- ``consent_history``: every consent change, oldest first: ``purpose``, ``granted``,
  ``changed_at``.
- ``events``: every event of the user, oldest first: ``event_id``, ``item_id``,
  ``event_type``, ``value`` (a rating's stars, or null), ``timestamp``, ``session_id``
  and ``context`` (device, location, the ``recommendation_id`` it came from, ...).
- ``recommendations``: every answer the service gave the user, oldest first:
  ``recommendation_id``, ``served_at``, ``model`` (``name``, ``version``: which model
  chose), ``experiment`` (``experiment_id``, ``variant``, or null: which A/B test arm the
  user was in), ``items`` (``item_id``, ``rank``, ``score``: the model's score, and
  ``propensity``: the chance the item was shown there, below 1 where exploration chose
  it) and ``context`` (what the request said of the moment, and how exploration
  placed items). Why an item was chosen is its model, score and rank; the reasons a
  request may ask for are not stored.
- ``counts``: how many events and recommendations the document holds.

Examples
--------
>>> from tailored.schema import Event, User
>>> from tailored.store import open_store
>>> store = open_store("sqlite://")
>>> _ = store.users.upsert([User(user_id="u1", attributes={"city": "Berlin"})])
>>> _ = store.events.add([Event(user_id="u1", item_id="i1", timestamp=1714564800)])
>>> document = export_user(store, "u1")
>>> document["profile"]["attributes"], document["counts"]
({'city': 'Berlin'}, {'events': 1, 'recommendations': 0})
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from tailored.store import Store

FORMAT = "tailored.user-export/1"


def export_user(store: Store, user_id: str, *, now: datetime | None = None
                ) -> dict[str, Any]:
    """The export document of ``user_id`` (see the module's docstring), JSON-ready."""
    profile = store.users.get(user_id)
    events = store.events.frame(user_ids=[user_id])
    served = store.served.frame(user_id=user_id)
    recommendations = [_answer(row) for row in served.itertuples(index=False)]
    return {
        "format": FORMAT,
        "exported_at": (now or datetime.now(UTC)).isoformat(),
        "user_id": user_id,
        "profile": None if profile is None else {"attributes": profile.attributes,
                                                 "consent": profile.consent},
        "consent_history": [{"purpose": c.purpose, "granted": c.granted,
                             "changed_at": c.changed_at.isoformat()}
                            for c in store.users.consent_history(user_id)],
        "events": [_event(row) for row in events.itertuples(index=False)],
        "recommendations": recommendations,
        "counts": {"events": len(events), "recommendations": len(recommendations)},
    }


def _plain(value: Any) -> Any:
    """A frame's cell as JSON: None for missing, ISO text for times, Python numbers."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    if hasattr(value, "item"):  # a numpy scalar
        return value.item()
    return value


def _event(row: Any) -> dict[str, Any]:
    return {"event_id": row.event_id, "item_id": row.item_id, "event_type": row.event_type,
            "value": _plain(row.value), "timestamp": _plain(row.timestamp),
            "session_id": _plain(row.session_id), "context": row.context or {}}


def _answer(row: Any) -> dict[str, Any]:
    items = [{"item_id": item, "rank": rank, "score": _plain(score),
              "propensity": _plain(propensity)}
             for rank, (item, score, propensity) in enumerate(
                 zip(row.item_ids, row.scores, row.propensities or [1.0] * len(row.item_ids),
                     strict=False), start=1)]
    experiment = (None if row.experiment_id is None
                  else {"experiment_id": row.experiment_id, "variant": row.variant})
    return {"recommendation_id": row.recommendation_id, "served_at": _plain(row.served_at),
            "model": {"name": row.model_name, "version": _plain(row.model_version)},
            "experiment": experiment, "items": items, "context": row.context or {}}
