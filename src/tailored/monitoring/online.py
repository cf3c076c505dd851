"""Online metrics of served recommendations, attributed through recommendation ids.

Every answer the service gives is in the served log with its ``recommendation_id``
(and, inside an experiment, its ``experiment_id`` and ``variant``). Clients send back
what users saw and did with that id in the event's ``context``:

* ``impression`` events, one per shown item (``context.recommendation_id``,
  ``context.position``),
* ``click``, ``add_to_cart`` and ``purchase`` events that came from the list
  (``context.recommendation_id``; a purchase's ``value`` is what was paid).

From those this module computes, per variant:

========================  =====================================================
``users``                 distinct users served in the variant (exposed users)
``recommendations``       answers served
``impressions``           distinct (recommendation, item) pairs shown
``clicks``                distinct (recommendation, item) pairs shown and clicked
``ctr``                   clicks / impressions
``conversions``           exposed users with at least one attributed purchase
``conversion``            conversions / users
``revenue``               sum of the values of attributed purchases
``revenue_per_user``      revenue / users
``engagement``            events per session of exposed users after their first
                          exposure (impressions not counted; a user's events
                          without a session id form one session per day)
``retention``             share of exposed users active again N days after their
                          first exposure, for N in :data:`RETENTION_DAYS`
                          (only users exposed at least N days before the last
                          event count)
========================  =====================================================

A click counts only for an item that was shown in that answer (an impression), so a
client that never sends impressions has no CTR; the CTR is per impression, which is
what the dashboard shows. Impressions of one user are correlated: the verdict of
:mod:`tailored.monitoring.abtest` rests on user-level tests
(:mod:`tailored.monitoring.clustered`), the per-impression figures are shown beside them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Day offsets the retention is reported for.
RETENTION_DAYS = (1, 7)

#: Event types that come from a recommendation and count as an outcome.
OUTCOME_TYPES = ("click", "add_to_cart", "purchase")


@dataclass(frozen=True)
class Attributed:
    """Events tied to served recommendations, one frame per kind.

    ``impressions`` and ``clicks`` have one row per (recommendation, item) with the
    columns ``recommendation_id``, ``item_id``, ``user_id``, ``variant``,
    ``timestamp`` (and ``position`` for impressions, ``clicked`` for impressions);
    ``purchases`` one row per purchase event with ``value``.
    """

    served: pd.DataFrame
    impressions: pd.DataFrame
    clicks: pd.DataFrame
    purchases: pd.DataFrame


def recommendation_ids(events: pd.DataFrame) -> pd.Series:
    """``context.recommendation_id`` of each event (``None`` where there is none).

    Examples
    --------
    >>> frame = pd.DataFrame({"context": [{"recommendation_id": "r1"}, {}]})
    >>> recommendation_ids(frame).tolist()
    ['r1', None]
    """
    return pd.Series([_context_value(c, "recommendation_id") for c in events["context"]],
                     index=events.index, dtype=object)


def _context_value(context: object, key: str) -> object:
    if isinstance(context, dict):
        value = context.get(key)
        return None if value is None else value
    return None


def attribute(served: pd.DataFrame, events: pd.DataFrame) -> Attributed:
    """Tie impressions, clicks and purchases to the served answers they came from.

    Parameters
    ----------
    served : pandas.DataFrame
        The served log (at least ``recommendation_id``, ``user_id``, ``served_at``,
        ``variant``).
    events : pandas.DataFrame
        Events with :data:`~tailored.store.EVENT_COLUMNS`.
    """
    served = served.copy()
    if "variant" not in served.columns:
        served["variant"] = None
    served["variant"] = served["variant"].fillna("(none)")
    variant_of = dict(zip(served["recommendation_id"], served["variant"], strict=True))
    rid = recommendation_ids(events)
    ours = events.assign(recommendation_id=rid)[rid.isin(variant_of.keys()).to_numpy()]
    ours = ours.assign(variant=ours["recommendation_id"].map(variant_of))
    keys = ["recommendation_id", "item_id"]
    columns = ["recommendation_id", "item_id", "user_id", "variant", "timestamp"]

    impressions = ours[ours["event_type"] == "impression"].drop_duplicates(keys)
    positions = pd.to_numeric(
        pd.Series([_context_value(c, "position") for c in impressions["context"]],
                  index=impressions.index, dtype=object), errors="coerce")
    impressions = impressions[columns].assign(position=positions)
    clicks = ours[ours["event_type"] == "click"].drop_duplicates(keys)[columns]
    # A click counts where the item was shown in that answer: CTR stays a share.
    clicks = clicks.merge(impressions[keys], on=keys, how="inner")
    clicked = pd.MultiIndex.from_frame(impressions[keys]).isin(
        pd.MultiIndex.from_frame(clicks[keys])) if len(impressions) else np.zeros(0, bool)
    impressions = impressions.assign(clicked=clicked)
    purchases = ours[ours["event_type"] == "purchase"][[*columns, "value"]]
    return Attributed(served, impressions.reset_index(drop=True),
                      clicks.reset_index(drop=True), purchases.reset_index(drop=True))


def variant_metrics(served: pd.DataFrame, events: pd.DataFrame,
                    attributed: Attributed | None = None) -> pd.DataFrame:
    """The online metrics per variant (one row each, indexed by variant name).

    ``events`` should hold every event of the served users (not only attributed
    ones), for engagement and retention. ``attributed`` is :func:`attribute` of the same
    frames, when the caller has it already.

    Examples
    --------
    >>> served = pd.DataFrame({"recommendation_id": ["r1", "r2"], "user_id": ["u1", "u2"],
    ...                        "variant": ["A", "B"],
    ...                        "served_at": pd.to_datetime(["2026-01-01"] * 2, utc=True)})
    >>> def event(user, item, kind, rid, value=None):
    ...     return {"user_id": user, "item_id": item, "event_type": kind, "value": value,
    ...             "timestamp": pd.Timestamp("2026-01-01 00:01", tz="UTC"),
    ...             "session_id": "s-" + user, "context": {"recommendation_id": rid}}
    >>> events = pd.DataFrame([event("u1", "i1", "impression", "r1"),
    ...                        event("u1", "i2", "impression", "r1"),
    ...                        event("u1", "i1", "click", "r1"),
    ...                        event("u1", "i1", "purchase", "r1", 20.0),
    ...                        event("u2", "i1", "impression", "r2")])
    >>> metrics = variant_metrics(served, events)
    >>> a, b = metrics.loc["A"], metrics.loc["B"]
    >>> int(a.impressions), int(a.clicks), float(a.ctr), float(a.revenue_per_user)
    (2, 1, 0.5, 20.0)
    >>> int(b.impressions), int(b.clicks), float(b.ctr)
    (1, 0, 0.0)
    """
    found = attributed if attributed is not None else attribute(served, events)
    served = found.served
    variants = pd.Index(pd.unique(served["variant"]), name="variant")
    out = pd.DataFrame(index=variants)
    out["users"] = served.groupby("variant")["user_id"].nunique()
    out["recommendations"] = served.groupby("variant")["recommendation_id"].nunique()
    out["impressions"] = found.impressions.groupby("variant").size()
    out["clicks"] = found.clicks.groupby("variant").size()
    out["conversions"] = found.purchases.groupby("variant")["user_id"].nunique()
    out["revenue"] = found.purchases.groupby("variant")["value"].sum(min_count=1)
    out = out.fillna({"impressions": 0, "clicks": 0, "conversions": 0, "revenue": 0.0})
    for column in ("users", "recommendations", "impressions", "clicks", "conversions"):
        out[column] = out[column].fillna(0).astype("int64")
    out["revenue"] = out["revenue"].astype("float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        out["ctr"] = np.where(out["impressions"] > 0, out["clicks"] / out["impressions"],
                              np.nan)
        out["conversion"] = np.where(out["users"] > 0, out["conversions"] / out["users"],
                                     np.nan)
        out["revenue_per_user"] = np.where(out["users"] > 0, out["revenue"] / out["users"],
                                           np.nan)
    activity = _activity_after_exposure(served, events)
    out["engagement"] = engagement(activity).reindex(variants)
    retention = retention_by_day(activity)
    for days in RETENTION_DAYS:
        out[f"retention_d{days}"] = retention.get(days, pd.Series(dtype=float)).reindex(
            variants)
    return out


def _activity_after_exposure(served: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Events (impressions left out) of exposed users from their first exposure on, with
    the user's variant and first exposure time."""
    first = (served.sort_values("served_at").drop_duplicates("user_id")
             [["user_id", "variant", "served_at"]].rename(columns={"served_at": "exposed_at"}))
    acts = events[events["event_type"] != "impression"][
        ["user_id", "timestamp", "session_id", "event_type"]].merge(first, on="user_id")
    exposed_at = pd.to_datetime(acts["exposed_at"], utc=True)
    # A little slack: a client's clock may run behind the server's.
    acts = acts[acts["timestamp"] >= exposed_at - pd.Timedelta(minutes=5)]
    return acts.assign(first=first.set_index("user_id")["exposed_at"]
                       .reindex(acts["user_id"]).to_numpy())


