"""Exploration: a contextual bandit that learns from clicks on what it shows.

:class:`LinUCB` is the hybrid LinUCB of Li, Chu, Langford & Schapire (2010, algorithm
2): a linear click model shared by all items over a few features of the (user, item,
slot) at hand, plus an intercept of each item's own, each with its confidence bound.
It learns one shown item at a time (``learn_one``, river style) or from a shown list
(``learn_shown``); its state is plain arrays (``save``/``load``: ``config.json`` +
``arrays.npz``, no pickle).

The shared features of a candidate shown in slot ``position`` (1-based) are:

- ``bias``: 1;
- ``relevance``: ``1 / log2(1 + base_rank)``, the base model's rank of the item for
  this user (0 for an item the model does not know);
- ``new``: 1 for an item the model does not know (no events when it was trained);
- ``position``: ``1 / log2(1 + position)``, so the bandit learns position bias apart
  from the items.

An item the bandit has never shown has the widest bound on its own intercept, so a
new item (in the catalog, not in the model's vocabulary) gets a fair chance: its
upper bound starts where a known item's would, plus the uncertainty of its
intercept (cold-start exploration).

:func:`explore` fills ``k`` slots per user. For each slot, with probability
``share`` the bandit's choice (the highest upper confidence bound among the
remaining candidates, new items included) is shown, else the base model's next
item. The slot's **propensity** is the probability that this policy shows that item
in that slot given the items placed in earlier slots:
``(1 - share) * [item is the base's next] + share * [item is the bandit's choice]``
(1.0 when both agree; 1.0 everywhere with ``share=0``). ``share=1`` makes the bandit
a re-ranker of the whole list.

Service usage::

    shown = explore(model.recommend(query, k=100), bandit, k=10, share=0.1,
                    new_items=catalog_ids_the_model_lacks)
    # record shown.item_id / shown.propensity in the served log, keep shown.base_rank
    # (e.g. in the served context) and later, when clicks arrive:
    bandit.learn_shown(shown, clicked={"item-7"})
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tailored.models.artifact import read_artifact, read_meta, write_artifact
from tailored.models.threads import blas_threads

FEATURES = ("bias", "relevance", "new", "position")
_FORMAT = 1


class LinUCBConfig(BaseModel):
    """``alpha``: width of the confidence bound (0: pure exploitation of the click
    model). ``ridge``: prior strength (the identity's weight in every design matrix)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(1.0, ge=0)
    ridge: float = Field(1.0, gt=0)


def features(base_ranks: Sequence[int] | np.ndarray, positions: Sequence[int] | np.ndarray
             ) -> np.ndarray:
    """The shared features (``FEATURES``) per candidate; base rank 0 means a new item.

    Examples
    --------
    >>> features([1, 3, 0], [1, 1, 2]).round(3).tolist()
    [[1.0, 1.0, 0.0, 1.0], [1.0, 0.5, 0.0, 1.0], [1.0, 0.0, 1.0, 0.631]]
    """
    ranks = np.asarray(base_ranks, dtype=np.float64)
    slots = np.asarray(positions, dtype=np.float64)
    if (ranks < 0).any() or (slots < 1).any():
        raise ValueError("base ranks must be >= 0 (0: new item) and positions >= 1")
    ranks, slots = np.broadcast_arrays(ranks, slots)
    new = ranks == 0
    relevance = np.where(new, 0.0, 1.0 / np.log2(1.0 + np.maximum(ranks, 1)))
    return np.column_stack([np.ones(len(ranks)), relevance, new.astype(np.float64),
                            1.0 / np.log2(1.0 + slots)])


class LinUCB:
    """Hybrid LinUCB: shared linear click model + one intercept per item.

    Examples
    --------
    >>> bandit = LinUCB(alpha=1.0)
    >>> x = features([1], [1])[0]
    >>> for _ in range(20):                         # "a" is clicked, "b" never
    ...     _ = bandit.learn_one("a", x, 1.0).learn_one("b", x, 0.0)
    >>> mean, width = bandit.predict(["a", "b", "never-shown"], features([1, 1, 1], [1, 1, 1]))
    >>> bool(mean[0] > mean[2] > mean[1]), bool(width[2] > width[0])
    (True, True)
    """

    def __init__(self, config: LinUCBConfig | None = None, **params: Any) -> None:
        if config is not None and params:
            raise TypeError("pass either a config object or keyword parameters, not both")
        self.config = config if config is not None else LinUCBConfig(**params)
        d, ridge = len(FEATURES), self.config.ridge
        self.shared_matrix_ = ridge * np.eye(d)  # A0
        self.shared_vector_ = np.zeros(d)  # b0
        self.item_ids_: list[str] = []
        self._rows: dict[str, int] = {}
        self.item_matrix_ = np.zeros(0)  # A_a (scalar per item: its feature is 1)
        self.item_cross_ = np.zeros((0, d))  # B_a
        self.item_vector_ = np.zeros(0)  # b_a
        self.shows_ = np.zeros(0, dtype=np.int64)
        self.clicks_ = np.zeros(0, dtype=np.int64)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"LinUCB(alpha={self.config.alpha}, ridge={self.config.ridge}, "
                f"items={len(self.item_ids_)}, shows={int(self.shows_.sum())})")

    # ---- state -------------------------------------------------------------------------

    def _row(self, item_id: str) -> int:
        """The item's row, added with the prior when the bandit first meets it."""
        row = self._rows.get(item_id)
        if row is None:
            row = len(self.item_ids_)
            self._rows[item_id] = row
            self.item_ids_.append(item_id)
            if row >= len(self.item_matrix_):  # grow by doubling
                size = max(16, 2 * len(self.item_matrix_))
                self.item_matrix_ = _grown(self.item_matrix_, size, self.config.ridge)
                self.item_cross_ = _grown(self.item_cross_, size, 0.0)
                self.item_vector_ = _grown(self.item_vector_, size, 0.0)
                self.shows_ = _grown(self.shows_, size, 0)
                self.clicks_ = _grown(self.clicks_, size, 0)
        return row

    def _item_state(self, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(A_a, B_a, b_a) per item; the prior for items never shown."""
        get = self._rows.get
        rows = np.fromiter((get(item, -1) for item in item_ids), dtype=np.int64,
                           count=len(item_ids))
        known = rows >= 0
        a = np.full(len(rows), self.config.ridge)
        cross = np.zeros((len(rows), len(FEATURES)))
        vector = np.zeros(len(rows))
        a[known] = self.item_matrix_[rows[known]]
        cross[known] = self.item_cross_[rows[known]]
        vector[known] = self.item_vector_[rows[known]]
        return a, cross, vector

    # ---- predicting ---------------------------------------------------------------------

    def predict(self, item_ids: Sequence[str], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Expected click rate and confidence width per candidate (rows of ``x``)."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if x.shape != (len(item_ids), len(FEATURES)):
            raise ValueError(f"x must have one row per item and {len(FEATURES)} columns "
                             f"{FEATURES}, got shape {x.shape} for {len(item_ids)} items")
        return _Snapshot(self, item_ids).predict(np.arange(len(item_ids)), x)

    def upper_bounds(self, item_ids: Sequence[str], x: np.ndarray) -> np.ndarray:
        """Expected click rate plus ``alpha`` confidence widths (what the bandit picks by)."""
        mean, width = self.predict(item_ids, x)
        return mean + self.config.alpha * width

    # ---- learning -----------------------------------------------------------------------

    def learn_one(self, item_id: str, x: Sequence[float] | np.ndarray, reward: float) -> Self:
        """Learn from one shown item: its features ``x`` and the reward (1 click, 0 not)."""
        z = np.asarray(x, dtype=np.float64).ravel()
        if z.shape != (len(FEATURES),) or not np.isfinite(z).all():
            raise ValueError(f"x must be {len(FEATURES)} finite numbers {FEATURES}, got {x!r}")
        if not np.isfinite(reward):
            raise ValueError(f"reward must be a finite number, got {reward!r}")
        with self._lock:
            row = self._row(str(item_id))
            a, cross, vector = (self.item_matrix_[row], self.item_cross_[row].copy(),
                                self.item_vector_[row])
            # Li et al. (2010), algorithm 2, with the item's own feature x_a = 1.
            self.shared_matrix_ += np.outer(cross, cross) / a
            self.shared_vector_ += cross * vector / a
            a, cross, vector = a + 1.0, cross + z, vector + reward
            self.shared_matrix_ += np.outer(z, z) - np.outer(cross, cross) / a
            self.shared_vector_ += reward * z - cross * vector / a
            self.item_matrix_[row], self.item_cross_[row], self.item_vector_[row] = \
                a, cross, vector
            self.shows_[row] += 1
            self.clicks_[row] += int(reward > 0)
        return self

    def learn_shown(self, shown: pd.DataFrame, clicked: Collection[str] | None = None) -> Self:
        """Learn from a shown list (``explore``'s output or the same columns: ``item_id``,
        ``base_rank``, ``rank``). Clicked items are ``clicked`` (ids) or, without it, a
        true ``clicked`` column; every other shown item counts as not clicked."""
        missing = [c for c in ("item_id", "base_rank", "rank") if c not in shown.columns]
        if missing:
            raise ValueError(f"shown lacks column(s) {missing}; pass explore()'s output")
        if clicked is None:
            if "clicked" not in shown.columns:
                raise ValueError("say which items were clicked: clicked={...} or a "
                                 "'clicked' column")
            rewards = shown["clicked"].astype(bool).to_numpy(dtype=np.float64)
        else:
            rewards = shown["item_id"].astype(str).isin(set(clicked)).to_numpy(np.float64)
        x = features(shown["base_rank"].to_numpy(), shown["rank"].to_numpy())
        for item, row, reward in zip(shown["item_id"].astype(str), x, rewards, strict=True):
            self.learn_one(item, row, float(reward))
        return self

    # ---- persistence --------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write ``config.json`` and ``arrays.npz`` into the directory ``path``."""
        n = len(self.item_ids_)
        with self._lock:
            arrays = {"shared_matrix": self.shared_matrix_, "shared_vector": self.shared_vector_,
                      "item_ids": np.array(self.item_ids_, dtype=str),
                      "item_matrix": self.item_matrix_[:n], "item_cross": self.item_cross_[:n],
                      "item_vector": self.item_vector_[:n], "shows": self.shows_[:n],
                      "clicks": self.clicks_[:n]}
            meta = {"format": _FORMAT, "kind": "linucb", "features": list(FEATURES),
                    "config": self.config.model_dump(mode="json")}
        return write_artifact(path, meta, arrays)

    @classmethod
    def load(cls, path: str | Path) -> LinUCB:
        """Read what ``save`` wrote."""
        meta = read_meta(path)
        if meta.get("kind") != "linucb" or tuple(meta.get("features", ())) != FEATURES:
            raise ValueError(f"{path} does not hold a LinUCB bandit with features "
                             f"{FEATURES}")
        _, npz = read_artifact(path)
        bandit = cls(LinUCBConfig(**meta["config"]))
        bandit.shared_matrix_ = npz["shared_matrix"]
        bandit.shared_vector_ = npz["shared_vector"]
        bandit.item_ids_ = [str(i) for i in npz["item_ids"]]
        bandit.item_matrix_ = npz["item_matrix"].astype(np.float64)
        bandit.item_cross_ = npz["item_cross"].astype(np.float64)
        bandit.item_vector_ = npz["item_vector"].astype(np.float64)
        bandit.shows_ = npz["shows"].astype(np.int64)
        bandit.clicks_ = npz["clicks"].astype(np.int64)
        bandit._rows = {item: row for row, item in enumerate(bandit.item_ids_)}
        return bandit


class _Snapshot:
    """The bandit's state for a fixed list of candidates, read once (one request)."""

    def __init__(self, bandit: LinUCB, item_ids: Sequence[str]) -> None:
        with bandit._lock:
            self.inverse = np.linalg.inv(bandit.shared_matrix_)
            self.beta = self.inverse @ bandit.shared_vector_
            self.a, self.cross, vector = bandit._item_state(item_ids)
        self.theta = (vector - self.cross @ self.beta) / self.a
        self.cross_term = np.einsum("nd,de,ne->n", self.cross, self.inverse, self.cross)
        self.alpha = bandit.config.alpha

    def predict(self, rows: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = self.a[rows]
        inverse_x = x @ self.inverse
        variance = (np.einsum("nd,nd->n", inverse_x, x)
                    - 2 * np.einsum("nd,nd->n", inverse_x, self.cross[rows]) / a
                    + 1 / a + self.cross_term[rows] / a**2)
        return x @ self.beta + self.theta[rows], np.sqrt(np.maximum(variance, 0.0))

    def upper_bounds(self, rows: np.ndarray, x: np.ndarray) -> np.ndarray:
        mean, width = self.predict(rows, x)
        return mean + self.alpha * width


def _grown(array: np.ndarray, size: int, fill: float) -> np.ndarray:
    grown = np.full((size, *array.shape[1:]), fill, dtype=array.dtype)
    grown[:len(array)] = array
    return grown


def explore(recommendations: pd.DataFrame, bandit: LinUCB, k: int = 10, *,
            share: float = 0.1, new_items: Sequence[str] = (),
            rng: np.random.Generator | int | None = None) -> pd.DataFrame:
    """Fill ``k`` slots per user, a ``share`` of them (in expectation) by the bandit.

    Parameters
    ----------
    recommendations : frame with ``user_id``, ``item_id``, ``score``, ``rank``
        The base model's candidates, best first (more than ``k`` per user gives the
        bandit room: ``model.recommend(query, k=100)``).
    bandit : LinUCB
    share : float in [0, 1]
        Probability that a slot shows the bandit's choice instead of the base's next.
    new_items : item ids the base model cannot score (e.g. catalog items missing from
        ``model.item_ids``); they join every user's candidates with base rank 0.
    rng : random generator or seed (default: fresh randomness).

    Returns
    -------
    One row per shown item: ``user_id``, ``item_id``, ``score`` (the base score; 0 for a
    new item), ``rank`` (the slot, 1-based), ``propensity``, ``explored`` (the bandit
    put it there and the base would not have), ``base_rank`` (0: new item).

    Examples
    --------
    >>> recs = pd.DataFrame({"user_id": ["u"] * 3, "item_id": ["a", "b", "c"],
    ...                      "score": [0.9, 0.5, 0.1], "rank": [1, 2, 3]})
    >>> shown = explore(recs, LinUCB(), k=2, share=0.0)
    >>> shown[["item_id", "propensity", "explored"]].values.tolist()
    [['a', 1.0, False], ['b', 1.0, False]]
    >>> bandit = LinUCB().learn_shown(shown, clicked=())   # a and b were not clicked
    >>> shown = explore(recs, bandit, k=2, share=1.0, new_items=["fresh"], rng=0)
    >>> shown[["item_id", "propensity", "explored", "base_rank"]].values.tolist()
    [['fresh', 1.0, True, 0], ['c', 1.0, True, 3]]
    """
    if not 0 <= share <= 1:
        raise ValueError(f"share must be between 0 and 1, got {share}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    missing = [c for c in ("user_id", "item_id", "score", "rank")
               if c not in recommendations.columns]
    if missing:
        raise ValueError(f"recommendations lack column(s) {missing}; pass the frame "
                         "recommend() returned (user_id, item_id, score, rank)")
    generator = np.random.default_rng(rng)
    with blas_threads(1):  # tiny products: BLAS threads would only contend
        rows = _explore(recommendations, bandit, k, share, new_items, generator)
    columns = ["user_id", "item_id", "score", "rank", "propensity", "explored", "base_rank"]
    return pd.DataFrame.from_records(rows, columns=columns)


def _explore(recommendations: pd.DataFrame, bandit: LinUCB, k: int, share: float,
             new_items: Sequence[str], generator: np.random.Generator
             ) -> list[tuple[Any, ...]]:
    fresh = [str(item) for item in dict.fromkeys(new_items)]
    rows: list[tuple[Any, ...]] = []
    ordered = recommendations.sort_values(["rank"], kind="stable")
    for user, group in ordered.groupby("user_id", sort=False):
        base_ids = group["item_id"].astype(str).tolist()
        known = set(base_ids)
        candidates = base_ids + [item for item in fresh if item not in known]
        n_base = len(base_ids)
        base_rank = np.concatenate([np.arange(1, n_base + 1),
                                    np.zeros(len(candidates) - n_base, np.int64)])
        scores = np.concatenate([group["score"].to_numpy(np.float64),
                                 np.zeros(len(candidates) - n_base)])
        # Features but the position, which each slot sets.
        x = features(base_rank, np.ones(len(candidates)))
        snapshot = _Snapshot(bandit, candidates) if share > 0 else None
        remaining = np.ones(len(candidates), dtype=bool)
        next_base = 0  # the base's next item: base items are never skipped over
        for slot in range(1, min(k, len(candidates)) + 1):
            while next_base < n_base and not remaining[next_base]:
                next_base += 1
            exploit = next_base if next_base < n_base else -1
            explored = -1
            if snapshot is not None:
                left = np.flatnonzero(remaining)
                x[left, 3] = 1.0 / np.log2(1.0 + slot)
                bounds = snapshot.upper_bounds(left, x[left])
                explored = int(left[np.argmax(bounds)])  # ties: the better base rank
            if exploit < 0:  # only new items left: the bandit's turn whatever the share
                choice = explored if explored >= 0 else int(np.flatnonzero(remaining)[0])
                propensity = 1.0
            else:
                choice = explored if explored >= 0 and generator.random() < share else exploit
                propensity = ((1 - share) * (choice == exploit)
                              + share * (choice == explored))
            remaining[choice] = False
            rows.append((user, candidates[choice], float(scores[choice]), slot,
                         float(propensity), bool(choice != exploit), int(base_rank[choice])))
    return rows


__all__ = ["FEATURES", "LinUCB", "LinUCBConfig", "explore", "features"]
