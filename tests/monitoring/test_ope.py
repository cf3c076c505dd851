"""Off-policy estimates against a target policy whose true CTR is known (simulated)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tailored.dataset import Dataset
from tailored.errors import InvalidDataError
from tailored.models import create
from tailored.monitoring.ope import estimate, evaluate_candidate, logged_impressions
from tailored.schema import Event
from tailored.store import Served, open_store

POOL, SLOTS = 6, 3
BIAS = 1 / np.log2(np.arange(1, SLOTS + 1) + 1)  # position bias: who looks at the slot


def _world(requests: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, float, float]:
    """A logging policy that shows a random ordering of 3 of each request's 6 candidates
    (propensity 1/6 per item and slot), and a target that shows the 3 most attractive in
    order. Returns logged impressions, target lists, the target's true CTR and the
    logging policy's true CTR."""
    rng = np.random.default_rng(seed)
    attraction = rng.uniform(0.0, 0.5, size=(requests, POOL))
    shown = np.argsort(rng.random((requests, POOL)), axis=1)[:, :SLOTS]
    best = np.argsort(-attraction, axis=1)[:, :SLOTS]
    rows = np.arange(requests)[:, None]
    p_logged = attraction[rows, shown] * BIAS
    clicked = rng.random(p_logged.shape) < p_logged
    rid = np.repeat([f"r{i}" for i in range(requests)], SLOTS)
    logged = pd.DataFrame({
        "recommendation_id": rid, "item_id": [f"i{j}" for j in shown.ravel()],
        "position": np.tile(np.arange(1, SLOTS + 1), requests),
        "propensity": 1 / POOL, "clicked": clicked.ravel()})
    target = pd.DataFrame({
        "recommendation_id": rid, "item_id": [f"i{j}" for j in best.ravel()],
        "position": np.tile(np.arange(1, SLOTS + 1), requests), "probability": 1.0})
    true_target = float((attraction[rows, best] * BIAS).mean())
    true_logging = float(p_logged.mean())
    return logged, target, true_target, true_logging


def test_ips_and_snips_recover_the_target_ctr() -> None:
    logged, target, truth, logging_truth = _world(30_000, seed=5)
    result = estimate(logged, target)
    assert truth > 1.3 * logging_truth  # the target is clearly better than the logger
    assert result.logged_ctr == pytest.approx(logging_truth, rel=0.05)
    assert result.ips_low <= truth <= result.ips_high
    assert result.ips == pytest.approx(truth, rel=0.08)
    assert result.snips == pytest.approx(truth, rel=0.08)
    assert result.support == pytest.approx(1 / POOL, abs=0.01)
    assert not result.deterministic_logging
    assert 0 < result.effective_sample_size < result.impressions


def test_estimates_are_unbiased_over_many_logs() -> None:
    errors = []
    for seed in range(30):
        logged, target, truth, _ = _world(1000, seed=100 + seed)
        errors.append(estimate(logged, target).ips - truth)
    assert abs(np.mean(errors)) < 3 * np.std(errors) / np.sqrt(len(errors))


def test_bad_logs_are_refused() -> None:
    logged, target, _, _ = _world(10, seed=1)
    with pytest.raises(InvalidDataError, match="propensities"):
        estimate(logged.assign(propensity=0.0), target)
    with pytest.raises(InvalidDataError, match="lack the columns"):
        estimate(logged.drop(columns="clicked"), target)
    with pytest.raises(InvalidDataError, match="no logged impressions"):
        estimate(logged.iloc[:0], target)


def test_evaluate_candidate_from_the_store(tmp_path: Path) -> None:
    """Through the store: a candidate that would show what the users clicked scores
    higher than one that would not."""
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    history = [Event(user_id=f"u{u}", item_id=f"i{(u + j) % 8}", timestamp=t0)
               for u in range(40) for j in range(3)]
    store.events.add(history)
    model = create("popular").fit(Dataset.from_frame(store.events.frame()))
    model.save(tmp_path / "popular")
    version = store.models.register("popular", str(tmp_path / "popular"))
    top = model.recommend(["nobody"], k=3)["item_id"].tolist()
    served, events = [], []
    for u in range(40):
        at = t0 + timedelta(hours=1, minutes=u)
        shown = [f"i{(u + 5 + j) % 8}" for j in range(3)]
        rid = f"r{u}"
        served.append(Served(rid, f"u{u}", at, "logger", None, item_ids=shown,
                             scores=[1.0] * 3, propensities=[0.5] * 3))
        for position, item in enumerate(shown, 1):
            context = {"recommendation_id": rid, "position": position}
            events.append(Event(user_id=f"u{u}", item_id=item, event_type="impression",
                                timestamp=at, context=context))
            if item in top:
                events.append(Event(user_id=f"u{u}", item_id=item, event_type="click",
                                    timestamp=at + timedelta(seconds=5), context=context))
    store.served.record(served)
    store.events.add(events)
    logged = logged_impressions(store.served.frame(), store.events.frame())
    assert len(logged) == 120 and set(logged["propensity"]) == {0.5}
    result = evaluate_candidate(store, version.version)
    assert result.impressions == 120 and result.recommendations == 40
    assert result.ips > 0
    with pytest.raises(Exception, match="version 99"):
        evaluate_candidate(store, 99)
    store.close()
