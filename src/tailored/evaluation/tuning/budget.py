"""A budget's clockwork: the time held back for the re-check and the final fit, and
the ledger of where the time went.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import optuna
import pandas as pd

from .early_stopping import Clock
from .result import TIME_SPLIT_COLUMNS
from .search import Progress, complete_trials, trial_seconds, worth_rechecking

RESERVED_SHARE = 0.05  # of the budget, kept free on top of the estimated re-check and final fit

# The guard and the final fit, the budget's last steps, are held to their predicted time
# times this (a composite's prediction adds the errors of its parts').
PREDICTION_MARGIN = 1.25


class Ledger:
    """Where a budgeted search's time went (the rows of ``TuningResult.time_split``) and
    what the budget changed (``notes``, each also sent to ``progress`` as a warning)."""

    def __init__(self, progress: Progress | None) -> None:
        self.notes: list[str] = []
        self.rows: list[dict[str, Any]] = []
        self._progress = progress

    def note(self, text: str) -> None:
        self.notes.append(text)
        if self._progress is not None:
            self._progress(f"warning: {text}")

    def spent(self, phase: str, family: str, planned: float, spent: float,
              trials: int) -> None:
        self.rows.append({"phase": phase, "family": family, "planned": planned,
                          "spent": spent, "trials": trials})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=TIME_SPLIT_COLUMNS)


class Budget:
    """A budget's clockwork: the search ends early enough to leave the guard and the
    final fit their predicted time (``finishing()``, times ``PREDICTION_MARGIN``) plus
    ``RESERVED_SHARE`` of the budget."""

    def __init__(self, started: float, seconds: float, clock: Clock,
                 finishing: Callable[[], float]) -> None:
        self.seconds, self.end, self.clock = seconds, started + seconds, clock
        self._finishing = finishing

    def search_end(self) -> float:
        return (self.end - RESERVED_SHARE * self.seconds
                - PREDICTION_MARGIN * self._finishing())

    def search_left(self) -> float:
        return max(0.0, self.search_end() - self.clock())

    def left(self) -> float:
        return self.end - self.clock()


def finishing_seconds(studies: dict[str, optuna.Study], recheck: int, growth: float,
                       costs: Callable[[str, optuna.trial.FrozenTrial], tuple[float, float]]
                       | None = None, users: int = 0) -> float:
    """Estimated time of the guard and the final fit: the re-checks of the ``recheck``
    configurations the guard will re-check (as :func:`best_candidates` picks them: the best
    of each leading family, then, with fewer families, the next best trials; while fewer
    trials are done, the missing ones like the slowest; none of those too far behind the
    best to win over ``users`` validation users, :func:`worth_rechecking`), and the slowest
    of their fits on all the data. ``costs(family, trial)`` predicts a configuration's
    re-check and final fit; by default both come from the trial's duration (which also
    paid for its validation checks), the final fit times ``growth`` (all the data over the
    first fold's training events)."""
    ranked = sorted(((trial.value or 0.0, position, trial.number, family, trial)
                     for position, family in enumerate(studies)
                     for trial in complete_trials(studies[family])),
                    key=lambda entry: (-entry[0], entry[1], entry[2]))
    leaders: dict[int, int] = {}  # family position: index in ranked of its best trial
    for index, (_, position, _, _, _) in enumerate(ranked):
        leaders.setdefault(position, index)
    chosen = list(leaders.values())[:recheck]
    chosen += [index for index in range(len(ranked)) if index not in chosen][
        :recheck - len(chosen)]
    missing = recheck - len(chosen)  # trials not done yet: they count like the slowest
    chosen = [index for index in chosen  # too far behind to win: not re-checked
              if worth_rechecking(ranked[index][0], ranked[0][0], users)]

    def from_duration(family: str, trial: optuna.trial.FrozenTrial) -> tuple[float, float]:
        seconds = trial_seconds(trial)
        return (math.nan, math.nan) if seconds is None else (seconds, growth * seconds)

    # As the guard goes: one it passes over (no estimate: it would not fit) has the next
    # best configuration stand in for it.
    rechecks: list[float] = []
    finals: list[float] = []
    for index in chosen + [index for index in range(len(ranked)) if index not in chosen]:
        if len(rechecks) == len(chosen):
            break
        check, fit = (costs or from_duration)(ranked[index][3], ranked[index][4])
        if not math.isnan(check):
            rechecks.append(check)
            finals.append(fit)
    slowest = max(rechecks, default=0.0)
    return sum(rechecks) + missing * slowest + max(finals, default=0.0)
