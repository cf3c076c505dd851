"""Drift detectors over the store's events, each an ADWIN (``river``) on one stream.

Three streams are watched:

``ctr``
    The online click-through rate: every impression (an event of type ``impression``
    carrying ``context.recommendation_id``) is a 1 when the user clicked that item from
    that recommendation (an event of a click type with the same recommendation id and
    item), else 0. ADWIN keeps the longest recent window whose mean is consistent and
    signals when the CTR changed.
``event_mix`` and ``item_popularity``
    What users do, apart from impressions, cut into windows of ``window_events``
    events. Each window's distribution (over event types; over the reference's most
    popular items plus "other") is compared with the reference distribution (what the
    active model was trained on, or the first part of the events) by the
    Jensen-Shannon distance; ADWIN watches that series, standardised by its spread
    over the reference's own windows, and signals when the level of divergence moved.
    The population stability index (PSI) of the last window is reported beside it
    (above 0.25 is a large shift by the usual rule of thumb).

A detection that matters (the CTR fell, a divergence rose) after the reference period
and after the detector's previous alert becomes an :class:`~tailored.store.Alert` in the
store; ``tailored train --schedule`` retrains on unhandled alerts.

Detectors are replayed over the stored events on every check rather than kept in
memory, so every process (the API, ``tailored monitor``, the retraining worker) sees
the same state and a restart loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from river.drift import ADWIN
from scipy.spatial.distance import jensenshannon

from tailored.store import Alert, Store
from tailored.store.webhooks import notify

IMPRESSION = "impression"
OTHER_ITEMS = "(other items)"
Status = Literal["ok", "alert", "no data"]


class DriftConfig(BaseModel):
    """How the drift detectors read the events."""

    model_config = ConfigDict(extra="forbid")

    delta: float = Field(default=0.002, gt=0, lt=1, description=(
        "ADWIN's confidence: a smaller delta needs stronger evidence before it signals."))
    window_events: int | None = Field(default=None, ge=20, description=(
        "Events per window for the input distributions (event mix, item popularity); by "
        "default about a hundredth of the events, between 100 and 5,000, so ADWIN has "
        "enough windows to test."))
    reference_fraction: float = Field(default=0.25, gt=0, lt=1, description=(
        "Share of the first events used as the reference distribution when the active "
        "model does not record what it was trained on (details.trained_until)."))
    top_items: int = Field(default=50, ge=1, description=(
        "Item popularity is compared over the reference's top items plus one 'other'."))
    click_types: tuple[str, ...] = Field(default=("click",), min_length=1, description=(
        "Event types that count as a click on an impression."))
    min_observations: int = Field(default=30, ge=1, description=(
        "Fewer observations than this: the detector reports 'no data'."))


@dataclass(frozen=True)
class DriftPoint:
    """Where ADWIN signalled: the mean of the stream before and after the change."""

    detected_at: datetime
    before: float
    after: float

    @property
    def direction(self) -> Literal["up", "down"]:
        return "up" if self.after >= self.before else "down"


@dataclass(frozen=True)
class DetectorState:
    """One detector after replaying its stream."""

    name: str
    description: str
    observations: int
    estimate: float | None
    drifts: tuple[DriftPoint, ...]
    #: The stream over time for a plot: a frame with ``at`` and ``value`` (and, for the
    #: CTR, ``impressions`` and ``clicks`` per period).
    series: pd.DataFrame
    status: Status = "ok"
    latest: dict[str, float] = field(default_factory=dict)

    @property
    def last_drift(self) -> DriftPoint | None:
        return self.drifts[-1] if self.drifts else None


@dataclass(frozen=True)
class DriftReport:
    """The state of every detector, and the alerts this check raised."""

    checked_at: datetime
    detectors: tuple[DetectorState, ...]
    new_alerts: tuple[Alert, ...]
    reference_until: datetime | None

    def detector(self, name: str) -> DetectorState:
        for state in self.detectors:
            if state.name == name:
                return state
        raise KeyError(f"no detector {name!r}; there are {[d.name for d in self.detectors]}")


# ---- the streams ----------------------------------------------------------------------

def impression_outcomes(events: pd.DataFrame,
                        click_types: Iterable[str] = ("click",)) -> pd.DataFrame:
    """One row per attributed impression, oldest first: ``timestamp``,
    ``recommendation_id``, ``item_id`` and ``clicked`` (0 or 1).

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> t = pd.Timestamp("2026-01-01", tz="UTC")
    >>> events = pd.DataFrame({
    ...     "item_id": ["a", "b", "a"], "event_type": ["impression", "impression", "click"],
    ...     "timestamp": [t, t, t + pd.Timedelta("1min")],
    ...     "context": [{"recommendation_id": "r1"}, {"recommendation_id": "r1"},
    ...                 {"recommendation_id": "r1"}]})
    >>> impression_outcomes(events)["clicked"].tolist()
    [1, 0]
    """
    recommendation = _recommendation_ids(events)
    attributed = events.assign(recommendation_id=recommendation)[recommendation.notna()]
    impressions = attributed[attributed["event_type"] == IMPRESSION]
    clicks = attributed[attributed["event_type"].isin(list(click_types))]
    clicked = set(zip(clicks["recommendation_id"], clicks["item_id"], strict=True))
    outcomes = pd.DataFrame({
        "timestamp": impressions["timestamp"].to_numpy(),
        "recommendation_id": impressions["recommendation_id"].to_numpy(),
        "item_id": impressions["item_id"].to_numpy(),
        "clicked": [int(key in clicked) for key in zip(
            impressions["recommendation_id"], impressions["item_id"], strict=True)],
    })
    outcomes["timestamp"] = pd.to_datetime(outcomes["timestamp"], utc=True)
    return outcomes.sort_values("timestamp", kind="stable").reset_index(drop=True)


def _recommendation_ids(events: pd.DataFrame) -> pd.Series:
    return pd.Series(
        [c.get("recommendation_id") if isinstance(c, dict) else None for c in events["context"]],
        index=events.index, dtype=object)


def divergence(window: pd.Series, reference: pd.Series) -> tuple[float, float]:
    """Jensen-Shannon distance (base 2, in [0, 1]) and population stability index of a
    window's distribution against the reference's, both given as counts per category.

    Examples
    --------
    >>> same = pd.Series({"view": 60, "click": 40})
    >>> divergence(same, same)
    (0.0, 0.0)
    >>> js, psi = divergence(pd.Series({"view": 90, "click": 10}), same)
    >>> round(js, 3), round(psi, 3)
    (0.302, 0.538)
    """
    categories = reference.index.union(window.index)
    p = window.reindex(categories, fill_value=0).to_numpy(dtype=float)
    q = reference.reindex(categories, fill_value=0).to_numpy(dtype=float)
    p, q = p / p.sum(), q / q.sum()
    js = float(jensenshannon(p, q, base=2))
    # PSI is infinite for a category absent on one side; a small floor keeps it finite.
    floor = 1e-4
    pf, qf = np.maximum(p, floor), np.maximum(q, floor)
    psi = float(np.sum((pf - qf) * np.log(pf / qf)))
    return (0.0 if np.isnan(js) else round(js, 12)), round(psi, 12)


def _adwin(values: Iterable[float], times: Iterable[datetime], delta: float,
           clock: int) -> tuple[ADWIN, list[DriftPoint]]:
    detector = ADWIN(delta=delta, clock=clock)
    drifts: list[DriftPoint] = []
    for value, at in zip(values, times, strict=True):
        total, width = detector.total, detector.width
        detector.update(value)
        if detector.drift_detected:
            # ADWIN dropped its older sub-window: compare that part's mean with the rest.
            dropped = width + 1 - detector.width
            before = (total + value - detector.total) / dropped if dropped else total / width
            drifts.append(DriftPoint(pd.Timestamp(at).to_pydatetime(), float(before),
                                     float(detector.estimation)))
    return detector, drifts


def _period(times: pd.Series) -> str:
    span = times.max() - times.min() if len(times) else pd.Timedelta(0)
    return "D" if span > pd.Timedelta(days=3) else "h"


def ctr_detector(events: pd.DataFrame, config: DriftConfig | None = None) -> DetectorState:
    """ADWIN over each attributed impression's outcome (clicked or not), in time order."""
    config = config or DriftConfig()
    outcomes = impression_outcomes(events, config.click_types)
    description = "online CTR (clicked impressions from recommendations)"
    if outcomes.empty:
        return DetectorState("ctr", description, 0, None, (), _empty_series(), "no data")
    detector, drifts = _adwin(outcomes["clicked"].astype(float), outcomes["timestamp"],
                              config.delta, clock=32)
    by_period = (outcomes.set_index("timestamp")["clicked"]
                 .resample(_period(outcomes["timestamp"])).agg(["count", "sum"]))
    by_period = by_period[by_period["count"] > 0]
    series = pd.DataFrame({"at": by_period.index, "impressions": by_period["count"].to_numpy(),
                           "clicks": by_period["sum"].to_numpy()})
    series["value"] = series["clicks"] / series["impressions"]
    status: Status = "no data" if len(outcomes) < config.min_observations else "ok"
    return DetectorState(
        "ctr", description, len(outcomes), float(detector.estimation), tuple(drifts), series,
        status, {"impressions": float(len(outcomes)),
                 "clicks": float(outcomes["clicked"].sum()),
                 "ctr": float(outcomes["clicked"].mean())})


