"""Simulated traffic: users of the sample shop ask for recommendations and react to them.

The sample shop's generator knows each user's hidden taste
(:meth:`~tailored.sample.shop.SampleShop.click_probability`), so simulated users
behave like the shop's users would: they look at the slots of a list with a position
bias, click what matches their taste, and sometimes buy what they clicked. The
simulator talks to the service over its REST API only (a running service, or the app
in-process through a test client), exactly as a shop's frontend would:

1. ``GET /recommendations/{user_id}?k=K``: the answer's ``recommendation_id`` (and,
   inside an experiment, its variant),
2. ``POST /events``: one ``impression`` per shown item with
   ``context.recommendation_id`` and ``context.position``, then the ``click``,
   ``add_to_cart`` and ``purchase`` events (a purchase's ``value`` is the price), all
   carrying the recommendation id for attribution.

So an experiment between two variants gathers real impressions, clicks and
purchases in the store, and :func:`tailored.monitoring.abtest.analyze` finds the
variant that matches tastes better. With ``explore`` the requests ask the service to
let its bandit fill that share of the slots (``?explore=SHARE``): new catalog items get
shown, the clicks they get teach the bandit, and the served log's propensities make
off-policy estimates unbiased.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np
import pandas as pd

from tailored.errors import InvalidDataError
from tailored.sample.shop import DEVICES, SampleShop

Progress = Callable[[str], None]


class Response(Protocol):
    status_code: int
    text: str

    def json(self) -> Any: ...


class Client(Protocol):
    """What the simulator needs of an HTTP client (``httpx.Client``, FastAPI's
    ``TestClient``): GET with query parameters and POST with a JSON body."""

    def get(self, url: str, *, params: Any = ...) -> Any: ...

    def post(self, url: str, *, json: Any = ...) -> Any: ...


@dataclass(frozen=True)
class SimulationReport:
    """What the simulated users did.

    ``variants`` counts answers per experiment variant (``"(none)"`` outside any
    experiment); ``clicks_by_variant`` the clicks they led to. ``explored`` counts the
    slots the service's bandit filled and ``explored_clicks`` the clicks on them.
    """

    users: int
    sessions: int
    impressions: int
    clicks: int
    purchases: int
    revenue: float
    unknown_items: int
    seconds: float
    variants: dict[str, int] = field(default_factory=dict)
    clicks_by_variant: dict[str, int] = field(default_factory=dict)
    explored: int = 0
    explored_clicks: int = 0

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0


def simulate(client: Client, sample: SampleShop, *, users: int = 500, sessions: int = 1,
             k: int = 10, seed: int = 0, progress: Progress | None = None,
             now: Callable[[], datetime] | None = None,
             explore: float | None = None, new_arrivals: float | None = None,
             placement: str | None = None) -> SimulationReport:
    """Run ``users`` simulated shop users for ``sessions`` sessions each against a service.

    Parameters
    ----------
    client
        An HTTP client on the service (base URL and API key already set).
    sample
        The sample shop the store was filled from (same sizes and seed), whose hidden
        tastes drive the clicks.
    users
        How many distinct shop users take part (drawn without replacement).
    sessions
        Sessions per user (each one request and its reactions), interleaved in a
        random order across users.
    k
        List length asked for.
    seed
        Seeds who takes part, the devices and every click and purchase draw.
    now
        The clock stamping the events (defaults to the wall clock, UTC).
    explore
        The share of slots the service's bandit fills (``explore`` of the request);
        default: the service's own setting.
    new_arrivals
        The share of slots given to items added after training (``new_arrivals`` of the
        request); default: the service's own setting.
    placement
        The placement every request names (``placement`` of the request).
    """
    if users < 1 or sessions < 1 or k < 1:
        raise InvalidDataError(f"users, sessions and k must be >= 1, got {users}, "
                               f"{sessions}, {k}")
    for name, share in (("explore", explore), ("new_arrivals", new_arrivals)):
        if share is not None and not 0 <= share <= 1:
            raise InvalidDataError(f"{name} is a share of slots between 0 and 1, got {share}")
    if users > len(sample.users):
        raise InvalidDataError(f"the sample shop has {len(sample.users):,} users, cannot "
                               f"simulate {users:,}; pass --users {len(sample.users)} or less")
    clock = now or (lambda: datetime.now(UTC))
    step = progress or (lambda _message: None)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(sample.users), size=users, replace=False)
    order = rng.permutation(np.repeat(chosen, sessions))
    user_ids = sample.users["user_id"].astype(str).to_numpy()
    item_index = {str(item): i for i, item in enumerate(sample.items["item_id"])}
    prices = sample.items["price"].to_numpy(dtype=float)
    started = time.perf_counter()
    totals: Counter[str] = Counter()
    variants: Counter[str] = Counter()
    variant_clicks: Counter[str] = Counter()
    revenue = 0.0
    for number, user in enumerate(order, start=1):
        user_id = str(user_ids[user])
        device = str(DEVICES[int(rng.choice(len(DEVICES), p=(0.55, 0.35, 0.10)))])
        answer = _recommend(client, user_id, {"k": k, "explore": explore,
                                              "new_arrivals": new_arrivals,
                                              "placement": placement})
        rid = answer.get("recommendation_id")
        if not rid:
            raise InvalidDataError(
                "the service's recommendations carry no recommendation_id, so clicks cannot "
                "be attributed; update the service")
        experiment = answer.get("experiment") or {}
        variant = str(experiment.get("variant") or "(none)")
        variants[variant] += 1
        shown = [str(item["item_id"]) for item in answer.get("items", [])]
        explored = {position for position, item in enumerate(answer.get("items", []), start=1)
                    if item.get("explored")}
        totals["explored"] += len(explored)
        known = [(pos, item_index[i]) for pos, i in enumerate(shown, start=1)
                 if i in item_index]
        totals["unknown"] += len(shown) - len(known)
        at = clock()
        events: list[dict[str, Any]] = [
            _event(rid, user_id, item, "impression", at, device, position)
            for position, item in enumerate(shown, start=1)]
        if known:
            positions = np.array([p for p, _ in known])
            items = np.array([i for _, i in known])
            p_click = sample.click_probability(
                np.full(len(items), user), items, timestamp=pd.Timestamp(at), device=device,
                position=positions)
            clicked = rng.random(len(items)) < p_click
            bought = clicked & (rng.random(len(items))
                                < sample.purchase_probability(np.full(len(items), user), items))
            for position, item, did_click, did_buy in zip(positions, items, clicked, bought,
                                                          strict=True):
                if not did_click:
                    continue
                totals["explored_clicks"] += int(position in explored)
                item_id = shown[position - 1]
                later = at + timedelta(seconds=2 + int(position))
                events.append(_event(rid, user_id, item_id, "click", later, device, position))
                if did_buy:
                    value = round(float(prices[item]), 2)
                    events.append(_event(rid, user_id, item_id, "add_to_cart",
                                         later + timedelta(seconds=20), device, position))
                    events.append(_event(rid, user_id, item_id, "purchase",
                                         later + timedelta(seconds=60), device, position,
                                         value=value))
                    revenue += value
            totals["clicks"] += int(clicked.sum())
            totals["purchases"] += int(bought.sum())
            variant_clicks[variant] += int(clicked.sum())
        totals["impressions"] += len(shown)
        if events:
            _post(client, events)
        if number % 100 == 0 or number == len(order):
            step(f"simulated {number:,} of {len(order):,} sessions "
                 f"({totals['clicks']:,} clicks on {totals['impressions']:,} impressions)")
    return SimulationReport(
        users=users, sessions=len(order), impressions=totals["impressions"],
        clicks=totals["clicks"], purchases=totals["purchases"], revenue=round(revenue, 2),
        unknown_items=totals["unknown"], seconds=time.perf_counter() - started,
        variants=dict(variants), clicks_by_variant=dict(variant_clicks),
        explored=totals["explored"], explored_clicks=totals["explored_clicks"])


def _event(rid: str, user_id: str, item_id: str, kind: str, at: datetime, device: str,
           position: int, value: float | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"sim-{rid}-{position}-{kind}", "user_id": user_id, "item_id": item_id,
        "event_type": kind, "timestamp": at.isoformat(), "session_id": f"sim-{rid}",
        "context": {"recommendation_id": rid, "position": int(position), "device": device}}
    if value is not None:
        event["value"] = value
    return event


def _recommend(client: Client, user_id: str, asked: Mapping[str, Any]) -> Mapping[str, Any]:
    params = {name: value for name, value in asked.items() if value is not None}
    response = client.get(f"/recommendations/{user_id}", params=params)
    if response.status_code != 200:
        raise InvalidDataError(
            f"GET /recommendations/{user_id} answered {response.status_code}: "
            f"{response.text[:300]} (is a model trained, and does the API key have the "
            "read scope?)")
    answer: Mapping[str, Any] = response.json()
    return answer


def _post(client: Client, events: list[dict[str, Any]]) -> None:
    response = client.post("/events", json=events)
    if response.status_code not in (200, 201):
        raise InvalidDataError(
            f"POST /events answered {response.status_code}: {response.text[:300]} (does the "
            "API key have the write scope?)")
