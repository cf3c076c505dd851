"""What :func:`~tailored.evaluation.tune` returns."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tailored.models import Recommender
from tailored.pipeline import Pipeline

from ..jsonable import plain

TIME_SPLIT_COLUMNS = ["phase", "family", "planned", "spent", "trials"]


@dataclass
class TuningResult:
    """The tuned model and the record of how it was chosen.

    ``best_model`` is fitted on all the data given to :func:`tune` with
    ``best_params``; when the objective searched re-ranker knobs, it is a
    :class:`~tailored.pipeline.Pipeline` of that model and one ``diversify`` stage at
    ``best_reranker`` (e.g. ``{"revenue": 0.4}``; empty otherwise). ``best_score`` is
    the mean of its objective (``metric``, canonically spelt) on the two folds.
    ``trials`` has one row per Optuna trial (``family``, ``number``, the sampled model
    ``params``, the sampled ``reranker`` knobs, ``iterations`` where early stopping
    picked a count, the first fold's ``value`` (NaN unless complete), ``state``,
    ``duration`` (seconds the trial's objective took, by the ``clock`` given to
    :func:`tune`) and any ``error``); ``second_fold`` one row per re-checked candidate
    with its ``first_fold``, ``second_fold`` and ``mean`` scores (when the search ran on
    a subsample of the users, ``mean`` is the second fold's score: it decides alone).
    ``elapsed`` is the whole call's time by that clock.

    With a time budget, ``time_split`` says where the time went: one row per phase
    (``screen``, ``search``, ``stack``, ``recheck``, ``final fit``) and family, with the
    seconds the cost model ``planned`` for it, the seconds ``spent`` and the ``trials``
    (or fits) made. ``notes`` says what the budget changed: a family left out, a
    subsample searched, a candidate not re-checked, a final fit with fewer iterations;
    each was also sent to the progress callback as a warning.
    """

    best_model: Recommender | Pipeline
    best_name: str
    best_params: dict[str, Any]
    best_score: float
    metric: str
    protocol: str
    trials: pd.DataFrame = field(repr=False)
    second_fold: pd.DataFrame = field(repr=False)
    validation: dict[str, dict[str, Any]] = field(repr=False)
    budget_seconds: float | None
    n_trials: int | None
    seed: int
    elapsed: float
    best_reranker: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    time_split: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=TIME_SPLIT_COLUMNS), repr=False)

    def to_json(self, indent: int | None = 2) -> str:
        """Everything but the model, as JSON (missing values as ``null``)."""
        record = {
            "best_name": self.best_name, "best_params": self.best_params,
            "best_reranker": self.best_reranker, "best_score": self.best_score,
            "metric": self.metric, "protocol": self.protocol,
            "seed": self.seed, "budget_seconds": self.budget_seconds,
            "n_trials": self.n_trials, "elapsed": self.elapsed,
            "notes": self.notes, "validation": self.validation,
            "time_split": self.time_split.to_dict(orient="records"),
            "second_fold": self.second_fold.to_dict(orient="records"),
            "trials": self.trials.to_dict(orient="records"),
        }
        return json.dumps(plain(record), indent=indent)
