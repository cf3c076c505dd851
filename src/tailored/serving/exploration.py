"""Exploration in the service: a LinUCB bandit per model version, learnt from the store.

A request with ``explore`` > 0 lets :func:`tailored.ranking.explore` fill that share of
its slots with the bandit's choice among the model's candidates and the catalog's new
items (available, unknown to the model: cold start). The answer's served-log record
keeps each slot's real propensity, and in its context
``exploration = {"share", "explored", "base_rank"}``, so off-policy evaluation and the
learning below know what the policy did.

How every worker learns the same thing (:class:`Bandits`): the bandit of a version is
not fed by the events one worker happens to receive. A background thread of each worker
reads, every ``exploration_poll_seconds``, the served log's answers of the versions it
explores with that are at least ``exploration_feedback_seconds`` old (their clicks had
time to arrive), and their attributed impressions and clicks
(:func:`tailored.monitoring.online.attribute`): each impression is one example
(features: the item's base rank and its slot), reward 1 when the item was clicked from
that answer. The hybrid LinUCB's state is a sum over examples, so the order workers
read them in does not matter: all workers, and a restarted one (which catches up from
the version's registration), reach the same bandit. Anonymous session answers use the
bandit but do not teach it (their events cannot be found without a user id).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from tailored.dataset import UserQuery
from tailored.monitoring.online import attribute
from tailored.pipeline import LiveRecommender, Overrides, Ranked
from tailored.pipeline.live import with_new_arrivals
from tailored.ranking import LinUCB, explore
from tailored.ranking.exploration import features
from tailored.settings import Settings
from tailored.store import Store

from .security import describe_failure

logger = logging.getLogger("tailored.serving")


# ---- one answer ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """What an answer shows: the list, each slot's propensity and, with exploration, which
    slots the bandit placed and the base model's rank of each item (0: a new item); with
    new arrivals, which slots they took."""

    ranked: Ranked
    propensities: list[float]
    share: float = 0.0
    explored: list[bool] | None = None
    base_ranks: list[int] | None = None
    new_arrivals: list[bool] | None = None

    @classmethod
    def ranking(cls, ranked: Ranked) -> Shown:
        """A deterministic ranking: every propensity is 1."""
        return cls(ranked, [1.0] * len(ranked.item_ids))

    def with_new_arrivals(self, arrivals: Ranked, k: int, share: float) -> Shown:
        """``k`` slots of this answer with a ``share`` given to ``arrivals`` (those not
        shown already), placed deterministically (propensity 1, base rank 0: new)."""
        shown = set(self.ranked.item_ids)
        keep = [n for n, item in enumerate(arrivals.item_ids) if item not in shown]
        arrivals = Ranked([arrivals.item_ids[n] for n in keep],
                          [arrivals.scores[n] for n in keep], arrivals.columns[keep])
        ranked, placed = with_new_arrivals(self.ranked, arrivals, k, share)
        slot = iter(range(len(self.ranked.item_ids)))
        origin = [None if new else next(slot) for new in placed]

        def merged(values: list[Any], new: Any) -> list[Any]:
            return [new if n is None else values[n] for n in origin]
        return Shown(ranked, merged(self.propensities, 1.0), self.share,
                     None if self.explored is None else merged(self.explored, False),
                     None if self.base_ranks is None else merged(self.base_ranks, 0), placed)

    def with_fallback(self, filled: Ranked) -> Shown:
        """This answer with ``filled`` (a fallback's items) after its own."""
        ranked = Ranked([*self.ranked.item_ids, *filled.item_ids],
                        [*self.ranked.scores, *filled.scores],
                        np.concatenate([self.ranked.columns, filled.columns]))
        more = len(filled.item_ids)

        def extended(values: list[Any] | None, new: Any) -> list[Any] | None:
            return None if values is None else [*values, *[new] * more]
        return Shown(ranked, [*self.propensities, *[1.0] * more], self.share,
                     extended(self.explored, False), extended(self.base_ranks, 0),
                     extended(self.new_arrivals, False))

    def served_context(self) -> dict[str, Any]:
        """What the served log's context keeps about exploration and new arrivals
        (nothing without either)."""
        context: dict[str, Any] = {}
        if self.explored is not None:
            context["exploration"] = {"share": self.share, "explored": self.explored,
                                      "base_rank": self.base_ranks}
        if self.new_arrivals is not None:
            context["new_arrivals"] = self.new_arrivals
        return context


def explore_slots(live: LiveRecommender, bandit: LinUCB, query: UserQuery, ranked: Ranked,
                  k: int, share: float, overrides: Overrides) -> Shown:
    """``k`` slots from the pipeline's ``ranked`` pool, a ``share`` of them explored.

    The catalog's new items that the pipeline's rules and the request let through, and
    that the user (``query``: one user) has not met, join the candidates.
    """
    if share <= 0:
        return Shown.ranking(ranked.head(k))
    catalog = live.catalog()
    user_id = query.user_ids[0]
    new_items: list[str] = []
    if not catalog.new_items().empty:
        if query.events is None:
            query = live.query(query.user_ids, query.context)
        assert query.events is not None
        rules = live.pipeline.rules + overrides.rules
        facts = live.pipeline.facts_.facts(query, catalog)[0]
        new_items = catalog.new_candidates(rules, facts, query.context, overrides.exclude,
                                           seen=set(query.events["item_id"].astype(str)))
    picked = explore(ranked.frame(user_id), bandit, k, share=share, new_items=new_items)
    column_of = dict(zip(ranked.item_ids, ranked.columns.tolist(), strict=True))
    item_ids = picked["item_id"].astype(str).tolist()
    return Shown(
        Ranked(item_ids, [float(s) for s in picked["score"]],
               np.array([column_of.get(item, -1) for item in item_ids], dtype=np.int64)),
        [float(p) for p in picked["propensity"]], share,
        [bool(e) for e in picked["explored"]], [int(r) for r in picked["base_rank"]])


# ---- learning from the store --------------------------------------------------------------


@dataclass
class _Tracked:
    bandit: LinUCB
    learnt_until: datetime | None  # answers served before this are learnt (None: none yet)
    impressions: int = 0
    clicks: int = 0


#: A bandit's key: the model version (-1: none) and the placement (None: no placement).
BanditKey = tuple[int, str | None]


class Bandits:
    """One LinUCB per model version and placement, learnt from the served log and its
    feedback (a placement's answers teach only its own bandit: what is clicked on a
    homepage says little about a product page).

    ``bandit(version, placement)`` is what a request uses (one is learnt once asked for;
    with a default ``exploration_share`` > 0 the active version always is). ``poll()``
    learns what is new; :meth:`start` runs it every ``poll_seconds`` in a thread, which
    the first ``bandit()`` starts unless ``background`` is False (then call ``poll()``).
    """

    def __init__(self, store: Store, *, alpha: float = 1.0, poll_seconds: float = 5.0,
                 feedback_seconds: float = 30.0, track_active: bool = False,
                 background: bool = True,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self.alpha = alpha
        self.poll_seconds = poll_seconds
        self.feedback_seconds = feedback_seconds
        self.track_active = track_active
        self.background = background
        self._now = now
        self._tracked: dict[BanditKey, _Tracked] = {}
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, store: Store, settings: Settings) -> Bandits:
        # An answer is in the store a flush after it was served: never learn earlier.
        settle = max(settings.exploration_feedback_seconds,
                     2 * settings.served_log_flush_seconds)
        return cls(store, alpha=settings.exploration_alpha,
                   poll_seconds=settings.exploration_poll_seconds, feedback_seconds=settle,
                   track_active=settings.exploration_share > 0)

    # ---- what requests use ------------------------------------------------------------

    def bandit(self, version: int | None, placement: str | None = None) -> LinUCB:
        """The bandit of ``version`` on ``placement``; the first ask starts learning it (in
        the background, from the version's first answer on), so it may know little at
        first."""
        key = (-1 if version is None else version, placement)
        found = self._tracked.get(key)
        if found is not None:
            return found.bandit
        with self._lock:
            found = self._tracked.get(key)
            if found is None:
                found = self._tracked[key] = _Tracked(LinUCB(alpha=self.alpha), None)
        if self.background:
            self.start()
            self._wake.set()  # catch up now, not a poll period later
        return found.bandit

    def stats(self) -> dict[int, dict[str, int]]:
        """Impressions and clicks learnt per version, over its placements."""
        found: dict[int, dict[str, int]] = {}
        for (version, _), t in list(self._tracked.items()):
            counts = found.setdefault(version, {"impressions": 0, "clicks": 0})
            counts["impressions"] += t.impressions
            counts["clicks"] += t.clicks
        return found

    # ---- learning ---------------------------------------------------------------------

    def poll(self) -> int:
        """Learn from the answers that became old enough since the last poll; return how
        many impressions were learnt. Only one poll runs at a time (others return 0)."""
        if not self._poll_lock.acquire(blocking=False):
            return 0
        try:
            if self.track_active:
                active = self.store.models.active()
                if active is not None and (active.version, None) not in self._tracked:
                    self.bandit(active.version)
            with self._lock:
                tracked = {key: t for key, t in self._tracked.items() if key[0] >= 0}
            if not tracked:
                return 0
            until = self._now() - timedelta(seconds=self.feedback_seconds)
            starts = {key: self._start(key[0], t) for key, t in tracked.items()}
            since = min(starts.values())
            if since >= until:
                return 0
            served = self.store.served.frame(since=since)
            learnt = self._learn(served, tracked, starts, until)
            for t in tracked.values():
                t.learnt_until = until
            return learnt
        finally:
            self._poll_lock.release()

    def _start(self, version: int, tracked: _Tracked) -> datetime:
        if tracked.learnt_until is not None:
            return tracked.learnt_until
        registered = self.store.models.get(version)  # learn from its first answer on
        return (registered.created_at if registered is not None
                else datetime(1970, 1, 1, tzinfo=UTC))

    def _learn(self, served: pd.DataFrame, tracked: Mapping[BanditKey, _Tracked],
               starts: Mapping[BanditKey, datetime], until: datetime) -> int:
        if served.empty:
            return 0
        keys = [(-1 if pd.isna(version) else int(version),
                 None if pd.isna(placement) else str(placement))
                for version, placement in zip(served["model_version"], served["placement"],
                                              strict=True)]
        begin = [starts.get(key) for key in keys]
        keep = [start is not None and user is not None and start <= at < until
                for start, user, at in zip(begin, served["user_id"], served["served_at"],
                                           strict=True)]
        served = served[np.array(keep, dtype=bool)]
        if served.empty:
            return 0
        events = self.store.events.frame(user_ids=served["user_id"].unique().tolist())
        impressions = attribute(served, events).impressions
        if impressions.empty:
            return 0
        examples = _examples(served, impressions)
        keys = examples["bandit"].tolist()
        for key in dict.fromkeys(keys):
            group = examples[np.array([k == key for k in keys], dtype=bool)]
            target = tracked[key]
            x = features(group["base_rank"].to_numpy(), group["position"].to_numpy())
            for item, row, reward in zip(group["item_id"], x, group["clicked"], strict=True):
                target.bandit.learn_one(item, row, float(reward))
            target.impressions += len(group)
            target.clicks += int(group["clicked"].sum())
        return len(examples)

    # ---- the background thread --------------------------------------------------------

    def start(self) -> Bandits:
        """Poll every ``poll_seconds`` in a daemon thread (idempotent)."""
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="exploration-bandits",
                                                daemon=True)
                self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread (at shutdown)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                learnt = self.poll()
                if learnt:
                    logger.debug("exploration: learnt %d impressions", learnt)
            except Exception as error:  # a store hiccup must not end the learning
                logger.error("exploration: feedback not read: %s", describe_failure(error))
            self._wake.wait(self.poll_seconds)
            self._wake.clear()


