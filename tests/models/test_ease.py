"""EASE: the shared contract, the closed form, and the catalog-size guard."""

from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from pydantic import ValidationError

from tailored.dataset import Dataset, UserQuery
from tailored.models import ease
from tailored.models.base import Recommender
from tailored.models.ease import EASE
from tailored.testing import RecommenderContract
from tailored.testing.data import checkerboard


class TestEASE(RecommenderContract):
    def make_model(self) -> Recommender:
        return EASE(regularization=10.0)


class TestEASEBinary(RecommenderContract):
    def make_model(self) -> Recommender:
        return EASE(regularization=10.0, binary=True)


def _events() -> pd.DataFrame:
    """Uneven co-occurrence, so B is far from symmetric and orientation matters."""
    rows = [("u1", "x"), ("u1", "y"), ("u2", "x"), ("u2", "y"), ("u2", "z"),
            ("u3", "x"), ("u4", "x"), ("u4", "w"), ("u5", "z"), ("u5", "w")]
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


@pytest.mark.parametrize("block_budget", [2**24, 4])  # one Gram block, or one per item
def test_scores_follow_the_closed_form_of_the_paper(block_budget: int,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ease, "_BLOCK_BUDGET", block_budget)
    data = Dataset.from_frame(_events())
    model = EASE(regularization=0.5, binary=True).fit(data)
    x = (data.matrix().toarray() > 0).astype(np.float64)
    p = np.linalg.inv(x.T @ x + 0.5 * np.eye(x.shape[1]))
    b = np.eye(x.shape[1]) - p / np.diag(p)[None, :]  # B[i, j]: item i predicting item j
    assert not np.allclose(b, b.T)
    users = data.user_vocab.ids.tolist()
    np.testing.assert_allclose(model.score(users), x @ b, rtol=1e-4, atol=1e-6)


def test_the_diagonal_is_zero_so_an_item_never_predicts_itself() -> None:
    model = EASE(regularization=1.0).fit(checkerboard())
    assert np.all(np.diag(model.weights_matrix_) == 0)


def test_weights_count_unless_binary() -> None:
    events = _events().assign(event_type="view")
    events.loc[0, "event_type"] = "purchase"  # weight 8 instead of 1
    data = Dataset.from_frame(events)
    weighted = EASE(regularization=1.0).fit(data).score(["u1"])
    binary = EASE(regularization=1.0, binary=True).fit(data).score(["u1"])
    assert not np.allclose(weighted, binary)


def test_a_fresh_history_scores_like_the_same_training_row() -> None:
    data = checkerboard()
    model = EASE(regularization=10.0, binary=True).fit(data)
    mine = data.events[data.events["user_id"] == "a000"]
    fresh = UserQuery.from_histories({"a000": mine["item_id"].tolist()})
    np.testing.assert_allclose(model.score(fresh), model.score(["a000"]), rtol=1e-5)


def test_similar_items_are_rows_of_b() -> None:
    data = Dataset.from_frame(_events())
    model = EASE(regularization=0.5, binary=True).fit(data)
    similar = model.similar_items("x", k=3)
    column = data.item_vocab.indices(["x"])[0]
    row = model.weights_matrix_[column].copy()
    row[column] = -np.inf
    expected = data.item_vocab.ids[np.argsort(-row, kind="stable")[:3]]
    assert similar["similar_item_id"].tolist() == expected.tolist()


def test_a_catalog_over_max_items_is_refused_with_what_to_do() -> None:
    expected = r"max_items is 10 .* 20 items: .* 4.8 kB .*item_knn or als"
    with pytest.raises(ValueError, match=expected):
        EASE(max_items=10).fit(checkerboard(n_items=20))


@pytest.mark.parametrize("params", [{"regularization": 0.0}, {"regularization": -1.0},
                                    {"max_items": 0}])
def test_bad_parameters_are_refused_by_name(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match=next(iter(params))):
        EASE(**params)


def test_the_refusal_states_the_memory_of_a_large_catalog() -> None:
    model = EASE(max_items=10)
    with pytest.raises(ValueError, match=r"50,000 items: .* 30 GB"):
        model._fit(sp.csr_matrix((1, 50_000), dtype=np.float32), checkerboard())
