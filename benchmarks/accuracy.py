"""Accuracy against peers: ``tailored.tune`` beside implicit, LensKit, RecTools and LightGCN.

For each dataset and protocol (see ``DATASETS``), one run:

1. The test split is held out with tailored's own split function
   (``tailored.dataset.split_by_name``); nothing below sees its test events.
2. ``tailored.tune`` gets the training part and a wall budget B (seconds, its final
   fit included). It carves its validation folds from the training part with the same
   protocol (``tailored.evaluation.validation_folds``).
3. The peers, in one of two modes (``--peers``):

   - ``tuned`` (the default at budgets above 60 s): every peer is tuned with Optuna
     (seeded TPE, a median pruner, first trial at the peer's default configuration or,
     for the transformers, a CPU-sized one, the tuner's stop-when-stale rule) for the
     same budget B on the tuner's first validation fold. The iterative neural peers
     (SASRec, BERT4Rec, LightGCN) are scored on that fold after every epoch and stop
     ``patience`` epochs after their best (or at the budget's end); the best epoch
     count is part of their configuration.
   - ``default`` (the default at 60 s and below): every peer runs once, at its
     default configuration (``Peer.default``: the library's defaults, or
     ``benchmarks/peers.py``'s configuration where it sets one), with no tuning.

4. Every peer's configuration is refitted on the training part and scored on the test
   split by the same code as tailored's model (``peers.score``: NDCG, Recall, HitRate,
   MAP at 10), all train items ranked, the user's own train items excluded.

Peers: implicit ALS, BPR and item-item (cosine / TF-IDF / BM25), LensKit item-kNN and
implicit MF, RecTools EASE, RecTools SASRec and BERT4Rec (sequence models: they need
event times, so they do not run on a dataset without them), LightGCN (PyTorch
Geometric). A peer that cannot hold a dataset (EASE's dense items x items matrix
beyond 20,000 items, tailored's own EASE limit) is listed as skipped, with the reason.

Datasets (``DATASETS``; public data beyond MovieLens 100K cannot be downloaded here):
MovieLens 100K under all four protocols; the same ratings as implicit play counts with
no timestamps (so only the random protocol applies); the ratings thinned to a sparse
long tail; and the sample shop (``tailored.sample.shop``) at 1k, 20k and 100k items.
Each dataset is either *choosing* (tailored's tuner constants may be chosen by looking
at its figures) or *checking* (held out to confirm them); the results say which.

MovieLens 100K's timestamps are seconds and many of a user's ratings share one: every
MovieLens-based dataset here adds a seeded random fraction of a second to each rating,
so every protocol and every sequence breaks such ties at random instead of by item id
(``shared/notes/peers.md``).

Run (the peers need their own venv, ``make .venv-bench/bin/python``)::

    .venv-bench/bin/python benchmarks/accuracy.py --budget 300      # tuned peers
    .venv-bench/bin/python benchmarks/accuracy.py --budget 60       # peers' defaults

Writes ``benchmarks/results/accuracy.json`` and ``accuracy.md``, one section per peer
mode. A run replaces the rows (dataset and protocol) it ran in its mode's section and
keeps every other row from the previous ``accuracy.json`` (each row records its own
command, budget and date), so the whole benchmark can be run a dataset or a protocol at
a time (``--datasets``, ``--protocols``). With ``--reuse-peers`` the peers' figures of
an earlier run of the same row (same events, protocol, mode, budget and seed) are kept
and only ``tailored.tune`` runs again: the way to re-check the tuner after a change.

A row with tuned peers on the larger shops takes one to two hours, so nothing finished
is lost to a stopped run: the results are written after every row, and every peer's
figures as soon as it finishes (``accuracy-progress.json``, until its row is done);
``--reuse-peers`` carries on from them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import optuna
import pandas as pd
from peers import (
    BERT4REC_MASK_PROB,
    DEFAULT_DATA,
    LIGHTGCN_DEFAULTS,
    RECTOOLS_TRANSFORMER_DEFAULTS,
    K,
    Recommend,
    implicit_system,
    lenskit_system,
    lightgcn_system,
    rectools_ease_system,
    rectools_transformer_system,
    score,
)

from tailored.dataset import Dataset, Split, split_by_name
from tailored.evaluation import tune, validation_folds
from tailored.evaluation.tuning import STALE_TRIALS

warnings.filterwarnings("ignore")
RESULTS = Path(__file__).parent / "results"
METRIC = f"ndcg@{K}"
MAX_BUDGET = 600.0
PROGRESS = "accuracy-progress.json"  # peers of rows not yet done, kept for --reuse-peers
#: Done when, with tuned peers at 300 s, every row's ratio (tailored's test NDCG@10 over
#: the best peer's) is at least ``each`` and their geometric mean at least
#: ``geometric_mean``; with the peers' defaults at 60 s, every row's is at least ``each``.
#: A row counts only at the mode's ``budget_seconds``.
TARGETS: dict[str, dict[str, float]] = {
    "tuned": {"budget_seconds": 300.0, "each": 1.0, "geometric_mean": 1.10},
    "default": {"budget_seconds": 60.0, "each": 1.0},
}
DEFAULT_MODE_BUDGET = 60.0  # at this budget and below, --peers defaults to "default"
DATA_SEED = 0  # the datasets' own randomness (ties, thinning, the shops), whatever --seed
PRUNER_STARTUP_TRIALS = 3  # as the tuner's median pruner


# ---- the peers -------------------------------------------------------------------------

Params = dict[str, Any]


@dataclass(frozen=True)
class EpochChecked:
    """An iterative peer scored on the validation fold after every epoch: it trains up to
    ``max_epochs`` and stops ``patience`` epochs after its best one."""

    max_epochs: int
    patience: int


@dataclass(frozen=True)
class Peer:
    """A peer system: its search space, how a configuration becomes a recommender, its
    default configuration (the whole run with ``--peers default``) and the first trial
    of its search (the default, unless ``start`` says otherwise)."""

    space: Callable[[optuna.Trial], Params]
    system: Callable[..., Recommend]
    default: Params
    start: Params | None = None
    sequential: bool = False  # reads the order of events: needs timestamps
    max_items: int | None = None  # a larger catalog is skipped
    epochs: EpochChecked | None = None


def _implicit_als_space(trial: optuna.Trial) -> Params:
    return {"factors": trial.suggest_int("factors", 8, 256, log=True),
            "regularization": trial.suggest_float("regularization", 1e-4, 10.0, log=True),
            "alpha": trial.suggest_float("alpha", 0.1, 100.0, log=True),
            "iterations": trial.suggest_int("iterations", 5, 50),
            "binary": trial.suggest_categorical("binary", [True, False])}


def _implicit_als(*, factors: int, regularization: float, alpha: float, iterations: int,
                  binary: bool) -> Recommend:
    from implicit.cpu.als import AlternatingLeastSquares

    return implicit_system(lambda: AlternatingLeastSquares(
        factors=factors, regularization=regularization, alpha=alpha, iterations=iterations,
        random_state=0, num_threads=1), binary=binary)


def _implicit_bpr_space(trial: optuna.Trial) -> Params:
    return {"factors": trial.suggest_int("factors", 8, 256, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.3, log=True),
            "regularization": trial.suggest_float("regularization", 1e-5, 0.1, log=True),
            "iterations": trial.suggest_int("iterations", 20, 300, log=True)}


def _implicit_bpr(*, factors: int, learning_rate: float, regularization: float,
                  iterations: int) -> Recommend:
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    return implicit_system(lambda: BayesianPersonalizedRanking(
        factors=factors, learning_rate=learning_rate, regularization=regularization,
        iterations=iterations, random_state=0, num_threads=1))


def _implicit_item_item_space(trial: optuna.Trial) -> Params:
    params = {"kind": trial.suggest_categorical("kind", ["cosine", "tfidf", "bm25"]),
              "K": trial.suggest_int("K", 5, 500, log=True),
              "binary": trial.suggest_categorical("binary", [True, False])}
    if params["kind"] == "bm25":
        params |= {"K1": trial.suggest_float("K1", 0.1, 3.0),
                   "B": trial.suggest_float("B", 0.0, 1.0)}
    return params


def _implicit_item_item(*, kind: str, K: int, binary: bool, K1: float = 1.2,
                        B: float = 0.75) -> Recommend:
    from implicit.nearest_neighbours import (
        BM25Recommender,
        CosineRecommender,
        TFIDFRecommender,
    )

    if kind == "bm25":
        return implicit_system(lambda: BM25Recommender(K=K, K1=K1, B=B), binary)
    model = CosineRecommender if kind == "cosine" else TFIDFRecommender
    return implicit_system(lambda: model(K=K), binary)


def _lenskit_item_knn_space(trial: optuna.Trial) -> Params:
    return {"max_nbrs": trial.suggest_int("max_nbrs", 5, 200, log=True),
            "min_nbrs": trial.suggest_int("min_nbrs", 1, 5),
            "min_sim": trial.suggest_float("min_sim", 1e-6, 0.1, log=True)}


def _lenskit_item_knn(*, max_nbrs: int, min_nbrs: int, min_sim: float) -> Recommend:
    from lenskit.knn import ItemKNNScorer

    return lenskit_system(lambda: ItemKNNScorer(
        max_nbrs=max_nbrs, min_nbrs=min_nbrs, min_sim=min_sim, feedback="implicit"))


def _lenskit_implicit_mf_space(trial: optuna.Trial) -> Params:
    return {"embedding_size": trial.suggest_int("embedding_size", 8, 256, log=True),
            "regularization": trial.suggest_float("regularization", 1e-3, 10.0, log=True),
            "weight": trial.suggest_float("weight", 1.0, 100.0, log=True),
            "epochs": trial.suggest_int("epochs", 5, 30)}


def _lenskit_implicit_mf(*, embedding_size: int, regularization: float, weight: float,
                         epochs: int) -> Recommend:
    from lenskit.als import ImplicitMFScorer

    return lenskit_system(lambda: ImplicitMFScorer(
        embedding_size=embedding_size, regularization=regularization, weight=weight,
        epochs=epochs))


def _rectools_ease_space(trial: optuna.Trial) -> Params:
    return {"regularization": trial.suggest_float("regularization", 1.0, 10_000.0, log=True)}


def _transformer_space(trial: optuna.Trial) -> Params:
    """Embedding size, blocks, learning rate, sequence length, dropout, batch; the
    epochs are found by early stopping. The choices include RecTools' defaults."""
    return {"n_factors": trial.suggest_categorical("n_factors", [64, 128, 256]),
            "n_blocks": trial.suggest_int("n_blocks", 1, 3),
            "lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
            "session_max_len": trial.suggest_categorical("session_max_len",
                                                         [20, 50, 100, 200]),
            "dropout_rate": trial.suggest_float("dropout_rate", 0.0, 0.5),
            "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128, 256])}


def _bert4rec_space(trial: optuna.Trial) -> Params:
    return {**_transformer_space(trial),
            "mask_prob": trial.suggest_float("mask_prob", 0.1, 0.5)}


def _sasrec(**params: Any) -> Recommend:
    return rectools_transformer_system("sasrec", **params)


def _bert4rec(**params: Any) -> Recommend:
    return rectools_transformer_system("bert4rec", **params)


def _lightgcn_space(trial: optuna.Trial) -> Params:
    return {"embedding_dim": trial.suggest_categorical("embedding_dim", [32, 64, 128]),
            "num_layers": trial.suggest_int("num_layers", 1, 4),
            "lr": trial.suggest_float("lr", 1e-3, 5e-2, log=True),
            "reg": trial.suggest_float("reg", 1e-6, 1e-2, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [1024, 2048, 4096, 8192])}


_TRANSFORMER_DEFAULTS = {k: v for k, v in RECTOOLS_TRANSFORMER_DEFAULTS.items()
                         if k != "n_heads"}  # n_heads stays at RecTools' 4
#: The transformers' first trial: RecTools' defaults (256 factors, the last 100 items)
#: take some 30 s an epoch on ML-100K on two cores, so one early-stopped run of them
#: would eat a 300 s budget; the search starts from a CPU-sized configuration instead
#: (the one tailored's SASRec starts from) and can still reach the defaults.
_TRANSFORMER_START = {"n_factors": 64, "n_blocks": 2, "lr": 3e-3, "session_max_len": 50,
                      "dropout_rate": 0.2, "batch_size": 128}

PEERS: dict[str, Peer] = {
    "implicit ALS": Peer(_implicit_als_space, _implicit_als, {
        "factors": 64, "regularization": 0.05, "alpha": 1.0, "iterations": 15,
        "binary": True}),
    "implicit BPR": Peer(_implicit_bpr_space, _implicit_bpr, {
        "factors": 64, "learning_rate": 0.01, "regularization": 0.01, "iterations": 100}),
    "implicit item-item": Peer(_implicit_item_item_space, _implicit_item_item, {
        "kind": "cosine", "K": 100, "binary": True}),
    "LensKit item-kNN": Peer(_lenskit_item_knn_space, _lenskit_item_knn, {
        "max_nbrs": 20, "min_nbrs": 1, "min_sim": 1e-6}),
    "LensKit implicit MF": Peer(_lenskit_implicit_mf_space, _lenskit_implicit_mf, {
        "embedding_size": 50, "regularization": 0.1, "weight": 40.0, "epochs": 10}),
    "RecTools EASE": Peer(_rectools_ease_space, rectools_ease_system,
                          {"regularization": 500.0}, max_items=20_000),
    "RecTools SASRec": Peer(
        _transformer_space, _sasrec, _TRANSFORMER_DEFAULTS, _TRANSFORMER_START,
        sequential=True, epochs=EpochChecked(max_epochs=100, patience=3)),
    "RecTools BERT4Rec": Peer(
        _bert4rec_space, _bert4rec, {**_TRANSFORMER_DEFAULTS, "mask_prob": BERT4REC_MASK_PROB},
        {**_TRANSFORMER_START, "mask_prob": BERT4REC_MASK_PROB},
        sequential=True, epochs=EpochChecked(max_epochs=100, patience=3)),
    "LightGCN": Peer(_lightgcn_space, lightgcn_system, LIGHTGCN_DEFAULTS,
                     epochs=EpochChecked(max_epochs=300, patience=10)),
}


def _searched(peer: Peer, params: Params) -> Params:
    """The parameters a trial samples (an epoch-checked peer's epochs are found, not
    sampled)."""
    return {k: v for k, v in params.items() if not (peer.epochs and k == "epochs")}


def _stop_when_stale(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """The tuner's rule: stop after ``STALE_TRIALS`` complete trials without a new best."""
    values = [t.value for t in study.trials
              if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    if values and len(values) - 1 - values.index(max(values)) >= STALE_TRIALS:
        study.stop()


def tune_peer(peer: Peer, validation: Split, budget: float, seed: int = 0) -> optuna.Study:
    """Optuna over the peer's space on the validation split, for ``budget`` seconds.

    A trial under way finishes (as in ``tailored.tune``), except that an epoch-checked
    peer stops training once the budget is spent and keeps its best epoch so far.
    """
    users = validation.test_users
    deadline = time.perf_counter() + budget

    def objective(trial: optuna.Trial) -> float:
        params = peer.space(trial)
        if peer.epochs is None:
            return score(validation, peer.system(**params)(validation, users))[METRIC]
        checked = peer.epochs
        values: list[float] = []
        pruned = False

        def after_epoch(epoch: int, recommended: dict[str, list[str]]) -> bool:
            nonlocal pruned
            values.append(score(validation, recommended)[METRIC])
            trial.report(values[-1], epoch)
            pruned = trial.should_prune()
            stale = len(values) - 1 - int(np.argmax(values)) >= checked.patience
            return pruned or stale or time.perf_counter() > deadline

        peer.system(**params, epochs=checked.max_epochs)(validation, users,
                                                         after_epoch=after_epoch)
        if pruned:
            raise optuna.TrialPruned()
        trial.set_user_attr("epochs", int(np.argmax(values)) + 1)
        return max(values)

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS))
    study.enqueue_trial(_searched(peer, peer.start or peer.default))
    study.optimize(objective, timeout=budget, catch=(Exception,), callbacks=[_stop_when_stale])
    return study


def _skip_reason(peer: Peer, data: Dataset) -> str | None:
    if peer.sequential and not _has_time(data):
        return "skipped: a sequence model, and the events have no time to order them by"
    if peer.max_items is not None and data.n_items > peer.max_items:
        return (f"skipped: {data.n_items:,} train items, above its {peer.max_items:,} "
                "(a dense items x items matrix)")
    return None


# ---- datasets --------------------------------------------------------------------------

Role = Literal["choosing", "checking"]
ALL_PROTOCOLS = ("temporal", "leave-last-one-out", "user-temporal-ratio", "random-holdout")


def _has_time(data: Dataset) -> bool:
    return bool(data.events["timestamp"].notna().all())


def _movielens_ratings(directory: Path) -> pd.DataFrame:
    """u.data with each rating's second plus a seeded random fraction of a second, so
    same-second ratings are in a random order (not by item id, not by row)."""
    ratings = pd.read_csv(directory / "u.data", sep="\t",
                          names=["user_id", "item_id", "value", "timestamp"])
    fraction = np.random.default_rng(DATA_SEED).random(len(ratings))
    ratings["timestamp"] = ratings["timestamp"] + fraction
    return ratings


def _ml100k(directory: Path) -> Dataset:
    return Dataset.from_frame(_movielens_ratings(directory))


def _ml100k_plays(directory: Path) -> Dataset:
    ratings = _movielens_ratings(directory)
    return Dataset.from_frame(
        pd.DataFrame({"user_id": ratings["user_id"], "item_id": ratings["item_id"],
                      "event_type": "play", "value": ratings["value"]}),
        weights={"custom": {"play": "value"}})


#: The sparse long tail keeps each rating of an item with n ratings with probability
#: min(1, sqrt(SPARSE_KEEP / n)): items with up to 3 ratings keep them all, the most
#: rated one (583) about 7%.
SPARSE_KEEP = 3.0


def _ml100k_sparse(directory: Path) -> Dataset:
    ratings = _movielens_ratings(directory)
    counts = ratings["item_id"].map(ratings["item_id"].value_counts()).to_numpy()
    keep = (np.random.default_rng(DATA_SEED + 1).random(len(ratings))
            < np.minimum(1.0, np.sqrt(SPARSE_KEEP / counts)))
    return Dataset.from_frame(ratings[keep].reset_index(drop=True))


def _shop(n_users: int, n_items: int, n_events: int) -> Callable[[Path], Dataset]:
    def load(directory: Path) -> Dataset:
        from tailored.sample import shop

        events = shop(n_users=n_users, n_items=n_items, n_events=n_events,
                      seed=DATA_SEED).events
        return Dataset.from_frame(
            events[["user_id", "item_id", "event_type", "value", "timestamp"]])
    return load


@dataclass(frozen=True)
class DatasetSpec:
    role: Role
    protocols: tuple[str, ...]
    description: str
    load: Callable[[Path], Dataset] = field(repr=False)


#: Every dataset, its role and the protocols it runs under. *Choosing*: tailored's tuner
#: constants may be chosen by looking at these figures. *Checking*: held out, to confirm
#: choices made on the others.
DATASETS: dict[str, DatasetSpec] = {
    "ml-100k": DatasetSpec(
        "choosing", ALL_PROTOCOLS,
        "MovieLens 100K, each rating an event weighing its value (1-5)", _ml100k),
    "ml-100k-plays": DatasetSpec(
        "checking", ("random-holdout",),
        "MovieLens 100K as implicit play counts: one event per (user, item) of type play "
        "weighing its count (the rating, 1-5), and no timestamps, so only the random "
        "protocol applies and the sequence peers do not run", _ml100k_plays),
    "ml-100k-sparse": DatasetSpec(  # 20% per user: more truth per user than one item
        "checking", ("user-temporal-ratio", "random-holdout"),
        "MovieLens 100K thinned to a sparse long tail: each rating kept with probability "
        f"min(1, sqrt({SPARSE_KEEP:g} / the item's ratings)), seeded", _ml100k_sparse),
    "shop-1k": DatasetSpec(
        "choosing", ("temporal", "leave-last-one-out"),
        "tailored.sample.shop: 1,000 items, 5,000 users, 200,000 events",
        _shop(5_000, 1_000, 200_000)),
    "shop-20k": DatasetSpec(
        "checking", ("temporal", "leave-last-one-out"),
        "tailored.sample.shop: 20,000 items, 20,000 users, 300,000 events",
        _shop(20_000, 20_000, 300_000)),
    "shop-100k": DatasetSpec(
        "checking", ("temporal", "leave-last-one-out"),
        "tailored.sample.shop: 100,000 items, 30,000 users, 400,000 events",
        _shop(30_000, 100_000, 400_000)),
}


def load(name: str, ml100k: Path) -> Dataset:
    """A dataset of ``DATASETS`` by name."""
    if name not in DATASETS:
        raise SystemExit(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)}")
    return DATASETS[name].load(ml100k)


