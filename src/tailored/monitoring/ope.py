"""Off-policy evaluation: a candidate's CTR estimated from the current policy's log.

The served log records, for every shown item, the probability the serving (logging)
policy had of showing that item in that slot, its *propensity*. Reweighting each
logged impression by how much more (or less) likely the candidate (target) policy
is to show the same item in the same slot gives an unbiased estimate of the clicks
the candidate would get, without showing it to anyone:

* **IPS** (inverse propensity scoring): ``sum(click * w) / impressions`` with
  ``w = p_target(item, slot) / p_logging(item, slot)``;
* **SNIPS** (self-normalised IPS): ``sum(click * w) / sum(w)``, slightly biased but
  with far less variance when weights are large.

This is the *item-position* estimator: each slot is a separate action, so it is
unbiased under a position-based click model (a click depends on the item and the
slot, not on the rest of the list). It needs the logging policy to explore: with a
deterministic ranking (every propensity 1), only slots where both policies show the
same item count and the estimate is biased towards zero (``support`` reports the
share of such slots).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from tailored.dataset import UserQuery
from tailored.errors import InvalidDataError, ModelNotFoundError
from tailored.models import Recommender
from tailored.monitoring.online import attribute
from tailored.pipeline import Overrides, Pipeline
from tailored.store import Store


@dataclass(frozen=True)
class OpeEstimate:
    """A target policy's CTR estimated from logged impressions.

    ``ips`` with its normal-approximation interval ``ips_low``..``ips_high``,
    ``snips``, the ``logged_ctr`` the logging policy got on the same impressions,
    ``support`` (share of logged slots the target would fill with the same item) and
    the ``effective_sample_size`` ``(sum w)^2 / sum w^2`` (small = unreliable).
    """

    ips: float
    ips_low: float
    ips_high: float
    snips: float | None
    logged_ctr: float
    recommendations: int
    impressions: int
    support: float
    effective_sample_size: float
    deterministic_logging: bool

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}


def estimate(logged: pd.DataFrame, target: pd.DataFrame,
             confidence: float = 0.95) -> OpeEstimate:
    """IPS and SNIPS CTR of ``target`` on the ``logged`` impressions.

    Parameters
    ----------
    logged : pandas.DataFrame
        One row per shown item: ``recommendation_id``, ``item_id``, ``position``
        (1-based slot), ``propensity`` (logging probability of that item in that
        slot, > 0) and ``clicked`` (bool).
    target : pandas.DataFrame
        The target policy's probability of each item in each slot:
        ``recommendation_id``, ``item_id``, ``position``, ``probability`` (1.0 rows
        for a deterministic ranking; missing pairs are 0).

    Examples
    --------
    >>> logged = pd.DataFrame({"recommendation_id": ["r1", "r1", "r2", "r2"],
    ...                        "item_id": ["a", "b", "b", "a"], "position": [1, 2, 1, 2],
    ...                        "propensity": [0.5] * 4, "clicked": [True, False, True, False]})
    >>> target = pd.DataFrame({"recommendation_id": ["r1", "r1", "r2", "r2"],
    ...                        "item_id": ["a", "b", "a", "b"], "position": [1, 2, 1, 2],
    ...                        "probability": [1.0] * 4})
    >>> result = estimate(logged, target)
    >>> result.ips, result.snips, result.support
    (0.5, 0.5, 0.5)
    """
    needed = {"recommendation_id", "item_id", "position", "propensity", "clicked"}
    missing = needed - set(logged.columns)
    if missing:
        raise InvalidDataError(f"logged impressions lack the columns {sorted(missing)}")
    if logged.empty:
        raise InvalidDataError("no logged impressions to evaluate on; serve recommendations "
                               "and send impression events with context.recommendation_id")
    propensity = logged["propensity"].to_numpy(dtype=float)
    if not np.all((propensity > 0) & (propensity <= 1)):
        raise InvalidDataError("logging propensities must be in (0, 1]")
    keys = ["recommendation_id", "item_id", "position"]
    joined = logged[keys].merge(target[[*keys, "probability"]], on=keys, how="left")
    p_target = joined["probability"].fillna(0.0).to_numpy(dtype=float)
    weights = p_target / propensity
    clicks = logged["clicked"].to_numpy(dtype=float)
    values = clicks * weights
    n = len(values)
    ips = float(values.mean())
    spread = float(values.std(ddof=1)) if n > 1 else 0.0
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    half = z * spread / math.sqrt(n)
    total = float(weights.sum())
    ess = total ** 2 / float((weights ** 2).sum()) if total > 0 else 0.0
    return OpeEstimate(
        ips=ips, ips_low=max(0.0, ips - half), ips_high=ips + half,
        snips=float(values.sum() / total) if total > 0 else None,
        logged_ctr=float(clicks.mean()),
        recommendations=int(logged["recommendation_id"].nunique()), impressions=n,
        support=float((p_target > 0).mean()), effective_sample_size=ess,
        deterministic_logging=bool(np.all(propensity == 1.0)))


def logged_impressions(served: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """The served log's impressions with their logging propensity and whether clicked.

    Columns: ``recommendation_id``, ``user_id``, ``item_id``, ``position``,
    ``propensity``, ``clicked``. The position is the impression's
    ``context.position`` or, without one, the item's place in the served list.
    """
    found = attribute(served, events)
    impressions = found.impressions
    if impressions.empty:
        return pd.DataFrame(columns=["recommendation_id", "user_id", "item_id", "position",
                                     "propensity", "clicked"])
    lists: dict[str, tuple[list[str], list[float]]] = {
        rid: (items, odds) for rid, items, odds in zip(
            served["recommendation_id"], served["item_ids"], served["propensities"],
            strict=True)}
    rows = []
    for rid, user, item, position, clicked in zip(
            impressions["recommendation_id"], impressions["user_id"], impressions["item_id"],
            impressions["position"], impressions["clicked"], strict=True):
        items, odds = lists[rid]
        if not math.isfinite(position):
            position = items.index(item) + 1 if item in items else math.nan
        slot = int(position) - 1 if math.isfinite(position) else -1
        # The propensity of the item actually logged in that slot, 1.0 when unknown.
        propensity = (float(odds[slot]) if 0 <= slot < min(len(odds), len(items))
                      and items[slot] == item else 1.0)
        rows.append((rid, user, item, position, propensity, bool(clicked)))
    frame = pd.DataFrame(rows, columns=["recommendation_id", "user_id", "item_id", "position",
                                        "propensity", "clicked"])
    return frame[frame["position"].notna()].astype({"position": "int64"})


def target_rankings(model: Pipeline | Recommender, served: pd.DataFrame,
                    events: pd.DataFrame, k: int, exclude: list[str] | None = None
                    ) -> pd.DataFrame:
    """The lists ``model`` (a version's pipeline, or a bare model) would have served for
    the logged requests.

    Each request is scored from its user's history as it was when it was served
    (interest events before ``served_at``), under the request's id as the user id: the
    model scores from the history (fold-in), not from what it learned about that user.
    Columns: ``recommendation_id``, ``item_id``, ``position``, ``probability`` (1.0).
    """
    requests = served[["recommendation_id", "user_id", "served_at"]].dropna(subset=["user_id"])
    history = events[events["event_type"] != "impression"][
        ["user_id", "item_id", "event_type", "value", "timestamp"]]
    history = history.merge(requests, on="user_id")
    history = history[history["timestamp"] < history["served_at"]]
    history = history.assign(user_id=history["recommendation_id"])[
        ["user_id", "item_id", "event_type", "value", "timestamp"]].reset_index(drop=True)
    query = UserQuery(tuple(requests["recommendation_id"]), history)
    pipeline = model if isinstance(model, Pipeline) else Pipeline.of(model)
    top = pipeline.run(query, k, Overrides(exclude=tuple(exclude or ())))
    return pd.DataFrame({"recommendation_id": top["user_id"], "item_id": top["item_id"],
                         "position": top["rank"].astype("int64"), "probability": 1.0})


def evaluate_candidate(store: Store, version: int, *, experiment_id: str | None = None,
                       since: Any = None, confidence: float = 0.95) -> OpeEstimate:
    """Estimate the CTR of registered model ``version`` from the served log.

    Uses every logged answer (or those of one experiment, or since a time) that has
    impressions, and the candidate's lists for the same requests.
    """
    found = store.models.get(version)
    if found is None:
        raise ModelNotFoundError(f"model version {version} is not in the registry; "
                                 "`tailored models list` or GET /models shows the versions")
    served = store.served.frame(since=since, experiment_id=experiment_id)
    served = served[served["user_id"].notna()]
    if served.empty:
        raise InvalidDataError("the served log is empty; serve recommendations first")
    events = store.events.frame(user_ids=served["user_id"].unique().tolist())
    logged = logged_impressions(served, events)
    if logged.empty:
        raise InvalidDataError("no impressions refer to the served answers; send impression "
                               "events with context.recommendation_id and context.position")
    served = served[served["recommendation_id"].isin(logged["recommendation_id"])]
    model = Pipeline.load(Path(found.path))
    k = int(logged["position"].max())
    target = target_rankings(model, served, events, k, store.items.unavailable())
    return estimate(logged, target, confidence)
