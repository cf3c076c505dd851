"""tailored's models beside the peer libraries on identical splits of MovieLens 100K.

Peers (the optional ``bench`` extra, in their own virtualenv because RecTools pins
NumPy < 2; ``make bench-peers`` sets it up): implicit ALS / BPR / cosine item-item,
LensKit item-kNN and implicit MF, RecTools EASE, the sequence models RecTools SASRec
and BERT4Rec, and LightGCN (PyTorch Geometric's model, trained with its BPR loss). Every
system sees the same training events, ranks all train items for the same test users
with their own train items excluded, and is scored by the same metric code.

The sequence models read each user's events in time order. Same-second ties (414 of
MovieLens 100K's 940 leave-last-one-out test items share their second with the user's
last training item) are put in a seeded random order, so a model cannot learn a tie
rule instead of taste (``shared/notes/peers.md``), and a run of events on one item (a
shop's view, click, cart and purchase of it) is one step of the sequence.

Run: ``.venv-bench/bin/python benchmarks/peers.py [ML100K_DIR]``; writes
``benchmarks/results/peers.json`` and ``peers.md``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol

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
#: Called after each training epoch (counted from 1) with the users' lists at that
#: epoch; returning true stops training there (early stopping on a validation split).
AfterEpoch = Callable[[int, dict[str, list[str]]], bool]
#: Above this many train items the sequence models train on a sampled softmax: a full
#: one scores batch x length x items logits at every step (on the 20k-item sample shop,
#: minutes an epoch on two cores).
FULL_SOFTMAX_ITEMS = 5_000


class EpochRecommend(Protocol):
    """A :data:`Recommend` of an iterative model that can report after every epoch."""

    def __call__(self, split: Split, users: list[str], after_epoch: AfterEpoch | None = None
                 ) -> dict[str, list[str]]: ...


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
    """A LensKit scorer in its top-N pipeline, trained (seeded) on the distinct (user, item)
    pairs."""
    def run(split: Split, users: list[str]) -> dict[str, list[str]]:
        from lenskit import recommend, topn_pipeline
        from lenskit.data import from_interactions_df
        from lenskit.training import TrainingOptions

        frame = split.train.events[["user_id", "item_id"]].drop_duplicates()
        pipeline = topn_pipeline(scorer_factory())
        pipeline.train(from_interactions_df(frame, user_col="user_id", item_col="item_id"),
                       TrainingOptions(rng=0))  # seeded, so a rerun gives the same model
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
            Columns.Weight: 1.0, Columns.Datetime: _naive_times(frame["timestamp"])})
        dataset = RTDataset.construct(interactions)
        model = EASEModel(regularization=regularization).fit(dataset)
        recs = model.recommend(users=users, dataset=dataset, k=K, filter_viewed=True)
        return recs.groupby(Columns.User)[Columns.Item].agg(list).to_dict()
    return run


def _naive_times(times: pd.Series) -> pd.Series:
    """UTC times without their zone, as RecTools takes them; a missing time is 1970."""
    return times.dt.tz_localize(None).fillna(pd.Timestamp(0))


def sequences_frame(events: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Each user's events as a sequence: ``user_id``, ``item_id`` and ``position``.

    Events are in time order, same-second ties in a random order drawn with ``seed``
    (never by item id or by row, which a model could learn); a run of events on one
    item (a view, a click and a purchase of it) is one step, at its first event.
    ``position`` counts a user's steps from 0, so a library that sorts by time again
    (give it the position as the time) keeps exactly this order.

    Examples
    --------
    >>> events = pd.DataFrame({"user_id": ["a"] * 4, "item_id": ["x", "x", "y", "z"],
    ...                        "timestamp": pd.to_datetime([1, 2, 3, 3], unit="s")})
    >>> frame = sequences_frame(events)
    >>> frame["item_id"].tolist()[0], sorted(frame["item_id"].tolist()[1:])
    ('x', ['y', 'z'])
    >>> frame["position"].tolist()
    [0, 1, 2]
    """
    frame = events[["user_id", "item_id", "timestamp"]].sample(frac=1.0, random_state=seed)
    frame = frame.sort_values(["user_id", "timestamp"], kind="stable", na_position="first")
    same_user = frame["user_id"].eq(frame["user_id"].shift())
    frame = frame[~(same_user & frame["item_id"].eq(frame["item_id"].shift()))]
    frame = frame[["user_id", "item_id"]].reset_index(drop=True)
    frame["position"] = frame.groupby("user_id", sort=False).cumcount()
    return frame


