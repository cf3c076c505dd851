"""An approximate nearest-neighbour index over item vectors, for top lists on large
catalogs (faiss, the optional ``ann`` extra: ``pip install 'tailored[ann]'``).

Factor and embedding models (ALS, BPR, Item2Vec) score an item as the inner product of
a user's vector and the item's. Exact top lists compute that for every item; at 100,000
items and more, that product dominates a request. Such a model builds an
:class:`ItemIndex` at ``fit`` when its catalog has at least ``ann_min_items`` items
(:class:`~tailored.models.base.ItemIndexConfig`), saves it beside its artifact in
faiss's own binary format and loads it back; its top lists
(:meth:`~tailored.models.Recommender.top_items`, the service's) then come from the
index's candidates, rescored exactly.

The index is faiss's IVF-Flat, searched by L2 distance after the reduction of inner
product search to nearest-neighbour search (Bachrach et al., 2014): each item vector y
gets one more coordinate, sqrt(M² - |y|²) with M the longest item's norm, so every item
lies on the sphere of radius M, and a query u gets a 0, so |u - y|² = |u|² + M² - 2 u·y
ranks items exactly as u·y does. The query is first scaled to length M (which changes
no item's rank), so the ``ann_probes`` cells it scans are those nearest to it in
direction, and the cells are learnt from items drawn in proportion to their norm.
``benchmarks/results/ann_choice.md`` has the measurements behind the choice,
``benchmarks/results/ann.md`` the recall and latency on the sample shop.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

#: The index's file inside a model's artifact directory.
INDEX_FILE = "item_index.faiss"
#: Items per cell that k-means is trained on (faiss asks for 39 or more).
_TRAINING_PER_CELL = 64
#: A search scans one cell in this many by default.
_SCANNED_SHARE = 5


def faiss_available() -> bool:
    """Whether faiss (the ``ann`` extra) can be imported."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class ItemIndex:
    """Items' vectors in a faiss IVF-Flat index, searched by inner product.

    ``vectors`` are the rows the model scores with (one per indexed item) and
    ``columns`` the model's item column of each row; ``search`` returns columns and
    exact inner products, best first.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> vectors = rng.normal(size=(500, 8)).astype(np.float32)
    >>> index = ItemIndex.build(vectors, np.arange(500), cells=8, probes=8)
    >>> columns, scores = index.search(vectors[:1], 5)
    >>> columns[0].tolist() == np.argsort(-(vectors @ vectors[0]))[:5].tolist()
    True
    """

    def __init__(self, index: Any, vectors: np.ndarray, columns: np.ndarray,
                 probes: int | None = None) -> None:
        self.index = index
        self.vectors = vectors
        self.columns = np.asarray(columns, dtype=np.int64)
        self.longest = _longest(vectors)
        cells = self.index.nlist
        self.probes = max(1, min(probes or round(cells / _SCANNED_SHARE), cells))

    def __len__(self) -> int:
        return len(self.columns)

    @classmethod
    def build(cls, vectors: np.ndarray, columns: np.ndarray, *, cells: int | None = None,
              probes: int | None = None, seed: int = 0) -> ItemIndex:
        """Train ``cells`` cells (default 4·√rows) on (a sample of) ``vectors``, add
        every row; a search scans its ``probes`` nearest cells (default a fifth)."""
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n_rows, n_dims = vectors.shape
        cells = max(1, min(cells or round(4 * math.sqrt(n_rows)), n_rows))
        on_sphere = _on_sphere(vectors, _longest(vectors))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(n_dims + 1), n_dims + 1, cells,
                                   faiss.METRIC_L2)
        index.cp.seed = seed
        # k-means learns from items drawn in proportion to their norm: the cells are fine
        # where the long vectors are (what top lists hold), while the many short ones
        # (ALS's rarely seen items, all near one point once on the sphere) share a few.
        norms = np.linalg.norm(vectors, axis=1).astype(np.float64)
        weights = norms / norms.sum() if norms.sum() > 0 else None
        rows = np.random.default_rng(seed).choice(n_rows, _TRAINING_PER_CELL * cells,
                                                  replace=True, p=weights)
        index.train(on_sphere[np.sort(rows)])
        index.add(on_sphere)
        return cls(index, vectors, columns, probes)

    def search(self, queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` best indexed items per query by inner product: item columns
        (-1 where fewer were found) and their exact scores (-inf there), best first.

        A query whose ``probes`` nearest cells hold fewer than ``n`` items scans twice
        as many, until it has ``n`` or has scanned every cell: ALS puts most items in a
        few cells and leaves many nearly empty, so the cells a query reaches first can
        be short of items."""
        import faiss

        queries = np.ascontiguousarray(queries, dtype=np.float32)
        n = max(1, min(n, len(self)))
        norms = np.linalg.norm(queries, axis=1, keepdims=True)
        scaled = queries * (self.longest / np.where(norms > 0, norms, 1))
        padded = np.hstack([scaled, np.zeros((len(queries), 1), np.float32)]).astype(np.float32)
        probes = self.probes
        _, rows = self.index.search(padded, n, params=_probing(faiss, probes))
        short = rows[:, -1] < 0  # faiss pads a short answer at the end
        while short.any() and probes < self.index.nlist:
            probes = min(2 * probes, self.index.nlist)
            _, again = self.index.search(padded[short], n, params=_probing(faiss, probes))
            rows[short] = again
            short[short] = again[:, -1] < 0
        found = rows >= 0
        safe = np.where(found, rows, 0)
        # Exact scores from the model's own vectors (the index's are distances).
        scores = np.einsum("qnd,qd->qn", self.vectors[safe], queries)
        scores = np.where(found, scores, -np.inf).astype(np.float32)
        columns = np.where(found, self.columns[safe], -1)
        order = np.lexsort((columns, -scores), axis=1)
        return (np.take_along_axis(columns, order, axis=1),
                np.take_along_axis(scores, order, axis=1))

    def save(self, directory: str | Path) -> Path:
        """Write the index (faiss's binary format) into ``directory``; its path."""
        import faiss

        path = Path(directory) / INDEX_FILE
        faiss.write_index(self.index, str(path))
        return path

    @classmethod
    def load(cls, directory: str | Path, vectors: np.ndarray, columns: np.ndarray,
             probes: int | None = None) -> ItemIndex:
        """The index saved in ``directory``, over the model's ``vectors`` and ``columns``
        (checked against it)."""
        import faiss

        path = Path(directory) / INDEX_FILE
        index = faiss.read_index(str(path))
        if index.ntotal != len(columns) or index.d != vectors.shape[1] + 1:
            raise ValueError(f"{path} indexes {index.ntotal} items of {index.d - 1} "
                             f"dimensions, the model has {len(columns)} of "
                             f"{vectors.shape[1]}: it belongs to another fit; fit the model "
                             "again to rebuild it")
        return cls(index, vectors, columns, probes)


def _probing(faiss: Any, probes: int) -> Any:
    """Search parameters scanning ``probes`` cells (per call: the index is shared)."""
    params = faiss.SearchParametersIVF()
    params.nprobe = probes
    return params


def _longest(vectors: np.ndarray) -> float:
    """The largest row norm (1 when every row is zero, so scaling stays defined)."""
    longest = float(np.linalg.norm(vectors, axis=1).max(initial=0.0))
    return longest if longest > 0 else 1.0


def _on_sphere(vectors: np.ndarray, longest: float) -> np.ndarray:
    """Each row with the coordinate that makes its norm ``longest`` appended."""
    squared = np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64)
    extra = np.sqrt(np.maximum(longest**2 - squared, 0.0))
    return np.hstack([vectors, extra[:, None]]).astype(np.float32)


__all__ = ["INDEX_FILE", "ItemIndex", "faiss_available"]
