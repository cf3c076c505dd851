"""The data every tuning test tunes on, and one tuned result many of them read."""

from __future__ import annotations

import math

import pytest

from tailored.dataset import Split, temporal_split
from tailored.evaluation.tuning import (
    TuningResult,
    tune,
)
from tailored.evaluation.tuning import search as tuning_search
from tailored.testing import checkerboard

from .fakes import FAMILIES, FIT_SECONDS, FakeClock


@pytest.fixture(scope="session")
def outer() -> Split:
    """The held-out test split: tuning only ever gets ``outer.train``."""
    return temporal_split(checkerboard(n_users=40, n_items=20, seed=1))


@pytest.fixture(scope="session")
def result_clock(outer: Split) -> tuple[TuningResult, FakeClock]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        clock = FakeClock(monkeypatch, seconds=FIT_SECONDS)
        tuned = tune(outer.train, models=FAMILIES, n_trials=2, seed=0, clock=clock)
    return tuned, clock


@pytest.fixture(scope="session")
def result(result_clock: tuple[TuningResult, FakeClock]) -> TuningResult:
    return result_clock[0]


@pytest.fixture
def every_candidate_rechecked(monkeypatch: pytest.MonkeyPatch) -> None:
    """No candidate is too far behind to re-check: on this tiny data the families' scores
    lie far apart, and a test counting re-checks means all of them."""
    monkeypatch.setattr(tuning_search, "RECHECK_FLOOR", 0.0)
    monkeypatch.setattr(tuning_search, "RECHECK_NOISE", math.inf)
