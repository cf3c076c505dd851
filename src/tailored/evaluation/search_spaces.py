"""Hyperparameter search spaces, one function per model family, for :func:`tune`.

Each space takes an Optuna trial and the :class:`DataShape` of the data being tuned
(default: MovieLens 100K's, ``REFERENCE_SHAPE``) and returns keyword parameters for the
family's model (``tailored.models.create(family, **params)``), so a sampled point is
always a valid config: every range lies inside the bounds of the family's pydantic
``Config``. A trial may also record helper choices that are not model parameters
(Popular's ``decay`` switch); only the returned dictionary reaches the model.

Ranges that depend on the data scale with its shape instead of staying where they were
chosen on MovieLens 100K (943 users, 1,682 items, 100,000 ratings); at that shape every
formula gives the constant it replaces. Factors and item neighbours grow with the square
root of the catalog, user neighbours with that of the user count, EASE's penalty with
the mean diagonal of the item-item Gram matrix (how often, and how heavily, an item is
touched), SASRec's window with the mean history and its batch with the square root of
the events (in powers of two, so that nearby shapes keep the same choices).
:func:`starting_point` gives each family's first trial at a shape.

The registry, one entry per family in each table (a new family, e.g. a hybrid
pipeline, adds a space to ``SEARCH_SPACES`` and, where they apply, a line to the
other tables):

- ``SEARCH_SPACES``: every family that can be tuned, and its space.
- ``STARTING_POINTS``: the trial values that give the model's own defaults (with
  the deviations in ``STARTING_DEVIATIONS``), at ``REFERENCE_SHAPE``
  (:func:`starting_point` scales them to other data); the tuner's screen tries this
  point first for every family, so a family is judged on a sensible configuration before
  any budget is spent searching it. A family without one is screened with a first
  random sample.
- ``STACKED_STARTING_POINTS``: the first trial of the ranker when :func:`tune` stacks
  it on other families, by validation protocol (labels that mirror what it asks).
  Stacked on them, the weighted hybrid searches :func:`blend_space` instead of its own
  (weights of the tuned families it blends), from :func:`blend_starting_point`.
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

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna

from tailored.dataset import Dataset


@dataclass(frozen=True)
class DataShape:
    """How big a dataset is: what the search ranges scale with and what a fit costs.

    ``pairs`` counts distinct (user, item) pairs (the interaction matrix's entries) and
    ``mean_square_weight`` is the mean square of their summed event weights (1 for
    presence alone; about 13.7 for 1-5 star ratings). ``scored_users`` is how many
    users a validation check scores (0 for a fit alone).

    Examples
    --------
    >>> from tailored.testing import checkerboard
    >>> shape = DataShape.of(checkerboard(n_users=40, n_items=20))
    >>> shape.users, shape.items, shape.events, shape.mean_history
    (40, 20, 200, 5.0)
    """

    users: int
    items: int
    events: int
    pairs: int
    mean_square_weight: float = 1.0
    scored_users: int = 0

    @classmethod
    def of(cls, data: Dataset, scored_users: int = 0) -> DataShape:
        """The shape of ``data`` (checks scoring ``scored_users`` users)."""
        matrix = data.matrix()
        square = float(np.square(matrix.data, dtype=np.float64).sum()) / max(matrix.nnz, 1)
        return cls(users=data.n_users, items=data.n_items, events=len(data),
                   pairs=int(matrix.nnz), mean_square_weight=square or 1.0,
                   scored_users=scored_users)

    @property
    def mean_history(self) -> float:
        """Events per user."""
        return self.events / max(self.users, 1)

    @property
    def item_popularity(self) -> float:
        """Users per item: the mean diagonal of the binary item-item Gram matrix."""
        return self.pairs / max(self.items, 1)


#: MovieLens 100K, where every constant of the spaces was chosen: the shape at which
#: each scaled range gives the constant it replaces.
REFERENCE_SHAPE = DataShape(users=943, items=1682, events=100_000, pairs=100_000,
                            mean_square_weight=1_372_704 / 100_000)

SearchSpace = Callable[[optuna.Trial, DataShape], dict[str, Any]]


def _grown(value: float, ratio: float, low: float, high: float) -> int:
    """``value`` times the square root of ``ratio`` (a size over the reference size),
    rounded and kept within ``low``-``high``."""
    return int(min(high, max(low, round(value * math.sqrt(ratio)))))


def max_factors(shape: DataShape) -> int:
    """The largest factor count ALS and BPR sample: 256 at MovieLens 100K's catalog,
    growing with the square root of the catalog (64 to 1,024)."""
    return _grown(256, shape.items / REFERENCE_SHAPE.items, 64, 1024)


def max_item_neighbors(shape: DataShape) -> int:
    """500 item neighbours at MovieLens 100K's catalog, by the square root of the
    catalog (at least 100, the default)."""
    return _grown(500, shape.items / REFERENCE_SHAPE.items, 100, 10_000)


def max_user_neighbors(shape: DataShape) -> int:
    """300 user neighbours at MovieLens 100K's 943 users, by the square root of the
    user count (at least 50, the default)."""
    return _grown(300, shape.users / REFERENCE_SHAPE.users, 50, 10_000)


def ease_regularization_range(shape: DataShape) -> tuple[float, float]:
    """EASE's penalty range: 1-10,000 at MovieLens 100K, times the data's mean Gram
    diagonal over the reference's. The penalty adds to that diagonal, so it is only
    meaningful relative to it: the low end follows the binary diagonal (users per
    item), the high end the weighted one (times the mean square weight)."""
    binary = shape.item_popularity / REFERENCE_SHAPE.item_popularity
    weighted = binary * shape.mean_square_weight / REFERENCE_SHAPE.mean_square_weight
    return min(binary, weighted), 10_000.0 * max(binary, weighted)


def ease_starting_regularization(shape: DataShape) -> float:
    """The default penalty (2,000, best with summed ratings on MovieLens 100K) times the
    data's mean weighted Gram diagonal over the reference's."""
    weighted = (shape.item_popularity * shape.mean_square_weight
                / (REFERENCE_SHAPE.item_popularity * REFERENCE_SHAPE.mean_square_weight))
    return 2000.0 * weighted


_WINDOW_LADDER = (10, 20, 50, 100, 200, 400)  # SASRec max_length values, about x2 apart


def sasrec_max_lengths(shape: DataShape) -> list[int]:
    """SASRec windows from an eighth to twice the mean history (20-200 at MovieLens
    100K's 106 events per user), or the two nearest to half of it when fewer fit."""
    low, high = shape.mean_history / 8, shape.mean_history * 2
    inside = [length for length in _WINDOW_LADDER if low <= length <= high]
    if len(inside) >= 2:
        return inside
    return sorted(sorted(_WINDOW_LADDER, key=lambda length: _log_distance(
        length, shape.mean_history / 2))[:2])


def _log_distance(value: float, target: float) -> float:
    return abs(math.log(value) - math.log(max(target, 1.0)))


def sasrec_batch_sizes(shape: DataShape) -> list[int]:
    """32-256 windows a batch at MovieLens 100K, times the power of two nearest to the
    square root of the events over 100,000 (never below 32): more data, more steps per
    epoch, so larger batches keep an epoch's time in check."""
    scale = 2 ** max(0, round(math.log2(math.sqrt(shape.events / REFERENCE_SHAPE.events))))
    return [size * scale for size in (32, 64, 128, 256)]


def popular_space(trial: optuna.Trial, shape: DataShape = REFERENCE_SHAPE) -> dict[str, Any]:
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


def item_knn_space(trial: optuna.Trial, shape: DataShape = REFERENCE_SHAPE
                   ) -> dict[str, Any]:
    """Neighbours 5-500 (log; :func:`max_item_neighbors`), cosine or Jaccard,
    none/TF-IDF/BM25, shrinkage 0-100."""
    return _knn_space(trial, max_neighbors=max_item_neighbors(shape))


def user_knn_space(trial: optuna.Trial, shape: DataShape = REFERENCE_SHAPE
                   ) -> dict[str, Any]:
    """Neighbours 5-300 (log; :func:`max_user_neighbors`), cosine or Jaccard,
    none/TF-IDF/BM25, shrinkage 0-100."""
    return _knn_space(trial, max_neighbors=max_user_neighbors(shape))


def als_space(trial: optuna.Trial, shape: DataShape = REFERENCE_SHAPE) -> dict[str, Any]:
    """Factors 8-256 (:func:`max_factors`), regularization 1e-3-100, alpha 0.1-100 (all
    log), 4-50 iterations, linear/log1p/binary confidence."""
    return {
        "factors": trial.suggest_int("factors", 8, max_factors(shape), log=True),
        "regularization": trial.suggest_float("regularization", 1e-3, 100.0, log=True),
        "alpha": trial.suggest_float("alpha", 0.1, 100.0, log=True),
        "iterations": trial.suggest_int("iterations", 4, 50),
        "confidence": trial.suggest_categorical("confidence", ["linear", "log1p", "binary"]),
    }


def bpr_space(trial: optuna.Trial, shape: DataShape = REFERENCE_SHAPE) -> dict[str, Any]:
    """Factors 8-256 (:func:`max_factors`), learning rate 1e-3-0.3, regularization
    1e-5-0.1 (all log), 20-300 iterations (log)."""
    return {
        "factors": trial.suggest_int("factors", 8, max_factors(shape), log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.3, log=True),
        "regularization": trial.suggest_float("regularization", 1e-5, 0.1, log=True),
        "iterations": trial.suggest_int("iterations", 20, 300, log=True),
    }


def ease_space(trial: optuna.Trial, shape: DataShape = REFERENCE_SHAPE) -> dict[str, Any]:
    """Regularization 1-10,000 (log; summed weights need ~10x the binary value;
    :func:`ease_regularization_range`), binary."""
    low, high = ease_regularization_range(shape)
    return {
        "regularization": trial.suggest_float("regularization", low, high, log=True),
        "binary": trial.suggest_categorical("binary", [False, True]),
    }


def sasrec_space(trial: optuna.Trial, shape: DataShape = REFERENCE_SHAPE) -> dict[str, Any]:
    """The last 20-200 items (:func:`sasrec_max_lengths`), 32-128 factors, 1-2 blocks,
    dropout 0-0.5, learning rate 3e-4-1e-2 (log), 32-256 windows a batch
    (:func:`sasrec_batch_sizes`); up to 100 epochs, which early stopping cuts short.
    One head, full softmax (the model's defaults)."""
    return {
        "max_length": trial.suggest_categorical("max_length", sasrec_max_lengths(shape)),
        "factors": trial.suggest_categorical("factors", [32, 64, 128]),
        "blocks": trial.suggest_int("blocks", 1, 2),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "learning_rate": trial.suggest_float("learning_rate", 3e-4, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", sasrec_batch_sizes(shape)),
        "epochs": 100,
    }


def lightgcn_space(trial: optuna.Trial, shape: DataShape = REFERENCE_SHAPE
                   ) -> dict[str, Any]:
    """32-128 dimensions, 1-4 layers, learning rate 1e-3-0.1, L2 1e-6-1e-2 (both log),
    2,048-16,384 pairs a batch; up to 100 epochs, which early stopping cuts short."""
    return {
        "factors": trial.suggest_categorical("factors", [32, 64, 128]),
        "layers": trial.suggest_int("layers", 1, 4),
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.1, log=True),
        "l2": trial.suggest_float("l2", 1e-6, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [2048, 4096, 8192, 16384]),
        "epochs": 100,
    }


def transitions_space(trial: optuna.Trial, shape: DataShape = REFERENCE_SHAPE
                      ) -> dict[str, Any]:
    """A window of 1-20 later events (log), conditional or raw counts, 5-500 successors
    per item (log; :func:`max_item_neighbors`), a recency decay of 0.2-1."""
    return {
        "window": trial.suggest_int("window", 1, 20, log=True),
        "conditional": trial.suggest_categorical("conditional", [True, False]),
        "successors": trial.suggest_int("successors", 5, max_item_neighbors(shape), log=True),
        "recency_decay": trial.suggest_float("recency_decay", 0.2, 1.0),
    }


def weighted_space(trial: optuna.Trial, shape: DataShape = REFERENCE_SHAPE) -> dict[str, Any]:
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


def blend_space(trial: optuna.Trial, shape: DataShape = REFERENCE_SHAPE, *,
                parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The weighted hybrid stacked on given ``parts`` (tuned configurations, best first;
    :func:`tune` blends the best families it tuned): a weight for each, 0-1 and at
    least 0.1 for the first, so some part always counts (a part at 0 is left out), and
    z-score, min-max or rank normalisation. Trial parameters ``weight.<model>``.

    Examples
    --------
    >>> parts = [{"model": "ease", "params": {"regularization": 500.0}},
    ...          {"model": "item_knn", "params": {"neighbors": 50}}]
    >>> start = blend_starting_point(parts)
    >>> start
    {'weight.ease': 1.0, 'weight.item_knn': 1.0, 'normalisation': 'zscore'}
    >>> blended = blend_space(optuna.trial.FixedTrial(start), parts=parts)
    >>> [(part["model"], part["weight"]) for part in blended["parts"]]
    [('ease', 1.0), ('item_knn', 1.0)]
    """
    weights = [trial.suggest_float(f"weight.{part['model']}", 0.1 if position == 0 else 0.0,
                                   1.0) for position, part in enumerate(parts)]
    return {
        "parts": [{"model": part["model"], "params": dict(part["params"]), "weight": weight}
                  for part, weight in zip(parts, weights, strict=True) if weight > 0],
        "normalisation": trial.suggest_categorical("normalisation",
                                                   ["zscore", "minmax", "rank"]),
    }


def blend_starting_point(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The stacked weighted hybrid's first trial: every part at its ``weight`` (default
    1), z-scores.

    On the six choosing rows of ``benchmarks/accuracy.py``, the plain mean of the three
    best families tuned for 60 s (measured before popularity joined them at a quarter
    weight) scored 0.985 to 1.10 times the tuner's winner alone on
    the held-out test (NDCG@10; above 1 on five rows; ``benchmarks/blend.py``), so it is
    a sound first blend, and the search re-weighs from there."""
    return {**{f"weight.{part['model']}": float(part.get("weight", 1.0)) for part in parts},
            "normalisation": "zscore"}


def ranked_space(trial: optuna.Trial, shape: DataShape = REFERENCE_SHAPE) -> dict[str, Any]:
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
    "lightgcn": lightgcn_space,
    "transitions": transitions_space,
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
    "lightgcn": {"factors": 64, "layers": 3, "learning_rate": 0.02, "l2": 1e-4,
                 "batch_size": 8192},
    "transitions": {"window": 5, "conditional": True, "successors": 100, "recency_decay": 0.7},
    "weighted": {"als_weight": 1.0, "item_knn_weight": 1.0, "popular_weight": 0.2,
                 "ease_weight": 0.0, "normalisation": "zscore"},
    "ranked": {"label_split": "per-user", "label_fraction": 0.2, "n_estimators": 200,
               "learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 20,
               "negatives": 100},
}



def starting_point(family: str, shape: DataShape = REFERENCE_SHAPE) -> dict[str, Any] | None:
    """The family's first trial on data of ``shape`` (None: it has no starting point):
    ``STARTING_POINTS``, with the values chosen on MovieLens 100K scaled like the ranges
    (EASE's penalty; SASRec's window, the one nearest half the mean history, and batch,
    the smallest choice). At ``REFERENCE_SHAPE`` it is ``STARTING_POINTS[family]``.

    Examples
    --------
    >>> starting_point("ease") == STARTING_POINTS["ease"]
    True
    >>> shop_like = DataShape(users=5_000, items=20_000, events=400_000, pairs=200_000)
    >>> starting_point("sasrec", shop_like)["max_length"], starting_point(
    ...     "sasrec", shop_like)["batch_size"]
    (50, 64)
    """
    start = STARTING_POINTS.get(family)
    if start is None:
        return None
    if family == "ease":
        return {**start, "regularization": ease_starting_regularization(shape)}
    if family == "sasrec":
        lengths = sasrec_max_lengths(shape)
        return {**start, "batch_size": sasrec_batch_sizes(shape)[0],
                "max_length": min(lengths, key=lambda length: _log_distance(
                    length, shape.mean_history / 2))}
    return dict(start)


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
# steps), so it reaches a given validation metric in fewer epochs. For the same reason
# LightGCN starts at four times its default step: on the 1,000-item shop it peaks at
# epoch 6 instead of 21, and on MovieLens 100K it is at 30 epochs beyond where the
# default step is at 45.
STARTING_DEVIATIONS: dict[str, dict[str, Any]] = {"sasrec": {"batch_size": 32},
                                                  "lightgcn": {"learning_rate": 0.02}}

ITERATIVE_FAMILIES: dict[str, int] = {"als": 4, "bpr": 25}

# LightGCN's curve dips over its first epochs (on MovieLens 100K's temporal split it
# falls from epoch 1 to 12, then climbs past epoch 1 to its best at 30): checked from
# the first, five epochs without a gain would stop it at the sixth, so it is checked
# from the tenth.
EPOCH_FAMILIES: dict[str, int] = {"sasrec": 1, "lightgcn": 10}

REQUIREMENTS: dict[str, str] = {"sasrec": "torch", "lightgcn": "torch"}

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
