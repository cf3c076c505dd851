"""Fakes shared by the tuning tests: a clock whose time passes only while models fit,
a SASRec space small enough for tiny data, and studies of given trials."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import optuna
import pytest

from tailored.dataset import Dataset
from tailored.evaluation import costs
from tailored.evaluation.costs import Reference
from tailored.evaluation.search_spaces import (
    EPOCH_FAMILIES,
    REFERENCE_SHAPE,
    SEARCH_SPACES,
    DataShape,
)
from tailored.evaluation.tuning import search as tuning_search
from tailored.ranking.parts import Part

KEYS = ["user_id", "item_id", "timestamp"]


# Every family but the epoch-checked ones (SASRec trains for seconds even on tiny data);
# test_epoch_families_are_tuned_with_early_stopping covers those.
FAMILIES = [family for family in SEARCH_SPACES if family not in EPOCH_FAMILIES]


def tiny_sasrec_space(trial: optuna.Trial, shape: DataShape = REFERENCE_SHAPE
                      ) -> dict[str, Any]:
    return {"factors": 8, "blocks": 1, "max_length": 5, "threads": 1,
            "learning_rate": trial.suggest_float("learning_rate", 1e-3, 1e-2, log=True),
            "epochs": 12}


# The cost model a fake clock's tests run against: fixed here, so that recalibrating the
# real references on another machine does not move them. Scoring weighs like fitting and
# the overhead is small: this clock charges a check's whole time to its fit.
FAKE_REFERENCES = {family: Reference(0.05, rate, 0.0) for family, rate in {
    "popular": 1.5e-7, "item_knn": 2.0e-8, "user_knn": 2.0e-8, "ease": 9.0e-11,
    "als": 3.0e-10, "bpr": 1.9e-9, "sasrec": 1.0e-10, "lightgcn": 1.0e-10,
    "transitions": 8.0e-8, "weighted": 1.0e-7, "ranked": 8.0e-7}.items()}


class FakeClock:
    """A clock for :func:`tune` whose time passes only while a model fits.

    Every fit of a model ``tune`` creates (trials, early-stopping checkpoints, re-checks
    and the final fit) advances it by ``seconds[family]`` (else ``default``), so a
    budgeted search takes the same course whatever the machine's speed. With ``parts``,
    so does every fit of a composite's parts (a hybrid's, the ranker's sources), as on a
    real clock. ``fits`` records each fit's family, number of events fitted on and start
    time. The tuner's cost model starts from ``FAKE_REFERENCES``.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch,
                 seconds: dict[str, float] | None = None, default: float = 1.0,
                 parts: bool = False) -> None:
        self.now = 0.0
        self.fits: list[tuple[str, int, float]] = []
        real_create, real_build = tuning_search.create, Part.build
        monkeypatch.setattr(costs, "REFERENCES", FAKE_REFERENCES)

        def charged(model: Any, family: str) -> Any:
            real_fit = model.fit

            def fit(data: Dataset, **kwargs: Any) -> Any:
                self.fits.append((family, len(data), self.now))
                fitted = real_fit(data, **kwargs)
                self.now += (seconds or {}).get(family, default)
                return fitted

            model.fit = fit
            return model

        monkeypatch.setattr(tuning_search, "create", lambda family, **params: charged(
            real_create(family, **params), family))
        if parts:
            monkeypatch.setattr(Part, "build", lambda part: charged(real_build(part),
                                                                    part.model))

    def __call__(self) -> float:
        return self.now


# Fits take 1 s of a fake clock; popular's 0.5 s and the ranker's 2 s.
FIT_SECONDS = {"popular": 0.5, "ranked": 2.0}


def study_with(value: float, seconds: float, *more: tuple[float, float],
               clock_seconds: float | None = None) -> optuna.Study:
    """A study of complete trials, each a (value, wall-clock seconds) pair; the first
    timed by the tuner's clock at ``clock_seconds`` if given."""
    start = datetime(2024, 1, 1)
    study = optuna.create_study(direction="maximize")
    for number, (score, wall) in enumerate([(value, seconds), *more]):
        timed = {"duration": clock_seconds} if number == 0 and clock_seconds else {}
        study.add_trial(optuna.trial.FrozenTrial(
            number=number, trial_id=number, state=optuna.trial.TrialState.COMPLETE,
            value=score, datetime_start=start, datetime_complete=start + timedelta(seconds=wall),
            params={}, distributions={}, user_attrs=timed, system_attrs={},
            intermediate_values={}))
    return study
