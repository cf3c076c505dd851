"""Sequential recommenders: the order of what a user did predicts what they do next.

PyTorch is imported only inside the functions that need it, so ``import tailored`` stays
light for users who never train a sequential model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self, cast

import numpy as np
import scipy.sparse as sp
from pydantic import Field, model_validator

from tailored.dataset import Dataset

from .base import ModelConfig, ScoringBatch
from .torch_runtime import EpochTrained, require_torch, torch_settings

if TYPE_CHECKING:
    import torch

_ENCODE_ROWS = 1024  # sequences encoded at once while scoring (bounds activation memory)


class SASRecConfig(ModelConfig):
    """``max_length``: the last N items of a history the model reads. ``factors``:
    hidden size (item and position embeddings, attention, feed-forward). ``blocks``:
    stacked self-attention blocks. ``heads``: attention heads per block (must divide
    ``factors``). ``dropout``: dropout rate on embeddings, attention weights and
    block outputs. ``epochs``: passes over all training windows. ``batch_size``:
    windows per gradient step. ``learning_rate``: Adam step size. ``l2``: L2 penalty
    on every weight (Adam weight decay). ``negatives``: ``0`` trains with a full
    softmax cross-entropy over the catalog at each position; ``n > 0`` uses binary
    cross-entropy against the next item and ``n`` uniformly sampled items per position
    (the paper's loss). The full softmax learns more per epoch (on MovieLens 100K it
    beat 16 sampled negatives at equal epochs) but holds ``batch_size x max_length x
    items`` logits at once, so for catalogs beyond some ten thousand items sample
    negatives instead. ``seed``: initialisation, shuffling and dropout. ``threads``: CPU
    threads for PyTorch while training and scoring.

    The defaults train on MovieLens 100K (about 80,000 events, 1,700 items) in one to
    two minutes on two CPU cores."""

    max_length: int = Field(50, ge=1, le=4096)
    factors: int = Field(64, ge=1, le=4096)
    blocks: int = Field(2, ge=1, le=32)
    heads: int = Field(1, ge=1, le=64)
    dropout: float = Field(0.2, ge=0, lt=1)
    epochs: int = Field(30, ge=1, le=10_000)
    batch_size: int = Field(128, ge=1, le=65_536)
    learning_rate: float = Field(3e-3, gt=0, le=1)
    l2: float = Field(0.0, ge=0)
    negatives: int = Field(0, ge=0, le=100_000)
    seed: int = 0
    threads: int = Field(2, ge=1, le=1024)

    @model_validator(mode="after")
    def _heads_divide_factors(self) -> Self:
        if self.factors % self.heads:
            raise ValueError(f"heads must divide factors evenly; got heads={self.heads} "
                             f"and factors={self.factors}")
        return self


class SASRec(EpochTrained):
    """Self-attentive sequential recommendation (Kang & McAuley, 2018).

    A causal transformer reads the user's last ``max_length`` items, oldest first, and
    scores every item as the next one: the hidden state at the last position dotted
    with the item embeddings (shared between input and output). Training predicts
    the next item at every position of every user's history. Scoring reads the
    sequence the query brings, so an event from a second ago changes the next
    recommendation without retraining. Event types and weights are ignored: only
    which items, and in which order.

    Examples
    --------
    >>> import pandas as pd
    >>> import tailored
    >>> events = pd.DataFrame({"user_id": list("aaabbbccc"),
    ...                        "item_id": list("xyzxyzxyz"),
    ...                        "timestamp": [1, 2, 3, 4, 5, 6, 7, 8, 9]})
    >>> model = SASRec(factors=8, blocks=1, max_length=5, epochs=50, learning_rate=0.01,
    ...                dropout=0.0, threads=1)
    >>> model = model.fit(tailored.Dataset.from_frame(events))
    >>> query = tailored.UserQuery.from_histories({"new": ["x"]})
    >>> model.recommend(query, k=1)["item_id"].tolist()
    ['y']
    """

    name = "sasrec"
    example_params: ClassVar[dict[str, Any]] = {
        "factors": 16, "blocks": 1, "max_length": 8, "epochs": 30,
        "learning_rate": 0.01, "dropout": 0.0, "batch_size": 64, "threads": 1}
    Config = SASRecConfig
    config: SASRecConfig
    needs_sequences = True

    # ---- learning -------------------------------------------------------------------

    def _fit(self, matrix: sp.csr_matrix, data: Dataset) -> None:
        torch = require_torch("SASRec")
        config = self.config
        after_epoch = self._after_epoch
        inputs, targets = _windows(self.sequences_, config.max_length)
        with torch_settings(config.threads, deterministic=True), \
                torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            network = _network(len(self.item_vocab_), config)
            generator = torch.Generator().manual_seed(config.seed)
            optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate,
                                         betas=(0.9, 0.98), weight_decay=config.l2,
                                         foreach=True)
            inputs_t, targets_t = torch.from_numpy(inputs), torch.from_numpy(targets)
            self.network_ = network
            for epoch in range(1, config.epochs + 1 if len(inputs) else 1):
                network.train()
                order = torch.randperm(len(inputs), generator=generator)
                for start in range(0, len(order), config.batch_size):
                    rows = order[start:start + config.batch_size]
                    hidden = _encode(network, inputs_t[rows], config, training=True)
                    loss = _loss(network, hidden, targets_t[rows], config.negatives, generator)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                network.eval()
                if after_epoch is not None and after_epoch(epoch):
                    self.config = config.model_copy(update={"epochs": epoch})
                    break
            network.eval()

    # ---- scoring --------------------------------------------------------------------

    def _score(self, batch: ScoringBatch) -> np.ndarray:
        import torch

        sequences = (batch.sequences if batch.sequences is not None
                     else [np.zeros(0, np.int64)] * len(batch))
        inputs = _pad([s[-self.config.max_length:] + 1 for s in sequences],
                      self.config.max_length)
        network = self.network_
        network.eval()
        scores = np.empty((len(batch), len(self.item_vocab_)), dtype=np.float32)
        with torch_settings(self.config.threads, deterministic=False), torch.no_grad():
            items = _item_table(network)[1:]
            for start in range(0, len(inputs), _ENCODE_ROWS):
                chunk = torch.from_numpy(inputs[start:start + _ENCODE_ROWS])
                hidden = _encode(network, chunk, self.config, training=False)[:, -1]
                scores[start:start + len(chunk)] = (hidden @ items.T).numpy()
        empty = np.array([len(s) == 0 for s in sequences], dtype=bool)
        if empty.any():
            scores[empty] = self._fallback()
        return scores

    def _item_similarity(self, columns: np.ndarray) -> np.ndarray:
        """Cosine similarity of the learned item embeddings."""
        embeddings = self.item_embeddings
        norms = np.linalg.norm(embeddings, axis=1)
        norms[norms == 0] = 1
        unit = embeddings / norms[:, None]
        return unit[columns] @ unit.T

    @property
    def item_embeddings(self) -> np.ndarray:
        """The learned item embeddings, one row per item in ``item_ids`` order."""
        self._check_fitted()
        return _item_table(self.network_).detach()[1:].numpy().copy()

    # ---- persistence ----------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        return {f"weights.{key}": value.detach().cpu().numpy().copy()
                for key, value in self.network_.state_dict().items()}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        torch = require_torch("SASRec")
        with torch.random.fork_rng(devices=[]):  # initialisation must not move the caller's RNG
            network = _network(len(self.item_vocab_), self.config)
        state = {key.removeprefix("weights."): torch.from_numpy(np.array(value))
                 for key, value in arrays.items() if key.startswith("weights.")}
        network.load_state_dict(state)
        network.eval()
        self.network_ = network


# ---- the network, built from standard layers (no torch at import time) -------------------


def _network(n_items: int, config: SASRecConfig) -> torch.nn.ModuleDict:
    """Item (index 0 = padding) and position embeddings, attention blocks, final norm."""
    import torch
    from torch import nn

    d = config.factors
    items = nn.Embedding(n_items + 1, d, padding_idx=0)
    positions = nn.Embedding(config.max_length, d)
    nn.init.normal_(items.weight, std=d ** -0.5)
    nn.init.normal_(positions.weight, std=d ** -0.5)
    with torch.no_grad():
        items.weight[0].zero_()  # padding
    layers: dict[str, nn.Module] = {"item_embeddings": items, "position_embeddings": positions}
    for block in range(config.blocks):
        layers[f"block{block}"] = nn.ModuleDict({
            "attention_norm": nn.LayerNorm(d), "qkv": nn.Linear(d, 3 * d),
            "attention_out": nn.Linear(d, d), "feed_forward_norm": nn.LayerNorm(d),
            "feed_forward_in": nn.Linear(d, d), "feed_forward_out": nn.Linear(d, d)})
    layers["norm"] = nn.LayerNorm(d)
    return nn.ModuleDict(layers)


def _item_table(network: torch.nn.ModuleDict) -> torch.Tensor:
    """The item embedding table; row 0 is padding, row ``i + 1`` is item ``i``."""
    return cast("torch.nn.Embedding", network["item_embeddings"]).weight


def _position_table(network: torch.nn.ModuleDict) -> torch.Tensor:
    """The position embedding table; the last row belongs to the newest item."""
    return cast("torch.nn.Embedding", network["position_embeddings"]).weight


def _encode(network: torch.nn.ModuleDict, inputs: torch.Tensor, config: SASRecConfig,
            training: bool) -> torch.Tensor:
    """Hidden states (batch x positions x factors) of left-padded item sequences.

    Position ``p`` attends to itself and to the real (non-padding) items before it.
    Positions are counted from the right, so the newest item always has the last one.
    """
    import torch
    import torch.nn.functional as F

    batch, length = inputs.shape
    d, heads, p = config.factors, config.heads, config.dropout
    real = inputs != 0
    items = F.embedding(inputs, _item_table(network), padding_idx=0)
    x = items * d ** 0.5 + _position_table(network)[-length:]
    x = F.dropout(x, p, training)
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    allowed = (causal & real[:, None, :]) | torch.eye(length, dtype=torch.bool)
    allowed = allowed[:, None]  # one mask for every head
    for index in range(config.blocks):
        block = cast("torch.nn.ModuleDict", network[f"block{index}"])
        h = block["attention_norm"](x)
        q, k, v = (part.reshape(batch, length, heads, d // heads).transpose(1, 2)
                   for part in block["qkv"](h).split(d, dim=-1))
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                                  dropout_p=p if training else 0.0)
        attended = attended.transpose(1, 2).reshape(batch, length, d)
        x = x + F.dropout(block["attention_out"](attended), p, training)
        h = block["feed_forward_norm"](x)
        h = F.dropout(F.relu(block["feed_forward_in"](h)), p, training)
        x = x + F.dropout(block["feed_forward_out"](h), p, training)
    return network["norm"](x)


def _loss(network: torch.nn.ModuleDict, hidden: torch.Tensor, targets: torch.Tensor,
          negatives: int, generator: torch.Generator) -> torch.Tensor:
    """Next-item loss over the positions that have a target (target 0 is padding)."""
    import torch
    import torch.nn.functional as F

    mask = targets != 0
    hidden, targets = hidden[mask], targets[mask]
    table = _item_table(network)
    if negatives == 0:  # full softmax over the catalog
        return F.cross_entropy(hidden @ table[1:].T, targets - 1)
    n_items = table.shape[0] - 1
    sampled = torch.randint(1, n_items + 1, (len(targets), negatives), generator=generator)
    positive = (hidden * table[targets]).sum(-1)
    negative = torch.einsum("nd,nkd->nk", hidden, table[sampled])
    return (F.softplus(-positive).sum() + F.softplus(negative).sum()) / len(targets)


# ---- data --------------------------------------------------------------------------------


def _windows(sequences: Sequence[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Training windows: inputs and next-item targets, both shifted by one (0 = padding).

    Each history ``s`` gives the pairs ``s[t] -> s[t+1]``; long histories are cut into
    consecutive windows of ``length`` pairs counted back from the newest, so every
    position is a target exactly once per epoch.
    """
    inputs, targets = [], []
    for sequence in sequences:
        if len(sequence) < 2:
            continue
        shifted = np.asarray(sequence, dtype=np.int64) + 1
        source, target = shifted[:-1], shifted[1:]
        for end in range(len(source), 0, -length):
            start = max(0, end - length)
            inputs.append(source[start:end])
            targets.append(target[start:end])
    return _pad(inputs, length), _pad(targets, length)


def _pad(rows: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Left-pad (with 0) each row to ``length``; rows are at most ``length`` long."""
    padded = np.zeros((len(rows), length), dtype=np.int64)
    for i, row in enumerate(rows):
        if len(row):
            padded[i, length - len(row):] = row
    return padded
