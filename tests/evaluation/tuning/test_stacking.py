"""The stacked composites: the ranker's sources, the blend's parts, their time."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import optuna
import pandas as pd
import pytest

from tailored.dataset import Split, leave_last_out_split
from tailored.evaluation import tuning
from tailored.evaluation.costs import CostModel
from tailored.evaluation.search_spaces import (
    REFERENCE_SHAPE,
    SEARCH_SPACES,
    STACKED_STARTING_POINTS,
)
from tailored.evaluation.tuning import (
    BLENDED_FAMILIES,
    TuningResult,
    tune,
)
from tailored.evaluation.tuning import search as tuning_search
from tailored.evaluation.tuning import stacking as tuning_stacking
from tailored.models import create
from tailored.testing import checkerboard

from .fakes import FAMILIES, FakeClock


def _best_single_families(trials: pd.DataFrame) -> pd.Series:
    """Each single family's best first-fold value, best first."""
    singles = [family for family in FAMILIES if family not in tuning.COMPOSITES]
    return (trials[trials["family"].isin(singles)].groupby("family")["value"].max()
            .sort_values(ascending=False, kind="stable"))


def test_the_ranker_is_stacked_on_the_best_configurations_of_the_best_families(
        result: TuningResult) -> None:
    trials = result.trials
    best = _best_single_families(trials)
    sources = trials.loc[trials["family"] == "ranked", "params"].iloc[0]["sources"]
    tuned = [source for source in sources if "name" not in source]
    assert [source["model"] for source in tuned] == best.index[:tuning.STACKED_FAMILIES].tolist()
    for source in tuned:
        done = trials[(trials["family"] == source["model"]) & (trials["value"] == best[
            source["model"]])]
        leader = done.iloc[0]
        expected = dict(leader["params"])
        if not pd.isna(leader["iterations"]):
            expected["iterations"] = int(leader["iterations"])
        assert source["params"] == expected
    if "seed" in tuned[0]["params"]:  # a random leader is fitted twice, with two seeds
        again = sources[1]
        assert again["name"] == f"{tuned[0]['model']}_reseeded"
        assert again["params"] == {**tuned[0]["params"], "seed": tuned[0]["params"]["seed"] + 1}
    assert sources[-1]["recent_items"] == 5 and sources[-1]["model"] == "item_knn"
    # Every ranked trial stacks on the same sources; only its own parameters vary.
    ranked = trials.loc[trials["family"] == "ranked", "params"]
    assert all(params["sources"] == sources for params in ranked)
    assert len({params["num_leaves"] for params in ranked}) > 1


def test_the_hybrid_blends_the_best_configurations_of_the_best_families_and_popularity(
        result: TuningResult) -> None:
    trials = result.trials
    best = _best_single_families(trials)
    blends = trials.loc[trials["family"] == "weighted", "params"].tolist()
    first = blends[0]["parts"]
    top = best.index[:BLENDED_FAMILIES].tolist()
    trend = [] if "popular" in top else ["popular"]
    assert [part["model"] for part in first] == top + trend
    sources = trials.loc[trials["family"] == "ranked", "params"].iloc[0]["sources"]
    tuned = {source["model"]: source["params"] for source in sources if "name" not in source}
    for part in first:  # the same tuned configurations as the ranker's sources
        if part["model"] in tuned:
            assert part["params"] == tuned[part["model"]]
    # First the best families' plain mean, popularity at a quarter; then other weights of
    # the same parts (a part at 0 is left out).
    assert [part["weight"] for part in first] == ([1.0] * BLENDED_FAMILIES
                                                  + [tuning.TREND_WEIGHT] * len(trend))
    assert len(blends) == 2 and blends[1]["parts"] != first
    parts = {part["model"]: part["params"] for part in first}
    for part in blends[1]["parts"]:
        assert 0 < part["weight"] <= 1 and part["params"] == parts[part["model"]]
    # The blend is a candidate like any family: re-checkable and refittable from its params.
    assert create("weighted", **blends[1]).config.normalisation == blends[1]["normalisation"]


