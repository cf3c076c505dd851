"""External string ids <-> dense integer indices."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property

import numpy as np
import pandas as pd

#: Up to this many ids are made unique and looked up without pandas (a set, a binary
#: search); more by pandas' hash table.
_SEARCHED = 1_000


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
        given = ids if isinstance(ids, pd.Series) else list(ids)
        if len(given) > _SEARCHED:  # many ids (a training set's): pandas hashes them
            series = given if isinstance(given, pd.Series) else pd.Series(given, dtype=object)
            unique = np.asarray(series.astype(str).unique(), dtype=str)
        else:  # a request's few: without pandas' overhead of a tenth of a millisecond
            unique = np.asarray(list(set(map(str, given))), dtype=str)
        self.ids: np.ndarray = np.sort(unique)

    @cached_property
    def _index(self) -> pd.Index:
        return pd.Index(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, external_id: object) -> bool:
        return external_id in self._index

    def indices(self, external_ids: Sequence[str] | np.ndarray | pd.Series) -> np.ndarray:
        """Positions of ``external_ids``; ``-1`` for ids not in the vocabulary."""
        asked = np.asarray(external_ids, dtype=str)
        if len(asked) > _SEARCHED or not len(self.ids):
            return np.asarray(self._index.get_indexer(asked))  # type: ignore[arg-type]
        # A few ids (a request's history): a binary search of the sorted ids, some
        # fifty times faster than pandas' lookup at a million ids.
        at = np.minimum(np.searchsorted(self.ids, asked), len(self.ids) - 1)
        return np.where(self.ids[at] == asked, at, -1)

    def index(self, external_id: str) -> int:
        """Position of one id, ``-1`` if unknown."""
        return int(self.indices([external_id])[0])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and np.array_equal(self.ids, other.ids)

    __hash__ = None  # type: ignore[assignment]
