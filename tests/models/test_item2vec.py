"""Item2Vec: the shared contract plus what is particular to item vectors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from tailored.dataset import Dataset, UserQuery
from tailored.models import Recommender
from tailored.models.item2vec import _MAX_SENTENCE, Item2Vec, _sentences
from tailored.testing import RecommenderContract
from tailored.testing.data import checkerboard


def small_model(**params: Any) -> Item2Vec:
    # 200 events: the default frequent-item subsampling would drop most of them.
    defaults: dict[str, Any] = {"factors": 8, "window": 5, "epochs": 50, "min_count": 1,
                                   "sample": 0.0}
    return Item2Vec(**{**defaults, **params})


class TestItem2Vec(RecommenderContract):
    def make_model(self) -> Recommender:
        return small_model()


class TestItem2VecCosine(RecommenderContract):
    def make_model(self) -> Recommender:
        return small_model(scoring="cosine", recent=3, recency_decay=0.7)


@pytest.fixture(scope="module")
def data() -> Dataset:
    return checkerboard()


@pytest.fixture(scope="module")
def fitted(data: Dataset) -> Item2Vec:
    return small_model().fit(data)


@pytest.mark.parametrize(("parameter", "value"), [
    ("scoring", "dot"), ("ns_exponent", 3.0),
    ("factors", 0), ("window", 0), ("negative", 0), ("epochs", 0), ("min_count", 0),
    ("sample", -0.1), ("learning_rate", 0.0), ("workers", 0), ("recent", 0),
    ("recency_decay", 0.0), ("recency_decay", 1.5), ("seed", -1),
])
def test_out_of_range_parameters_are_refused_by_name(parameter: str, value: Any) -> None:
    params: dict[str, Any] = {parameter: value}
    with pytest.raises(ValidationError, match=parameter):
        Item2Vec(**params)


def test_item_vectors_have_one_row_per_item_and_zeros_for_unknown(fitted: Item2Vec) -> None:
    vectors = fitted.item_vectors(["A000", "nope", "B001"])
    assert vectors.shape == (3, 8) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors[[0, 2]], axis=1).min() > 0
    assert not vectors[1].any()
    np.testing.assert_array_equal(fitted.item_vectors("A000")[0], vectors[0])


def test_items_of_a_group_are_closer_to_each_other(fitted: Item2Vec) -> None:
    vectors = fitted.item_vectors([f"{g}{i:03d}" for g in "AB" for i in range(10)])
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ unit.T
    same = np.kron(np.eye(2), np.ones((10, 10))).astype(bool)
    np.fill_diagonal(same, False)
    other = ~np.kron(np.eye(2), np.ones((10, 10))).astype(bool)
    assert cosine[same].mean() > cosine[other].mean() + 0.5


def test_cosine_scores_are_cosines_to_the_mean_unit_vector(data: Dataset) -> None:
    model = small_model(scoring="cosine").fit(data)
    history = ["A000", "A003", "B001"]
    unit = model.item_vectors(history)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    user = unit.mean(axis=0)
    expected = unit @ user / np.linalg.norm(user)
    scores = model.score(UserQuery.from_histories({"u": history}), items=history)[0]
    np.testing.assert_allclose(scores, expected, atol=1e-5)


def test_context_scores_are_skip_gram_logits(fitted: Item2Vec) -> None:
    history = ["A000", "A003"]
    user = fitted.item_vectors(history).mean(axis=0)
    columns = fitted.item_vocab_.indices(["A001", "B001"])
    expected = fitted.context_vectors_[columns] @ user
    scores = fitted.score(UserQuery.from_histories({"u": history}), items=["A001", "B001"])[0]
    np.testing.assert_allclose(scores, expected, rtol=1e-5)


def test_the_latest_items_drive_a_recent_query(data: Dataset) -> None:
    model = small_model(recent=2).fit(data)
    # Old taste b, latest taste a: only the last two items count.
    query = UserQuery(("switcher",), pd.DataFrame({
        "user_id": "switcher", "item_id": ["B000", "B001", "B002", "A000", "A001"],
        "timestamp": pd.date_range("2026-02-01", periods=5, freq="h", tz="UTC")}))
    recs = model.recommend(query, k=3)
    assert recs["item_id"].str[0].eq("A").all()
    everything = small_model().fit(data).recommend(query, k=3)
    assert everything["item_id"].str[0].eq("B").all()


def test_recency_decay_tilts_towards_the_latest_item(data: Dataset) -> None:
    history = {"mixed": ["B000", "A000"]}  # no timestamps: frame order, A000 is latest
    flat = small_model().fit(data).score(UserQuery.from_histories(history))[0]
    tilted = small_model(recency_decay=0.1).fit(data).score(
        UserQuery.from_histories(history))[0]
    groups = data.item_vocab.ids.astype(str)
    a, b = np.char.startswith(groups, "A"), np.char.startswith(groups, "B")
    assert tilted[a].mean() - tilted[b].mean() > flat[a].mean() - flat[b].mean()


@pytest.mark.parametrize("scoring", ["context", "cosine"])
def test_rare_items_get_no_vector_and_score_lowest(scoring: str) -> None:
    events = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2", "u3", "u3", "u3", "u4"],
                           "item_id": ["x", "y", "x", "y", "x", "y", "rare", "z"]})
    model = Item2Vec(factors=4, epochs=20, min_count=2, scoring=scoring).fit(
        Dataset.from_frame(events))
    assert not model.item_vectors(["rare", "z"]).any()
    scores = model.score(["u1"], items=["rare", "z", "x", "y"])[0]
    assert np.isfinite(scores).all() and scores[:2].max() < scores[2:].min()
    similar = model.similar_items("x", k=3)
    assert similar["similar_item_id"].iloc[0] == "y"


def test_a_user_with_only_rare_items_gets_the_fallback() -> None:
    events = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2", "u3"],
                           "item_id": ["x", "y", "x", "y", "rare"]})
    model = Item2Vec(factors=4, epochs=20, min_count=2).fit(Dataset.from_frame(events))
    np.testing.assert_array_equal(model.score(["u3"])[0], model.popularity_)


def test_min_count_above_every_item_warns_and_falls_back() -> None:
    events = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": ["x", "y", "x"]})
    with pytest.warns(UserWarning, match="min_count=5"):
        model = Item2Vec(min_count=5).fit(Dataset.from_frame(events))
    assert len(model.recommend("u2", k=1)) == 1


def test_similar_items_are_cosines_of_item_vectors(fitted: Item2Vec) -> None:
    similar = fitted.similar_items("A000", k=1)
    a, b = fitted.item_vectors(["A000", similar["similar_item_id"].iloc[0]])
    cosine = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert similar["score"].iloc[0] == pytest.approx(cosine, abs=1e-5)


def test_saved_item_vectors_load_unchanged(fitted: Item2Vec, tmp_path: Path) -> None:
    loaded = Item2Vec.load(fitted.save(tmp_path / "model"))
    assert isinstance(loaded, Item2Vec)
    ids = ["A000", "B003", "nope"]
    np.testing.assert_array_equal(loaded.item_vectors(ids), fitted.item_vectors(ids))


_FIT = """
import sys
import numpy as np
from tailored.models.item2vec import _MAX_SENTENCE, Item2Vec, _sentences
from tailored.testing.data import checkerboard
model = Item2Vec(factors=8, window=5, epochs=5).fit(checkerboard())
np.save(sys.argv[1], model.item_vectors(model.item_ids))
"""


def test_same_seed_same_vectors_whatever_the_hash_seed(tmp_path: Path) -> None:
    """Word2Vec hashes strings with ``hash`` by default, which PYTHONHASHSEED changes."""
    here = Item2Vec(factors=8, window=5, epochs=5).fit(checkerboard())
    other_seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    out = tmp_path / "vectors.npy"
    subprocess.run([sys.executable, "-c", _FIT, str(out)], check=True,
                   env={**os.environ, "PYTHONHASHSEED": other_seed})
    np.testing.assert_array_equal(np.load(out), here.item_vectors(here.item_ids))


def test_another_seed_gives_other_vectors(data: Dataset) -> None:
    first = small_model(epochs=5).fit(data).item_vectors(["A000"])
    second = small_model(epochs=5, seed=1).fit(data).item_vectors(["A000"])
    assert not np.allclose(first, second)


def test_long_histories_are_cut_into_sentences_gensim_trains_whole() -> None:
    long = np.arange(2 * _MAX_SENTENCE + 5)
    sentences = _sentences([np.array([3, 1]), np.zeros(0, np.int64), long])
    assert sentences[0] == ["3", "1"]
    assert [len(s) for s in sentences[1:]] == [_MAX_SENTENCE, _MAX_SENTENCE, 5]
    assert [token for s in sentences[1:] for token in s] == [str(i) for i in long]


def test_several_workers_train_a_usable_model(data: Dataset) -> None:
    model = small_model(workers=2).fit(data)
    assert np.isfinite(model.score(["a000"])).all()
