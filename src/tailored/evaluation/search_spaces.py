"""Hyperparameter search spaces, one function per model family, for :func:`tune`.

Each space takes an Optuna trial and returns keyword parameters for the family's
model (``tailored.models.create(family, **params)``), so a sampled point is always a
valid config: every range lies inside the bounds of the family's pydantic ``Config``.
A trial may also record helper choices that are not model parameters (Popular's
``decay`` switch); only the returned dictionary reaches the model.

The registry, one entry per family in each table (a new family, e.g. a hybrid
pipeline, adds a space to ``SEARCH_SPACES`` and, where they apply, a line to the
other tables):

- ``SEARCH_SPACES``: every family that can be tuned, and its space.
- ``STARTING_POINTS``: the trial values that give the model's own defaults (with
  the deviations in ``STARTING_DEVIATIONS``); the tuner's screen tries this point
  first for every family, so a family is judged on a sensible configuration before
  any budget is spent searching it. A family without one is screened with a first
  random sample.
- ``STACKED_STARTING_POINTS``: the first trial of the ranker when :func:`tune` stacks
  it on other families, by validation protocol (labels that mirror what it asks).
- ``ITERATIVE_FAMILIES``: families refitted at growing iteration counts (their space
  samples ``iterations``), mapped to the first count at which their validation
  metric is checked; the checks then double (``4, 8, 16, ...``) up to the sampled
  count, for pruning and early stopping.
- ``EPOCH_FAMILIES``: families whose ``fit`` takes an ``after_epoch`` callback, so
  one fit is checked after every epoch (from the given epoch on) and stopped once
  the metric stops improving; their space gives ``epochs`` as the upper bound.
- ``REQUIREMENTS``: the module a family needs beyond the main dependencies; without
  it the family is left out of the default search.

Beside every family's space, :func:`reranker_space` samples the re-ranker's knobs
when the objective asks for them (``RERANKER_KNOBS``: an objective that counts
``revenue@K`` searches the ``revenue`` knob, one that counts ``diversity@K`` MMR's
``diversity``); the trial then scores the family's model re-ranked by those knobs
(a :class:`~tailored.pipeline.Pipeline` with one ``diversify`` stage), and its
starting point adds every knob at 0 (:func:`reranker_starting_point`: the model's
own order).

Examples
--------
>>> import optuna
>>> from tailored.models import create
>>> trial = optuna.trial.FixedTrial({"regularization": 250.0, "binary": True})
>>> params = SEARCH_SPACES["ease"](trial)
>>> params
{'regularization': 250.0, 'binary': True}
>>> create("ease", **params).config.regularization
250.0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import optuna

SearchSpace = Callable[[optuna.Trial], dict[str, Any]]


def popular_space(trial: optuna.Trial) -> dict[str, Any]:
    """Count users or weight; no decay, or a half-life of 1 day to 10 years (log)."""
    params: dict[str, Any] = {"count": trial.suggest_categorical("count", ["users", "weight"])}
    if trial.suggest_categorical("decay", [False, True]):
        params["half_life_days"] = trial.suggest_float("half_life_days", 1.0, 3650.0, log=True)
    else:
        params["half_life_days"] = None
    return params


def _knn_space(trial: optuna.Trial, max_neighbors: int) -> dict[str, Any]:
    return {
        "neighbors": trial.suggest_int("neighbors", 5, max_neighbors, log=True),
        "similarity": trial.suggest_categorical("similarity", ["cosine", "jaccard"]),
        "weighting": trial.suggest_categorical("weighting", ["none", "tfidf", "bm25"]),
        "shrinkage": trial.suggest_float("shrinkage", 0.0, 100.0),
        "binary": trial.suggest_categorical("binary", [False, True]),
    }


def item_knn_space(trial: optuna.Trial) -> dict[str, Any]:
    """Neighbours 5-500 (log), cosine or Jaccard, none/TF-IDF/BM25, shrinkage 0-100."""
    return _knn_space(trial, max_neighbors=500)


def user_knn_space(trial: optuna.Trial) -> dict[str, Any]:
    """Neighbours 5-300 (log), cosine or Jaccard, none/TF-IDF/BM25, shrinkage 0-100."""
    return _knn_space(trial, max_neighbors=300)


def als_space(trial: optuna.Trial) -> dict[str, Any]:
    """Factors 8-256, regularization 1e-3-100, alpha 0.1-100 (all log), 4-50
    iterations, linear/log1p/binary confidence."""
    return {
        "factors": trial.suggest_int("factors", 8, 256, log=True),
        "regularization": trial.suggest_float("regularization", 1e-3, 100.0, log=True),
        "alpha": trial.suggest_float("alpha", 0.1, 100.0, log=True),
        "iterations": trial.suggest_int("iterations", 4, 50),
        "confidence": trial.suggest_categorical("confidence", ["linear", "log1p", "binary"]),
    }


def bpr_space(trial: optuna.Trial) -> dict[str, Any]:
    """Factors 8-256, learning rate 1e-3-0.3, regularization 1e-5-0.1 (all log), 20-300
    iterations (log)."""
    return {
        "factors": trial.suggest_int("factors", 8, 256, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.3, log=True),
        "regularization": trial.suggest_float("regularization", 1e-5, 0.1, log=True),
        "iterations": trial.suggest_int("iterations", 20, 300, log=True),
    }


def ease_space(trial: optuna.Trial) -> dict[str, Any]:
    """Regularization 1-10,000 (log; summed weights need ~10x the binary value), binary."""
    return {
        "regularization": trial.suggest_float("regularization", 1.0, 10_000.0, log=True),
        "binary": trial.suggest_categorical("binary", [False, True]),
    }


def sasrec_space(trial: optuna.Trial) -> dict[str, Any]:
    """The last 20-200 items, 32-128 factors, 1-2 blocks, dropout 0-0.5, learning rate
    3e-4-1e-2 (log), 32-256 windows a batch; up to 100 epochs, which early stopping
    cuts short. One head, full softmax (the model's defaults)."""
    return {
        "max_length": trial.suggest_categorical("max_length", [20, 50, 100, 200]),
        "factors": trial.suggest_categorical("factors", [32, 64, 128]),
        "blocks": trial.suggest_int("blocks", 1, 2),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "learning_rate": trial.suggest_float("learning_rate", 3e-4, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128, 256]),
        "epochs": 100,
    }


