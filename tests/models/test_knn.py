"""Neighbour picking in ``tailored.models.knn``: the sparse pick is the dense one."""

import numpy as np
import pytest
import scipy.sparse as sp

from tailored.models.knn import _prune_rows, _strongest


@pytest.mark.parametrize("seed", range(20))
def test_neighbours_picked_from_sparse_rows_are_those_of_the_dense_block(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_rows, n_columns = rng.integers(1, 60), rng.integers(1, 400)
    # Few distinct values, so ties straddle the cut; rows from empty to almost full.
    dense = rng.integers(0, 4, size=(n_rows, n_columns)).astype(np.float32)
    dense[rng.random((n_rows, n_columns)) < rng.random((n_rows, 1))] = 0
    keep = int(rng.integers(1, 40))
    picked = _strongest(sp.coo_matrix(dense), keep)
    expected = _prune_rows(dense, keep)
    assert (picked != expected).nnz == 0
    assert picked.nnz == expected.nnz
    assert (np.diff(picked.indptr) <= keep).all()
