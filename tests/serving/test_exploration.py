"""The bandits' learning loop: from the served log and attributed events in the store, the
same in every worker and after a restart, only once an answer's feedback had time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tailored.jobs import TrainedModel
from tailored.ranking.exploration import features
from tailored.schema import Event, Item
from tailored.serving import create_app
from tailored.serving.exploration import Bandits
from tailored.settings import Settings
from tailored.store import Served, Store, open_store
from tailored.testing import LOCAL

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def serve(store: Store, rid: str, user: str, items: list[str], at: datetime, *,
          version: int = 1, clicked: tuple[str, ...] = (), base_rank: list[int] | None = None
          ) -> None:
    """One answer in the served log, its impressions and its clicks in the events."""
    context = ({} if base_rank is None else
               {"exploration": {"share": 0.5, "explored": [r == 0 for r in base_rank],
                                "base_rank": base_rank}})
    store.served.record([Served(rid, user, at, "item_knn", version, item_ids=items,
                                scores=[1.0] * len(items), propensities=[1.0] * len(items),
                                context=context)])
    store.events.add([Event(user_id=user, item_id=item, event_type=kind,
                            timestamp=at + timedelta(seconds=1),
                            context={"recommendation_id": rid, "position": position})
                      for position, item in enumerate(items, start=1)
                      for kind in ("impression", *(("click",) if item in clicked else ()))])


@pytest.fixture
def shop(tmp_path) -> Store:  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{tmp_path / 'loop.db'}")
    store.models.register("item_knn", str(tmp_path / "v1"))
    store.models.register("item_knn", str(tmp_path / "v2"))
    return store


def state(bandits: Bandits, version: int = 1) -> tuple[np.ndarray, list[str], np.ndarray]:
    bandit = bandits.bandit(version)
    return bandit.shared_matrix_.copy(), list(bandit.item_ids_), bandit.clicks_[
        :len(bandit.item_ids_)].copy()


def test_two_workers_and_a_restarted_one_learn_the_same_bandit(shop: Store) -> None:
    created = shop.models.get(1)
    assert created is not None
    start = created.created_at + timedelta(seconds=1)
    for n in range(12):  # "new" is clicked whenever shown, "old" never
        serve(shop, f"r{n}", f"u{n % 4}", ["old", "new"], start + timedelta(seconds=n),
              clicked=("new",), base_rank=[1, 0])
    clock_a = Clock(start + timedelta(seconds=6 + 30))  # a sees the first half first
    later = Clock(start + timedelta(seconds=100))
    worker_a = Bandits(shop, background=False, feedback_seconds=30, now=clock_a)
    worker_b = Bandits(shop, background=False, feedback_seconds=30, now=later)
    worker_a.bandit(1)
    worker_b.bandit(1)

    assert worker_a.poll() == 12  # answers 0..5, two impressions each
    clock_a.at += timedelta(seconds=60)
    assert worker_a.poll() == 12  # the rest, once
    assert worker_a.poll() == 0
    assert worker_b.poll() == 24  # all at once
    restarted = Bandits(shop, background=False, feedback_seconds=30, now=later)
    restarted.bandit(1)
    assert restarted.poll() == 24

    a, b, c = state(worker_a), state(worker_b), state(restarted)
    assert sorted(a[1]) == sorted(b[1]) == ["new", "old"]
    np.testing.assert_allclose(a[0], b[0])
    np.testing.assert_allclose(a[0], c[0])
    assert worker_a.stats() == {1: {"impressions": 24, "clicks": 12}}
    mean, _ = worker_b.bandit(1).predict(["new", "old"], features([0, 1], [1, 1]))
    assert mean[0] > 0.5 > mean[1]


def test_answers_are_learnt_only_once_their_feedback_had_time(shop: Store) -> None:
    created = shop.models.get(1)
    assert created is not None
    at = created.created_at + timedelta(seconds=5)
    serve(shop, "r1", "u1", ["a", "b", "c"], at, clicked=("b",))
    clock = Clock(at + timedelta(seconds=10))
    bandits = Bandits(shop, background=False, feedback_seconds=30, now=clock)
    bandits.bandit(1)

    assert bandits.poll() == 0  # clicks may still come
    clock.at = at + timedelta(seconds=31)
    assert bandits.poll() == 3
    bandit = bandits.bandit(1)
    # Without recorded base ranks the slot is the base rank (a deterministic ranking).
    clicks = dict(zip(bandit.item_ids_, bandit.clicks_, strict=False))
    assert clicks == {"a": 0, "b": 1, "c": 0}


def test_each_version_learns_from_its_own_answers_only(shop: Store) -> None:
    created = shop.models.get(2)
    assert created is not None
    at = created.created_at + timedelta(seconds=1)
    serve(shop, "r1", "u1", ["x"], at, version=1, clicked=("x",))
    serve(shop, "r2", "u2", ["y"], at, version=2)
    serve(shop, "r3", "u3", ["z"], at, version=3)  # a version nobody explores with
    shop.served.record([Served("anonymous", None, at, "item_knn", 2, item_ids=["y"],
                               scores=[1.0], propensities=[1.0])])
    bandits = Bandits(shop, background=False, feedback_seconds=0,
                      now=Clock(at + timedelta(minutes=1)))
    bandits.bandit(1)
    bandits.bandit(2)

    assert bandits.poll() == 2
    assert bandits.bandit(1).item_ids_ == ["x"] and bandits.bandit(2).item_ids_ == ["y"]
    assert bandits.stats() == {1: {"impressions": 1, "clicks": 1},
                               2: {"impressions": 1, "clicks": 0}}


def test_nothing_is_read_until_a_version_is_explored(shop: Store) -> None:
    bandits = Bandits(shop, background=False, now=Clock(T0))
    assert bandits.poll() == 0 and bandits.stats() == {}
    idle = Bandits(shop, background=False, track_active=True, now=Clock(T0))
    assert idle.poll() == 0  # no version is active
    shop.models.promote(2)
    tracking = Bandits(shop, background=False, track_active=True,
                       now=Clock(datetime.now(UTC)))
    tracking.poll()
    assert set(tracking.stats()) == {2}


def test_the_service_learns_from_clicks_posted_to_any_worker(
        trained: TrainedModel, store: Store, settings: Settings) -> None:
    """Worker 1 serves and gets the events; worker 2's bandit learns them from the store."""
    store.items.upsert([Item(item_id="fresh")])
    quick = settings.model_copy(update={
        "served_log_flush_seconds": 0.05, "exploration_feedback_seconds": 0.0,
        "exploration_poll_seconds": 0.05})
    with TestClient(create_app(quick), base_url=LOCAL) as one, \
            TestClient(create_app(quick), base_url=LOCAL) as two:
        for user in ("alice0", "alice1", "bob0"):
            body = one.get(f"/recommendations/{user}", params={"k": 4, "explore": 1}).json()
            shown = [i["item_id"] for i in body["items"]]
            assert "fresh" in shown
            events = [{"user_id": user, "item_id": item, "event_type": kind,
                       "context": {"recommendation_id": body["recommendation_id"],
                                   "position": position}}
                      for position, item in enumerate(shown, start=1)
                      for kind in ("impression", *(("click",) if item == "fresh" else ()))]
            assert one.post("/events", json=events).status_code in (200, 201)
        two.get("/recommendations/alice2", params={"k": 2, "explore": 0.5})  # starts it
        bandits = two.app.state.service.bandits  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while bandits.stats().get(1, {}).get("clicks", 0) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert bandits.stats()[1]["clicks"] == 3
        bandit = bandits.bandit(1)
        assert int(bandit.clicks_[bandit.item_ids_.index("fresh")]) == 3
    assert bandits._thread is None  # stopped with the app