def _quiet_lightning() -> None:
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


#: RecTools' own defaults for SASRecModel and BERT4RecModel (0.19; BERT4Rec's
#: ``mask_prob`` too), in the names of its parameters.
RECTOOLS_TRANSFORMER_DEFAULTS: dict[str, Any] = {
    "n_factors": 256, "n_blocks": 2, "n_heads": 4, "dropout_rate": 0.2,
    "session_max_len": 100, "lr": 1e-3, "batch_size": 128, "epochs": 3}
BERT4REC_MASK_PROB = 0.15
#: Negatives per position of the sampled softmax on catalogs above FULL_SOFTMAX_ITEMS
#: (on the 100k-item sample shop, one epoch of SASRec at 64 factors took 45 s with 32,
#: 280 s with 256 and over 15 minutes with the full softmax).
SAMPLED_NEGATIVES = 32


def rectools_transformer_system(model: Literal["sasrec", "bert4rec"], *, epochs: int,
                                n_factors: int, n_blocks: int, lr: float,
                                session_max_len: int, n_heads: int = 4,
                                dropout_rate: float = 0.2, batch_size: int = 128,
                                mask_prob: float = BERT4REC_MASK_PROB,
                                seed: int = 0) -> EpochRecommend:
    """RecTools' SASRec or BERT4Rec on the users' sequences (:func:`sequences_frame`).

    Item embeddings from ids only (no features). The loss is RecTools' default, a
    softmax over the catalog, up to ``FULL_SOFTMAX_ITEMS`` train items, and a sampled
    softmax against ``SAMPLED_NEGATIVES`` uniform negatives beyond. Seeded with
    ``pytorch_lightning.seed_everything(seed)``; PyTorch keeps its own thread count
    (every core), as tailored's SASRec does. With ``after_epoch``, training goes one
    epoch at a time (RecTools' ``fit_partial``) and stops when it says so.
    """
    def run(split: Split, users: list[str], after_epoch: AfterEpoch | None = None
            ) -> dict[str, list[str]]:
        import pytorch_lightning
        from rectools import Columns
        from rectools.dataset import Dataset as RTDataset
        from rectools.models import BERT4RecModel, SASRecModel
        from rectools.models.nn.item_net import IdEmbeddingsItemNet

        _quiet_lightning()
        frame = sequences_frame(split.train.events, seed)
        dataset = RTDataset.construct(pd.DataFrame({
            Columns.User: frame["user_id"], Columns.Item: frame["item_id"],
            Columns.Weight: 1.0,
            Columns.Datetime: pd.Timestamp(0) + pd.to_timedelta(frame["position"], "s")}))
        full = split.train.n_items <= FULL_SOFTMAX_ITEMS
        config: dict[str, Any] = {
            "n_factors": n_factors, "n_blocks": n_blocks, "n_heads": n_heads,
            "dropout_rate": dropout_rate, "session_max_len": session_max_len, "lr": lr,
            "batch_size": batch_size, "epochs": epochs,
            "loss": "softmax" if full else "sampled_softmax",
            "n_negatives": 1 if full else SAMPLED_NEGATIVES,
            "item_net_block_types": (IdEmbeddingsItemNet,),
            "recommend_torch_device": "cpu"}
        pytorch_lightning.seed_everything(seed, verbose=False)
        network = (SASRecModel(**config) if model == "sasrec"
                   else BERT4RecModel(mask_prob=mask_prob, **config))

        def recommend() -> dict[str, list[str]]:
            recs = network.recommend(users=users, dataset=dataset, k=K, filter_viewed=True,
                                     on_unsupported_targets="ignore")
            return recs.groupby(Columns.User)[Columns.Item].agg(list).to_dict()

        if after_epoch is None:
            network.fit(dataset)
        else:
            for epoch in range(1, epochs + 1):
                network.fit_partial(dataset, min_epochs=1, max_epochs=1)
                if after_epoch(epoch, recommend()):
                    break
        return recommend()
    return run


#: PyTorch Geometric's LightGCN is a model without a training recipe, so its defaults
#: here are the authors' model (He et al., 2020: 64 dimensions, 3 layers, L2 1e-4) with
#: a batch and step sized for CPU: every batch propagates over the whole graph, so their
#: 2048 pairs at 1e-3 for 1,000 epochs would take hours (65 s an epoch on the 100k-item
#: sample shop); 8192 at 5e-3 for 30 epochs takes minutes.
LIGHTGCN_DEFAULTS: dict[str, Any] = {
    "embedding_dim": 64, "num_layers": 3, "lr": 5e-3, "reg": 1e-4, "batch_size": 8192,
    "epochs": 30}
