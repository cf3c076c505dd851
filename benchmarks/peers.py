"""tailored's models beside the peer libraries on identical splits of MovieLens 100K.

Peers (the optional ``bench`` extra, in their own virtualenv because RecTools pins
NumPy < 2; ``make bench-peers`` sets it up): implicit ALS / BPR / cosine item-item,
LensKit item-kNN and implicit MF, RecTools EASE. Every system sees the same training
events, ranks all train items for the same test users with their own train items
excluded, and is scored by the same metric code.

Run: ``.venv-bench/bin/python benchmarks/peers.py [ML100K_DIR]``; writes
``benchmarks/results/peers.json`` and ``peers.md``.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tailored.dataset import Dataset, Split, leave_last_out_split, temporal_split
from tailored.evaluation import MAP, NDCG, HitRate, Recall
from tailored.models import MODELS, create

warnings.filterwarnings("ignore")
RESULTS = Path(__file__).parent / "results"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"
K = 10
OURS = ("popular", "item_knn", "user_knn", "als", "bpr", "ease")

Recommend = Callable[[Split, list[str]], dict[str, list[str]]]


def _binary(split: Split) -> sp.csr_matrix:
    """Every training interaction a positive, as the peers are usually run."""
    return sp.csr_matrix((split.train.matrix() > 0).astype(np.float32))


def implicit_system(model_factory: Callable[[], object], binary: bool = True) -> Recommend:
    """An ``implicit`` model on the split's matrix: binary, or the summed event weights."""
    def run(split: Split, users: list[str]) -> dict[str, list[str]]:
        from threadpoolctl import threadpool_limits

        matrix = _binary(split) if binary else sp.csr_matrix(
            split.train.matrix().astype(np.float32))
        with threadpool_limits(1, "blas"):
            model = model_factory()
            model.fit(matrix, show_progress=False)  # type: ignore[attr-defined]
            rows = split.train.user_vocab.indices(users)
            ids, scores = model.recommend(  # type: ignore[attr-defined]
                rows, matrix[rows], N=K, filter_already_liked_items=True)
        items = split.train.item_vocab.ids
        out = {}
        for user, row, user_ids, user_scores in zip(users, rows, ids, scores, strict=True):
            seen = set(matrix[row].indices)
            # implicit pads short lists with zero-score items, possibly seen ones: drop them.
            out[user] = [items[i] for i, s in zip(user_ids, user_scores, strict=True)
                         if i >= 0 and i not in seen and np.isfinite(s)]
        return out
    return run


def lenskit_system(scorer_factory: Callable[[], object]) -> Recommend:
    """A LensKit scorer in its top-N pipeline, trained on the distinct (user, item) pairs."""
    def run(split: Split, users: list[str]) -> dict[str, list[str]]:
        from lenskit import recommend, topn_pipeline
        from lenskit.data import from_interactions_df

        frame = split.train.events[["user_id", "item_id"]].drop_duplicates()
        pipeline = topn_pipeline(scorer_factory())
        pipeline.train(from_interactions_df(frame, user_col="user_id", item_col="item_id"))
        return {user: [str(i) for i in recommend(pipeline, user, n=K).ids()] for user in users}
    return run


def rectools_ease_system(regularization: float) -> Recommend:
    """RecTools EASE on the distinct (user, item) pairs, weight 1 each."""
    def run(split: Split, users: list[str]) -> dict[str, list[str]]:
        from rectools import Columns
        from rectools.dataset import Dataset as RTDataset
        from rectools.models import EASEModel

        frame = split.train.events[["user_id", "item_id", "timestamp"]].drop_duplicates(
            ["user_id", "item_id"])
        interactions = pd.DataFrame({
            Columns.User: frame["user_id"], Columns.Item: frame["item_id"],
            Columns.Weight: 1.0, Columns.Datetime: frame["timestamp"].dt.tz_localize(None)})
        dataset = RTDataset.construct(interactions)
        model = EASEModel(regularization=regularization).fit(dataset)
        recs = model.recommend(users=users, dataset=dataset, k=K, filter_viewed=True)
        return recs.groupby(Columns.User)[Columns.Item].agg(list).to_dict()
    return run