def test_to_fit_the_time_left_a_blend_drops_its_weakest_part_when_that_is_enough() -> None:
    families = ["ease", "als", "popular"]  # best first
    trials = pd.DataFrame({"family": families, "number": 0, "params": [{}, {}, {}],
                           "iterations": None, "value": [0.3, 0.2, 0.1],
                           "state": "COMPLETE"})
    costs = CostModel()
    fold = REFERENCE_SHAPE
    for family, seconds in (("ease", 4.0), ("als", 3.0), ("popular", 1.0)):
        costs.record(family, {}, fold, seconds)
    search = SimpleNamespace(trials=lambda families=None: trials, singles=families,
                             costs=costs, fold_shape=fold, shape=fold, protocol="temporal")

    def affordable(left: float) -> tuple[list[str], list[str]]:
        parts, dropped = tuning_stacking.affordable_parts(search, "weighted", left,
                                                 lambda family, params: (0.0, 0.0))
        return [part["model"] for part in parts], dropped

    def cost(models: list[str]) -> float:
        return tuning_stacking._stack_cost(search, "weighted", [{"model": m, "params": {}}
                                                       for m in models],
                                  lambda family, params: (0.0, 0.0))

    assert affordable(cost(families)) == (families, [])
    # Leaving out popular (the weakest) is enough: ALS (costlier, better) stays.
    assert affordable(cost(["ease", "als"])) == (["ease", "als"], ["popular"])
    assert affordable(cost(["ease", "popular"])) == (["ease", "popular"], ["als"])
    # When no one part's absence is enough, the costliest goes first; the leader stays,
    # and a blend needs two parts.
    assert affordable(cost(["ease", "popular"]) / 2) == ([], ["als", "popular"])


def test_with_one_other_family_the_hybrid_keeps_its_default_parts(outer: Split) -> None:
    tuned = tune(outer.train, models=["popular", "weighted"], n_trials=1)
    first = tuned.trials.loc[tuned.trials["family"] == "weighted", "params"].iloc[0]
    assert [part["model"] for part in first["parts"]] == ["als", "item_knn", "popular"]
    assert tuning.stacked_composites(["popular", "weighted", "ranked"]) == ["ranked"]
    assert tuning.stacked_composites(["popular", "ease", "weighted", "ranked"]) == [
        "ranked", "weighted"]