def engagement(activity: pd.DataFrame) -> pd.Series:
    """Mean events per session per variant (sessions without an id: one per user-day)."""
    if activity.empty:
        return pd.Series(dtype=float)
    day = activity["timestamp"].dt.strftime("%Y-%m-%d")
    session = activity["session_id"].where(activity["session_id"].notna(),
                                           activity["user_id"] + "@" + day)
    sizes = activity.assign(session=session).groupby(["variant", "session"]).size()
    return sizes.groupby(level="variant").mean()


def retention_by_day(activity: pd.DataFrame) -> dict[int, pd.Series]:
    """Per day offset N: share of users per variant active on day first-exposure + N.

    Only users whose first exposure is at least N days before the last activity seen
    count (younger ones could not have come back yet).
    """
    if activity.empty:
        return {}
    day = activity["timestamp"].dt.floor("D")
    first_day = pd.to_datetime(activity["first"], utc=True).dt.floor("D")
    offset = (day - first_day).dt.days
    last_day = day.max()
    users = activity.assign(offset=offset, first_day=first_day)
    result: dict[int, pd.Series] = {}
    for days in RETENTION_DAYS:
        eligible = users[users["first_day"] <= last_day - pd.Timedelta(days=days)]
        if eligible.empty:
            continue
        cohort = eligible.groupby("variant")["user_id"].nunique()
        back = eligible[eligible["offset"] == days].groupby("variant")["user_id"].nunique()
        result[days] = (back.reindex(cohort.index).fillna(0) / cohort).astype(float)
    return result