def _ours(name: str) -> Recommend:
    def run(split: Split, users: list[str]) -> dict[str, list[str]]:
        recs = create(name).fit(split.train).recommend(users, k=K)
        return recs.groupby("user_id", sort=False)["item_id"].agg(list).to_dict()
    return run


def peers() -> dict[str, Recommend]:
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from implicit.nearest_neighbours import CosineRecommender
    from lenskit.als import ImplicitMFScorer
    from lenskit.knn import ItemKNNScorer

    return {
        "implicit ALS (64 f)": implicit_system(lambda: AlternatingLeastSquares(
            factors=64, regularization=0.05, iterations=15, random_state=0)),
        "implicit BPR (64 f)": implicit_system(lambda: BayesianPersonalizedRanking(
            factors=64, iterations=100, random_state=0, num_threads=1)),
        "implicit cosine item-item": implicit_system(lambda: CosineRecommender(K=100)),
        "LensKit item-kNN": lenskit_system(lambda: ItemKNNScorer(max_nbrs=20, feedback="implicit")),
        "LensKit implicit MF": lenskit_system(lambda: ImplicitMFScorer(embedding_size=50)),
        "RecTools EASE (λ=500)": rectools_ease_system(500.0),
    }


def score(split: Split, recommended: dict[str, list[str]]) -> dict[str, float]:
    """NDCG, Recall, HitRate and MAP at ``K`` of the lists over the split's test users
    (a user without a list scores 0), with the standard error of NDCG."""
    relevant = split.truth.groupby("user_id")["item_id"].agg(set).to_dict()
    metrics = [NDCG(K), Recall(K), HitRate(K), MAP(K)]
    for user in split.test_users:
        for metric in metrics:
            metric.update(recommended.get(user, []), relevant[user])
    values = {m.name: m.value() for m in metrics}
    values["ndcg_se"] = float(np.std(metrics[0].values, ddof=1) / np.sqrt(len(metrics[0].values)))
    return values


def main(directory: Path) -> dict[str, dict[str, dict[str, float]]]:
    ratings = pd.read_csv(directory / "u.data", sep="\t",
                          names=["user_id", "item_id", "value", "timestamp"])
    data = Dataset.from_frame(ratings)
    splits = {"temporal": temporal_split(data), "leave-last-one-out": leave_last_out_split(data)}
    systems = {**{f"tailored {n}": _ours(n) for n in OURS if n in MODELS}, **peers()}
    results: dict[str, dict[str, dict[str, float]]] = {}
    for split_name, split in splits.items():
        results[split_name] = {}
        users = split.test_users
        for system, run in systems.items():
            started = time.perf_counter()
            recommended = run(split, users)
            seconds = time.perf_counter() - started
            results[split_name][system] = {**score(split, recommended), "seconds": seconds,
                                           "test_users": len(users)}
            print(f"{split_name:20s} {system:28s} ndcg@10 "
                  f"{results[split_name][system]['ndcg@10']:.4f}  {seconds:6.1f}s", flush=True)
    return results


def markdown(results: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = []
    for split_name, rows in results.items():
        users = next(iter(rows.values()))["test_users"]
        lines += [f"### {split_name} ({users:.0f} test users)", "",
                  "| system | NDCG@10 (± s.e.) | Recall@10 | HR@10 | MAP@10 | fit+rank s |",
                  "|---|---|---|---|---|---|"]
        for system, row in sorted(rows.items(), key=lambda kv: -kv[1]["ndcg@10"]):
            lines.append(f"| {system} | {row['ndcg@10']:.4f} ± {row['ndcg_se']:.4f} | "
                         f"{row['recall@10']:.4f} | {row['hit_rate@10']:.4f} | "
                         f"{row['map@10']:.4f} | {row['seconds']:.1f} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    figures = main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATA)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "peers.json").write_text(json.dumps(figures, indent=2) + "\n")
    (RESULTS / "peers.md").write_text(markdown(figures))
    print(markdown(figures))
