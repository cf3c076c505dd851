"""Synthetic shop data with a known generative truth.

:func:`shop` simulates a small European web shop: a catalogue of items grouped
into *taste clusters*, users with demographics and a hidden taste over those
clusters, and a stream of sessions in which users browse, click, add to cart
and buy.  The simulation is fully vectorised (no Python loop per event or per
session), so millions of events take seconds.

Generative story
----------------
* **Clusters.** Eight taste clusters (:data:`CLUSTER_NAMES`), each with a
  primary category and a few secondary ones, its own vocabulary and price
  level.  Every item belongs to exactly one cluster.
* **Users.** Age band, gender and city shift a prior over clusters; a user's
  taste is a Dirichlet draw around that prior with low concentration, so it
  is concentrated on one or two clusters.  Activity is log-normal (a few heavy
  users, many light ones); every user has at least one session.
* **Sessions.** A session draws a primary and a secondary cluster from the
  user's taste *in context* (see below).  Views come mostly from the primary
  cluster, items within a cluster follow a Zipf law (long tail).  Each view
  may lead to a click, a click to an add-to-cart, a cart to a purchase, with
  increasing timestamps (about 60/25/10/5 % of events).
* **Context.** Mobile sessions peak in the evening, desktop sessions during
  working hours (hours are UTC).  The moment shifts what a user shops for, as
  in real shops where the category mix differs clearly by device, time of
  day and weekend: a session's cluster preferences are the user's taste times
  ``exp`` of a log-multiplier per cluster from the device, the part of the
  day and the weekend (:data:`DEVICE_EFFECTS`, :data:`DAYPART_EFFECTS`,
  :data:`WEEKEND_EFFECTS`), so context reorders the clusters a user likes
  (a runner who also buys fashion browses fashion on the phone in the evening
  and running gear on a weekend morning).  Between the two extremes the
  factors span up to about 4-8x:

  - device: mobile favours impulse buys (``fashion``, ``beauty``), desktop
    considered ones (``tech``, ``home``), tablet couch browsing (``books``,
    ``kids``);
  - part of the day: night (0-5h) ``tech``/``books``, morning (6-11h)
    ``running``/``books``, afternoon (12-17h) ``tech``/``kids``, evening
    (18-23h) ``fashion``/``beauty``;
  - weekend: ``outdoor``, ``kids`` and ``running`` up (milder: it moves
    whole days, so a stronger one would make the click rate swing by weekday).

  Users switch devices (45 % of sessions draw their device afresh).
  Without context a recommender sees only the mean of these shifts over a
  user's usual moments; knowing the session's context is worth about +4 % to
  +8 % next-session NDCG@10 to an oracle that knows the hidden tastes
  (``benchmarks/ranking.py``).
* **Drift.** Over the last third of the period ``home`` rises (a 2x taste
  multiplier plus up to 20 % of sessions pulled to it) and ``outdoor`` falls
  to 0.4x (autumn), so temporal splits matter.
* **Catalogue churn.** About 15 % of items are launched during the period;
  nobody interacts with an item before its ``created_at``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "AGE_BANDS",
    "CITIES",
    "CLUSTER_NAMES",
    "DAYPARTS",
    "DAYPART_EFFECTS",
    "DEVICES",
    "DEVICE_EFFECTS",
    "EVENT_TYPES",
    "GENDERS",
    "PERIOD_END",
    "PERIOD_START",
    "WEEKEND_EFFECTS",
    "SampleShop",
    "shop",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
WriteFormat = Literal["csv", "jsonl", "parquet"]

# ---------------------------------------------------------------------------
# Static description of the simulated world
# ---------------------------------------------------------------------------

PERIOD_DAYS: Final = 180
#: Exclusive end of the event period (the last events fall on 2026-10-31).
PERIOD_END: Final = pd.Timestamp("2026-11-01", tz="UTC")
#: Inclusive start of the event period (midnight UTC, 180 days before the end).
PERIOD_START: Final = PERIOD_END - pd.Timedelta(days=PERIOD_DAYS)
_DAY_MS: Final = 86_400_000
_HOUR_MS: Final = 3_600_000
_PERIOD_MS: Final = PERIOD_DAYS * _DAY_MS
#: Fraction of the period after which tastes start drifting.
DRIFT_START: Final = 2.0 / 3.0

EVENT_TYPES: Final = ("view", "click", "add_to_cart", "purchase")
DEVICES: Final = ("mobile", "desktop", "tablet")
AGE_BANDS: Final = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
GENDERS: Final = ("f", "m", "x")
CITIES: Final = (
    "Berlin", "Paris", "London", "Madrid", "Rome", "Vienna", "Warsaw", "Amsterdam",
)  # fmt: skip

_AGE_PROBS: Final = (0.14, 0.26, 0.22, 0.17, 0.12, 0.09)
_GENDER_PROBS: Final = (0.49, 0.47, 0.04)
_CITY_PROBS: Final = (0.18, 0.16, 0.18, 0.12, 0.10, 0.08, 0.09, 0.09)
# Younger users are more mobile-first.
_AGE_P_MOBILE: Final = (0.78, 0.68, 0.58, 0.50, 0.42, 0.35)
_P_TABLET: Final = 0.10
_P_CONSENT: Final = 0.92
_P_AVAILABLE: Final = 0.95
_P_NEW_ITEM: Final = 0.15


class _Cluster(NamedTuple):
    name: str
    primary: str
    secondary: tuple[str, ...]
    adjectives: tuple[str, ...]
    nouns: tuple[str, ...]
    pitch: str
    median_price: float
    weight: float  # share of the catalogue and of global popularity


_CLUSTERS: Final = (
    _Cluster(
        "running", "sports", ("shoes", "outdoor"),
        ("Trail", "Road", "Lightweight", "Cushioned", "Racing"),
        ("Running Shoes", "Running Socks", "Running Shorts", "Sports Bra",
         "GPS Watch", "Hydration Vest"),
        "Built for daily training and race day.", 80.0, 0.11,
    ),
    _Cluster(
        "outdoor", "outdoor", ("sports", "travel"),
        ("Alpine", "Waterproof", "Ultralight", "Rugged", "All-Season"),
        ("Hiking Boots", "Tent", "Backpack", "Sleeping Bag", "Rain Jacket",
         "Trekking Poles"),
        "Made for long days on the trail.", 110.0, 0.11,
    ),
    _Cluster(
        "fashion", "clothing", ("accessories", "shoes"),
        ("Classic", "Slim-Fit", "Oversized", "Linen", "Vintage"),
        ("Denim Jacket", "Summer Dress", "Chinos", "Knit Sweater", "Leather Belt",
         "Sneakers"),
        "A wardrobe staple that goes with everything.", 45.0, 0.17,
    ),
    _Cluster(
        "home", "home", ("kitchen", "decor"),
        ("Cozy", "Nordic", "Ceramic", "Oak", "Minimalist"),
        ("Throw Blanket", "Table Lamp", "Mug Set", "Cutting Board",
         "Scented Candle", "Cookware Set"),
        "Makes every room feel like home.", 35.0, 0.15,
    ),
    _Cluster(
        "tech", "electronics", ("gaming", "accessories"),
        ("Wireless", "Smart", "Portable", "Noise-Cancelling", "Mechanical"),
        ("Headphones", "Keyboard", "Smartwatch", "Bluetooth Speaker",
         "Game Controller", "Power Bank"),
        "Long battery life and a clean design.", 90.0, 0.15,
    ),
    _Cluster(
        "beauty", "beauty", ("wellness", "skincare"),
        ("Hydrating", "Organic", "Vitamin C", "Gentle", "Matte"),
        ("Face Serum", "Lipstick", "Moisturizer", "Shampoo", "Sunscreen",
         "Body Lotion"),
        "Dermatologist tested and cruelty free.", 22.0, 0.11,
    ),
    _Cluster(
        "books", "books", ("media", "travel"),
        ("Bestselling", "Illustrated", "Classic", "Award-Winning", "Pocket"),
        ("Novel", "Cookbook", "Travel Guide", "Biography", "Poetry Collection",
         "Thriller"),
        "A page-turner for quiet evenings.", 16.0, 0.10,
    ),
    _Cluster(
        "kids", "toys", ("kids", "books"),
        ("Colorful", "Wooden", "Educational", "Plush", "Interactive"),
        ("Building Blocks", "Puzzle", "Teddy Bear", "Picture Book", "Toy Car",
         "Board Game"),
        "Hours of safe, creative play.", 25.0, 0.10,
    ),
)  # fmt: skip

#: Names of the taste clusters; column ``k`` of ``SampleShop.user_taste``.
CLUSTER_NAMES: Final = tuple(c.name for c in _CLUSTERS)
_K: Final = len(_CLUSTERS)
_CLUSTER_WEIGHT: Final = np.array([c.weight for c in _CLUSTERS])
_HOME, _OUTDOOR = (CLUSTER_NAMES.index(n) for n in ("home", "outdoor"))

_MODELS: Final = (
    "Vortex", "Nova", "Apex", "Summit", "Zephyr", "Orbit", "Aurora", "Pulse",
    "Terra", "Echo", "Lumen", "Breeze", "Atlas", "Nimbus", "Vista", "Ember",
)  # fmt: skip

# Log-multipliers of the cluster prior: demographics predict taste, which is
# what makes demographic segments useful for cold start.
_AGE_EFFECTS: Final[dict[str, dict[str, float]]] = {
    "18-24": {"fashion": 1.0, "tech": 0.8, "beauty": 0.4, "home": -0.8,
              "kids": -1.2, "books": -0.3},
    "25-34": {"running": 0.7, "fashion": 0.5, "tech": 0.4, "outdoor": 0.2},
    "35-44": {"kids": 1.2, "home": 0.5, "running": 0.3},
    "45-54": {"home": 0.7, "outdoor": 0.6, "kids": 0.3},
    "55-64": {"books": 0.8, "home": 0.6, "outdoor": 0.5, "tech": -0.5,
              "fashion": -0.3},
    "65+": {"books": 1.2, "home": 0.7, "tech": -0.9, "fashion": -0.6,
            "running": -0.8},
}  # fmt: skip
_GENDER_EFFECTS: Final[dict[str, dict[str, float]]] = {
    "f": {"beauty": 0.9, "fashion": 0.4},
    "m": {"tech": 0.6, "outdoor": 0.3, "beauty": -0.6},
    "x": {"fashion": 0.3, "books": 0.3},
}
_CITY_EFFECTS: Final[dict[str, dict[str, float]]] = {
    "Berlin": {"tech": 0.4, "running": 0.2},
    "Paris": {"fashion": 0.6, "beauty": 0.4},
    "London": {"books": 0.5, "tech": 0.2},
    "Madrid": {"running": 0.5, "fashion": 0.2},
    "Rome": {"fashion": 0.4, "home": 0.3},
    "Vienna": {"books": 0.4, "home": 0.3},
    "Warsaw": {"outdoor": 0.5, "tech": 0.2},
    "Amsterdam": {"running": 0.4, "outdoor": 0.3},
}
# Total Dirichlet concentration: small, so tastes sit on 1-2 clusters.
_TASTE_CONCENTRATION: Final = 1.2

# Relative session start intensity per UTC hour, by device.
_HOUR_PROFILE: Final = np.array(
    [
        # mobile: commute, lunch and a strong evening peak
        [1.0, 0.6, 0.4, 0.3, 0.3, 0.5, 1.0, 2.0, 2.5, 2.0, 1.5, 1.5,
         2.5, 2.5, 1.5, 1.5, 1.8, 2.2, 3.0, 4.0, 5.0, 5.5, 4.5, 2.5],
        # desktop: working hours
        [0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1.5, 3.0, 4.5, 5.0, 5.0,
         4.0, 4.5, 5.0, 5.0, 4.5, 3.5, 2.0, 1.5, 1.2, 1.0, 0.7, 0.5],
        # tablet: couch time
        [0.6, 0.3, 0.2, 0.1, 0.1, 0.2, 0.5, 1.5, 1.5, 1.5, 1.5, 1.5,
         2.0, 2.0, 1.5, 1.5, 2.0, 2.5, 3.5, 4.5, 5.0, 5.0, 4.0, 2.0],
    ]
)  # fmt: skip
#: Parts of the day (by UTC hour, 6 hours each) for the context effects.
DAYPARTS: Final = ("night", "morning", "afternoon", "evening")
# Log-multipliers of a session's cluster preferences by its context; see the
# module docstring.  Effects add up over device, part of the day and weekend.
DEVICE_EFFECTS: Final[dict[str, dict[str, float]]] = {
    "mobile": {"fashion": 0.8, "beauty": 0.7, "tech": -0.5, "home": -0.4},
    "desktop": {"tech": 1.0, "home": 0.6, "outdoor": 0.4, "fashion": -0.6,
                "beauty": -0.5},
    "tablet": {"books": 0.9, "kids": 0.8, "home": 0.4, "tech": -0.3},
}  # fmt: skip
DAYPART_EFFECTS: Final[dict[str, dict[str, float]]] = {
    "night": {"tech": 0.6, "books": 0.5, "running": -0.6, "kids": -0.8},
    "morning": {"running": 0.8, "books": 0.4, "fashion": -0.4},
    "afternoon": {"tech": 0.4, "kids": 0.5, "home": 0.3},
    "evening": {"fashion": 0.9, "beauty": 0.6, "running": -0.4, "tech": -0.3},
}  # fmt: skip
WEEKEND_EFFECTS: Final[dict[str, float]] = {
    "outdoor": 0.6, "kids": 0.4, "running": 0.3,
}  # fmt: skip
_DRIFT_HOME_MAX: Final = 2.0
_DRIFT_OUTDOOR_MIN: Final = 0.4
_DRIFT_PULL: Final = 0.2  # share of sessions pulled to "home" at the period end

# Session structure.  Probabilities give ~60/25/10/5 % view/click/cart/purchase.
_P_VIEW_SOURCE: Final = (0.72, 0.21, 0.07)  # primary, secondary, exploration
_P_CLICK_BY_SOURCE: Final = np.array([0.48, 0.33, 0.20])
_P_CART_GIVEN_CLICK: Final = 0.40
_P_PURCHASE_GIVEN_CART: Final = 0.50
# Simulated users (click_probability): attraction from taste, before position bias.
_CLICK_FLOOR: Final = 0.02
_CLICK_SPAN: Final = 0.38
_MAX_VIEWS: Final = 40
_ZIPF_EXPONENT: Final = 1.1
_ACTIVITY_SIGMA: Final = 1.2
_P_PREFERRED_DEVICE: Final = 0.55
# Gap bounds (ms) keep every session shorter than a known duration, so
# sessions can be placed inside the period without clipping timestamps.
_VIEW_GAP: Final = (40_000.0, 2_000, 300_000)  # mean, min, max
_CLICK_GAP: Final = (15_000.0, 1_000, 120_000)
_CART_GAP: Final = (30_000.0, 2_000, 300_000)
_PURCHASE_GAP: Final = (90_000.0, 5_000, 600_000)
_FUNNEL_MAX_MS: Final = _CLICK_GAP[2] + _CART_GAP[2] + _PURCHASE_GAP[2]


# ---------------------------------------------------------------------------
# Result container
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SampleShop:
    """A generated shop: observable tables plus the generator's hidden truth.

    Attributes
    ----------
    events : pandas.DataFrame
        One row per interaction, sorted by ``timestamp``; columns ``event_id``,
        ``user_id``, ``item_id``, ``event_type``, ``value``, ``timestamp``,
        ``session_id``, ``device``, ``location``.
    items : pandas.DataFrame
        Catalogue; columns ``item_id``, ``title``, ``text``, ``categories``,
        ``price``, ``available``, ``created_at``.
    users : pandas.DataFrame
        Columns ``user_id``, ``age_band``, ``gender``, ``location``,
        ``consent``.
    user_taste : numpy.ndarray
        ``(n_users, n_clusters)`` base affinity of each user over the clusters
        (rows sum to 1), aligned with the rows of `users`.
    item_cluster : numpy.ndarray
        ``(n_items,)`` integer cluster of each item, aligned with the rows of
        `items`.
    cluster_names : tuple of str
        Name of each cluster, i.e. of each column of `user_taste`.
    item_popularity : numpy.ndarray
        ``(n_items,)`` probability of each item being picked when its cluster
        is browsed (sums to 1 within each cluster).
    """

    events: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    user_taste: FloatArray
    item_cluster: IntArray
    cluster_names: tuple[str, ...] = CLUSTER_NAMES
    item_popularity: FloatArray = field(default_factory=lambda: np.empty(0))

    def taste_in_context(
        self,
        user_index: npt.ArrayLike,
        timestamp: npt.ArrayLike | pd.Timestamp | pd.Series | pd.DatetimeIndex,
        device: npt.ArrayLike,
    ) -> FloatArray:
        """Cluster preferences of users in a context, as the generator uses them.

        Applies the contextual effects (device, part of the day, weekend; see
        the module docstring) and the temporal drift to `user_taste`.
        Useful to simulate users in offline A/B tests.

        Parameters
        ----------
        user_index : array_like of int
            Row positions in `users` (not ``user_id`` strings).
        timestamp : array_like of datetime or pandas.Timestamp
            When the session happens; broadcast against `user_index`.
        device : array_like of str
            One of :data:`DEVICES`; broadcast against `user_index`.

        Returns
        -------
        numpy.ndarray
            ``(n, n_clusters)`` probabilities, rows summing to 1.
        """
        users = np.atleast_1d(np.asarray(user_index, dtype=np.int64))
        # Naive timestamps are read as UTC, like the generated ones.
        stamps = pd.to_datetime(
            pd.Series(np.atleast_1d(np.asarray(timestamp, dtype=object))), utc=True
        )
        ms = ((stamps - PERIOD_START) // pd.Timedelta(milliseconds=1)).to_numpy(dtype=np.int64)
        when: IntArray = np.broadcast_to(ms, users.shape).astype(np.int64)
        names = pd.Index(
            np.broadcast_to(np.atleast_1d(np.asarray(device, dtype=object)), users.shape)
        )
        dev = pd.Index(DEVICES).get_indexer(names).astype(np.int64)
        if (dev < 0).any():
            raise ValueError(f"device must be one of {DEVICES}, got {names[dev < 0][0]!r}")
        hour: IntArray = (when // _HOUR_MS) % 24
        return _taste_in_context(self.user_taste[users], when, hour, dev)

    def click_probability(
        self,
        user_index: npt.ArrayLike,
        item_index: npt.ArrayLike,
        *,
        timestamp: npt.ArrayLike | pd.Timestamp | pd.Series | pd.DatetimeIndex = PERIOD_END,
        device: npt.ArrayLike = "mobile",
        position: npt.ArrayLike | None = None,
    ) -> FloatArray:
        """Probability that a user clicks an item shown to them, as simulated users do.

        The attraction of an item is ``0.02 + 0.38 * taste`` (the user's preference for
        the item's cluster in context, see :meth:`taste_in_context`) times a quality
        factor between 0.7 and 1.0 from the item's popularity within its cluster. With
        ``position`` (1 = first slot), it is multiplied by the chance the user looks at
        that slot, ``1 / log2(position + 1)`` (position bias).

        Parameters
        ----------
        user_index, item_index : array_like of int
            Row positions in `users` and `items`, broadcast against each other.
        timestamp, device
            The context, as in :meth:`taste_in_context`.
        position : array_like of int, optional
            1-based slot the item is shown in.

        Examples
        --------
        >>> s = shop(n_users=50, n_items=40, n_events=500, seed=1)
        >>> p = s.click_probability([0, 0], [0, 1], position=[1, 2])
        >>> p.shape, bool(((p > 0) & (p < 1)).all())
        ((2,), True)
        """
        users, items = np.broadcast_arrays(np.asarray(user_index, dtype=np.int64),
                                           np.asarray(item_index, dtype=np.int64))
        users, items = np.atleast_1d(users), np.atleast_1d(items)
        taste = self.taste_in_context(users, timestamp, device)
        cluster = self.item_cluster[items]
        affinity = taste[np.arange(len(users)), cluster]
        head = np.zeros(len(self.cluster_names))
        np.maximum.at(head, self.item_cluster, self.item_popularity)
        quality = 0.7 + 0.3 * self.item_popularity[items] / head[cluster]
        attraction: FloatArray = (_CLICK_FLOOR + _CLICK_SPAN * affinity) * quality
        if position is not None:
            slot = np.broadcast_to(np.asarray(position, dtype=np.float64), attraction.shape)
            if (slot < 1).any():
                raise ValueError("position is 1-based: the first slot is 1")
            attraction = attraction / np.log2(slot + 1.0)
        return attraction

    def purchase_probability(self, user_index: npt.ArrayLike,
                             item_index: npt.ArrayLike) -> FloatArray:
        """Probability that a click on an item ends in a purchase (cart, then buy), as in
        the generated sessions; the price paid is the item's ``price``.

        Examples
        --------
        >>> s = shop(n_users=50, n_items=40, n_events=500, seed=1)
        >>> s.purchase_probability([0], [3]).round(2).tolist()
        [0.2]
        """
        users, _ = np.broadcast_arrays(np.asarray(user_index, dtype=np.int64),
                                       np.asarray(item_index, dtype=np.int64))
        return np.full(np.atleast_1d(users).shape, _P_CART_GIVEN_CLICK * _P_PURCHASE_GIVEN_CART)

    def write(self, directory: str | os.PathLike[str], format: WriteFormat = "csv") -> list[Path]:
        """Write ``events``, ``items`` and ``users`` tables to `directory`.

        Parameters
        ----------
        directory : str or path-like
            Target directory, created if missing.
        format : {"csv", "jsonl", "parquet"}
            CSV writes list-valued ``categories`` pipe-separated (``"a|b"``);
            JSONL writes one JSON object per line with ISO-8601 timestamps;
            Parquet keeps the dtypes (needs ``pyarrow``).

        Returns
        -------
        list of pathlib.Path
            Paths of the events, items and users files, in that order.
        """
        if format not in ("csv", "jsonl", "parquet"):
            raise ValueError(f"format must be 'csv', 'jsonl' or 'parquet', got {format!r}")
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths: list[Path] = []
        for name, frame in (("events", self.events), ("items", self.items), ("users", self.users)):
            path = out / f"{name}.{format}"
            if format == "csv":
                if "categories" in frame.columns:
                    frame = frame.assign(categories=frame["categories"].map("|".join))
                frame.to_csv(path, index=False)
            elif format == "jsonl":
                frame.to_json(
                    path, orient="records", lines=True, date_format="iso", date_unit="ms",
                    force_ascii=False,
                )  # fmt: skip
            else:
                frame.to_parquet(path, index=False)
            paths.append(path)
        return paths


# ---------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------


def shop(
    n_users: int = 2000,
    n_items: int = 500,
    n_events: int = 100_000,
    seed: int = 0,
) -> SampleShop:
    """Generate a realistic synthetic shop.

    See the module docstring for the generative story (taste clusters,
    long-tail popularity, session funnels, time-of-day/device context, drift
    over the last third of the period, items launched during the period).
    Events span the 180 days from :data:`PERIOD_START` to 2026-10-31.

    Parameters
    ----------
    n_users : int, default 2000
        Number of users; each has at least one event.
    n_items : int, default 500
        Number of catalogue items (at least 10).
    n_events : int, default 100_000
        Exact number of events (at least `n_users`).
    seed : int, default 0
        Seed for :func:`numpy.random.default_rng`; equal seeds give equal shops.

    Returns
    -------
    SampleShop
        The ``events``, ``items`` and ``users`` tables plus the hidden truth
        (``user_taste``, ``item_cluster``, ``item_popularity``).

    Raises
    ------
    ValueError
        If a size is out of range.
    TypeError
        If a size or the seed is not an integer.

    Examples
    --------
    >>> s = shop(n_users=50, n_items=20, n_events=500, seed=1)
    >>> len(s.events), len(s.items), len(s.users)
    (500, 20, 50)
    >>> list(s.events.columns)  # doctest: +NORMALIZE_WHITESPACE
    ['event_id', 'user_id', 'item_id', 'event_type', 'value', 'timestamp',
     'session_id', 'device', 'location']
    >>> s.events["event_type"].iloc[0]
    'view'
    >>> s.events["user_id"].nunique()
    50
    >>> s.user_taste.shape
    (50, 8)
    >>> bool(s.events["timestamp"].is_monotonic_increasing)
    True
    """
    _check_int("n_users", n_users, 1)
    _check_int("n_items", n_items, 10)
    _check_int("n_events", n_events, 1)
    _check_int("seed", seed, 0)
    if n_events < n_users:
        raise ValueError(
            f"n_events must be >= n_users so that every user has an event, "
            f"got n_events={n_events} < n_users={n_users}"
        )
    rng = np.random.default_rng(seed)
    users, taste, user_city, preferred_device, activity = _make_users(rng, n_users)
    cat = _make_catalogue(rng, n_items)
    events = _make_events(rng, n_events, taste, preferred_device, activity, user_city, cat)
    taste.setflags(write=False)
    cat.cluster.setflags(write=False)
    cat.popularity.setflags(write=False)
    return SampleShop(
        events=events,
        items=cat.items,
        users=users,
        user_taste=taste,
        item_cluster=cat.cluster,
        cluster_names=CLUSTER_NAMES,
        item_popularity=cat.popularity,
    )


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


# ---------------------------------------------------------------------------
# Users and catalogue
# ---------------------------------------------------------------------------


def _effect_matrix(effects: dict[str, dict[str, float]], levels: tuple[str, ...]) -> FloatArray:
    out = np.zeros((len(levels), _K))
    for row, level in enumerate(levels):
        for cluster, value in effects[level].items():
            out[row, CLUSTER_NAMES.index(cluster)] = value
    return out


_DEVICE_LOG: Final = _effect_matrix(DEVICE_EFFECTS, DEVICES)
_DAYPART_LOG: Final = _effect_matrix(DAYPART_EFFECTS, DAYPARTS)
_WEEKEND_LOG: Final = _effect_matrix({"weekend": WEEKEND_EFFECTS}, ("weekend",))[0]


def _make_users(
    rng: np.random.Generator, n_users: int
) -> tuple[pd.DataFrame, FloatArray, IntArray, IntArray, FloatArray]:
    age = rng.choice(len(AGE_BANDS), size=n_users, p=_AGE_PROBS)
    gender = rng.choice(len(GENDERS), size=n_users, p=_GENDER_PROBS)
    city = rng.choice(len(CITIES), size=n_users, p=_CITY_PROBS)
    consent = rng.random(n_users) < _P_CONSENT

    logits = (
        np.log(_CLUSTER_WEIGHT)
        + _effect_matrix(_AGE_EFFECTS, AGE_BANDS)[age]
        + _effect_matrix(_GENDER_EFFECTS, GENDERS)[gender]
        + _effect_matrix(_CITY_EFFECTS, CITIES)[city]
    )
    prior = _normalise(np.exp(logits))
    # Dirichlet with per-user alpha via normalised gammas; the floor avoids
    # all-zero rows when every gamma underflows.
    taste = _normalise(rng.gamma(_TASTE_CONCENTRATION * prior) + 1e-12)

    p_mobile = np.asarray(_AGE_P_MOBILE)[age]
    u = rng.random(n_users)
    preferred_device = np.where(u < p_mobile, 0, np.where(u < p_mobile + _P_TABLET, 2, 1))
    activity = rng.lognormal(0.0, _ACTIVITY_SIGMA, size=n_users)

    users = pd.DataFrame(
        {
            "user_id": _labels("u", n_users, 5),
            "age_band": _take(AGE_BANDS, age),
            "gender": _take(GENDERS, gender),
            "location": _take(CITIES, city),
            "consent": consent,
        }
    )
    return users, taste, city.astype(np.int64), preferred_device.astype(np.int64), activity


class _Catalogue(NamedTuple):
    items: pd.DataFrame
    cluster: IntArray
    popularity: FloatArray  # within-cluster pick probability
    price: FloatArray
    created_ms: IntArray  # ms since PERIOD_START (negative = before)
    by_cluster: IntArray  # item indices sorted by cluster, then rank
    cluster_start: IntArray  # (K + 1,) offsets into by_cluster
    cum_offset: FloatArray  # cluster + within-cluster cumulative popularity


def _make_catalogue(rng: np.random.Generator, n_items: int) -> _Catalogue:
    # Every cluster gets at least one item; the rest follow cluster weights.
    cluster = np.concatenate([np.arange(_K), rng.choice(_K, size=n_items - _K, p=_CLUSTER_WEIGHT)])
    cluster = rng.permutation(cluster).astype(np.int64)

    # Random popularity rank within cluster, Zipf weights over ranks.
    by_cluster = np.lexsort((rng.random(n_items), cluster)).astype(np.int64)
    counts = np.bincount(cluster, minlength=_K)
    cluster_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    rank = np.empty(n_items, dtype=np.int64)
    rank[by_cluster] = np.arange(n_items) - np.repeat(cluster_start[:-1], counts)
    weight = (rank + 1.0) ** -_ZIPF_EXPONENT
    popularity = weight / np.bincount(cluster, weights=weight, minlength=_K)[cluster]
    within = np.cumsum(popularity[by_cluster]) - np.repeat(
        np.concatenate([[0.0], np.cumsum(np.bincount(cluster, weights=popularity))[:-1]]),
        counts,
    )
    cum_offset = cluster[by_cluster] + within
    cum_offset[cluster_start[1:] - 1] = np.arange(1, _K + 1)  # exact block ends

    # New launches happen during the period; each cluster's head item is old
    # so there is always a fallback item that exists at any time.
    is_new = (rng.random(n_items) < _P_NEW_ITEM) & (rank > 0)
    old_ms = -rng.integers(1, 730, size=n_items) * _DAY_MS - rng.integers(0, _DAY_MS, n_items)
    new_ms = rng.integers(0, _PERIOD_MS - 14 * _DAY_MS, size=n_items)
    created_ms = np.where(is_new, new_ms, old_ms) // 1000 * 1000  # whole seconds

    median = np.array([c.median_price for c in _CLUSTERS])[cluster]
    raw = median * rng.lognormal(0.0, 0.45, size=n_items)
    price = np.maximum(np.round(raw) - 0.01, 0.99)  # charm pricing: 39.99
    available = rng.random(n_items) < _P_AVAILABLE

    adj = rng.integers(0, 5, size=n_items)
    noun = rng.integers(0, 6, size=n_items)
    model = rng.integers(0, len(_MODELS), size=n_items)
    number = rng.integers(1, 100, size=n_items)
    has_second = rng.random(n_items) < 0.5
    second = rng.integers(0, 2**31, size=n_items)
    titles: list[str] = []
    texts: list[str] = []
    categories: list[list[str]] = []
    for i in range(n_items):  # per item (catalogue sized), not per event
        c = _CLUSTERS[cluster[i]]
        cats = [c.primary]
        if has_second[i]:
            cats.append(c.secondary[second[i] % len(c.secondary)])
        a, n, m = c.adjectives[adj[i]], c.nouns[noun[i]], _MODELS[model[i]]
        titles.append(f"{a} {n} {m} {number[i]}")
        texts.append(f"{a} {n.lower()} by {m}. {c.pitch} From our {' and '.join(cats)} range.")
        categories.append(cats)

    items = pd.DataFrame(
        {
            "item_id": _labels("i", n_items, 5),
            "title": titles,
            "text": texts,
            "categories": pd.Series(categories, dtype=object),
            "price": price,
            "available": available,
            "created_at": _to_datetime(created_ms),
        }
    )
    return _Catalogue(
        items, cluster, popularity, price, created_ms.astype(np.int64),
        by_cluster, cluster_start, cum_offset,
    )  # fmt: skip


# ---------------------------------------------------------------------------
# Sessions and events
# ---------------------------------------------------------------------------


class _Skeleton(NamedTuple):
    user: IntArray  # per session
    n_views: IntArray  # per session
    source: IntArray  # per view: 0 primary, 1 secondary, 2 exploration
    click: BoolArray  # per view
    cart: BoolArray  # per view
    purchase: BoolArray  # per view


def _skeleton(rng: np.random.Generator, users: IntArray) -> _Skeleton:
    """Session sizes and funnel outcomes; items and times are drawn later."""
    n = len(users)
    # Over-dispersed session length: 1 + Poisson(Gamma), mean ~4 views.
    n_views = 1 + np.minimum(rng.poisson(rng.gamma(1.5, 2.0, size=n)), _MAX_VIEWS - 1)
    m = int(n_views.sum())
    source = np.searchsorted(np.cumsum(_P_VIEW_SOURCE), rng.random(m), side="right")
    source = np.minimum(source, 2).astype(np.int64)
    click = rng.random(m) < _P_CLICK_BY_SOURCE[source]
    cart = click & (rng.random(m) < _P_CART_GIVEN_CLICK)
    purchase = cart & (rng.random(m) < _P_PURCHASE_GIVEN_CART)
    return _Skeleton(users, n_views.astype(np.int64), source, click, cart, purchase)


def _concat_skeletons(parts: list[_Skeleton]) -> _Skeleton:
    return _Skeleton(*(np.concatenate(arrays) for arrays in zip(*parts, strict=True)))


def _make_events(
    rng: np.random.Generator,
    n_events: int,
    taste: FloatArray,
    preferred_device: IntArray,
    activity: FloatArray,
    user_city: IntArray,
    cat: _Catalogue,
) -> pd.DataFrame:
    n_users = len(taste)
    cum_activity = np.cumsum(activity)

    # 1. Session skeletons.  One mandatory session per user comes first, then
    #    activity-weighted sessions until there are enough events.
    parts = [_skeleton(rng, rng.permutation(n_users).astype(np.int64))]
    total = _n_events(parts[0])
    while total < n_events:
        n_more = int((n_events - total) / 6.0 * 1.1) + 16
        extra_users = np.searchsorted(cum_activity, rng.random(n_more) * cum_activity[-1])
        parts.append(_skeleton(rng, np.minimum(extra_users, n_users - 1).astype(np.int64)))
        total += _n_events(parts[-1])
    sk = _concat_skeletons(parts)

    # 2. Trim the surplus from the end of the session list, never taking a
    #    mandatory session below one event; `keep` sums to n_events exactly.
    size = sk.n_views + np.add.reduceat(
        sk.click.astype(np.int64) + sk.cart + sk.purchase,
        np.concatenate([[0], np.cumsum(sk.n_views)[:-1]]),
    )
    floor = np.zeros(len(size), dtype=np.int64)
    floor[:n_users] = 1
    cap = size - floor
    after = np.cumsum(cap[::-1])[::-1] - cap  # removable capacity of later sessions
    keep = size - np.clip(total - n_events - after, 0, cap)
    alive = np.flatnonzero(keep > 0)
    s_user, s_views, s_size, s_keep = (a[alive] for a in (sk.user, sk.n_views, size, keep))
    n_sessions = len(s_user)

    # 3. Session context: device (mostly the user's usual one), day, hour.
    device = np.where(
        rng.random(n_sessions) < _P_PREFERRED_DEVICE,
        preferred_device[s_user],
        rng.choice(len(DEVICES), size=n_sessions, p=(0.55, 0.35, 0.10)),
    ).astype(np.int64)
    days = np.arange(PERIOD_DAYS)
    weekday = (PERIOD_START.day_of_week + days) % 7
    day_weight = (1.0 + 0.25 * (weekday >= 5)) * (1.0 + 0.2 * days / PERIOD_DAYS)
    day = np.searchsorted(np.cumsum(day_weight) / day_weight.sum(), rng.random(n_sessions))
    day = np.minimum(day, PERIOD_DAYS - 1)
    hour = np.empty(n_sessions, dtype=np.int64)
    u_hour = rng.random(n_sessions)
    for d in range(len(DEVICES)):  # loop over 3 devices, vectorised inside
        mask = device == d
        cdf = np.cumsum(_HOUR_PROFILE[d]) / _HOUR_PROFILE[d].sum()
        hour[mask] = np.minimum(np.searchsorted(cdf, u_hour[mask], side="right"), 23)
    start = day * _DAY_MS + hour * _HOUR_MS + rng.integers(0, _HOUR_MS, size=n_sessions)

    # 4. Gaps between views are bounded, so sessions that would run past the
    #    period end can be moved earlier without clipping any timestamp.
    sk_first = np.concatenate([[0], np.cumsum(sk.n_views)[:-1]])
    gap = _gaps(rng, _VIEW_GAP, len(sk.source))
    gap[sk_first] = 0
    duration = np.add.reduceat(gap, sk_first)[alive] + _FUNNEL_MAX_MS
    start = np.minimum(start, _PERIOD_MS - 1 - duration)
    hour = (start // _HOUR_MS) % 24

    # Renumber sessions chronologically: events then come out nearly sorted,
    # which makes the final sort and the column gathers cache friendly.
    perm = np.argsort(start, kind="stable")
    s_user, s_views, s_size, s_keep, device, start, hour = (
        a[perm] for a in (s_user, s_views, s_size, s_keep, device, start, hour)
    )
    first_view = np.concatenate([[0], np.cumsum(s_views)[:-1]])
    n_v = int(s_views.sum())
    v_session = np.repeat(np.arange(n_sessions), s_views)
    src = np.repeat(sk_first[alive[perm]] - first_view, s_views) + np.arange(n_v)
    v_source, v_click, v_cart, v_purchase, v_gap = (
        a[src] for a in (sk.source, sk.click, sk.cart, sk.purchase, gap)
    )
    csum = np.cumsum(v_gap)
    v_time = start[v_session] + (csum - csum[first_view][v_session])

    # 5. Clusters: primary/secondary from the user's taste in context,
    #    exploration from the (context-adjusted) global popularity.
    session_probs = _taste_in_context(taste[s_user], start, hour, device)
    primary = _sample_rows(rng, session_probs)
    secondary = _sample_rows(rng, session_probs)
    mult = _context_multipliers(start, hour, device)
    explore = _sample_rows(rng, _normalise(_CLUSTER_WEIGHT * mult))
    v_cluster = np.choose(v_source, (primary[v_session], secondary[v_session], explore[v_session]))

    # 6. Items: Zipf within the cluster; re-draw items not launched yet, and
    #    fall back to the cluster head (always launched before the period).
    v_item = _sample_items(rng, cat, v_cluster)
    for _ in range(4):
        late = np.flatnonzero(cat.created_ms[v_item] > v_time)
        if late.size == 0:
            break
        v_item[late] = _sample_items(rng, cat, v_cluster[late])
    late = np.flatnonzero(cat.created_ms[v_item] > v_time)
    v_item[late] = cat.by_cluster[cat.cluster_start[v_cluster[late]]]

    # 7. Funnel: click after the view, cart after the click, purchase last.
    ci, ai, pi = np.flatnonzero(v_click), np.flatnonzero(v_cart), np.flatnonzero(v_purchase)
    t_click = v_time[ci] + _gaps(rng, _CLICK_GAP, len(ci))
    t_cart = t_click[np.searchsorted(ci, ai)] + _gaps(rng, _CART_GAP, len(ai))
    t_purchase = t_cart[np.searchsorted(ai, pi)] + _gaps(rng, _PURCHASE_GAP, len(pi))
    e_view = np.concatenate([np.arange(n_v), ci, ai, pi])
    e_type = np.repeat(np.arange(4, dtype=np.int8), [n_v, len(ci), len(ai), len(pi)])
    e_time = np.concatenate([v_time, t_click, t_cart, t_purchase])

    # 8. Drop the latest events of partially kept sessions (their earliest
    #    events form a valid funnel prefix, as every step follows its cause).
    partial_sessions = np.flatnonzero(s_keep < s_size)
    if partial_sessions.size:
        is_partial = np.zeros(n_sessions, dtype=bool)
        is_partial[partial_sessions] = True
        rows = np.flatnonzero(is_partial[v_session[e_view]])
        rows_session = v_session[e_view[rows]]
        rows = rows[np.lexsort((e_time[rows], rows_session))]
        rows_session = v_session[e_view[rows]]
        starts = np.concatenate([[0], np.cumsum(s_size[partial_sessions])[:-1]])
        pos = np.arange(len(rows)) - np.repeat(starts, s_size[partial_sessions])
        keep_row = np.ones(len(e_view), dtype=bool)
        keep_row[rows[pos >= s_keep[rows_session]]] = False
        e_view, e_type, e_time = e_view[keep_row], e_type[keep_row], e_time[keep_row]
    assert len(e_view) == n_events  # guaranteed by the trimming arithmetic

    # 9. Chronological order.  A session's first view is its earliest event
    #    and sessions are numbered by start, so session numbers already follow
    #    first appearance.
    order = np.argsort(e_time, kind="stable")
    e_view, e_type, e_time = e_view[order], e_type[order], e_time[order]
    e_session = v_session[e_view]
    e_item = v_item[e_view]
    e_user = s_user[e_session]
    # Some purchases use a promotion; `value` is what was actually paid.
    e_value = np.full(n_events, np.nan)
    bought = np.flatnonzero(e_type == 3)
    promo = rng.random(len(bought)) < 0.15
    discount = np.where(promo, rng.choice([0.1, 0.2, 0.3], size=len(bought)), 0.0)
    e_value[bought] = np.round(cat.price[e_item[bought]] * (1.0 - discount), 2)
    return pd.DataFrame(
        {
            "event_id": _labels("e", n_events, 7, first=1),
            "user_id": _labels("u", n_users, 5, take=e_user),
            "item_id": _labels("i", len(cat.cluster), 5, take=e_item),
            "event_type": _take(EVENT_TYPES, e_type),
            "value": e_value,
            "timestamp": _to_datetime(e_time),
            "session_id": _labels("s", n_sessions, 6, first=1, take=e_session),
            "device": _take(DEVICES, device[e_session]),
            "location": _take(CITIES, user_city[e_user]),
        }
    )


def _n_events(sk: _Skeleton) -> int:
    return int(len(sk.click) + sk.click.sum() + sk.cart.sum() + sk.purchase.sum())


def _gaps(rng: np.random.Generator, spec: tuple[float, int, int], n: int) -> IntArray:
    mean, low, high = spec
    return np.clip(rng.exponential(mean, size=n), low, high).astype(np.int64)


def _context_multipliers(when_ms: IntArray, hour: IntArray, device: IntArray) -> FloatArray:
    """Per-row cluster multipliers for time of day, device and drift."""
    weekday = (PERIOD_START.day_of_week + np.floor_divide(when_ms, _DAY_MS)) % 7
    log_mult = (
        _DEVICE_LOG[device]
        + _DAYPART_LOG[np.asarray(hour, dtype=np.int64) // 6]
        + np.where((weekday >= 5)[:, None], _WEEKEND_LOG[None, :], 0.0)
    )
    mult: FloatArray = np.exp(log_mult)
    ramp = _drift_ramp(when_ms)
    mult[:, _HOME] *= 1.0 + (_DRIFT_HOME_MAX - 1.0) * ramp
    mult[:, _OUTDOOR] *= 1.0 - (1.0 - _DRIFT_OUTDOOR_MIN) * ramp
    return mult


def _taste_in_context(
    taste: FloatArray, when_ms: IntArray, hour: IntArray, device: IntArray
) -> FloatArray:
    """Users' cluster probabilities for sessions at `when_ms`, `hour`, `device`.

    Context and drift scale the taste; on top, late in the period every user
    is pulled towards ``home`` (a shift even single-cluster users show).
    """
    mult = _context_multipliers(when_ms, hour, device)
    probs = _normalise(taste * mult)
    pull = _DRIFT_PULL * _drift_ramp(when_ms)
    probs *= (1.0 - pull)[:, None]
    probs[:, _HOME] += pull
    return probs


def _drift_ramp(when_ms: IntArray) -> FloatArray:
    """0 before the drift starts, rising linearly to 1 at the period end."""
    ramp: FloatArray = np.clip((when_ms / _PERIOD_MS - DRIFT_START) / (1.0 - DRIFT_START), 0.0, 1.0)
    return ramp


def _normalise(weights: FloatArray) -> FloatArray:
    out: FloatArray = weights / weights.sum(axis=-1, keepdims=True)
    return out


def _sample_rows(rng: np.random.Generator, probs: FloatArray) -> IntArray:
    """One categorical draw per row of an ``(n, k)`` probability matrix."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cdf[:, -1]
    picked: IntArray = np.minimum((cdf <= u[:, None]).sum(axis=1), probs.shape[1] - 1)
    return picked.astype(np.int64)


def _sample_items(rng: np.random.Generator, cat: _Catalogue, cluster: IntArray) -> IntArray:
    # Cluster c's block of `cum_offset` spans (c, c + 1], so c + u lands in it.
    pos = np.searchsorted(cat.cum_offset, cluster + rng.random(len(cluster)), side="right")
    pos = np.clip(pos, cat.cluster_start[cluster], cat.cluster_start[cluster + 1] - 1)
    return cat.by_cluster[pos]


# ---------------------------------------------------------------------------
# Column builders
# ---------------------------------------------------------------------------


def _to_datetime(ms: IntArray) -> pd.DatetimeIndex:
    ns = PERIOD_START.as_unit("ns").value + np.asarray(ms, dtype=np.int64) * 1_000_000
    return pd.DatetimeIndex(ns.astype("datetime64[ns]")).tz_localize("UTC")


def _take(
    labels: tuple[str, ...], codes: npt.NDArray[np.integer]
) -> pd.api.extensions.ExtensionArray:
    table: pd.api.extensions.ExtensionArray = pd.array(list(labels), dtype=_str_dtype())
    return table.take(np.asarray(codes, dtype=np.int64))


def _str_dtype() -> Any:
    """The dtype pandas gives string columns by default ("str" or object)."""
    return pd.Series([""]).dtype


# "0000".."9999" as bytes: ids are assembled four digits at a time.
_DIGITS4: Final = np.frombuffer(
    "".join(f"{i:04d}" for i in range(10_000)).encode("ascii"), dtype=np.uint8
).reshape(10_000, 4)


def _labels(
    prefix: str,
    n: int,
    min_width: int,
    first: int = 0,
    take: IntArray | None = None,
) -> pd.api.extensions.ExtensionArray:
    """Zero-padded ids such as ``u00042``, optionally gathered by `take`.

    Built as a fixed-width byte matrix (no per-row Python loop) and, when
    pandas stores strings in Arrow, wrapped without copying.
    """
    width = max(min_width, len(str(first + n - 1)))
    head = len(prefix)
    buf = np.empty((n, head + width), dtype=np.uint8)
    buf[:, :head] = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    x = np.arange(first, first + n, dtype=np.int64)
    end = head + width
    while end > head:
        chunk = min(4, end - head)
        x, low = np.divmod(x, 10_000)
        buf[:, end - chunk : end] = _DIGITS4[low, 4 - chunk :]
        end -= chunk
    row_width = buf.shape[1]
    if take is not None:
        # Gather whole rows as fixed-size byte strings (one memcpy each).
        buf = buf.view(f"S{row_width}").ravel()[take].view(np.uint8).reshape(-1, row_width)
    rows = len(buf)
    dtype = _str_dtype()
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        import pyarrow as pa  # present whenever pandas uses Arrow-backed strings

        offsets = np.arange(rows + 1, dtype=np.int64) * row_width
        arrow = pa.LargeStringArray.from_buffers(
            rows, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(buf))
        )
        wrapped: pd.api.extensions.ExtensionArray = pd.array(arrow, dtype=dtype)
        return wrapped  # pandas stores large_string, so no copy is made
    fixed = buf.view(f"S{row_width}").ravel().astype(f"U{row_width}")
    objects: pd.api.extensions.ExtensionArray = pd.array(fixed.astype(object), dtype=dtype)
    return objects
