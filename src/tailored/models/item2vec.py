"""Item2Vec: item embeddings learned like word vectors from users' ordered histories."""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from tailored.dataset import Dataset

from .base import ItemIndexConfig, Recommender, ScoringBatch, recent_items

_MAX_SENTENCE = 10_000  # gensim silently drops tokens past this in one sentence


class Item2VecConfig(ItemIndexConfig):
    """``factors``: length of each item vector. ``window``: how many items before and
    after an item (in the user's time order) count as its context; gensim draws the
    effective window uniformly up to this, so near neighbours weigh more. ``negative``:
    noise items drawn per positive pair. ``ns_exponent``: shape of the noise
    distribution (item counts to this power; 1 draws by popularity, 0 uniformly,
    negative values favour rare items). ``epochs``: passes over the histories.
    ``min_count``: items with fewer events get no vector; they rank below every other
    item and are ignored in queries. ``sample``: items more frequent than this share
    of all events are randomly left out of training (word2vec's subsampling; 0 keeps
    all: on item histories, unlike text, the frequent items are what users want).
    ``learning_rate``: the initial SGD step, decaying linearly to 1e-4 of it.
    ``seed``: initial vectors and sampling. ``workers``: training threads; the default
    1 makes a seed give the same model every time (more threads train faster but
    apply updates in an order set by thread timing). ``recent``: how many of the
    user's latest distinct items (among those with a vector) form the query
    (``None``: all). ``recency_decay``: the item k places before the latest weighs
    ``recency_decay ** k`` in the user vector (1: all equal). ``scoring``: how items
    are scored against the user vector (the weighted mean of the query items'
    vectors): ``"context"`` takes its dot product with each item's output (context)
    vector, the skip-gram model's own logit that the item appears next to the user's
    items; ``"cosine"`` takes the cosine between the mean of the query items' unit
    vectors and each item vector, which ranks by similarity alone and favours rare
    items with little-trained vectors. ``ann_*``: the approximate item index on large
    catalogs (:class:`ItemIndexConfig`; it holds the items with a vector)."""

    factors: int = Field(64, ge=1, le=1024)
    window: int = Field(5, ge=1, le=10_000)
    negative: int = Field(5, ge=1, le=100)
    ns_exponent: float = Field(0.75, ge=-2, le=2)
    epochs: int = Field(10, ge=1, le=1000)
    min_count: int = Field(1, ge=1)
    sample: float = Field(0.0, ge=0, lt=1)
    learning_rate: float = Field(0.025, gt=0, le=1)
    seed: int = Field(0, ge=0, lt=2**32)
    workers: int = Field(1, ge=1, le=256)
    recent: int | None = Field(None, ge=1)
    recency_decay: float = Field(1.0, gt=0, le=1)
    scoring: Literal["context", "cosine"] = "context"


