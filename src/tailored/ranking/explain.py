"""Explanations: a short, true reason for every recommended item.

The reasons come from the model that scored the items (the ``Recommender``
explanation hook, :meth:`Recommender.explanations`), so each names real evidence:

=================  ===========================================================
model              reason
=================  ===========================================================
item_knn, ease     "because you viewed X": the history item with the largest
                   term of the score (weight x similarity / EASE weight)
transitions        "because you viewed X": the latest item with the largest term
                   (recency weight x how often the item followed it)
als, bpr           "because you viewed X": the history item with the largest
                   exact share of the score (ALS: c_h y_iᵀ W y_h of the fold-in;
                   BPR: the stationarity of the fold-in objective)
user_knn           "liked by N people with tastes like yours"
content            "matches Drama, Romance": categories on the item and on the
                   named history items (else shared terms or attribute values)
segments           "popular in your segment"
trending           "trending this week"
popular            "popular"
others             "similar to X, which you viewed" (the model's item similarity
                   to the user's history; exact for item2vec's cosine scores)
=================  ===========================================================

Users without history get the reason of the fallback that scored them (popular, or
the segment). Items the model does not know are "new in the catalog", and items an
exploration policy placed (``explored`` column of :func:`~tailored.ranking.explore`)
are "something new for you to try" (unknown items stay "new in the catalog").

Service usage: ``explain_recommendations(model, query, shown, titles=titles)`` with
the query the recommendations were made for; it returns ``shown`` plus ``reason``,
``reason_kind``, ``reason_items`` and ``reason_features``.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from tailored.models import Reason, Recommender
from tailored.models.base import REASON_KINDS, Users


def explain_recommendations(model: Recommender, users: Users, recommendations: pd.DataFrame,
                            *, titles: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``recommendations`` with a reason per row (see the module notes).

    Parameters
    ----------
    model : the fitted model that made the recommendations
    users : the ids or :class:`~tailored.dataset.UserQuery` the recommendations were
        made for (their histories are what the reasons name)
    recommendations : frame with ``user_id`` and ``item_id`` (and optionally
        ``explored`` from :func:`~tailored.ranking.explore`)
    titles : item id -> display name, optional (default: ids)

    Examples
    --------
    >>> import pandas as pd
    >>> import tailored
    >>> from tailored.models import ItemKNN
    >>> events = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c"],
    ...                        "item_id": ["x", "y", "x", "y", "x"]})
    >>> model = ItemKNN().fit(tailored.Dataset.from_frame(events))
    >>> recs = model.recommend("c", k=1)
    >>> explain_recommendations(model, "c", recs, titles={"x": "Heat"})["reason"].tolist()
    ['because you viewed Heat']
    """
    explained = model.explanations(users, recommendations, titles=titles)
    if "explored" in recommendations.columns:
        # A new item is said to be new; a known one the bandit placed, explored.
        explored = (recommendations["explored"].fillna(False).astype(bool).to_numpy()
                    & (explained["reason_kind"] != "new").to_numpy())
        exploring = Reason("exploration")
        explained.loc[explored, "reason"] = exploring.text(titles)
        explained.loc[explored, "reason_kind"] = exploring.kind
        for column in ("reason_items", "reason_features"):
            explained[column] = [[] if flag else value
                                 for flag, value in zip(explored, explained[column], strict=True)]
    return explained


def titles_of(items: pd.DataFrame) -> dict[str, str]:
    """``item_id -> title`` from a catalog frame (items without a title are left out).

    Examples
    --------
    >>> titles_of(pd.DataFrame({"item_id": ["a", "b"], "title": ["Heat", None]}))
    {'a': 'Heat'}
    """
    if "item_id" not in items.columns or "title" not in items.columns:
        return {}
    present = items[items["title"].notna() & (items["title"].astype(str) != "")]
    return dict(zip(present["item_id"].astype(str), present["title"].astype(str), strict=True))


__all__ = ["REASON_KINDS", "Reason", "explain_recommendations", "titles_of"]