def _windows(events: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    return [events.iloc[start:start + size] for start in range(0, len(events), size)
            if len(events.iloc[start:start + size]) == size]


def _distribution_detector(
    name: str, description: str, events: pd.DataFrame, reference: pd.DataFrame,
    counts: Callable[[pd.DataFrame], pd.Series], config: DriftConfig,
) -> DetectorState:
    size = config.window_events or int(np.clip(len(events) // 100, 100, 5_000))
    windows = _windows(events, size)
    if reference.empty or not windows:
        return DetectorState(name, description, len(windows), None, (), _empty_series(),
                             "no data")
    expected = counts(reference)
    inside = set(reference.index)

    def score(window: pd.DataFrame) -> tuple[float, float]:
        # A window inside the reference is compared with the rest of the reference, so
        # it is out of sample like any later one (else it looks closer than it is).
        seen = counts(window)
        if window.index[0] in inside and window.index[-1] in inside:
            return divergence(seen, expected.sub(seen, fill_value=0))
        return divergence(seen, expected)

    scores = [score(window) for window in windows]
    ends = [window["timestamp"].iloc[-1] for window in windows]
    # A window of a few hundred events is far from its population even without drift, and
    # ADWIN's bound is written for values in [0, 1]: fed raw distances it would need a
    # jump of ~0.2 to signal. So the distances are standardised by their spread under no
    # drift, measured on the reference's own windows.
    null = [score(window)[0] for window in windows
            if window.index[0] in inside and window.index[-1] in inside]
    centre, spread = (float(np.mean(null)), float(np.std(null))) if len(null) >= 3 else (0, 0)
    spread = spread if spread > 1e-9 else 1.0
    standardised = [(js - centre) / spread for js, _ in scores]
    detector, drifts = _adwin(standardised, ends, config.delta, clock=1)
    drifts = [DriftPoint(p.detected_at, centre + p.before * spread, centre + p.after * spread)
              for p in drifts]
    series = pd.DataFrame({"at": ends, "value": [js for js, _ in scores],
                           "psi": [psi for _, psi in scores]})
    status: Status = "no data" if len(windows) < 5 else "ok"
    return DetectorState(name, description, len(windows),
                         centre + float(detector.estimation) * spread, tuple(drifts), series,
                         status, {"js_distance": scores[-1][0], "psi": scores[-1][1],
                                  "no_drift_js": centre})


def event_mix_detector(events: pd.DataFrame, reference: pd.DataFrame,
                       config: DriftConfig | None = None) -> DetectorState:
    """ADWIN over the Jensen-Shannon distance of each window's event-type mix to the
    reference's; ``reference`` is a part of ``events`` (rows of the same frame)."""
    return _distribution_detector(
        "event_mix", "event-type mix vs the reference (Jensen-Shannon distance)", events,
        reference, lambda frame: frame["event_type"].value_counts(), config or DriftConfig())


def item_popularity_detector(events: pd.DataFrame, reference: pd.DataFrame,
                             config: DriftConfig | None = None) -> DetectorState:
    """ADWIN over the Jensen-Shannon distance of each window's item popularity (the
    reference's top items plus "other") to the reference's; ``reference`` is a part of
    ``events`` (rows of the same frame)."""
    config = config or DriftConfig()
    top = reference["item_id"].value_counts().head(config.top_items).index

    def counts(frame: pd.DataFrame) -> pd.Series:
        items = frame["item_id"].where(frame["item_id"].isin(top), OTHER_ITEMS)
        return items.value_counts()

    return _distribution_detector(
        "item_popularity", "item popularity vs the reference (Jensen-Shannon distance)",
        events, reference, counts, config)


def _empty_series() -> pd.DataFrame:
    return pd.DataFrame({"at": pd.Series([], dtype="datetime64[us, UTC]"),
                         "value": pd.Series([], dtype=float)})


# ---- the check ------------------------------------------------------------------------

def reference_until(store: Store) -> datetime | None:
    """The end of the data the active model was trained on, if its version records it."""
    active = store.models.active()
    recorded = None if active is None else active.details.get("trained_until")
    return None if recorded is None else pd.Timestamp(recorded).to_pydatetime()


def detect(events: pd.DataFrame, config: DriftConfig | None = None, *,
           reference_end: datetime | None = None) -> tuple[DetectorState, ...]:
    """Replay every detector over ``events`` (a frame like ``store.events.frame()``).

    The reference for the input distributions is the events up to ``reference_end``
    (inclusive), or the first ``config.reference_fraction`` of them.
    """
    config = config or DriftConfig()
    behaviour = events[events["event_type"] != IMPRESSION].reset_index(drop=True)
    if reference_end is not None:
        reference = behaviour[behaviour["timestamp"] <= pd.Timestamp(reference_end)]
    else:
        reference = behaviour.iloc[:int(len(behaviour) * config.reference_fraction)]
    return (ctr_detector(events, config),
            event_mix_detector(behaviour, reference, config),
            item_popularity_detector(behaviour, reference, config))


def _alarming(state: DetectorState, point: DriftPoint) -> bool:
    # A CTR that rose, or a divergence that fell back towards the reference, is news but
    # not trouble.
    return point.direction == ("down" if state.name == "ctr" else "up")


def _message(state: DetectorState, point: DriftPoint) -> str:
    if state.name == "ctr":
        return (f"online CTR fell from {point.before:.2%} to {point.after:.2%} "
                f"(ADWIN, {point.detected_at:%Y-%m-%d %H:%M} UTC)")
    what = "event-type mix" if state.name == "event_mix" else "item popularity"
    return (f"{what} moved away from the reference: Jensen-Shannon distance "
            f"{point.before:.3f} -> {point.after:.3f} "
            f"(ADWIN, {point.detected_at:%Y-%m-%d %H:%M} UTC)")


def check_drift(store: Store, config: DriftConfig | None = None, *, record: bool = True,
                events: pd.DataFrame | None = None) -> DriftReport:
    """Replay the detectors over the store's events and raise alerts for new drifts.

    An alarming drift (the CTR fell; a divergence rose) becomes an alert when it was
    detected after the reference period and after that detector's latest alert; with
    ``record=False`` nothing is written. ``events`` saves reading the store's events
    when the caller has them already.

    Examples
    --------
    >>> from tailored.store import open_store
    >>> report = check_drift(open_store("sqlite://"))
    >>> [(d.name, d.status) for d in report.detectors]
    [('ctr', 'no data'), ('event_mix', 'no data'), ('item_popularity', 'no data')]
    """
    config = config or DriftConfig()
    reference_end = reference_until(store)
    events = store.events.frame() if events is None else events
    states = detect(events, config, reference_end=reference_end)
    new_alerts: list[Alert] = []
    checked: list[DetectorState] = []
    for state in states:
        previous = store.alerts.latest(state.name)
        after = max((t for t in (reference_end if state.name != "ctr" else None,
                                 None if previous is None else previous.detected_at)
                     if t is not None), default=None)
        for point in state.drifts:
            if not _alarming(state, point) or (after is not None and point.detected_at <= after):
                continue
            if record:
                alert = store.alerts.raise_alert(
                    state.name, point.detected_at, _message(state, point),
                    {"before": point.before, "after": point.after,
                     "direction": point.direction, "observations": state.observations})
                if alert is not None:
                    new_alerts.append(alert)
                    notify(store, "drift.alert", {  # subscribers hear of it (webhooks)
                        "alert_id": alert.alert_id, "detector": alert.detector,
                        "message": alert.message,
                        "detected_at": alert.detected_at.isoformat(),
                        "details": alert.details})
        unhandled = store.alerts.list(detector=state.name, unhandled=True, limit=1)
        if state.status == "ok" and unhandled:
            state = DetectorState(state.name, state.description, state.observations,
                                  state.estimate, state.drifts, state.series, "alert",
                                  state.latest)
        checked.append(state)
    return DriftReport(datetime.now(UTC), tuple(checked), tuple(new_alerts), reference_end)
