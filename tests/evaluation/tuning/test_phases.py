"""The budgeted phases: how the search time is shared between the families."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tailored.evaluation.tuning import budget as tuning_budget
from tailored.evaluation.tuning import phases as tuning_phases

from .fakes import study_with


class _ScriptedSearch:
    """Runs 1 s trials until its deadline; each of ``growing``'s trials makes the
    re-check held back 1 s longer (its better configurations cost more to re-check)."""

    def __init__(self, growing: str) -> None:
        self.now, self.reserve, self.growing = 0.0, 0.0, growing
        self.studies = {"runner_up": study_with(0.1, 1.0, clock_seconds=1.0),
                        "leader": study_with(0.5, 1.0, clock_seconds=1.0)}
        self.deadline: Callable[[], float | None] = lambda: None
        self.trials: dict[str, int] = {}

    def clock(self) -> float:
        return self.now

    def run(self, family: str, **_: Any) -> int:
        ran = 0
        while (deadline := self.deadline()) is None or self.now + 1 <= deadline:
            self.now += 1
            ran += 1
            if family == self.growing:
                self.reserve += 1
        self.trials[family] = ran
        return ran


def test_a_family_whose_configurations_cost_more_to_recheck_ends_sooner_not_the_leader(
        ) -> None:
    search = _ScriptedSearch(growing="runner_up")
    budget = tuning_budget.Budget(0.0, 100.0, search.clock, lambda: search.reserve)

    def until(end: float, kept: float = 0.0) -> Callable[[], float]:
        return lambda: min(end, budget.search_end() - kept)

    tuning_phases._search_phase("search", search, budget,  # type: ignore[arg-type]
                                tuning_budget.Ledger(None), ["runner_up", "leader"], until)
    # 95 s to search (5% of the budget is kept free): a third for the runner-up (its share
    # 0.5 against the leader's 1.0), which searches first. Each of its trials moves the
    # search's end 1.25 s earlier (the re-check's predicted time, with its margin), so it
    # stops after 14 trials; the leader keeps its 63 s.
    assert search.trials == {"runner_up": 14, "leader": 63}
