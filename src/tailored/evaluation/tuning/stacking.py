"""The composites stacked on the single families: the ranker's sources and the blend's
parts (the tuned configurations of the best families), what they cost, and which
parts fit the time left.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import optuna
import pandas as pd

from ..search_spaces import (
    STACKED_STARTING_POINTS,
    STARTING_POINTS,
    blend_space,
    blend_starting_point,
)
from .budget import PREDICTION_MARGIN, Budget
from .search import Search, best_candidates, start_params

STACK_SHARE = 0.5  # of the search time, kept for the stacked composites when searched
STACKED_FAMILIES = 4  # the best families whose tuned configurations are its sources
BLENDED_FAMILIES = 3  # the best families whose tuned configurations the hybrid blends
# Popularity joins the blend beyond the best families, at this first weight: it costs
# next to nothing and carries what the personalised models lack, what is wanted now (on
# the temporal fold of a 20,000-item sample shop of another seed than the benchmark's,
# LightGCN's 0.155 NDCG@10 went to 0.166 with decayed popularity at a quarter of its
# weight, and down to 0.142 at an equal weight).
TREND_WEIGHT = 0.25

# The time the ranker leaves for the blend after it: this many of the blend's first trial
# (which fits its parts; a later one only re-weighs them, so it costs a fraction of that),
# and its re-check and final fit.
BLEND_ROUNDS = 3

# A stacked composite is tried when this many of its first trial (which fits its parts
# for the later trials), its re-check and its final fit fit the time left.
STACK_ROUNDS = 2

# Families made of other families: never a source, and stacked (searched last, on the
# tuned configurations of the others, in this order) when at least this many other
# families are searched.
COMPOSITES = {"ranked": 1, "weighted": 2}


def stacked_sources(trials: pd.DataFrame, families: Sequence[str],
                    count: int = STACKED_FAMILIES) -> list[dict[str, Any]]:
    """The stacked ranker's candidate sources, from the trials of single families: the
    best configuration of each of the ``count`` best families on the first fold (the
    leader proposes 100 items, the others 50); when the leader's fit is random (it takes
    a seed: SASRec, ALS, BPR), a second fit of it with the next seed, so the ranker
    averages out the noise of one fit; and item-kNN of the user's last 5 items (with
    item-kNN's tuned configuration) when item-kNN was searched.

    Examples
    --------
    >>> trials = pd.DataFrame({"family": ["popular", "ease", "item_knn"], "number": 0,
    ...     "params": [{"half_life_days": 3.0}, {"regularization": 250.0}, {}],
    ...     "iterations": None, "value": [0.3, 0.2, 0.1], "state": "COMPLETE"})
    >>> [(s.get("name", s["model"]), s["n"]) for s in stacked_sources(trials, ["popular",
    ...     "ease", "item_knn"], count=2)]
    [('popular', 100), ('ease', 50), ('item_knn_recent', 30)]
    """
    leaders = _leaders(trials, families)
    sources = [{"model": family, "params": leader["params"], "n": 100 if position == 0 else 50}
               for position, (family, leader) in enumerate(list(leaders.items())[:count])]
    if sources and "seed" in sources[0]["params"]:
        first = sources[0]
        sources.insert(1, {"name": f"{first['model']}_reseeded", "model": first["model"],
                           "params": {**first["params"], "seed": first["params"]["seed"] + 1},
                           "n": 50})
    if "item_knn" in leaders:
        sources.append({"name": "item_knn_recent", "model": "item_knn",
                        "params": leaders["item_knn"]["params"], "recent_items": 5, "n": 30})
    return sources


def blended_parts(trials: pd.DataFrame, families: Sequence[str],
                  count: int = BLENDED_FAMILIES) -> list[dict[str, Any]]:
    """The stacked weighted hybrid's parts: the best configuration of each of the
    ``count`` best single families on the first fold, best first, and popularity's
    after them when it was searched and is not among them (first weighted
    ``TREND_WEIGHT``, the others 1).

    Examples
    --------
    >>> trials = pd.DataFrame({"family": ["popular", "ease", "item_knn"], "number": 0,
    ...     "params": [{"half_life_days": 3.0}, {"regularization": 250.0}, {}],
    ...     "iterations": None, "value": [0.3, 0.2, 0.1], "state": "COMPLETE"})
    >>> [part["model"] for part in blended_parts(trials, ["popular", "ease", "item_knn"],
    ...                                          count=2)]
    ['popular', 'ease']
    >>> trending = trials.assign(value=[0.1, 0.3, 0.2])  # popularity last
    >>> [(part["model"], part["weight"]) for part in blended_parts(
    ...     trending, ["popular", "ease", "item_knn"], count=2)]
    [('ease', 1.0), ('item_knn', 1.0), ('popular', 0.25)]
    """
    leaders = _leaders(trials, families)
    parts = [{"model": family, "params": leader["params"], "weight": 1.0}
             for family, leader in list(leaders.items())[:count]]
    if "popular" in leaders and all(part["model"] != "popular" for part in parts):
        parts.append({"model": "popular", "params": leaders["popular"]["params"],
                      "weight": TREND_WEIGHT})
    return parts


def _leaders(trials: pd.DataFrame, families: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each single family's best configuration on the first fold, best family first."""
    singles = [family for family in families if family not in COMPOSITES]
    leaders: dict[str, dict[str, Any]] = {}
    for candidate in best_candidates(trials[trials["family"].isin(singles)], singles,
                                 len(singles)):
        leaders.setdefault(candidate["family"], candidate)
    return leaders


