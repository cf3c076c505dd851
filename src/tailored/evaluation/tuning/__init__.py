"""Automatic tuning: search each model family's hyperparameters, keep the best model.

:func:`tune` never looks at test data. It receives the user's *training* data and
carves a validation split out of it with the named protocol (the same
``tailored.dataset.split_by_name`` the offline evaluation uses): with ``temporal`` the
earlier 80% of the given events train and the rest validate; with
``leave-last-one-out`` each user's last given event validates. Hyperparameters are
searched on that first fold with Optuna (seeded TPE sampler, median pruner) within a
time budget: a screen of every family at its defaults first, then most of the time on
the families that screened best; iterative models (ALS, BPR, SASRec) stop early on the
validation metric. The best few candidates are then checked again on a
second, different fold (see :func:`validation_folds`) and the winner is the best mean
of both folds, which guards against a configuration that only fits the first fold's
noise. The composites, searched with other families, are stacked on them: searched
last, on the tuned configurations of the best families, the weighted hybrid
(``weighted``) as a blend of them and the learned ranker (``ranked``) with them as its
candidate sources. The winner is refitted on all the given data. Evaluate it on a
held-out test set the tuner never saw::

    split = tailored.dataset.temporal_split(data)
    result = tune(split.train, protocol="temporal")
    evaluate_model(result.best_model, split, fit=False)

What is maximised is an :class:`Objective`: one metric (``"ndcg@10"``) or a weighted
sum of metrics, spelt ``"ndcg@10 + 0.5*revenue@10"``. When it counts ``revenue@K`` or
``diversity@K``, every trial also samples the re-ranker's ``revenue`` or
``diversity`` knob (:func:`~tailored.evaluation.search_spaces.reranker_space`) and
the winner is a :class:`~tailored.pipeline.Pipeline`: the tuned model with a
``diversify`` stage at the tuned knobs.

The package, in the order a call runs through it (each module imports only those
before it):

- :mod:`.objective`: validation metrics, the objective and the two folds;
- :mod:`.early_stopping`: iterative and epoch families checked as they fit;
- :mod:`.result`: :class:`TuningResult`;
- :mod:`.search`: one Optuna study per family, its trial objective and stopping rules;
- :mod:`.budget`: the time held back to finish, and where the time went;
- :mod:`.stacking`: the ranker's sources and the blend's parts on the best families;
- :mod:`.phases`: screen, search, stack and leftover under a budget;
- :mod:`.tuner`: :func:`tune` itself, the re-check and the final fit.
"""

from .early_stopping import (
    Clock,
    EarlyStopping,
    early_stopping_epochs,
    early_stopping_iterations,
    iteration_checkpoints,
)
from .objective import (
    RANKING_METRICS,
    VALIDATION_METRICS,
    Objective,
    ValidationMetric,
    measure,
    validation_folds,
)
from .result import TuningResult
from .search import STALE_TRIALS, Progress, available_families
from .stacking import (
    BLENDED_FAMILIES,
    COMPOSITES,
    STACKED_FAMILIES,
    TREND_WEIGHT,
    blended_parts,
    stacked_composites,
    stacked_parts,
    stacked_sources,
)
from .tuner import tune

__all__ = [
    "BLENDED_FAMILIES",
    "COMPOSITES",
    "RANKING_METRICS",
    "STACKED_FAMILIES",
    "STALE_TRIALS",
    "TREND_WEIGHT",
    "VALIDATION_METRICS",
    "Clock",
    "EarlyStopping",
    "Objective",
    "Progress",
    "TuningResult",
    "ValidationMetric",
    "available_families",
    "blended_parts",
    "early_stopping_epochs",
    "early_stopping_iterations",
    "iteration_checkpoints",
    "measure",
    "stacked_composites",
    "stacked_parts",
    "stacked_sources",
    "tune",
    "validation_folds",
]