def test_with_a_budget_the_blend_comes_after_the_families_it_blends(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    clock = FakeClock(monkeypatch, parts=True)  # every fit takes 1 s, each part's too
    tuned = tune(outer.train, models=["popular", "ease", "item_knn", "weighted"],
                 budget_seconds=40, clock=clock)
    order = tuned.trials.sort_values("number", kind="stable")
    searched = [family for family, events, _ in clock.fits
                if events == tuned.validation["first"]["train_events"]]
    first_blend = searched.index("weighted")
    assert set(searched[:first_blend]) == {"popular", "ease", "item_knn"}
    # Its parts are fitted once, for its first trial; later trials only re-weigh them.
    blends = order[order["family"] == "weighted"]
    assert (blends["state"] == "COMPLETE").sum() >= 2
    blended = searched[first_blend:]
    assert blended.count("weighted") == len(blends[blends["state"] != "WAITING"])
    assert sorted(family for family in blended if family != "weighted") == sorted(
        part["model"] for part in blends["params"].iloc[0]["parts"])
    stack = tuned.time_split.set_index(["phase", "family"]).loc[("stack", "weighted")]
    assert stack["spent"] <= stack["planned"]
    assert tuned.elapsed == clock.now <= 40


def test_time_the_stack_leaves_unused_goes_back_to_the_search(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    ranked_space = SEARCH_SPACES["ranked"]

    def failing(trial: optuna.Trial, shape: Any) -> dict[str, Any]:
        if isinstance(trial, optuna.trial.FixedTrial):  # the cost model's plans
            return ranked_space(trial, shape)
        raise RuntimeError("no ranker today")

    # The stacked ranker's trials all fail, so it gives up at once and leaves the time
    # kept for it.
    monkeypatch.setitem(SEARCH_SPACES, "ranked", failing)
    clock = FakeClock(monkeypatch)
    tuned = tune(outer.train, models=["popular", "item_knn", "ranked"], budget_seconds=40,
                 clock=clock)
    split = tuned.time_split
    stack = split[split["phase"] == "stack"].set_index("family").loc["ranked"]
    assert stack["spent"] < stack["planned"] / 2
    leftover = split[split["phase"] == "leftover"]
    assert set(leftover["family"]) <= {"popular", "item_knn"}
    assert leftover["trials"].sum() >= 2
    assert (leftover["spent"] <= leftover["planned"]).all()
    assert tuned.elapsed == clock.now <= 40
    assert tuned.best_name in {"popular", "item_knn"}


def test_the_stacked_rankers_first_trial_mirrors_the_protocol() -> None:
    data = leave_last_out_split(checkerboard(n_users=40, n_items=40, seed=3)).train
    tuned = tune(data, models=["popular", "ranked"], n_trials=1,
                 protocol="leave-last-one-out")
    first = tuned.trials.loc[tuned.trials["family"] == "ranked", "params"].iloc[0]
    assert (first["label_split"], first["label_fraction"]) == ("per-user", 0.01)
    assert first["num_leaves"] == 7


def test_alone_the_ranker_keeps_its_default_sources(outer: Split) -> None:
    tuned = tune(outer.train, models=["ranked"], n_trials=1)
    assert "sources" not in tuned.trials["params"].iloc[0]
    assert tuned.best_name == "ranked" and tuned.best_model.is_fitted


@pytest.mark.usefixtures("every_candidate_rechecked")
def test_with_a_budget_the_ranker_is_searched_after_the_families_it_stacks_on(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    clock = FakeClock(monkeypatch)  # every fit takes 1 s (the ranker's sources are reused)
    tuned = tune(outer.train, models=["popular", "ease", "ranked"], budget_seconds=32,
                 clock=clock)
    counts = tuned.trials.groupby("family").size()
    assert counts["popular"] > 1 and counts["ease"] > 1
    # Stacked on both families, it would need more than the time left for its trials,
    # re-check and final fit (the cost model counts its sources' fits, which this clock
    # does not charge): the leader's source stays, popular's is left out, and a note says so.
    sources = tuned.trials.loc[tuned.trials["family"] == "ranked", "params"].iloc[0]["sources"]
    assert [source["model"] for source in sources] == ["ease"]
    assert tuned.notes == ["ranked: stacked without the parts ['popular'] to fit the 12.3 s "
                           "left"]
    # Every trial of the ranker comes after those of the families it stacks on.
    searched = [family for family, events, _ in clock.fits
                if events == tuned.validation["first"]["train_events"]]
    assert searched == sorted(searched, key=lambda family: family == "ranked")
    # Held back for the guard and the final fit: 5% of the budget and their predicted
    # time. The ranker gets its turn: the search keeps half of the time left after the
    # screen for it, as the cost model predicts its trials, re-check and final fit fit in
    # that (it counts the sources' fits too, twice per fit, which this clock does not
    # charge). So popular makes three trials after its screen and ease eight, and the
    # ranker nine (and one pruned), until the time its re-check and final fit need is held
    # back.
    assert len(searched) == 22 and counts["ranked"] == 10
    assert [events for _, events, _ in clock.fits[len(searched):]] == [112, 112, 112, 160]
    stack = tuned.time_split.set_index(["phase", "family"]).loc[("stack", "ranked")]
    assert stack["trials"] == 9 and stack["spent"] <= stack["planned"]
    assert tuned.elapsed == clock.now <= 32


def test_a_stacked_composite_that_stops_improving_gives_its_time_back_sooner(
        monkeypatch: pytest.MonkeyPatch, outer: Split) -> None:
    ranked_space = SEARCH_SPACES["ranked"]
    start = STACKED_STARTING_POINTS["temporal"]

    def always_the_start(trial: optuna.Trial, shape: Any) -> dict[str, Any]:
        return ranked_space(optuna.trial.FixedTrial(start), shape)

    # Every ranker trial is the same configuration, so its first is its best.
    monkeypatch.setitem(SEARCH_SPACES, "ranked", always_the_start)
    clock = FakeClock(monkeypatch)
    tuned = tune(outer.train, models=["popular", "item_knn", "ranked"], budget_seconds=200,
                 clock=clock)
    ranker = tuned.trials[tuned.trials["family"] == "ranked"]
    assert len(ranker) == tuning_search.STACKED_STALE_TRIALS + 1
    assert tuning_search.STACKED_STALE_TRIALS < tuning_search.STALE_TRIALS
    stack = tuned.time_split.set_index(["phase", "family"]).loc[("stack", "ranked")]
    assert stack["spent"] < stack["planned"]
    assert tuned.elapsed == clock.now <= 200


def test_the_time_kept_for_the_blend_after_the_ranker_is_enough_to_stack_it() -> None:
    families = ["ease", "als", "popular"]
    trials = pd.DataFrame({"family": families, "number": 0, "params": [{}, {}, {}],
                           "iterations": None, "value": [0.3, 0.2, 0.1],
                           "state": "COMPLETE"})
    costs = CostModel()
    for family, seconds in (("ease", 0.2), ("als", 0.3), ("popular", 0.1),
                            ("weighted", 0.7)):
        costs.record(family, {}, REFERENCE_SHAPE, seconds)
    search = SimpleNamespace(trials=lambda families=None: trials, singles=families,
                             costs=costs, fold_shape=REFERENCE_SHAPE, shape=REFERENCE_SHAPE,
                             protocol="temporal")

    def finishing(family: str, params: Any) -> tuple[float, float]:
        return 2.0, 3.0  # its re-check and final fit, on more data than its trials

    kept = tuning_stacking.blend_seconds(search, "weighted", 100.0, finishing)
    parts, dropped = tuning_stacking.affordable_parts(search, "weighted", kept, finishing)
    assert [part["model"] for part in parts] == families and dropped == []
    assert kept >= tuning_stacking.BLEND_ROUNDS * costs.seconds(
        "weighted", tuning_stacking._stacked_start(search, "weighted", parts), REFERENCE_SHAPE)