def cumulative_ctr(impressions: pd.DataFrame, period: str) -> pd.DataFrame:
    """Cumulative impressions and clicks per variant at the end of each ``period``
    (a pandas frequency: ``"D"``, ``"h"``, ``"min"``), every variant on every bucket."""
    if impressions.empty:
        return pd.DataFrame(columns=["at", "variant", "impressions", "clicks"])
    at = pd.to_datetime(impressions["timestamp"], utc=True).dt.floor(period)
    counts = (impressions.assign(at=at, clicked=impressions["clicked"].astype("int64"))
              .groupby(["variant", "at"])
              .agg(impressions=("item_id", "size"), clicks=("clicked", "sum")))
    buckets = pd.date_range(at.min(), at.max(), freq=period)
    variants = sorted(impressions["variant"].unique())
    full = pd.MultiIndex.from_product([variants, buckets], names=["variant", "at"])
    counts = counts.reindex(full, fill_value=0).groupby(level="variant").cumsum()
    return counts.reset_index()


def curve_period(timestamps: pd.Series, points: int = 6) -> str:
    """The coarsest of day / hour / minute that gives at least ``points`` buckets.

    Examples
    --------
    >>> stamps = pd.Series(pd.date_range("2026-01-01", periods=30, freq="D", tz="UTC"))
    >>> curve_period(stamps)
    'D'
    >>> curve_period(pd.Series(pd.date_range("2026-01-01", periods=30, freq="min", tz="UTC")))
    'min'
    """
    if timestamps.empty:
        return "D"
    span = timestamps.max() - timestamps.min()
    for period, length in (("D", pd.Timedelta(days=1)), ("h", pd.Timedelta(hours=1))):
        if span >= length * (points - 1):
            return period
    return "min"
