"""The budgeted phases of a tuning call: the screen (on a proxy of the users when the
data is large), the search shared by rank, the stack, and the leftover search.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tailored.dataset import Split

from ..costs import CostModel
from ..search_spaces import (
    EPOCH_FAMILIES,
    ITERATIVE_FAMILIES,
    DataShape,
)
from .budget import PREDICTION_MARGIN, Budget, Ledger
from .early_stopping import iteration_checkpoints
from .search import Search, first_check_steps, search_order, shape_of, start_params, typical_seconds
from .stacking import affordable_parts, blend_seconds, stack_allowance

# Share of the search time by a family's rank after the screen (best first; the rest
# get the last share). Families search from the least to the most promising, and the
# time one leaves unused goes to those after it, so the leader gets the remainder.
RANK_SHARES: tuple[float, ...] = (1.0, 0.5, 0.25, 0.1)

# Of the search time left, at most, for one family's screen trial: a family whose
# screen takes that long still leaves time for its re-check and final fit (two fits).
SCREEN_SHARE = 1 / 3

# A screen predicted to take more than this share of the budget runs on a subsample of
# the users (a proxy fold), sized to take about that share.
PROXY_SHARE = 0.25
MIN_PROXY_USERS = 200  # the fewest users a proxy keeps: fewer validate too noisily
# A first fold with fewer users is never subsampled: halving a few hundred users ranks
# families by noise (MovieLens 100K's 943, halved for SASRec's sake, chose ALS over EASE).
PROXY_FROM_USERS = 2000
SCREEN_EPOCHS = 10  # epochs an epoch family's screen is predicted to take (to plan a proxy)

# A family whose starting point would take more than this share of the budget to re-check
# and fit on all the data is not screened: it could not win within the budget.
FINISHING_SHARE = 0.5


def spend(search: Search, budget: Budget, ledger: Ledger, families: list[str],
           stacked: list[str],
           finishing_costs: Callable[[str, Mapping[str, Any]], tuple[float, float]]
           ) -> None:
    """The budgeted phases of :func:`tune`: screen ``families``, search, stack the
    composites ``stacked`` on them, and search again in the time the stack left."""
    clock, costs, fold_shape = search.clock, search.costs, search.fold_shape

    def until(end: float, kept: float = 0.0) -> Callable[[], float]:
        """A phase's deadline: ``end``, or earlier when the search must end earlier to
        keep ``kept`` seconds (and the guard and final fit their predicted time)."""
        return lambda: min(end, budget.search_end() - kept)

    screened: list[str] = []
    # 1. Screen, the cheapest first: the time held back for re-checks grows with each
    # family screened, so the costliest are the ones left out when it runs short.
    by_cost = sorted(families, key=lambda family: _screen_seconds(
        costs, family, start_params(family, search.shape), fold_shape))
    for family in by_cost:
        allowance = SCREEN_SHARE * budget.search_left()
        params = start_params(family, search.shape)
        first_check = costs.seconds(family, params, fold_shape,
                                    steps=first_check_steps(family, params))
        if first_check > allowance:
            ledger.note(f"{family} left out: its first fit would take about "
                        f"{first_check:.1f} s, more than the {allowance:.1f} s its screen "
                        "can have")
            ledger.spent("screen", family, 0.0, 0.0, 0)
            continue
        planned = min(allowance, _screen_seconds(costs, family, params, fold_shape))
        search.deadline = until(clock() + allowance)
        began = clock()
        ran = search.run(family, n_trials=1)
        ledger.spent("screen", family, planned, clock() - began, ran)
        screened.append(family)

    stack_time = stack_allowance(search, budget, stacked, finishing_costs)
    _search_phase("search", search, budget, ledger, screened, until, stack_time)  # 2. search

    for position, family in enumerate(stacked if screened else []):  # 3. stack
        left = budget.search_left()
        # The blend, after the ranker, costs little: its time is kept first.
        kept = sum(blend_seconds(search, later, left, finishing_costs)
                   for later in stacked[position + 1:])
        own = max(0.0, left - kept)
        parts, dropped = affordable_parts(search, family, own, finishing_costs)
        if not parts:
            ledger.note(f"{family} left out: stacked on the best families it would need "
                        f"more than the {own:.1f} s left")
            ledger.spent("stack", family, 0.0, 0.0, 0)
            continue
        if dropped:
            ledger.note(f"{family}: stacked without the parts {dropped} to fit the "
                        f"{own:.1f} s left")
        search.deadline = until(clock() + left, kept)
        began = clock()
        ran = search.stack(family, parts, budgeted=True)
        ledger.spent("stack", family, own, clock() - began, ran)

    # 4. Time the stack did not use (a composite left out or stopped early) goes back
    # to the search rather than being left on the table.
    _search_phase("leftover", search, budget, ledger, screened, until)


def _search_phase(phase: str, search: Search, budget: Budget, ledger: Ledger,
                  families: list[str], until: Callable[[float, float], Callable[[], float]],
                  kept: float = 0.0) -> None:
    """Search ``families`` in the time left but ``kept`` seconds, the leader last, each
    getting its ``RANK_SHARES`` share of what the ones before it left (none when that is
    less than one of its typical trials: it goes to the next), and ending sooner when the
    time held back for the re-check grows meanwhile."""
    clock = search.clock
    order = search_order({f: search.studies[f] for f in families})
    weights = [RANK_SHARES[min(rank, len(RANK_SHARES) - 1)]
               for rank in range(len(order))][::-1]
    for position, family in enumerate(order):
        available = max(0.0, budget.search_left() - kept)
        share = available * weights[position] / sum(weights[position:])
        typical = typical_seconds(search.studies[family])
        if share <= 0 or share < typical:  # not one trial: the time goes to the next
            if phase == "search":
                ledger.spent(phase, family, share, 0.0, 0)
            continue
        # The shares of the families after it are kept too: when this family's better
        # configurations cost more to re-check, it ends sooner, not the leader.
        search.deadline = until(clock() + share, kept + available - share)
        began = clock()
        ran = search.run(family, budgeted=True)
        ledger.spent(phase, family, share, clock() - began, ran)


def _screen_seconds(costs: CostModel, family: str, params: Mapping[str, Any],
                    shape: DataShape) -> float:
    """Predicted seconds of a family's screen trial at ``params``: every checkpoint up to
    its iterations (an iterative family), ``SCREEN_EPOCHS`` epochs checked one by one (an
    epoch family), else one check."""
    if family in ITERATIVE_FAMILIES and "iterations" in params:
        return sum(costs.seconds(family, params, shape, steps=n) for n in
                   iteration_checkpoints(int(params["iterations"]), ITERATIVE_FAMILIES[family]))
    if family in EPOCH_FAMILIES:
        return SCREEN_EPOCHS * costs.seconds(family, params, shape, steps=1)
    return costs.seconds(family, params, shape)


def plan_screen(first: Split, second: Split, families: Sequence[str], shape: DataShape,
                 costs: CostModel, budget_seconds: float, seed: int, ledger: Ledger,
                 recheck: int = 3) -> tuple[Split, list[str]]:
    """The fold the trials run on and the families worth screening there.

    A family is left out when re-checking its starting point on ``second`` and fitting
    it on all the data (an epoch family at ``SCREEN_EPOCHS``) would take more than
    ``FINISHING_SHARE`` of the budget: it could not win within it (when every family is
    so, the cheapest is kept, and the data said too large). The fold is ``first``, or
    (with ``PROXY_FROM_USERS`` users or more) a subsample of its users when the screen
    there would take more than ``PROXY_SHARE`` of the budget (sized to take about that
    share of what the ``recheck`` candidates' re-checks and the final fit leave, assuming
    costs in proportion to the events)."""
    first_shape, second_shape = shape_of(first), shape_of(second)

    def finishing(family: str) -> float:
        params = start_params(family, shape)
        if family in EPOCH_FAMILIES:
            params["epochs"] = SCREEN_EPOCHS
        return (costs.seconds(family, params, second_shape)
                + costs.seconds(family, params, shape, scored=False))

    cost = {family: finishing(family) for family in families}
    screened = [family for family in families
                if cost[family] <= FINISHING_SHARE * budget_seconds]
    if not screened:
        screened = [min(families, key=cost.__getitem__)]
        ledger.note(f"the data is too large for the budget: even {screened[0]} would take "
                    f"about {cost[screened[0]]:.0f} s to re-check and fit on all data; it "
                    "is the only family searched")
    for family in families:
        if family not in screened:
            ledger.note(f"{family} left out: re-checking its starting point and fitting "
                        f"it on all data would take about {cost[family]:.0f} s, more "
                        f"than {FINISHING_SHARE:.0%} of the budget")
            ledger.spent("screen", family, 0.0, 0.0, 0)
    screen = sum(_screen_seconds(costs, family, start_params(family, shape), first_shape)
                 for family in screened)
    allowed = PROXY_SHARE * budget_seconds
    users = first.train.n_users
    if screen <= allowed or users < PROXY_FROM_USERS:
        return first, screened
    # The re-checks and the final fit come out of the same budget: the screen gets its
    # share of what they leave (as many as will be re-checked, each costing like the
    # average family, with the guard's margin).
    held = PREDICTION_MARGIN * min(recheck, len(screened)) * statistics.mean(
        cost[family] for family in screened)
    allowed = PROXY_SHARE * max(0.0, budget_seconds - held)
    proxy = _user_sample(first, allowed / screen, seed)
    ledger.note(f"the screen on the first fold's {users} users would take about "
                f"{screen:.0f} s, more than {PROXY_SHARE:.0%} of the budget: the search "
                f"runs on {proxy.train.n_users} of them ({len(proxy.train)} of "
                f"{len(first.train)} events), sized to take {PROXY_SHARE:.0%} of what "
                f"the re-checks and the final fit leave (about {held:.0f} s), and its "
                "best candidates are judged on the second fold alone")
    return proxy, screened


def _user_sample(split: Split, fraction: float, seed: int) -> Split:
    """``split`` on some of its users (their training events and relevant items): the
    users it validates first, then the others, in random order, until they hold
    ``fraction`` of the training events (at least ``MIN_PROXY_USERS`` users)."""
    rng = np.random.default_rng(seed)
    counts = split.train.events["user_id"].value_counts(sort=False)
    validated = counts.index.isin(split.truth["user_id"].unique())
    order = np.concatenate([rng.permutation(np.flatnonzero(validated)),
                            rng.permutation(np.flatnonzero(~validated))])
    taken = int(np.searchsorted(np.cumsum(counts.to_numpy()[order]),
                                fraction * len(split.train))) + 1
    kept = counts.index[order[:max(taken, MIN_PROXY_USERS)]]
    train = split.train.filter(split.train.events["user_id"].isin(kept).to_numpy())
    truth = split.truth[split.truth["user_id"].isin(kept)].reset_index(drop=True)
    return Split(name=f"{split.name} ({len(kept)} of {len(counts)} users)", train=train,
                 truth=truth, protocol=split.protocol, params=split.params)