def weighted_space(trial: optuna.Trial) -> dict[str, Any]:
    """A weighted hybrid of ALS (weight 0.1-1, so some part always counts), item-kNN
    (0-1), popularity (0-0.5) and EASE (0-1; left out at 0): z-score, min-max or rank
    normalisation."""
    weights = {"als": trial.suggest_float("als_weight", 0.1, 1.0),
               "item_knn": trial.suggest_float("item_knn_weight", 0.0, 1.0),
               "popular": trial.suggest_float("popular_weight", 0.0, 0.5),
               "ease": trial.suggest_float("ease_weight", 0.0, 1.0)}
    return {
        "parts": [{"model": model, "params": {}, "weight": weight}
                  for model, weight in weights.items() if model != "ease" or weight > 0],
        "normalisation": trial.suggest_categorical("normalisation",
                                                   ["zscore", "minmax", "rank"]),
    }


def ranked_space(trial: optuna.Trial) -> dict[str, Any]:
    """The learned ranker's own parameters (its sources are given: :func:`tune` stacks it
    on the families it tuned first): a per-user or global label period of 1, 5, 10, 20
    or 30% of the events (few values, so trials share fitted sources; per user, 1% is
    about each user's next event), 20-400 trees (log), learning rate 0.02-0.2 (log),
    2-63 leaves (log; a few hundred label users support only small trees), 5-200 rows
    per leaf (log), 20-200 sampled negatives per user (log)."""
    return {
        "label_split": trial.suggest_categorical("label_split", ["per-user", "global"]),
        "label_fraction": trial.suggest_categorical("label_fraction",
                                                    [0.01, 0.05, 0.1, 0.2, 0.3]),
        "n_estimators": trial.suggest_int("n_estimators", 20, 400, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 2, 63, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 200, log=True),
        "negatives": trial.suggest_int("negatives", 20, 200, log=True),
    }


