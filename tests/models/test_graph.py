"""LightGCN: the shared contract, the graph propagation and the fold-in of new histories."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from pydantic import ValidationError

from tailored.dataset import Dataset, UserQuery
from tailored.models import Recommender
from tailored.models.graph import LightGCN, _normalised, _sparse
from tailored.schema import EventWeights
from tailored.testing import RecommenderContract
from tailored.testing.data import checkerboard


def tiny(**params: object) -> LightGCN:
    settings: dict[str, object] = {**LightGCN.example_params, **params}
    return LightGCN(**settings)  # type: ignore[arg-type]


class TestLightGCN(RecommenderContract):
    def make_model(self) -> Recommender:
        return tiny()


def _dense_lightgcn(graph: np.ndarray, layer0: np.ndarray, layers: int) -> np.ndarray:
    """The paper's propagation on the whole (users + items) adjacency, densely."""
    n_users, n_items = graph.shape
    adjacency = np.zeros((n_users + n_items,) * 2)
    adjacency[:n_users, n_users:] = graph
    adjacency[n_users:, :n_users] = graph.T
    degree = np.maximum(adjacency.sum(axis=1), 1)
    normalised = adjacency / np.sqrt(degree[:, None] * degree[None, :])
    total, layer = layer0.copy(), layer0.copy()
    for _ in range(layers):
        layer = normalised @ layer
        total += layer
    return total / (layers + 1)


def test_vectors_are_the_papers_propagation_and_a_history_folds_in_without_layer_0() -> None:
    data = checkerboard(n_users=8, n_items=6)
    model = tiny(layers=2, epochs=1).fit(data)
    graph = sp.csr_matrix(data.matrix() > 0, dtype=np.float32)
    layer0 = np.random.default_rng(0).normal(size=(sum(graph.shape), 3)).astype(np.float32)
    normalised = _normalised(graph)
    model._finish(torch.from_numpy(layer0), _sparse(normalised, torch),
                  _sparse(normalised.T.tocsr(), torch), normalised)
    expected = _dense_lightgcn(graph.toarray(), layer0.astype(np.float64), layers=2)
    n_users = graph.shape[0]
    np.testing.assert_allclose(model.user_factors_, expected[:n_users], atol=1e-5)
    np.testing.assert_allclose(model.item_factors_, expected[n_users:], atol=1e-5)
    # A training user's history, folded in, is their vector without layer 0's share.
    folded = model._fold_in(sp.csr_matrix(data.matrix()))
    np.testing.assert_allclose(folded, expected[:n_users] - layer0[:n_users] / 3, atol=1e-5)


def test_a_new_history_is_scored_and_explained_by_its_items() -> None:
    data = checkerboard()
    model = tiny().fit(data)
    query = UserQuery.from_histories({"new": ["A000", "A001", "A002"]})
    recs = model.recommend(query, k=3)
    assert recs["item_id"].str.startswith("A").all()
    explained = model.explanations(query, recs)
    assert (explained["reason_kind"] == "history").all()
    assert all(items[0] in {"A000", "A001", "A002"} for items in explained["reason_items"])


def test_early_stopping_keeps_the_epochs_trained() -> None:
    seen: list[int] = []

    def after_epoch(epoch: int) -> bool:
        seen.append(epoch)
        return epoch == 3

    model = tiny(epochs=10).fit(checkerboard(), after_epoch=after_epoch)
    assert seen == [1, 2, 3] and model.config.epochs == 3
    again = tiny(epochs=3).fit(checkerboard())
    np.testing.assert_allclose(model.item_factors_, again.item_factors_, rtol=1e-5)


def test_a_user_with_no_positive_event_is_not_scored_by_noise() -> None:
    events = checkerboard().events.assign(event_type="view")
    events.loc[events["user_id"] == "a000", "event_type"] = "dislike"
    data = Dataset.from_frame(events, weights=EventWeights(custom={"dislike": -1.0}))
    model = tiny().fit(data)
    row = data.user_vocab.indices(["a000"])[0]
    np.testing.assert_array_equal(model.user_factors_[row], 0.0)
    assert np.isfinite(model.score(["a000"])).all()


@pytest.mark.parametrize("params", [{"layers": 0}, {"factors": 0}, {"l2": -1.0},
                                    {"batch_size": 0}, {"learning_rate": 0.0}])
def test_out_of_range_parameters_are_refused_by_name(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match=next(iter(params))):
        LightGCN(**params)  # type: ignore[arg-type]