# ---- one comparison --------------------------------------------------------------------


def _lists(recs: pd.DataFrame) -> dict[str, list[str]]:
    return {str(user): items for user, items in
            recs.groupby("user_id", sort=False)["item_id"].agg(list).items()}


def _finite(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) \
        else float(value)


def _tailored_row(result: Any, outer: Split, seconds: float, budget: float) -> dict[str, Any]:
    """tailored.tune's test figures and what it chose, from its ``TuningResult``."""
    row: dict[str, Any] = {
        **score(outer, _lists(result.best_model.recommend(outer.test_users, k=K))),
        "config": {"model": result.best_name, **result.best_params},
        "validation": _finite(result.best_score), "trials": len(result.trials),
        "tune_seconds": seconds, "over_budget_seconds": max(0.0, seconds - budget)}
    trials = result.trials
    if {"family", "value"} <= set(trials.columns):
        families = trials.groupby("family", sort=False)["value"].max()
        row["families"] = {str(k): _finite(v) for k, v in families.items()}
        row["trials_per_family"] = {str(k): int(v) for k, v in
                                    trials.groupby("family", sort=False).size().items()}
    checked = result.second_fold
    columns = [c for c in ("family", "first_fold", "second_fold", "mean")
               if c in checked.columns]
    row["second_fold"] = checked[columns].to_dict(orient="records")
    # Where the budget went and what it changed: the tuner's own log.
    row["notes"] = list(result.notes)
    row["time_split"] = result.time_split.round(2).to_dict(orient="records")
    return row


