"""Hyperparameter search spaces, one function per model family, for :func:`tune`.

Each space takes an Optuna trial and returns keyword parameters for the family's
model (``tailored.models.create(family, **params)``), so a sampled point is always a
valid config: every range lies inside the bounds of the family's pydantic ``Config``.
A trial may also record helper choices that are not model parameters (Popular's
``decay`` switch); only the returned dictionary reaches the model.

``SEARCH_SPACES`` names every family that can be tuned. ``ITERATIVE_FAMILIES`` maps
the families trained in iterations (their space samples ``iterations``) to the first
iteration count at which their validation metric is checked; the checks then double
(``4, 8, 16, ...``) up to the sampled count, for pruning and early stopping.

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

from collections.abc import Callable
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


SEARCH_SPACES: dict[str, SearchSpace] = {
    "popular": popular_space,
    "item_knn": item_knn_space,
    "user_knn": user_knn_space,
    "ease": ease_space,
    "als": als_space,
    "bpr": bpr_space,
}

ITERATIVE_FAMILIES: dict[str, int] = {"als": 4, "bpr": 25}