def stacked_composites(families: Sequence[str]) -> list[str]:
    """The composites among ``families`` that :func:`tune` stacks on the others (those
    with at least ``COMPOSITES[family]`` others searched), in the order it stacks them:
    the ranker, then the blend. Alone, a composite keeps its default parts."""
    singles = [family for family in families if family not in COMPOSITES]
    return [family for family, fewest in COMPOSITES.items()
            if family in families and len(singles) >= fewest]


def blend_seconds(search: Search, family: str, left: float,
                   finishing_costs: Callable[[str, Mapping[str, Any]], tuple[float, float]]
                   ) -> float:
    """The time a composite stacked after another keeps from it: ``BLEND_ROUNDS`` of its
    first trial and its re-check and final fit (which :func:`affordable_parts` will ask
    for, with the guard's margin), when it fits in ``left`` at all (none otherwise)."""
    parts, _ = affordable_parts(search, family, left, finishing_costs)
    if not parts:
        return 0.0
    params = _stacked_start(search, family, parts)
    first = search.costs.seconds(family, params, search.fold_shape)
    return BLEND_ROUNDS * first + PREDICTION_MARGIN * sum(finishing_costs(family, params))


def stacked_parts(family: str, trials: pd.DataFrame, families: Sequence[str]
                  ) -> list[dict[str, Any]]:
    """What the composite ``family`` is stacked on, from the trials of ``families``: the
    ranker's sources (:func:`stacked_sources`) or the blend's parts
    (:func:`blended_parts`)."""
    if family == "ranked":
        return stacked_sources(trials, families)
    return blended_parts(trials, families)


def stack_allowance(search: Search, budget: Budget, stacked: Sequence[str],
                finishing_costs: Callable[[str, Mapping[str, Any]], tuple[float, float]]
                ) -> float:
    """The search time kept for the stacked composites: ``STACK_SHARE`` of what is left
    when the cost model says one of them (on the screen's leaders, the costliest parts
    left out as needed) fits in it, else none."""
    kept = STACK_SHARE * budget.search_left()
    fits = any(affordable_parts(search, family, kept, finishing_costs)[0]
               for family in stacked)
    return kept if fits else 0.0


def _stacked_start(search: Search, family: str, parts: list[dict[str, Any]]
                   ) -> dict[str, Any]:
    """The model params of a stacked composite's first trial on ``parts``."""
    if family == "ranked":
        start = STACKED_STARTING_POINTS.get(search.protocol, STARTING_POINTS["ranked"])
        return {**start_params("ranked", search.shape, start), "sources": parts}
    fixed = cast(optuna.Trial, optuna.trial.FixedTrial(blend_starting_point(parts)))
    return blend_space(fixed, search.shape, parts=parts)


def _stack_cost(search: Search, family: str, parts: list[dict[str, Any]],
                finishing_costs: Callable[[str, Mapping[str, Any]], tuple[float, float]]
                ) -> float:
    """Predicted seconds a stacked composite needs on ``parts``: ``STACK_ROUNDS`` of its
    first trial (its parts fitted) and its re-check and final fit, held to the margin
    the guard holds them to (else its re-check finds it no longer fits what is left)."""
    params = _stacked_start(search, family, parts)
    trial = search.costs.seconds(family, params, search.fold_shape)
    return STACK_ROUNDS * trial + PREDICTION_MARGIN * sum(finishing_costs(family, params))


def affordable_parts(search: Search, family: str, left: float,
                      finishing_costs: Callable[[str, Mapping[str, Any]],
                                                tuple[float, float]]
                      ) -> tuple[list[dict[str, Any]], list[str]]:
    """The stacked composite's parts (:func:`stacked_parts`, best first), some left out
    until its trials, re-check and final fit fit in ``left`` seconds (none when they
    never do with ``COMPOSITES[family]`` parts), and the names of those left out. The
    ranker's second seed of the leader goes first, the leader never; of the others, the
    weakest part whose absence lets the rest fit, else the costliest, and again."""
    parts = stacked_parts(family, search.trials(search.singles), search.singles)
    dropped: list[str] = []

    def fits(kept: list[dict[str, Any]]) -> bool:
        return _stack_cost(search, family, kept, finishing_costs) <= left

    while len(parts) >= COMPOSITES[family] and not fits(parts):
        droppable = ([p for p in parts if p.get("name", "").endswith("_reseeded")]
                     or parts[1:] or parts)
        enough = [p for p in droppable if len(parts) > COMPOSITES[family]
                  and fits([q for q in parts if q is not p])]
        left_out = enough[-1] if enough else max(droppable, key=lambda p: search.costs.seconds(
            p["model"], p["params"], search.fold_shape, scored=False))
        dropped.append(left_out.get("name", left_out["model"]))
        parts = [p for p in parts if p is not left_out]
    return (parts, dropped) if len(parts) >= COMPOSITES[family] else ([], dropped)
