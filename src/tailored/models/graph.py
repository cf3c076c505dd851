"""Graph collaborative filtering: embeddings smoothed over the user-item graph (LightGCN).

Written on PyTorch's sparse product rather than a graph library: LightGCN's propagation
is two sparse products per layer, and PyTorch Geometric's model class would add a heavy
dependency without the training, fold-in or scoring. PyTorch is imported only inside the
functions that need it.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from tailored.dataset import Dataset

from .base import ItemIndexConfig, Reason, ScoringBatch
from .factors import FactorModel
from .torch_runtime import EpochTrained, require_torch, torch_settings

if TYPE_CHECKING:
    import torch


class LightGCNConfig(ItemIndexConfig):
    """``factors``: embedding dimensions. ``layers``: propagation steps over the graph
    (each reaches one hop further: user -> item -> user ...). ``learning_rate``: Adam's
    step. ``l2``: penalty on the layer-0 embeddings of each batch's users and items.
    ``batch_size``: (user, item, sampled item) triples per step; every step propagates
    over the whole graph, so larger batches make an epoch cheaper. ``epochs``: passes
    over the user-item pairs. ``seed``: initialisation and sampling. ``threads``: CPU
    threads for PyTorch while training. ``ann_*``: the approximate item index on large
    catalogs (:class:`ItemIndexConfig`).

    The defaults are the authors' model (64 dimensions, 3 layers, L2 1e-4) with a batch
    and step sized for a CPU: their 2,048 pairs at 1e-3 for 1,000 epochs would take
    hours; these train MovieLens 100K in a few seconds on two cores."""

    factors: int = Field(64, ge=1, le=1024)
    layers: int = Field(3, ge=1, le=8)
    learning_rate: float = Field(5e-3, gt=0, le=1)
    l2: float = Field(1e-4, ge=0)
    batch_size: int = Field(8192, ge=1, le=1_048_576)
    epochs: int = Field(30, ge=1, le=10_000)
    seed: int = 0
    threads: int = Field(2, ge=1, le=1024)


class LightGCN(EpochTrained, FactorModel):
    """He et al. (2020) LightGCN: BPR-trained embeddings averaged over graph layers.

    Users and items are nodes of the bipartite graph of who touched what (presence: a
    pair counts once whatever its weight), with the symmetric normalisation
    ``1 / sqrt(deg(user) deg(item))`` on each edge. Layer ``k + 1`` of a node is the
    normalised sum of its neighbours' layer ``k``; a node's vector is the mean of its
    layers ``0..L``, and a score the inner product of a user's and an item's. Layer 0
    is learned by Adam on the BPR loss (a user's item above an item drawn uniformly),
    so each embedding is smoothed by its neighbourhood: on sparse data the long tail
    borrows from the items its users share.

    A history that arrives after training is folded in exactly as the graph would
    propagate it, without layer 0 (which only training gives): its layer ``k`` is the
    normalised sum over its items of their layer ``k - 1``. So a user's vector is a
    fixed linear map of their history (``fold_in_``, one row per item), computed once
    at fit time; explanations read each history item's share of a score off it.

    Examples
    --------
    >>> import pandas as pd
    >>> import tailored
    >>> events = pd.DataFrame({"user_id": list("aabbcc"), "item_id": list("xyxyzw")})
    >>> model = LightGCN(factors=4, epochs=20, threads=1).fit(
    ...     tailored.Dataset.from_frame(events))
    >>> model.recommend("a", k=2).shape
    (2, 4)
    >>> model.user_factors_.shape, model.item_factors_.shape
    ((3, 4), (4, 4))
    """

    name = "lightgcn"
    example_params: ClassVar[dict[str, Any]] = {
        "factors": 8, "layers": 2, "epochs": 40, "learning_rate": 0.05, "batch_size": 64,
        "threads": 1}
    Config = LightGCNConfig
    config: LightGCNConfig
    fold_in_: np.ndarray

    def _fit(self, matrix: sp.csr_matrix, data: Dataset) -> None:
        torch = require_torch("LightGCN")
        config = self.config
        after_epoch = self._after_epoch
        presence = sp.csr_matrix(matrix > 0, dtype=np.float32)
        pairs = presence.tocoo()
        n_users, n_items = matrix.shape
        graph = _normalised(presence)
        with torch_settings(config.threads, deterministic=False), \
                torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            generator = torch.Generator().manual_seed(config.seed)
            layer0 = torch.nn.Embedding(n_users + n_items, config.factors)
            torch.nn.init.normal_(layer0.weight, std=0.1)
            with torch.no_grad():  # a user with no positive pair is never trained: no noise
                isolated = np.flatnonzero(np.diff(presence.indptr) == 0)
                layer0.weight[torch.from_numpy(isolated)] = 0.0
            optimizer = torch.optim.Adam(layer0.parameters(), lr=config.learning_rate)
            forward, backward = _sparse(graph, torch), _sparse(graph.T.tocsr(), torch)
            users_t = torch.from_numpy(pairs.row.astype(np.int64))
            items_t = torch.from_numpy(pairs.col.astype(np.int64))
            for epoch in range(1, config.epochs + 1 if len(users_t) else 1):
                order = torch.randperm(len(users_t), generator=generator)
                for start in range(0, len(order), config.batch_size):
                    rows = order[start:start + config.batch_size]
                    users, liked = users_t[rows], items_t[rows]
                    other = torch.randint(0, n_items, (len(rows),), generator=generator)
                    user_vectors, item_vectors, _ = _propagate(
                        layer0.weight, forward, backward, n_users, config.layers)
                    # index_select: its gradient adds rows back, much faster on a CPU
                    # than the scatter behind plain indexing.
                    margin = (user_vectors.index_select(0, users)
                              * (item_vectors.index_select(0, liked)
                                 - item_vectors.index_select(0, other))).sum(-1)
                    nodes = torch.cat([users, n_users + liked, n_users + other])
                    penalty = layer0.weight.index_select(0, nodes).square().sum()
                    loss = (-torch.nn.functional.logsigmoid(margin).mean()
                            + config.l2 * penalty / len(rows))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                if after_epoch is not None:  # it scores the model as trained so far
                    self._finish(layer0.weight.detach(), forward, backward, graph)
                    if after_epoch(epoch):
                        self.config = config.model_copy(update={"epochs": epoch})
                        break
            self._finish(layer0.weight.detach(), forward, backward, graph)

    def _finish(self, layer0: torch.Tensor, forward: torch.Tensor, backward: torch.Tensor,
                graph: sp.csr_matrix) -> None:
        """Set the scoring state from layer 0: the layer-averaged vectors, and the map
        that folds a history in (the mean over ``k = 1..L`` of item layer ``k - 1``,
        each item's row scaled by ``1 / sqrt(deg(item))``; a user's ``1 / sqrt(deg)``
        is applied at fold-in)."""
        import torch

        n_users = graph.shape[0]
        layers = self.config.layers
        with torch.no_grad():
            user_vectors, item_vectors, item_layers = _propagate(
                layer0, forward, backward, n_users, layers)
        degree = np.asarray(graph.getnnz(axis=0), dtype=np.float32)
        scale = 1.0 / np.sqrt(np.maximum(degree, 1.0))
        mean_lower = sum(layer.numpy() for layer in item_layers[:layers]) / (layers + 1)
        self.user_factors_ = user_vectors.numpy().astype(np.float32)
        self.item_factors_ = item_vectors.numpy().astype(np.float32)
        self.fold_in_ = (mean_lower * scale[:, None]).astype(np.float32)

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """Vectors for users from their histories alone (see the class docstring)."""
        return np.asarray(_presence(history) @ self.fold_in_, dtype=np.float32)

    def _explain(self, batch: ScoringBatch, rows: np.ndarray, columns: np.ndarray
                 ) -> list[Reason]:
        """The history item with the largest share of the score: a folded-in user's
        vector is a sum over their items, so item h adds ``w_h fold_in_[h] . item``
        exactly. Users scored from trained vectors are explained by the fold-in of the
        same history."""
        presence = _presence(sp.csr_matrix(batch.history))
        reasons: list[Reason] = []
        for row, column in zip(rows, columns, strict=True):
            start, stop = presence.indptr[row], presence.indptr[row + 1]
            seen = presence.indices[start:stop]
            if not len(seen):
                reasons.append(Reason("model"))
                continue
            reasons.append(self._history_reason(seen, presence.data[start:stop] * (
                self.fold_in_[seen] @ self.item_factors_[column])))
        return reasons

    def _arrays(self) -> dict[str, np.ndarray]:
        return {**super()._arrays(), "fold_in": self.fold_in_}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        super()._restore(arrays)
        self.fold_in_ = arrays["fold_in"]


def _presence(history: sp.csr_matrix) -> sp.csr_matrix:
    """Each history's items at ``1 / sqrt(its item count)``: a row of the normalised
    graph, had the user been in it."""
    presence = sp.csr_matrix(history > 0, dtype=np.float32)
    counts = np.diff(presence.indptr)
    presence.data /= np.sqrt(np.repeat(np.maximum(counts, 1), counts)).astype(np.float32)
    return presence


def _normalised(graph: sp.csr_matrix) -> sp.csr_matrix:
    """``D_u^-1/2 R D_i^-1/2``: the user-item block of LightGCN's normalised adjacency."""
    users = 1.0 / np.sqrt(np.maximum(graph.getnnz(axis=1), 1))
    items = 1.0 / np.sqrt(np.maximum(graph.getnnz(axis=0), 1))
    return sp.csr_matrix(sp.diags(users.astype(np.float32)) @ graph
                         @ sp.diags(items.astype(np.float32)))


def _sparse(matrix: sp.csr_matrix, torch: Any) -> torch.Tensor:
    """``matrix`` as a PyTorch CSR tensor (scipy's CSR is valid: no invariant checks)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr.astype(np.int64)),
            torch.from_numpy(matrix.indices.astype(np.int64)),
            torch.from_numpy(matrix.data.astype(np.float32)), matrix.shape,
            check_invariants=False)


def _propagate(layer0: torch.Tensor, forward: torch.Tensor, backward: torch.Tensor,
               n_users: int, layers: int
               ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """User and item vectors (the mean of layers ``0..layers``), and the item layers."""
    product = _product()
    users, items = layer0[:n_users], layer0[n_users:]
    user_sum, item_sum = users, items
    item_layers = [items]
    for _ in range(layers):
        users, items = (product(forward, backward, items),
                        product(backward, forward, users))
        user_sum, item_sum = user_sum + users, item_sum + items
        item_layers.append(items)
    return user_sum / (layers + 1), item_sum / (layers + 1), item_layers


def _product() -> Any:
    """``matrix @ dense`` whose gradient uses the transpose given beside it: PyTorch's own
    sparse product transposes the CSR matrix on every backward pass, which made that
    pass twenty times slower than the forward one."""
    import torch

    class Product(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, matrix: torch.Tensor, transpose: torch.Tensor,
                    dense: torch.Tensor) -> torch.Tensor:
            ctx.transpose = transpose
            return torch.sparse.mm(matrix, dense)

        @staticmethod
        def backward(ctx: Any, gradient: torch.Tensor) -> tuple[None, None, torch.Tensor]:
            return None, None, torch.sparse.mm(ctx.transpose, gradient)

    return Product.apply