class Item2Vec(Recommender):
    """Barkan & Koenigstein (2016): skip-gram with negative sampling over histories.

    Each user's time-ordered history is a sentence and each item a word
    (``gensim.models.Word2Vec``, items as their index strings), so items used in the
    same stretch of histories get close vectors. A user's vector is the
    (recency-weighted) mean of the vectors of their latest items; items are scored
    against it as ``scoring`` says. A fresh history in a
    :class:`~tailored.dataset.UserQuery` is scored the same way, without retraining.
    Users none of whose items has a vector get the popularity fallback. Every event
    counts as an occurrence, whatever its type or weight. ``similar_items`` ranks by
    the cosine of item vectors, and ``item_vectors`` hands the vectors to other
    models as features.

    Examples
    --------
    >>> import pandas as pd
    >>> import tailored
    >>> events = pd.DataFrame({"user_id": list("aaabbbccc"),
    ...                        "item_id": list("xyzxyzxyw"),
    ...                        "timestamp": range(9)})
    >>> model = Item2Vec(factors=4, epochs=20).fit(tailored.Dataset.from_frame(events))
    >>> model.recommend("a", k=1).shape
    (1, 4)
    >>> model.item_vectors(["x", "unknown"]).shape
    (2, 4)
    """

    name = "item2vec"
    # Tiny data: the default subsampling of frequent items would drop most events.
    example_params: ClassVar[dict[str, Any]] = {
        "factors": 8, "window": 5, "epochs": 50, "min_count": 1,
        "sample": 0.0}
    Config = Item2VecConfig
    config: Item2VecConfig
    needs_sequences = True

    def _fit(self, matrix: sp.csr_matrix, data: Dataset) -> None:
        n_items = matrix.shape[1]
        sentences = _sentences(self.sequences_)
        counts = np.bincount(np.concatenate([np.zeros(0, np.int64), *self.sequences_]),
                             minlength=n_items)
        vectors = np.zeros((n_items, self.config.factors), dtype=np.float32)
        contexts = np.zeros_like(vectors)
        if counts.max(initial=0) < self.config.min_count:
            warnings.warn(f"min_count={self.config.min_count} leaves no item with a vector "
                          f"(the most frequent occurs {counts.max(initial=0)} times); "
                          "every user gets the popularity fallback", stacklevel=3)
        else:
            c = self.config
            from gensim.models import Word2Vec  # heavy: imported only to train

            word2vec = Word2Vec(
                sentences, vector_size=c.factors, window=c.window, negative=c.negative,
                ns_exponent=c.ns_exponent, epochs=c.epochs, min_count=c.min_count,
                sample=c.sample, alpha=c.learning_rate, min_alpha=c.learning_rate * 1e-4,
                seed=c.seed, workers=c.workers, sg=1, hs=0, hashfxn=_stable_hash)
            trained = np.asarray(word2vec.wv.index_to_key, dtype=np.int64)
            vectors[trained] = word2vec.wv.vectors
            contexts[trained] = word2vec.syn1neg
        self.item_vectors_ = vectors
        self.context_vectors_ = contexts
        self._normalise()

    def _normalise(self) -> None:
        norms = np.linalg.norm(self.item_vectors_, axis=1)
        self.has_vector_ = norms > 0
        self.unit_vectors_ = self.item_vectors_ / np.where(self.has_vector_, norms, 1)[:, None]

    def item_vectors(self, item_ids: str | Sequence[str] | np.ndarray) -> np.ndarray:
        """The learned vector of each item (zeros for unknown or too-rare items).

        Returns a float32 array with one row per given id, ``factors`` columns.
        """
        self._check_fitted()
        ids = [item_ids] if isinstance(item_ids, str) else [str(i) for i in item_ids]
        columns = self.item_vocab_.indices(ids)
        vectors = self.item_vectors_[np.maximum(columns, 0)].copy()
        vectors[columns < 0] = 0
        return vectors

    def _query_items(self, sequence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The user's latest distinct items with a vector (newest first) and weights."""
        return recent_items(sequence[self.has_vector_[sequence]], self.config.recent,
                            self.config.recency_decay)

    def _user_vectors(self, batch: ScoringBatch) -> np.ndarray:
        """Each user's vector (zeros for users none of whose items has one): the
        weighted mean of the query items' vectors, of unit length with ``cosine``."""
        if batch.sequences is None:  # pragma: no cover - the base class always sets them
            raise RuntimeError("Item2Vec scores from sequences; the batch has none")
        cosine = self.config.scoring == "cosine"
        source = self.unit_vectors_ if cosine else self.item_vectors_
        users: np.ndarray = np.zeros((len(batch), self.config.factors), dtype=np.float32)
        for row, sequence in enumerate(batch.sequences):
            items, weights = self._query_items(np.asarray(sequence, dtype=np.int64))
            if len(items):
                users[row] = weights @ source[items] / weights.sum()
        if cosine:
            norms = np.linalg.norm(users, axis=1)
            users = (users / np.where(norms > 0, norms, 1)[:, None]).astype(np.float32)
        return users

    def _item_side(self) -> np.ndarray:
        """The item vectors a user vector is scored against."""
        return self.unit_vectors_ if self.config.scoring == "cosine" else self.context_vectors_

    def _score(self, batch: ScoringBatch) -> np.ndarray:
        users = self._user_vectors(batch)
        cold = ~users.any(axis=1)
        scores = _last_without_vector(users @ self._item_side().T, self.has_vector_)
        scores[cold] = self._fallback()
        return scores

    def _index_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        return self._item_side()[self.has_vector_], np.flatnonzero(self.has_vector_)

    def _query_vectors(self, batch: ScoringBatch) -> tuple[np.ndarray, np.ndarray]:
        users = self._user_vectors(batch)
        return users, np.asarray(users.any(axis=1))

    def _item_similarity(self, columns: np.ndarray) -> np.ndarray:
        return _last_without_vector(self.unit_vectors_[columns] @ self.unit_vectors_.T,
                                    self.has_vector_)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"item_vectors": self.item_vectors_, "context_vectors": self.context_vectors_}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_vectors_ = arrays["item_vectors"]
        self.context_vectors_ = arrays["context_vectors"]
        self._normalise()


def _last_without_vector(scores: np.ndarray, has_vector: np.ndarray) -> np.ndarray:
    """Scores with items that have no vector put just below each row's lowest."""
    if has_vector.all() or not has_vector.any():
        return scores
    floor = scores[:, has_vector].min(axis=1, keepdims=True) - 1
    return np.where(has_vector[None, :], scores, floor)


def _sentences(sequences: list[np.ndarray]) -> list[list[str]]:
    """Histories as gensim sentences of item-index tokens, long ones cut into pieces
    gensim trains on whole (it ignores whatever lies past ``_MAX_SENTENCE`` tokens)."""
    return [[str(item) for item in sequence[start:start + _MAX_SENTENCE]]
            for sequence in sequences
            for start in range(0, len(sequence), _MAX_SENTENCE)]


def _stable_hash(text: str) -> int:
    """A hash of ``text`` that, unlike ``hash``, does not change with PYTHONHASHSEED."""
    return zlib.crc32(text.encode())
