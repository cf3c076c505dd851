"""The LinUCB bandit and the exploring slot policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailored.ranking import LinUCB, explore
from tailored.ranking.exploration import FEATURES, features


def _recs(items: list[str], user: str = "u") -> pd.DataFrame:
    return pd.DataFrame({"user_id": user, "item_id": items,
                         "score": np.linspace(1, 0, len(items)),
                         "rank": np.arange(1, len(items) + 1)})


def test_features_by_hand() -> None:
    x = features([1, 3, 0], [1, 3, 7])
    assert x.tolist() == [[1, 1, 0, 1], [1, 0.5, 0, 0.5], [1, 0, 1, 1 / 3]]
    with pytest.raises(ValueError, match="positions >= 1"):
        features([1], [0])


def test_a_fresh_bandit_is_the_ridge_prior() -> None:
    bandit = LinUCB(alpha=2.0, ridge=1.0)
    mean, width = bandit.predict(["a"], np.array([[1.0, 0.0, 0.0, 0.0]]))
    # A0 = I, A_a = 1, B_a = 0: mean 0, variance z'z + 1 = 2.
    assert mean.tolist() == [0.0]
    assert width == pytest.approx([np.sqrt(2)])
    assert bandit.upper_bounds(["a"], np.array([[1.0, 0.0, 0.0, 0.0]])) == pytest.approx(
        [2 * np.sqrt(2)])


def test_one_update_by_hand() -> None:
    """Li et al.'s algorithm 2 with the arm feature 1, for z = e_bias and reward 1."""
    bandit = LinUCB(ridge=1.0).learn_one("a", [1, 0, 0, 0], 1.0)
    # A0 += B'A⁻¹B (0) ; A_a = 2, B_a = e1, b_a = 1 ; A0 += e1e1' - e1e1'/2 -> diag(1.5,1,1,1)
    # b0 += e1 - e1 * 1/2 -> (0.5, 0, 0, 0)
    assert np.diag(bandit.shared_matrix_).tolist() == [1.5, 1, 1, 1]
    assert bandit.shared_vector_.tolist() == [0.5, 0, 0, 0]
    assert bandit.item_ids_ == ["a"]
    # beta = 1/3 e1 ; theta_a = (1 - 1/3) / 2 = 1/3 ; mean = 1/3 + 1/3 = 2/3: the ridge
    # estimate of the click rate of one click split between shared and own intercept.
    mean, _ = bandit.predict(["a"], np.array([[1.0, 0, 0, 0]]))
    assert mean == pytest.approx([2 / 3])


def test_the_bandit_learns_which_items_get_clicked() -> None:
    bandit = LinUCB(alpha=0.5)
    rng = np.random.default_rng(0)
    x = features([1], [1])[0]
    for _ in range(300):
        bandit.learn_one("good", x, float(rng.random() < 0.6))
        bandit.learn_one("bad", x, float(rng.random() < 0.1))
    mean, width = bandit.predict(["good", "bad"], np.tile(x, (2, 1)))
    assert mean[0] == pytest.approx(0.6, abs=0.08)
    assert mean[1] == pytest.approx(0.1, abs=0.08)
    assert (width < 0.1).all()
    assert bandit.shows_.tolist()[:2] == [300, 300]


def test_new_items_get_the_widest_bound() -> None:
    bandit = LinUCB()
    for item in ("a", "b"):
        for _ in range(50):
            bandit.learn_one(item, features([1], [1])[0], 0.0)
    _, width = bandit.predict(["a", "b", "brand-new"], features([1, 2, 0], [1, 1, 1]))
    assert width[2] > 3 * max(width[0], width[1])


def test_learn_one_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="4 finite numbers"):
        LinUCB().learn_one("a", [1.0, 2.0], 1.0)
    with pytest.raises(ValueError, match="reward must be a finite number"):
        LinUCB().learn_one("a", [1.0, 0, 0, 1], float("nan"))
    with pytest.raises(ValueError, match="one row per item"):
        LinUCB().predict(["a", "b"], np.ones((1, 4)))


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    bandit = LinUCB(alpha=0.3)
    for i in range(40):  # more than the initial array size: growth is saved right
        bandit.learn_one(f"item{i % 20}", features([i % 5], [1 + i % 3])[0], float(i % 2))
    bandit.save(tmp_path / "bandit")
    assert sorted(p.name for p in (tmp_path / "bandit").iterdir()) == ["arrays.npz",
                                                                      "config.json"]
    loaded = LinUCB.load(tmp_path / "bandit")
    x = features([1, 0, 3], [1, 2, 3])
    items = ["item1", "item7", "unknown"]
    assert loaded.config == bandit.config
    np.testing.assert_allclose(loaded.upper_bounds(items, x), bandit.upper_bounds(items, x))
    loaded.learn_one("item1", x[0], 1.0)  # keeps learning after a load
    assert loaded.shows_[loaded.item_ids_.index("item1")] == 3