def _examples(served: pd.DataFrame, impressions: pd.DataFrame) -> pd.DataFrame:
    """One row per impression: ``bandit`` (its :data:`BanditKey`), ``item_id``,
    ``base_rank``, ``position``, ``clicked``. The base rank is the one the served context recorded
    (exploration), else the slot (a deterministic ranking shows the base order)."""
    answers: dict[str, tuple[int, str | None, Sequence[str], Sequence[int] | None]] = {}
    for rid, version, placement, items, context in zip(
            served["recommendation_id"], served["model_version"], served["placement"],
            served["item_ids"], served["context"], strict=True):
        recorded = (context or {}).get("exploration") if isinstance(context, dict) else None
        ranks = recorded.get("base_rank") if isinstance(recorded, dict) else None
        answers[rid] = (int(version), None if pd.isna(placement) else str(placement),
                        list(items),
                        ranks if isinstance(ranks, list) and len(ranks) == len(items) else None)
    rows = []
    for rid, item, position, clicked in zip(impressions["recommendation_id"],
                                            impressions["item_id"], impressions["position"],
                                            impressions["clicked"], strict=True):
        version, placement, items, ranks = answers[rid]
        if item not in items:  # an impression of something the answer did not show
            continue
        slot = items.index(item)
        at = int(position) if pd.notna(position) and position >= 1 else slot + 1
        base_rank = int(ranks[slot]) if ranks is not None else slot + 1
        rows.append(((version, placement), str(item), max(base_rank, 0), at, bool(clicked)))
    return pd.DataFrame(rows, columns=["bandit", "item_id", "base_rank", "position",
                                       "clicked"])


__all__ = ["Bandits", "Shown", "explore_slots"]