_SCORE_ROWS = 1024  # users scored at once (bounds a users x items block)


def lightgcn_system(*, embedding_dim: int, num_layers: int, lr: float, reg: float,
                    batch_size: int, epochs: int, seed: int = 0) -> EpochRecommend:
    """PyTorch Geometric's ``LightGCN`` on the binary user-item graph, trained with its BPR
    loss (``recommendation_loss``, L2 ``reg`` on the batch's embeddings) against one
    uniformly drawn negative item per training pair, every pair once an epoch.

    The graph's symmetric normalisation is computed once; users are scored by the dot
    product of the layer-averaged embeddings, their own train items excluded. Seeded;
    PyTorch keeps its own thread count. ``after_epoch`` as for
    :func:`rectools_transformer_system`.
    """
    def run(split: Split, users: list[str], after_epoch: AfterEpoch | None = None
            ) -> dict[str, list[str]]:
        import torch
        from torch_geometric.nn.models import LightGCN

        matrix = _binary(split)
        pairs = matrix.tocoo()
        n_users, n_items = matrix.shape
        pair_users = torch.from_numpy(pairs.row.astype(np.int64))
        pair_items = torch.from_numpy(pairs.col.astype(np.int64)) + n_users
        edges = torch.stack([torch.cat([pair_users, pair_items]),
                             torch.cat([pair_items, pair_users])])
        degree = torch.bincount(edges[0], minlength=n_users + n_items).float()
        # The normalised adjacency as one sparse matrix: propagation is then a sparse
        # product (several times faster on CPU than message passing over an edge list).
        adjacency = torch.sparse_coo_tensor(
            edges, degree[edges[0]].rsqrt() * degree[edges[1]].rsqrt(),
            (n_users + n_items, n_users + n_items)).coalesce().to_sparse_csr()
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            network = LightGCN(n_users + n_items, embedding_dim, num_layers, normalize=False)
        optimizer = torch.optim.Adam(network.parameters(), lr=lr)
        rows = split.train.user_vocab.indices(users)
        item_ids = split.train.item_vocab.ids

        def recommend() -> dict[str, list[str]]:
            network.eval()
            with torch.no_grad():
                embedding = network.get_embedding(adjacency)
            user_vectors, item_vectors = embedding[:n_users], embedding[n_users:]
            known = [(user, row) for user, row in zip(users, rows, strict=True) if row >= 0]
            out: dict[str, list[str]] = {}
            for start in range(0, len(known), _SCORE_ROWS):
                chunk = known[start:start + _SCORE_ROWS]
                chunk_rows = np.array([row for _, row in chunk])
                with torch.no_grad():
                    scores = (user_vectors[chunk_rows] @ item_vectors.T).numpy()
                seen = matrix[chunk_rows].tocoo()
                scores[seen.row, seen.col] = -np.inf
                top = np.argpartition(-scores, min(K, n_items - 1), axis=1)[:, :K]
                top = np.take_along_axis(top, np.argsort(
                    -np.take_along_axis(scores, top, axis=1), axis=1), axis=1)
                for (user, _), columns, row_scores in zip(chunk, top, scores, strict=True):
                    out[user] = [item_ids[c] for c in columns if np.isfinite(row_scores[c])]
            return out

        for epoch in range(1, epochs + 1):
            network.train()
            order = torch.randperm(len(pair_users), generator=generator)
            for start in range(0, len(order), batch_size):
                batch = order[start:start + batch_size]
                negatives = torch.randint(n_users, n_users + n_items, (len(batch),),
                                          generator=generator)
                label_index = torch.stack([pair_users[batch].repeat(2),
                                           torch.cat([pair_items[batch], negatives])])
                positive, negative = network(adjacency, label_index).chunk(2)
                loss = network.recommendation_loss(positive, negative,
                                                   node_id=label_index.unique(),
                                                   lambda_reg=reg)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if after_epoch is not None and after_epoch(epoch, recommend()):
                break
        return recommend()
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
        "RecTools SASRec (defaults)": rectools_transformer_system(
            "sasrec", **RECTOOLS_TRANSFORMER_DEFAULTS),
        "RecTools BERT4Rec (defaults)": rectools_transformer_system(
            "bert4rec", **RECTOOLS_TRANSFORMER_DEFAULTS),
        "LightGCN (64 d, 3 layers, 30 epochs)": lightgcn_system(**LIGHTGCN_DEFAULTS),
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
