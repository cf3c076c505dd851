"""The order in which families are searched."""

from __future__ import annotations

import optuna

from tailored.evaluation.tuning import search as tuning_search


def test_the_search_order_ends_with_the_leader_and_unscored_families_come_first() -> None:
    studies = {}
    for family, value in (("a", 0.2), ("b", 0.5), ("c", None), ("d", 0.3)):
        study = optuna.create_study(direction="maximize")
        trial = study.ask()
        if value is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, value)
        studies[family] = study
    assert tuning_search.search_order(studies) == ["c", "a", "d", "b"]