SEARCH_SPACES: dict[str, SearchSpace] = {
    "popular": popular_space,
    "item_knn": item_knn_space,
    "user_knn": user_knn_space,
    "ease": ease_space,
    "als": als_space,
    "bpr": bpr_space,
    "sasrec": sasrec_space,
    "weighted": weighted_space,
    "ranked": ranked_space,
}

_KNN_DEFAULTS = {"similarity": "cosine", "weighting": "none", "shrinkage": 0.0, "binary": False}
STARTING_POINTS: dict[str, dict[str, Any]] = {
    "popular": {"count": "users", "decay": False},
    "item_knn": {"neighbors": 100, **_KNN_DEFAULTS},
    "user_knn": {"neighbors": 50, **_KNN_DEFAULTS},
    "ease": {"regularization": 2000.0, "binary": False},
    "als": {"factors": 32, "regularization": 0.1, "alpha": 1.0, "iterations": 15,
            "confidence": "log1p"},
    "bpr": {"factors": 64, "learning_rate": 0.01, "regularization": 0.01, "iterations": 100},
    "sasrec": {"max_length": 50, "factors": 64, "blocks": 2, "dropout": 0.2,
               "learning_rate": 3e-3, "batch_size": 32},
    "weighted": {"als_weight": 1.0, "item_knn_weight": 1.0, "popular_weight": 0.2,
                 "ease_weight": 0.0, "normalisation": "zscore"},
    "ranked": {"label_split": "per-user", "label_fraction": 0.2, "n_estimators": 200,
               "learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 20,
               "negatives": 100},
}

# The stacked ranker's first trial, by validation protocol: labels that mirror what the
# protocol asks (each user's next event; a short period after one time cut) and small
# trees, since a few hundred label users support little more.
STACKED_STARTING_POINTS: dict[str, dict[str, Any]] = {
    protocol: {**STARTING_POINTS["ranked"], "label_split": split, "label_fraction": fraction,
               "n_estimators": 100, "num_leaves": 7, "min_child_samples": 50}
    for protocol, split, fraction in (("leave-last-one-out", "per-user", 0.01),
                                      ("temporal", "global", 0.05))}

# Where a starting point departs from the model's defaults, and why. Under a time
# budget an epoch-checked model is judged after few epochs, and a small batch makes
# more optimizer steps per epoch (a quarter of the default batch: four times the
# steps), so it reaches a given validation metric in fewer epochs.
STARTING_DEVIATIONS: dict[str, dict[str, Any]] = {"sasrec": {"batch_size": 32}}

ITERATIVE_FAMILIES: dict[str, int] = {"als": 4, "bpr": 25}

EPOCH_FAMILIES: dict[str, int] = {"sasrec": 1}

REQUIREMENTS: dict[str, str] = {"sasrec": "torch"}

#: The re-ranker knob (:class:`~tailored.ranking.RerankerStage`) that an objective's
#: metric asks :func:`tune` to search, by the metric's label.
RERANKER_KNOBS: dict[str, str] = {"revenue": "revenue", "diversity": "diversity"}


def reranker_space(trial: optuna.Trial, knobs: Sequence[str]) -> dict[str, float]:
    """Each of the re-ranker's ``knobs`` in 0-1 (its whole range), as trial parameters
    ``reranker.<knob>``; no knob, no parameter.

    Examples
    --------
    >>> reranker_space(optuna.trial.FixedTrial({"reranker.revenue": 0.25}), ["revenue"])
    {'revenue': 0.25}
    """
    return {knob: trial.suggest_float(f"reranker.{knob}", 0.0, 1.0) for knob in knobs}


def reranker_starting_point(knobs: Sequence[str]) -> dict[str, float]:
    """The trial values of ``knobs`` at 0: the scorer's own order (the stage's defaults)."""
    return {f"reranker.{knob}": 0.0 for knob in knobs}
