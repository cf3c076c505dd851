"""BPR: the shared contract, presence-only learning, and the fold-in of new histories."""

from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy.special import log_expit

from tailored.dataset import Dataset, UserQuery
from tailored.models.base import Recommender
from tailored.models.bpr import BPR, _fold_in_user
from tailored.schema import EventWeights
from tailored.testing import RecommenderContract
from tailored.testing.data import checkerboard


class TestBPR(RecommenderContract):
    def make_model(self) -> Recommender:
        return BPR(factors=4, iterations=50, learning_rate=0.05)


def test_factors_carry_a_bias_column_that_scores_use() -> None:
    data = checkerboard()
    model = BPR(factors=3, iterations=20).fit(data)
    assert model.user_factors_.shape == (data.n_users, 4)
    assert model.item_factors_.shape == (data.n_items, 4)
    np.testing.assert_array_equal(model.user_factors_[:, -1], 1.0)
    expected = model.user_factors_[:2] @ model.item_factors_.T
    np.testing.assert_allclose(model.score(["a000", "a001"]), expected, rtol=1e-6)


def test_another_seed_gives_another_model() -> None:
    data = checkerboard()
    first = BPR(factors=4, iterations=20, seed=1).fit(data).score(["a000"])
    second = BPR(factors=4, iterations=20, seed=2).fit(data).score(["a000"])
    assert not np.allclose(first, second)


def test_only_presence_counts_not_the_weight() -> None:
    data = checkerboard()
    heavy = Dataset.from_frame(data.events.assign(event_type="purchase"))
    light = Dataset.from_frame(data.events.assign(event_type="view"))
    np.testing.assert_array_equal(BPR(factors=4, iterations=20).fit(heavy).item_factors_,
                                  BPR(factors=4, iterations=20).fit(light).item_factors_)


def test_a_non_positive_weight_is_not_a_positive() -> None:
    data = checkerboard()
    dislikes = data.events.assign(event_type="view")
    dislikes.loc[dislikes["user_id"] == "a000", "event_type"] = "dislike"
    weights = EventWeights(custom={"dislike": -1.0})
    model = BPR(factors=4, iterations=20).fit(Dataset.from_frame(dislikes, weights=weights))
    row = data.user_vocab.indices(["a000"])[0]
    np.testing.assert_array_equal(model.user_factors_[row, :-1], 0.0)  # never trained
    assert np.isfinite(model.score(["a000"])).all()


def _objective(user: np.ndarray, seen: np.ndarray, items: np.ndarray,
               popularity: np.ndarray, regularization: float) -> float:
    """The fold-in objective written out pair by pair."""
    unseen = np.setdiff1d(np.arange(len(items)), seen)
    weights = popularity[unseen] / popularity[unseen].sum()
    scores = items[:, :-1] @ user + items[:, -1]
    total = sum(weights[k] * log_expit(scores[i] - scores[j])
                for i in seen for k, j in enumerate(unseen))
    return float(total / len(seen) - 0.5 * regularization * user @ user)


def test_the_fold_in_finds_the_optimum_of_the_users_bpr_objective() -> None:
    rng = np.random.default_rng(0)
    items = rng.normal(size=(12, 4))
    popularity = rng.integers(1, 10, size=12).astype(float)
    seen = np.array([1, 4, 7])
    user = _fold_in_user(seen, items, popularity, 0.1, np.random.default_rng(0))
    best = _objective(user, seen, items, popularity, 0.1)
    step = 1e-5
    for axis in range(3):
        shift = np.eye(3)[axis] * step
        slope = (_objective(user + shift, seen, items, popularity, 0.1)
                 - _objective(user - shift, seen, items, popularity, 0.1)) / (2 * step)
        assert abs(slope) < 1e-6
    for _ in range(20):
        assert _objective(user + rng.normal(scale=0.1, size=3), seen, items,
                          popularity, 0.1) < best


def test_a_training_history_folds_in_close_to_its_trained_vector() -> None:
    data = checkerboard(n_users=60, n_items=30)
    model = BPR(factors=4, iterations=100).fit(data)
    users = ["a000", "a001", "b000"]
    histories = {u: data.events.loc[data.events["user_id"] == u, "item_id"].tolist()
                 for u in users}
    folded = model.score(UserQuery.from_histories(histories))
    trained = model.score(users)
    for row in range(len(users)):
        assert np.corrcoef(folded[row], trained[row])[0, 1] > 0.9


def test_fold_in_is_deterministic_and_independent_of_the_batch() -> None:
    model = BPR(factors=4, iterations=20).fit(checkerboard())
    histories = {"x": ["A000", "A003"], "y": ["B001"], "z": ["A002", "B002", "B004"]}
    together = model.score(UserQuery.from_histories(histories))
    alone = np.vstack([model.score(UserQuery.from_histories({u: h}))
                       for u, h in histories.items()])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


def test_a_large_fold_in_samples_pairs_and_stays_deterministic() -> None:
    rng = np.random.default_rng(1)
    items = rng.normal(size=(3000, 5)) / 5
    popularity = rng.integers(0, 50, size=3000).astype(float)
    seen = np.arange(0, 3000, 3)  # 1000 x 2000 pairs: over the budget
    first = _fold_in_user(seen, items, popularity, 0.01, np.random.default_rng(0))
    second = _fold_in_user(seen, items, popularity, 0.01, np.random.default_rng(0))
    np.testing.assert_array_equal(first, second)
    assert np.isfinite(first).all()


def test_a_history_of_every_item_folds_in_to_the_bias_alone() -> None:
    model = BPR(factors=4, iterations=20).fit(checkerboard(n_users=4, n_items=4))
    everything = pd.DataFrame({"user_id": "all", "item_id": model.item_ids})
    scores = model.score(UserQuery(("all",), everything))
    np.testing.assert_allclose(scores[0], model.item_factors_[:, -1], rtol=1e-6)


@pytest.mark.parametrize("params", [{"factors": 0}, {"learning_rate": 0.0},
                                    {"regularization": 0.0}, {"iterations": 0}])
def test_bad_parameters_are_refused_by_name(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match=next(iter(params))):
        BPR(**params)
