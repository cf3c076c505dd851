"""The feedback loop: what users were shown and what they clicked, as training labels.

Every impression (an item shown in a served list) becomes one labelled example: label
1 when the user clicked that item from that list, 0 when they did not. The frame is
what a learned ranker (LightGBM lambdarank, grouped by ``recommendation_id``) trains
on next, so the next model learns from the current one's successes and misses.

Frame columns (one row per impression, oldest first):

======================  ============================================================
``recommendation_id``   the served answer (a ranking group)
``user_id``             who was shown the item
``item_id``             the item shown
``position``            its 1-based slot (``context.position``), NaN if unknown
``served_at``           when the list was served (UTC)
``model_name``          the family that served it (``model_version`` the version)
``experiment_id``       the experiment and ``variant`` it was served in, or None
``propensity``          the logging probability of that item in that slot
``score``               the serving model's score for the item, NaN if unknown
``context``             the request's context (dict: device, location, ...)
``label``               1 clicked, 0 shown and not clicked
``purchased``           1 when a purchase from that list followed, else 0
======================  ============================================================
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from tailored.monitoring.online import attribute
from tailored.store import Store

FEEDBACK_COLUMNS = ("recommendation_id", "user_id", "item_id", "position", "served_at",
                    "model_name", "model_version", "experiment_id", "variant", "propensity",
                    "score", "context", "label", "purchased")


def feedback_labels(served: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Labelled impressions from the served log and the events (see the module doc).

    Examples
    --------
    >>> served = pd.DataFrame({
    ...     "recommendation_id": ["r1"], "user_id": ["u1"],
    ...     "served_at": pd.to_datetime(["2026-01-01"], utc=True), "model_name": ["als"],
    ...     "model_version": [2], "experiment_id": [None], "variant": [None],
    ...     "item_ids": [["i1", "i2"]], "scores": [[0.9, 0.5]],
    ...     "propensities": [[1.0, 1.0]], "context": [{"device": "mobile"}]})
    >>> def event(item, kind, position):
    ...     return {"user_id": "u1", "item_id": item, "event_type": kind, "value": None,
    ...             "timestamp": pd.Timestamp("2026-01-01 00:01", tz="UTC"),
    ...             "session_id": None,
    ...             "context": {"recommendation_id": "r1", "position": position}}
    >>> events = pd.DataFrame([event("i1", "impression", 1), event("i2", "impression", 2),
    ...                        event("i2", "click", 2)])
    >>> labels = feedback_labels(served, events)
    >>> labels[["item_id", "position", "score", "label"]].values.tolist()
    [['i1', 1.0, 0.9, 0], ['i2', 2.0, 0.5, 1]]
    """
    found = attribute(served, events)
    impressions = found.impressions
    if impressions.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in FEEDBACK_COLUMNS})
    info = served.set_index("recommendation_id")
    bought = set(zip(found.purchases["recommendation_id"], found.purchases["item_id"],
                     strict=True))
    lists: dict[str, tuple[list[str], list[float], list[float]]] = {
        rid: (items, scores, odds) for rid, items, scores, odds in zip(
            served["recommendation_id"], served["item_ids"], served["scores"],
            served["propensities"], strict=True)}
    scores, propensities = [], []
    for rid, item in zip(impressions["recommendation_id"], impressions["item_id"],
                         strict=True):
        items, item_scores, odds = lists[rid]
        slot = items.index(item) if item in items else -1
        scores.append(float(item_scores[slot]) if 0 <= slot < len(item_scores) else np.nan)
        propensities.append(float(odds[slot]) if 0 <= slot < len(odds) else 1.0)
    rids = impressions["recommendation_id"]
    out = pd.DataFrame({
        "recommendation_id": rids.to_numpy(),
        "user_id": impressions["user_id"].to_numpy(),
        "item_id": impressions["item_id"].to_numpy(),
        "position": impressions["position"].astype(float).to_numpy(),
        "served_at": info.loc[rids, "served_at"].to_numpy(),
        "model_name": info.loc[rids, "model_name"].to_numpy(),
        "model_version": info.loc[rids, "model_version"].to_numpy(),
        "experiment_id": info.loc[rids, "experiment_id"].to_numpy(),
        "variant": info.loc[rids, "variant"].to_numpy(),
        "propensity": propensities,
        "score": scores,
        "context": info.loc[rids, "context"].to_numpy(),
        "label": impressions["clicked"].astype("int64").to_numpy(),
        "purchased": np.array([(r, i) in bought for r, i in zip(
            rids, impressions["item_id"], strict=True)], dtype="int64"),
    })
    return out.sort_values(["served_at", "recommendation_id", "position"],
                           kind="stable").reset_index(drop=True)


def feedback_from_store(store: Store, since: datetime | None = None) -> pd.DataFrame:
    """:func:`feedback_labels` for every answer in the served log (served since ``since``)
    to a user who does not withhold consent."""
    served = store.served.frame(since=since)
    served = served[served["user_id"].notna()
                    & ~served["user_id"].isin(store.users.without_consent())]
    users = served["user_id"].unique().tolist()
    events = store.events.frame(user_ids=users) if users else store.events.frame(user_ids=[])
    return feedback_labels(served, events)