def test_load_refuses_other_artifacts(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"kind": "other"}')
    with pytest.raises(ValueError, match="does not hold a LinUCB"):
        LinUCB.load(tmp_path)


def test_zero_share_is_the_base_ranking_with_propensity_one() -> None:
    shown = explore(_recs(["a", "b", "c", "d"]), LinUCB(), k=3, share=0.0,
                    new_items=["fresh"])
    assert shown["item_id"].tolist() == ["a", "b", "c"]
    assert shown["propensity"].tolist() == [1.0, 1.0, 1.0]
    assert not shown["explored"].any()
    assert shown["base_rank"].tolist() == [1, 2, 3]


def test_full_share_is_a_bandit_reranking() -> None:
    bandit = LinUCB(alpha=0.0)
    for _ in range(20):  # c clicked at the top, a and b not
        bandit.learn_shown(explore(_recs(["c", "a", "b"]), LinUCB(), k=3, share=0.0),
                           clicked={"c"})
    shown = explore(_recs(["a", "b", "c"]), bandit, k=3, share=1.0)
    assert shown["item_id"].tolist()[0] == "c"
    assert shown["propensity"].tolist() == [1.0, 1.0, 1.0]  # deterministic given the state


def test_propensities_are_those_of_the_mixing_policy() -> None:
    bandit = LinUCB()
    for _ in range(10):
        bandit.learn_one("a", features([1], [1])[0], 0.0)  # a is known and dull
    shown = explore(_recs(["a", "b"]), bandit, k=1, share=0.25, new_items=["fresh"], rng=1)
    # The base's first is a, the bandit's choice is fresh (widest bound): whichever is
    # shown, its propensity is its branch's probability.
    row = shown.iloc[0]
    assert row["item_id"] in ("a", "fresh")
    assert row["propensity"] == (0.75 if row["item_id"] == "a" else 0.25)
    assert row["explored"] == (row["item_id"] == "fresh")


def test_shares_match_in_expectation() -> None:
    bandit = LinUCB()
    for _ in range(10):
        bandit.learn_one("a", features([1], [1])[0], 0.0)
    shown = explore(pd.concat([_recs(["a", "b"], user=f"u{i}") for i in range(300)]),
                    bandit, k=1, share=0.2, new_items=["fresh"], rng=0)
    assert shown["explored"].mean() == pytest.approx(0.2, abs=0.07)


def test_new_items_fill_when_the_base_runs_out() -> None:
    shown = explore(_recs(["a"]), LinUCB(), k=3, share=0.0, new_items=["n1", "n2", "a"])
    assert shown["item_id"].tolist() == ["a", "n1", "n2"]
    assert shown["base_rank"].tolist() == [1, 0, 0]
    assert shown["score"].tolist() == [1.0, 0.0, 0.0]


def test_learn_shown_uses_a_clicked_column_or_ids() -> None:
    shown = explore(_recs(["a", "b"]), LinUCB(), k=2, share=0.0)
    by_ids = LinUCB().learn_shown(shown, clicked=["b"])
    by_column = LinUCB().learn_shown(shown.assign(clicked=[False, True]))
    assert by_ids.clicks_[:2].tolist() == by_column.clicks_[:2].tolist() == [0, 1]
    with pytest.raises(ValueError, match="say which items were clicked"):
        LinUCB().learn_shown(shown)
    with pytest.raises(ValueError, match="base_rank"):
        LinUCB().learn_shown(shown.drop(columns="base_rank"), clicked=[])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"share": 1.5}, "share must be between 0 and 1"),
    ({"k": 0}, "k must be at least 1"),
])
def test_explore_refuses_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        explore(_recs(["a"]), LinUCB(), **kwargs)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.integers(0, 4), st.floats(0, 1), st.integers(1, 6),
       st.integers(0, 2**16))
def test_shown_lists_are_valid_and_propensities_in_range(
        n_base: int, n_new: int, share: float, k: int, seed: int) -> None:
    base = [f"i{i}" for i in range(n_base)]
    new = [f"n{i}" for i in range(n_new)]
    shown = explore(_recs(base), LinUCB(), k=k, share=share, new_items=new, rng=seed)
    items = shown["item_id"].tolist()
    assert len(items) == len(set(items)) == min(k, n_base + n_new)
    assert shown["rank"].tolist() == list(range(1, len(items) + 1))
    assert ((shown["propensity"] > 0) & (shown["propensity"] <= 1)).all()
    assert list(FEATURES) == ["bias", "relevance", "new", "position"]
