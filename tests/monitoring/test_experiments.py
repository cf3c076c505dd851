"""Deterministic assignment of users to variants, and creating experiments safely."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tailored.errors import InvalidDataError
from tailored.monitoring.experiments import (
    assign,
    bucket,
    create_experiment,
    parse_variant,
)
from tailored.store import Experiment, Store, Variant, open_store


def _experiment(holdout: float = 0.0, shares: tuple[float, float] = (0.5, 0.5),
                experiment_id: str = "exp1") -> Experiment:
    return Experiment(experiment_id, "test",
                      (Variant("A", 1, shares[0]), Variant("B", 2, shares[1])),
                      holdout_share=holdout, holdout_version=None)


def test_bucket_is_a_fixed_function_of_experiment_and_user() -> None:
    # Pinned values: a change here would move users between variants mid-test.
    assert bucket("exp1", "u42") == pytest.approx(0.7941393894010976, abs=1e-15)
    assert bucket("abc", "u1") == pytest.approx(0.18524390982899278, abs=1e-15)


def test_assignment_is_the_same_in_another_process() -> None:
    """Sticky across restarts and workers: no state, no per-process salt."""
    code = ("from tailored.monitoring.experiments import bucket; "
            "print(repr(bucket('exp1', 'u42')))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, env={"PYTHONHASHSEED": "123"}).stdout
    assert float(output) == bucket("exp1", "u42")


def test_shares_and_holdout_are_respected() -> None:
    experiment = _experiment(holdout=0.1, shares=(0.25, 0.75))
    counts = Counter(assign(experiment, f"user-{i}").variant for i in range(40_000))
    assert counts["holdout"] / 40_000 == pytest.approx(0.10, abs=0.01)
    assert counts["A"] / 40_000 == pytest.approx(0.9 * 0.25, abs=0.01)
    assert counts["B"] / 40_000 == pytest.approx(0.9 * 0.75, abs=0.01)
    held = next(assign(experiment, f"user-{i}") for i in range(1000)
                if assign(experiment, f"user-{i}").holdout)
    assert held.version is None and held.experiment_id == "exp1"


def test_a_user_keeps_the_variant_and_experiments_reshuffle_independently() -> None:
    first, second = _experiment(experiment_id="e1"), _experiment(experiment_id="e2")
    users = [f"u{i}" for i in range(4000)]
    assert [assign(first, u) for u in users] == [assign(first, u) for u in users]
    same = sum(assign(first, u).variant == assign(second, u).variant for u in users)
    assert same / len(users) == pytest.approx(0.5, abs=0.04)


def test_parse_variant() -> None:
    assert parse_variant("A=1") == ("A", 1, 1.0)
    assert parse_variant(" als = 3:0.25") == ("als", 3, 0.25)
    for bad in ("A", "A=x", "=3", "A=1:x"):
        with pytest.raises(InvalidDataError, match="NAME=VERSION"):
            parse_variant(bad)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield opened
    opened.close()


def test_create_experiment_checks_the_registry(store: Store) -> None:
    store.models.register("popular", "/m/1")
    store.models.register("als", "/m/2")
    created = create_experiment(store, "popular-vs-als", [("A", 1, 1.0), ("B", 2, 1.0)],
                                planned_sample_size=100)
    assert store.experiments.get(created.experiment_id) == created
    with pytest.raises(InvalidDataError, match="variant 'B': model version 7 is not in"):
        create_experiment(store, "x", [("A", 1, 1.0), ("B", 7, 1.0)])
    with pytest.raises(InvalidDataError, match="the holdout: model version 9"):
        create_experiment(store, "x", [("A", 1, 1.0), ("B", 2, 1.0)], holdout_share=0.1,
                          holdout_version=9)
