"""SASRec keeps the shared contract, reads order, and saves without pickle."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from tailored.dataset import Dataset, UserQuery
from tailored.models import Recommender
from tailored.models.sequential import SASRec, _pad, _windows
from tailored.testing import RecommenderContract
from tailored.testing.data import checkerboard, group_of


def tiny(**params: object) -> SASRec:
    settings: dict[str, object] = dict(factors=16, blocks=1, max_length=8, epochs=30,
                                       learning_rate=0.01, dropout=0.0, batch_size=64,
                                       threads=1)
    settings.update(params)
    return SASRec(**settings)  # type: ignore[arg-type]


class TestSASRec(RecommenderContract):
    def make_model(self) -> Recommender:
        return tiny()


def test_sampled_negatives_and_two_heads_learn_the_groups() -> None:
    data = checkerboard()
    model = tiny(negatives=4, heads=2, dropout=0.1, epochs=40).fit(data)
    recs = model.recommend(data.user_vocab.ids.tolist(), k=3)
    assert (recs["user_id"].map(group_of) == recs["item_id"].map(group_of)).mean() >= 0.95


def cycles(n_users: int = 30, n_items: int = 6, length: int = 12) -> Dataset:
    """Every user walks the items in the same cycle 0 -> 1 -> ... -> n-1 -> 0."""
    rows = [(f"u{u}", f"i{(u + t) % n_items}", t) for u in range(n_users) for t in range(length)]
    return Dataset.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))


def test_the_order_of_a_history_decides_the_next_item() -> None:
    model = tiny(epochs=60).fit(cycles())
    query = UserQuery.from_histories({"at-2": ["i0", "i1", "i2"], "at-4": ["i2", "i3", "i4"]})
    recs = model.recommend(query, k=1, exclude_seen=False)
    assert recs["item_id"].tolist() == ["i3", "i5"]


def test_only_the_last_max_length_items_count() -> None:
    model = tiny(max_length=2).fit(cycles())
    long = UserQuery.from_histories({"u": ["i5", "i4", "i0", "i1"]})
    short = UserQuery.from_histories({"u": ["i0", "i1"]})
    np.testing.assert_allclose(model.score(long), model.score(short), rtol=1e-5)


def test_windows_cover_every_next_item_once() -> None:
    inputs, targets = _windows([np.arange(6), np.array([3]), np.array([1, 2])], length=3)
    # the history 0..5 gives pairs 0->1 ... 4->5, cut from the newest into windows of 3
    assert inputs.tolist() == [[3, 4, 5], [0, 1, 2], [0, 0, 2]]
    assert targets.tolist() == [[4, 5, 6], [0, 2, 3], [0, 0, 3]]
    assert _pad([np.array([7])], 3).tolist() == [[0, 0, 7]]


def test_saved_weights_are_the_state_dict(tmp_path: object) -> None:
    model = tiny(epochs=1).fit(cycles())
    arrays = model._arrays()
    assert "weights.item_embeddings.weight" in arrays
    assert arrays["weights.item_embeddings.weight"].shape == (6 + 1, 16)  # row 0 is padding
    assert all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in arrays.values())


@pytest.mark.parametrize("params, name", [
    ({"factors": 10, "heads": 3}, "heads"),
    ({"dropout": 1.0}, "dropout"),
    ({"max_length": 0}, "max_length"),
    ({"negatives": -1}, "negatives"),
    ({"threads": 0}, "threads"),
])
def test_bad_parameters_are_refused_by_name(params: dict[str, object], name: str) -> None:
    with pytest.raises(ValidationError, match=name):
        SASRec(**params)  # type: ignore[arg-type]


def test_fit_and_score_leave_global_torch_state_alone() -> None:
    import torch

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    model = tiny(epochs=1, threads=1).fit(cycles())
    model.score(["u0"])
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_importing_the_module_does_not_import_torch() -> None:
    code = "import sys, tailored.models.sequential; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_stopping_after_an_epoch_gives_the_model_of_that_many_epochs() -> None:
    seen: list[int] = []

    def after_epoch(epoch: int) -> bool:
        seen.append(epoch)
        return epoch == 3

    stopped = tiny(epochs=10).fit(cycles(), after_epoch=after_epoch)
    assert seen == [1, 2, 3] and stopped.config.epochs == 3
    fresh = tiny(epochs=3).fit(cycles())
    np.testing.assert_allclose(stopped.score(["u0", "u1"]), fresh.score(["u0", "u1"]),
                               rtol=1e-5)


def test_the_model_scores_between_epochs_and_runs_every_epoch_when_never_stopped() -> None:
    model = tiny(epochs=4)
    scores: list[np.ndarray] = []

    def after_epoch(epoch: int) -> bool:
        scores.append(model.score(["u0"]))
        return False

    model.fit(cycles(), after_epoch=after_epoch)
    assert len(scores) == 4 and model.config.epochs == 4
    assert not np.allclose(scores[0], scores[-1])  # the epochs changed the weights
    np.testing.assert_allclose(scores[-1], model.score(["u0"]), rtol=1e-6)
