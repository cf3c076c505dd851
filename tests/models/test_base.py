"""Shared model machinery (``tailored.models.base``): top-k gives a full sort's answer."""

import numpy as np
import pytest

from tailored.models.base import top_columns


def _sorted_top(scores: np.ndarray, k: int) -> np.ndarray:
    """The reference: a full stable sort, best first, ties to the lower column."""
    ranked = np.argsort(-np.where(np.isnan(scores), -np.inf, scores), axis=1, kind="stable")
    return np.sort(ranked[:, :k], axis=1)


@pytest.mark.parametrize("shape", ["random", "ties", "mostly zero", "mostly masked",
                                   "few positives", "narrow"])
@pytest.mark.parametrize("seed", range(5))
def test_the_top_columns_are_those_of_a_full_sort(shape: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_rows, n_columns = int(rng.integers(1, 40)), int(rng.integers(2_600, 6_000))
    k = int(rng.integers(1, 11))
    noise = rng.random((n_rows, n_columns))
    scores = {
        "random": noise,
        "ties": rng.integers(0, 4, (n_rows, n_columns)).astype(float),
        "mostly zero": np.where(noise < 0.95, 0.0, rng.integers(1, 5, noise.shape)),
        "mostly masked": np.where(noise < 0.99, -np.inf, rng.integers(0, 3, noise.shape)),
        "few positives": np.where(noise < 0.999, 0.0, noise),
        "narrow": noise[:, :100],
    }[shape].astype(np.float32)
    scores[0, :3] = np.nan  # counts as lowest
    expected = _sorted_top(scores, k)
    assert np.array_equal(np.sort(top_columns(scores, k), axis=1), expected)