def _peer_row(peer: Peer, outer: Split, validation: Split, budget: float,
              mode: str, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    if mode == "default":
        recommended = peer.system(**peer.default)(outer, outer.test_users)
        return {**score(outer, recommended), "config": peer.default,
                "fit_seconds": time.perf_counter() - started}
    study = tune_peer(peer, validation, budget, seed)
    tuned_seconds = time.perf_counter() - started
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
        reason = failed[0].system_attrs.get("fail_reason", "") if failed else ""
        return {"error": f"no trial completed {reason}".strip()[:300],
                "trials": len(study.trials), "tune_seconds": tuned_seconds}
    best = study.best_trial
    config = {**best.params, **({"epochs": best.user_attrs["epochs"]} if peer.epochs else {})}
    started = time.perf_counter()
    recommended = peer.system(**config)(outer, outer.test_users)
    return {**score(outer, recommended), "config": config, "validation": best.value,
            "trials": len(study.trials), "tune_seconds": tuned_seconds,
            "refit_seconds": time.perf_counter() - started}


def compare(data: Dataset, protocol: str, budget: float, mode: str, seed: int = 0,
            earlier_peers: dict[str, dict[str, Any]] | None = None,
            peer_done: Callable[[str, dict[str, Any]], None] = lambda name, row: None
            ) -> dict[str, Any]:
    """Tune tailored with ``budget`` seconds; tune every peer as long (``mode`` "tuned")
    or run it at its defaults ("default"); score all on the test split.

    A peer in ``earlier_peers`` (its row from an earlier run of the same dataset,
    protocol, mode and budget) is not run again: its row is kept, marked ``reused``.
    Each peer that runs is passed to ``peer_done`` (its name and row) when it finishes.
    """
    outer = split_by_name(data, protocol)
    validation = validation_folds(outer.train, protocol)[0]  # the fold the tuner searches
    rows: dict[str, dict[str, Any]] = {}

    started = time.perf_counter()
    try:
        result = tune(outer.train, budget_seconds=budget, protocol=protocol, seed=seed,
                      metric=METRIC)
    except Exception as error:  # scores 0 and says why; the peers still run
        seconds = time.perf_counter() - started
        rows["tailored.tune"] = {
            **score(outer, {}), "config": {"model": "none (failed)"},
            "error": f"{type(error).__name__}: {error}"[:500], "tune_seconds": seconds,
            "over_budget_seconds": max(0.0, seconds - budget)}
        print(f"  tailored.tune failed: {rows['tailored.tune']['error']}", flush=True)
    else:
        rows["tailored.tune"] = _tailored_row(result, outer, time.perf_counter() - started,
                                              budget)
        print(f"  tailored.tune -> {result.best_name} test {METRIC} "
              f"{rows['tailored.tune'][METRIC]:.4f} "
              f"({rows['tailored.tune']['tune_seconds']:.0f}s)", flush=True)

    for name, peer in PEERS.items():
        skipped = _skip_reason(peer, outer.train)
        if skipped:
            rows[name] = {"skipped": skipped}
            print(f"  {name} {skipped}", flush=True)
            continue
        if earlier_peers and name in earlier_peers:
            rows[name] = {**earlier_peers[name], "reused": True}
        else:
            rows[name] = _peer_row(peer, outer, validation, budget, mode, seed)
            peer_done(name, rows[name])
        row = rows[name]
        if METRIC in row:
            reused = " (reused)" if row.get("reused") else ""
            print(f"  {name}{reused} test {METRIC} {row[METRIC]:.4f} ({_config(row['config'])}"
                  + (f"; {row['trials']} trials, {row['tune_seconds']:.0f}s" if
                     "trials" in row else f"; {row['fit_seconds']:.0f}s") + ")", flush=True)
        else:
            print(f"  {name} {row['error']}", flush=True)

    peer_scores = {name: row[METRIC] for name, row in rows.items()
                   if name != "tailored.tune" and METRIC in row}
    best_peer = max(peer_scores, key=peer_scores.__getitem__)
    ratio = rows["tailored.tune"][METRIC] / peer_scores[best_peer]
    sequence_peers = {name: peer_scores[name] for name, peer in PEERS.items()
                      if peer.sequential and name in peer_scores}
    best_sequence = (max(sequence_peers, key=sequence_peers.__getitem__)
                     if sequence_peers else None)
    return {"protocol": protocol, "split": outer.name, "test_users": len(outer.test_users),
            "train_events": len(outer.train),
            "validation": {"train_events": len(validation.train),
                           "test_users": len(validation.test_users)},
            "budget_seconds": budget, "seed": seed, "peers": mode, "best_peer": best_peer,
            "ratio": ratio, "best_sequence_peer": best_sequence,
            "ratio_to_best_sequence_peer": (rows["tailored.tune"][METRIC]
                                            / sequence_peers[best_sequence]
                                            if best_sequence else None),
            "systems": rows}


# ---- summaries -------------------------------------------------------------------------


def _geometric_mean(values: list[float]) -> float | None:
    """The geometric mean; 0 when any value is 0 (a failed tune)."""
    if not values:
        return None
    return 0.0 if min(values) <= 0 else float(np.exp(np.mean(np.log(values))))


def summarise(mode: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Geometric means of the ratios (all rows, choosing, checking) and the verdict."""
    target = TARGETS[mode]
    ratios = [row["ratio"] for row in rows]
    by_role = {role: [row["ratio"] for row in rows if row["role"] == role]
               for role in ("choosing", "checking")}
    expected = [(name, protocol) for name, spec in DATASETS.items()
                for protocol in spec.protocols]
    have = {(row["dataset"], row["protocol"]) for row in rows}
    budgets = sorted({row["budget_seconds"] for row in rows})
    summary: dict[str, Any] = {
        "rows": len(rows), "missing_rows": [f"{d} / {p}" for d, p in expected
                                            if (d, p) not in have],
        "budgets_seconds": budgets,
        "geometric_mean": _geometric_mean(ratios),
        "geometric_mean_choosing": _geometric_mean(by_role["choosing"]),
        "geometric_mean_checking": _geometric_mean(by_role["checking"]),
        "min_ratio": min(ratios) if ratios else None,
        "rows_below_parity": [f"{row['dataset']} / {row['protocol']}" for row in rows
                              if row["ratio"] < target["each"]]}
    complete = not summary["missing_rows"] and budgets == [target["budget_seconds"]]
    met = bool(ratios) and not summary["rows_below_parity"] and (
        "geometric_mean" not in target or summary["geometric_mean"] >= target["geometric_mean"])
    summary["done"] = complete and met
    summary["verdict"] = (("met" if met else "missed") if complete else
                          f"incomplete ({'met' if met else 'missed'} on the rows run so far)")
    return summary


# ---- output ----------------------------------------------------------------------------


def _config(config: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{k}={value(v)}" for k, v in config.items() if k not in ("seed",))


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


_MODE_TITLES = {"tuned": "tuned peers (each tuned for the same budget as tailored.tune)",
                "default": "the peers' default configurations (no tuning)"}


def _target_text(mode: str) -> str:
    target = TARGETS[mode]
    text = (f"at a {target['budget_seconds']:.0f} s budget, tailored >= "
            f"{target['each']:.2f} x the best peer on every row")
    if "geometric_mean" in target:
        text += f" and a geometric mean of the ratios >= {target['geometric_mean']:.2f}"
    return text


def _system_lines(run: dict[str, Any]) -> list[str]:
    tuned = run["peers"] == "tuned"
    lines = ["| system | test NDCG@10 (± s.e.) | Recall@10 | HR@10 | MAP@10 | "
             + ("validation NDCG@10 | trials | tune s | " if tuned else "seconds | ")
             + "configuration |",
             "|---|---|---|---|---|" + ("---|---|---|" if tuned else "---|") + "---|"]
    ordered = sorted(run["systems"].items(), key=lambda kv: -kv[1].get(METRIC, -1.0))
    for system, row in ordered:
        if METRIC not in row:
            reason = row.get("skipped") or row.get("error")
            lines.append(f"| {system} | {reason} | | | |" + (" | | |" if tuned else " |")
                         + " |")
            continue
        seconds = row.get("tune_seconds", row.get("fit_seconds", 0.0))
        if row.get("reused"):
            system += " (earlier run)"
        middle = (f"{_number(row.get('validation'), 4)} | {row.get('trials', '-')} | "
                  f"{seconds:.0f} | " if tuned else f"{seconds:.0f} | ")
        lines.append(
            f"| {system} | {row[METRIC]:.4f} ± {row['ndcg_se']:.4f} | "
            f"{row['recall@10']:.4f} | {row['hit_rate@10']:.4f} | {row['map@10']:.4f} | "
            f"{middle}{_config(row['config'])} |")
    return lines


def _tuner_line(row: dict[str, Any]) -> str:
    parts = []
    if row.get("families"):
        parts.append("best first-fold validation NDCG@10 per family: " + ", ".join(
            f"{k} {v:.4f} ({row['trials_per_family'].get(k, 0)} trials)"
            for k, v in row["families"].items() if v is not None))
    if row.get("second_fold"):
        parts.append("re-checked on the second fold: " + ", ".join(
            f"{c.get('family')} {_number(c.get('first_fold'), 4)} / "
            f"{_number(c.get('second_fold'), 4)}" for c in row["second_fold"])
            + " (the best mean wins)")
    if row.get("error"):
        parts.append(f"failed ({row['error']})")
    if row.get("time_split"):
        spent: dict[str, float] = {}
        for entry in row["time_split"]:
            key = f"{entry['phase']} {entry['family']}" if entry["phase"] == "stack" \
                else entry["phase"]
            spent[key] = spent.get(key, 0.0) + entry["spent"]
        parts.append("time spent: " + ", ".join(f"{k} {v:.0f} s" for k, v in spent.items()))
    if row.get("notes"):
        parts.append("notes: " + "; ".join(row["notes"]))
    over = row.get("over_budget_seconds", 0.0)
    parts.append(f"took {row['tune_seconds']:.0f} s"
                 + (f", {over:.0f} s over its budget" if over >= 1 else ""))
    return "tailored.tune, " + "; ".join(parts) + "."


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Accuracy against peers",
        "",
        "Within a dataset and protocol (a row), tailored.tune had a wall budget (its whole "
        "call, final fit included) and carved its validation folds from the training part "
        "with the same protocol; then its model was scored on the held-out test split. "
        "With *tuned peers*, every peer was tuned by Optuna for the same budget on the "
        "tuner's first validation fold and refitted on the training part; with *default "
        "peers*, every peer ran once at its default configuration. All systems are scored "
        "by the same code: NDCG@10 over every train item, the user's own train items "
        "excluded. The ratio is tailored's test NDCG@10 over the best peer's.",
        "",
        f"Machine: {report['machine']}; shared with other jobs, so timings are noisy.",
        "",
        "Public data beyond MovieLens 100K cannot be downloaded here, so the variety comes "
        "from MovieLens 100K under every protocol, reshaped (play counts without time, a "
        "sparse long tail), and from the sample shop at three sizes. *Choosing* datasets "
        "are those on which tailored's tuner constants may be chosen; *checking* datasets "
        "are held out to confirm them. MovieLens' same-second ratings are put in a seeded "
        "random order (a random fraction of a second each), so no split or sequence "
        "breaks ties by item id.",
        "",
        "## Datasets",
        "",
        "Choosing: " + "; ".join(f"{name} ({', '.join(spec.protocols)})" for name, spec
                                 in DATASETS.items() if spec.role == "choosing")
        + ". Checking: " + "; ".join(f"{name} ({', '.join(spec.protocols)})" for name, spec
                                     in DATASETS.items() if spec.role == "checking") + ".",
        "",
        "| dataset | role | events | users | items | protocols | what |",
        "|---|---|---|---|---|---|---|"]
    for name, info in report["datasets"].items():
        lines.append(f"| {name} | {info['role']} | {info['events']:,} | {info['users']:,} | "
                     f"{info['items']:,} | {', '.join(info['protocols'])} | "
                     f"{info['description']} |")
    for mode, comparison in report["comparisons"].items():
        summary = comparison["summary"]
        budgets = ", ".join(f"{b:.0f} s" for b in summary["budgets_seconds"])
        lines += [
            "", f"## Against {_MODE_TITLES[mode]}", "",
            f"Target: {_target_text(mode)}. Verdict: **{summary['verdict']}** "
            f"({summary['rows']} rows; budgets {budgets}). "
            f"Geometric mean of the ratios: {_number(summary['geometric_mean'])} "
            f"(choosing {_number(summary['geometric_mean_choosing'])}, checking "
            f"{_number(summary['geometric_mean_checking'])}); lowest "
            f"{_number(summary['min_ratio'])}.",
            ""]
        if summary["missing_rows"]:
            lines += ["Not run yet: " + ", ".join(summary["missing_rows"]) + ".", ""]
        lines += ["| dataset | protocol | role | test users | tailored.tune (model) | "
                  "best peer | ratio | best sequence peer | ratio to it | budget s |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for run in comparison["rows"]:
            tuned = run["systems"]["tailored.tune"]
            best = run["systems"][run["best_peer"]]
            sequence = run.get("best_sequence_peer")
            lines.append(
                f"| {run['dataset']} | {run['protocol']} | {run['role']} | "
                f"{run['test_users']:,} | {tuned[METRIC]:.4f} ({tuned['config']['model']}) | "
                f"{best[METRIC]:.4f} ({run['best_peer']}) | {run['ratio']:.3f} | "
                + (f"{run['systems'][sequence][METRIC]:.4f} ({sequence}) | "
                   f"{run['ratio_to_best_sequence_peer']:.3f}" if sequence else "- | -")
                + f" | {run['budget_seconds']:.0f} |")
        for run in comparison["rows"]:
            lines += ["", f"### {run['dataset']} / {run['protocol']} ({run['role']}): "
                      f"{run['test_users']:,} test users, ratio {run['ratio']:.3f} x "
                      f"{run['best_peer']}", "", f"Command: `{run['command']}`.", ""]
            lines += _system_lines(run)
            lines += ["", _tuner_line(run["systems"]["tailored.tune"])]
    return "\n".join(lines) + "\n"


# ---- main ------------------------------------------------------------------------------


def _previous(path: Path) -> dict[str, Any]:
    """The earlier results to keep, or nothing when there are none in this layout."""
    if not path.exists():
        return {}
    earlier = json.loads(path.read_text())
    if "comparisons" not in earlier:
        print(f"{path} predates the per-mode layout; its figures are not kept", flush=True)
        return {}
    return earlier


def _earlier_peers(rows: list[dict[str, Any]], dataset: str, protocol: str, budget: float,
                   digest: str, seed: int) -> dict[str, dict[str, Any]]:
    """The peers' rows of an earlier run of this dataset (same events), protocol, budget
    and seed in the same mode, except those that failed or were skipped."""
    for row in rows:
        if ((row["dataset"], row["protocol"], row["budget_seconds"], row.get("seed", 0))
                == (dataset, protocol, budget, seed) and row.get("data_digest") == digest):
            return {name: system for name, system in row["systems"].items()
                    if name != "tailored.tune" and METRIC in system}
    return {}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=300.0,
                        help=f"seconds per system and row (at most {MAX_BUDGET:.0f})")
    parser.add_argument("--peers", choices=("tuned", "default"), default=None,
                        help="tune every peer for the same budget, or run each at its "
                        f"default configuration (default: 'default' at budgets up to "
                        f"{DEFAULT_MODE_BUDGET:.0f} s, 'tuned' above)")
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help=f"comma-separated, of {', '.join(DATASETS)}")
    parser.add_argument("--protocols", default=None,
                        help="comma-separated; only those of each dataset's protocols "
                        "(default: all of them)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the ml-100k folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse-peers", action="store_true",
                        help="keep each peer's figures from an earlier run of the same "
                        "row (dataset and its events, protocol, mode, budget, seed) in "
                        "accuracy.json (or finished in a run stopped part way) instead "
                        "of running it again: for re-running tailored.tune alone after a "
                        "change to it, or carrying on after a stop")
    parser.add_argument("--results-dir", type=Path, default=RESULTS,
                        help="where accuracy.json and accuracy.md go")
    args = parser.parse_args(argv)
    if not 0 < args.budget <= MAX_BUDGET:
        parser.error(f"--budget must be above 0 and at most {MAX_BUDGET:.0f} seconds")
    mode = args.peers or ("default" if args.budget <= DEFAULT_MODE_BUDGET else "tuned")
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        parser.error(f"unknown dataset(s) {unknown}; use {', '.join(DATASETS)}")
    wanted = None if args.protocols is None else {
        p.strip() for p in args.protocols.split(",") if p.strip()}

    out = args.results_dir
    earlier = _previous(out / "accuracy.json")
    progress_path = out / PROGRESS
    # Peers finished in runs stopped before their row was done, by row.
    progress: dict[str, dict[str, Any]] = (json.loads(progress_path.read_text())
                                           if progress_path.exists() else {})
    command = "python benchmarks/accuracy.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    datasets: dict[str, Any] = dict(earlier.get("datasets", {}))
    comparisons: dict[str, Any] = {  # rows of datasets and protocols still in DATASETS
        m: {"rows": [r for r in c["rows"] if r["protocol"] in DATASETS.get(
            r["dataset"], DatasetSpec("checking", (), "", _ml100k)).protocols]}
        for m, c in earlier.get("comparisons", {}).items()}
    rows: list[dict[str, Any]] = comparisons.setdefault(mode, {"rows": []})["rows"]
    print(f"peers: {mode}; budget {args.budget:.0f} s per system and row", flush=True)
    for name in names:
        spec = DATASETS[name]
        data = load(name, args.data)
        applicable = [p for p in spec.protocols if _has_time(data) or p == "random-holdout"]
        datasets[name] = {"role": spec.role, "description": spec.description,
                          "events": len(data), "users": data.n_users, "items": data.n_items,
                          "has_time": _has_time(data), "protocols": applicable}
        for protocol in applicable:
            if wanted is not None and protocol not in wanted:
                continue
            print(f"{name} ({spec.role}) / {protocol}", flush=True)
            key = f"{name} / {protocol} / {mode} / {args.budget:g} s / seed {args.seed} / " \
                  f"{data.digest}"
            earlier_peers = {**progress.get(key, {}), **_earlier_peers(
                rows, name, protocol, args.budget, data.digest, args.seed)} \
                if args.reuse_peers else None

            def peer_done(peer: str, row: dict[str, Any], key: str = key) -> None:
                progress.setdefault(key, {})[peer] = row
                _write_json(progress_path, progress)

            run = compare(data, protocol, args.budget, mode, args.seed, earlier_peers,
                          peer_done)
            run = {"dataset": name, "role": spec.role, "command": command,
                   "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   "data_digest": data.digest, **run}
            rows[:] = [r for r in rows if (r["dataset"], r["protocol"]) != (name, protocol)]
            rows.append(run)
            figures = _figures(args.seed, datasets, comparisons)
            write(figures, out)
            if progress.pop(key, None) is not None:  # the row holds them now
                _write_json(progress_path, progress)
    if not progress and progress_path.exists():
        progress_path.unlink()
    return _figures(args.seed, datasets, comparisons)


def _figures(seed: int, datasets: dict[str, Any], comparisons: dict[str, Any]
             ) -> dict[str, Any]:
    """The report: every row run so far, in ``DATASETS``' order, and each mode's summary."""
    order = list(DATASETS)
    for comparison in comparisons.values():
        comparison["rows"].sort(key=lambda r: (
            order.index(r["dataset"]) if r["dataset"] in order else len(order),
            ALL_PROTOCOLS.index(r["protocol"]) if r["protocol"] in ALL_PROTOCOLS else 9))
    return {
        "metric": METRIC, "seed": seed, "data_seed": DATA_SEED, "targets": TARGETS,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
        "plan": {name: {"role": spec.role, "protocols": list(spec.protocols)}
                 for name, spec in DATASETS.items()},
        "datasets": {name: datasets[name] for name in order if name in datasets},
        "comparisons": {m: {**comparisons[m], "summary": summarise(m, comparisons[m]["rows"])}
                        for m in ("tuned", "default") if m in comparisons}}


def _write_json(path: Path, value: Any) -> None:
    """Write ``value`` whole or not at all (a run may be stopped at any moment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(value, indent=2, default=str) + "\n")
    partial.replace(path)


def write(figures: dict[str, Any], out: Path) -> None:
    """``accuracy.json`` and ``accuracy.md`` in ``out``."""
    _write_json(out / "accuracy.json", figures)
    (out / "accuracy.md").write_text(markdown(figures))


if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(markdown(main()))
