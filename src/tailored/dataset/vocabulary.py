"""External string ids <-> dense integer indices."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd


class Vocabulary:
    """An ordered set of string ids, each mapped to its position.

    Examples
    --------
    >>> vocab = Vocabulary(["b", "a", "b"])
    >>> len(vocab), vocab.ids.tolist()
    (2, ['a', 'b'])
    >>> vocab.indices(["b", "zzz"]).tolist()
    [1, -1]
    """

    def __init__(self, ids: Iterable[str]) -> None:
        series = ids if isinstance(ids, pd.Series) else pd.Series(list(ids), dtype=object)
        unique = series.astype(str).unique()
        self.ids: np.ndarray = np.sort(np.asarray(unique, dtype=str))
        self._index = pd.Index(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, external_id: object) -> bool:
        return external_id in self._index

    def indices(self, external_ids: Sequence[str] | np.ndarray | pd.Series) -> np.ndarray:
        """Positions of ``external_ids``; ``-1`` for ids not in the vocabulary."""
        return np.asarray(self._index.get_indexer(np.asarray(external_ids, dtype=str)))

    def index(self, external_id: str) -> int:
        """Position of one id, ``-1`` if unknown."""
        return int(self.indices([external_id])[0])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and np.array_equal(self.ids, other.ids)

    __hash__ = None  # type: ignore[assignment]
