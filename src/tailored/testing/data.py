"""Synthetic data where the right answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tailored.dataset import Dataset


def checkerboard(n_users: int = 40, n_items: int = 20, density: float = 0.5,
                 seed: int = 0) -> Dataset:
    """Two taste groups: users ``a*`` touch only items ``A*``, users ``b*`` only ``B*``.

    Every user leaves some of their group's items untouched, so a good model
    recommends the rest of the group and never the other group's items. Items carry a
    group category and words in their text, users a group attribute, so content and
    profile based models have the same signal.

    Examples
    --------
    >>> data = checkerboard(n_users=4, n_items=6)
    >>> sorted(set(data.events["user_id"].str[0] + data.events["item_id"].str[0]))
    ['aA', 'bB']
    """
    rng = np.random.default_rng(seed)
    rows = []
    for group in ("a", "b"):
        group_users = [f"{group}{u:03d}" for u in range(n_users // 2)]
        group_items = [f"{group.upper()}{i:03d}" for i in range(n_items // 2)]
        for user in group_users:
            touched = rng.choice(len(group_items), size=max(1, int(len(group_items) * density)),
                                 replace=False)
            rows += [(user, group_items[i]) for i in touched]
    order = rng.permutation(len(rows))
    events = pd.DataFrame([rows[i] for i in order], columns=["user_id", "item_id"])
    events["event_type"] = rng.choice(["view", "click", "purchase"], size=len(events),
                                      p=[0.6, 0.3, 0.1])
    events["timestamp"] = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(
        np.arange(len(events)), unit="min")
    item_ids = sorted(set(events["item_id"]) | {f"{g}{i:03d}" for g in "AB"
                                                  for i in range(n_items // 2)})
    words = {"a": "sturdy hiking boot trail", "b": "silk evening dress party"}
    items = pd.DataFrame({
        "item_id": item_ids,
        "title": [f"{words[group_of(i)].split()[0]} item {i}" for i in item_ids],
        "text": [words[group_of(i)] for i in item_ids],
        "categories": [[f"group-{group_of(i)}"] for i in item_ids],
        "price": [10.0 + k for k in range(len(item_ids))],
    })
    user_ids = sorted(set(events["user_id"]))
    users = pd.DataFrame({"user_id": user_ids,
                          "taste": [f"likes-{group_of(u)}" for u in user_ids],
                          "location": rng.choice(["Berlin", "Paris"], size=len(user_ids))})
    return Dataset.from_frame(events, items=items, users=users)


def group_of(external_id: str) -> str:
    """``"a"`` or ``"b"``: the checkerboard group of a user or item id."""
    return external_id[0].lower()
