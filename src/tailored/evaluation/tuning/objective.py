"""What a trial is judged by: validation metrics, the objective (a weighted sum of
them) and the two validation folds :func:`~tailored.evaluation.tune` carves from the
training data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tailored.dataset import Dataset, Split, split_by_name, temporal_split
from tailored.errors import InvalidDataError
from tailored.models import Recommender
from tailored.pipeline import Pipeline
from tailored.ranking.rerankers import item_prices

from ..beyond import IntraListDiversity, ListMetric
from ..metrics import (
    F1,
    MAP,
    MRR,
    NDCG,
    HitRate,
    PerUserMetric,
    Precision,
    RankingMetric,
    Recall,
    Revenue,
    mean_price,
)
from ..offline import evaluate_model, relevant_items
from ..search_spaces import (
    RERANKER_KNOBS,
)

RANKING_METRICS: dict[str, type[RankingMetric]] = {
    metric.label: metric for metric in (NDCG, Recall, HitRate, MAP, Precision, F1, MRR)}

#: Every metric a validation metric or an objective may name, by label: the ranking
#: metrics, ``revenue`` (summed price of the hits) and ``diversity`` (intra-list, by
#: item categories).
VALIDATION_METRICS: dict[str, type[PerUserMetric]] = {
    **RANKING_METRICS, Revenue.label: Revenue, IntraListDiversity.label: IntraListDiversity}
Model = Recommender | Pipeline


@dataclass(frozen=True)
class ValidationMetric:
    """A metric named like ``ndcg@10``: its accumulator class and list length."""

    metric: type[PerUserMetric]
    k: int

    @property
    def name(self) -> str:
        return f"{self.metric.label}@{self.k}"

    @classmethod
    def parse(cls, name: str) -> ValidationMetric:
        """A metric at a list length: ``ndcg@10``, ``recall@20``, ``revenue@10``...

        Examples
        --------
        >>> ValidationMetric.parse("recall@20").name
        'recall@20'
        >>> ValidationMetric.parse("auc")
        Traceback (most recent call last):
        ...
        ValueError: unknown metric 'auc'; use one of diversity@K, f1@K, hit_rate@K, map@K, mrr@K, ndcg@K, precision@K, recall@K, revenue@K with a list length K of at least 1, e.g. 'ndcg@10'
        """  # noqa: E501
        label, _, k = name.strip().lower().partition("@")
        if label in VALIDATION_METRICS and k.isdigit() and int(k) >= 1:
            return cls(VALIDATION_METRICS[label], int(k))
        raise ValueError(f"unknown metric {name!r}; use one of {_metric_choices()} with a list "
                         "length K of at least 1, e.g. 'ndcg@10'")

    def accumulator(self, train: Dataset) -> PerUserMetric:
        """An empty accumulator for lists recommended from ``train`` (whose catalog gives
        revenue its prices and diversity its categories)."""
        return self.metric.for_data(self.k, train)

    def score(self, model: Model, split: Split) -> float:
        """Fit ``model`` on ``split.train`` and return its metric over the split's test users."""
        return measure([self], model, split)[self.name]

    def evaluate(self, model: Model, split: Split) -> float:
        """The metric of an already fitted ``model`` over the split's test users."""
        return measure([self], model, split, fit=False)[self.name]


def _metric_choices() -> str:
    return ", ".join(f"{label}@K" for label in sorted(VALIDATION_METRICS))


def measure(metrics: Sequence[ValidationMetric], model: Model, split: Split, *,
            fit: bool = True) -> dict[str, float]:
    """Each of ``metrics`` over the split's test users, from one run of ``model`` (fitted
    on ``split.train`` first unless ``fit`` is false) at the longest list they name.

    Examples
    --------
    >>> from tailored.dataset import temporal_split
    >>> from tailored.models import Popular
    >>> from tailored.testing import checkerboard
    >>> metrics = [ValidationMetric.parse(name) for name in ("ndcg@5", "revenue@5")]
    >>> sorted(measure(metrics, Popular(), temporal_split(checkerboard())))
    ['ndcg@5', 'revenue@5']
    """
    accumulators = [metric.accumulator(split.train) for metric in metrics]
    result = evaluate_model(model, split, max(metric.k for metric in metrics), fit=fit,
                            metrics=(), beyond_accuracy=False)
    relevant = relevant_items(split)
    for user in result.users:
        items = result.recommended.get(user, [])
        for accumulator in accumulators:
            if isinstance(accumulator, RankingMetric):
                accumulator.update(items, relevant.get(user, set()))
            elif isinstance(accumulator, ListMetric):
                accumulator.update(items)
            else:
                raise TypeError(f"{type(accumulator).__name__} is neither a RankingMetric nor "
                                "a ListMetric")
    return {metric.name: accumulator.value()
            for metric, accumulator in zip(metrics, accumulators, strict=True)}


_TERM = re.compile(r"\s*(?:(?P<weight>\d+(?:\.\d*)?|\.\d+)\s*\*\s*)?(?P<metric>[^\s*+]+)\s*")


@dataclass(frozen=True)
class Objective:
    """What :func:`tune` maximises: a weighted sum of metrics, each at a list length.

    Spelt as text (the same in Python, the CLI and REST): metrics joined by ``+``, each
    with an optional positive weight before ``*``, e.g. ``"ndcg@10"`` or
    ``"ndcg@10 + 0.5*revenue@10"`` (no other operator; weights are plain decimals). A
    metric is any of :data:`VALIDATION_METRICS` at a list length ``K``. Its value is
    ``sum(weight * metric / unit)``, where the unit is 1 but for revenue, which counts
    in the catalog's mean price (:func:`~tailored.evaluation.metrics.mean_price`; so
    ``revenue@10 / unit`` is how many average-priced items each user's top 10 sold) and
    lands on the scale of the ranking metrics.

    An objective counting ``revenue@K`` or ``diversity@K`` makes :func:`tune` search the
    re-ranker's knob of the same name (``RERANKER_KNOBS``) with every model.

    Examples
    --------
    >>> objective = Objective.parse("NDCG@10 + 0.5 * revenue@10")
    >>> objective.name, objective.knobs
    ('ndcg@10 + 0.5*revenue@10', ('revenue',))
    >>> objective.value({"ndcg@10": 0.2, "revenue@10": 30.0}, unit_price=20.0)
    0.95
    >>> Objective.parse("ndcg@10 - revenue@10")
    Traceback (most recent call last):
    ...
    ValueError: cannot read 'ndcg@10 - revenue@10' in the objective 'ndcg@10 - revenue@10': write metrics joined by '+', each with an optional positive weight, e.g. 'ndcg@10 + 0.5*revenue@10'; metrics: diversity@K, f1@K, hit_rate@K, map@K, mrr@K, ndcg@K, precision@K, recall@K, revenue@K
    """  # noqa: E501

    terms: tuple[tuple[float, ValidationMetric], ...]

    @property
    def bounded(self) -> bool:
        """Whether the objective is one ranking metric (per user in [0, 1], weight 1)."""
        return (len(self.terms) == 1 and self.terms[0][0] == 1.0
                and self.terms[0][1].metric.label in RANKING_METRICS)

    @classmethod
    def parse(cls, text: str) -> Objective:
        """The objective spelt by ``text``; a ``ValueError`` names the part it cannot read
        and the metrics allowed."""
        if not isinstance(text, str):
            raise TypeError(f"an objective is text like 'ndcg@10 + 0.5*revenue@10', got "
                            f"{text!r}")
        example = ("write metrics joined by '+', each with an optional positive weight, "
                   "e.g. 'ndcg@10 + 0.5*revenue@10'")
        terms: list[tuple[float, ValidationMetric]] = []
        for part in text.split("+"):
            match = _TERM.fullmatch(part)
            if match is None:
                raise ValueError(f"cannot read {part.strip()!r} in the objective {text!r}: "
                                 f"{example}; metrics: {_metric_choices()}")
            weight = float(match["weight"]) if match["weight"] is not None else 1.0
            if not weight > 0:
                raise ValueError(f"the weight of {match['metric']!r} in the objective {text!r} "
                                 f"is {match['weight']}; weights must be above 0 (leave a "
                                 "metric out rather than weigh it 0)")
            try:
                metric = ValidationMetric.parse(match["metric"])
            except ValueError as error:
                raise ValueError(f"{error} (in the objective {text!r}; {example})") from None
            if any(metric == seen for _, seen in terms):
                raise ValueError(f"the objective {text!r} names {metric.name} twice; give each "
                                 "metric once, with one weight")
            terms.append((weight, metric))
        return cls(tuple(terms))

    @property
    def name(self) -> str:
        """The canonical spelling (lower case, weights of 1 left out)."""
        return " + ".join(metric.name if weight == 1 else f"{weight:g}*{metric.name}"
                          for weight, metric in self.terms)

    @property
    def metrics(self) -> list[ValidationMetric]:
        return [metric for _, metric in self.terms]

    @property
    def knobs(self) -> tuple[str, ...]:
        """The re-ranker's knobs :func:`tune` searches for this objective (none for
        relevance alone)."""
        labels = {metric.metric.label for metric in self.metrics}
        return tuple(knob for label, knob in RERANKER_KNOBS.items() if label in labels)

    def check(self, data: Dataset) -> None:
        """Refuse an objective ``data`` cannot measure: revenue without any item price,
        diversity without item categories."""
        for metric in self.metrics:
            metric.accumulator(data)  # diversity@K: refused without categories
            if metric.metric is Revenue and not math.isfinite(self._unit_price(data)):
                raise InvalidDataError(
                    f"the objective {self.name!r} counts {metric.name}, but no item of the "
                    "catalog has a price (a positive number in a `price` attribute); give "
                    "items prices or leave revenue out of the objective")

    def value(self, figures: Mapping[str, float], unit_price: float = 1.0) -> float:
        """The objective from each metric's figure (revenue divided by ``unit_price``)."""
        return float(sum(weight * figures[metric.name]
                         / (unit_price if metric.metric is Revenue else 1.0)
                         for weight, metric in self.terms))

    def score(self, model: Model, split: Split) -> float:
        """Fit ``model`` on ``split.train``; the objective over the split's test users."""
        return self._measured(model, split, fit=True)

    def evaluate(self, model: Model, split: Split) -> float:
        """The objective of an already fitted ``model`` over the split's test users."""
        return self._measured(model, split, fit=False)

    def _measured(self, model: Model, split: Split, *, fit: bool) -> float:
        if len(self.terms) == 1:  # one metric: its own figure
            metric = self.terms[0][1]
            figures = {metric.name: metric.score(model, split) if fit
                       else metric.evaluate(model, split)}
        else:
            figures = measure(self.metrics, model, split, fit=fit)
        return self.value(figures, self._unit_price(split.train))

    def _unit_price(self, data: Dataset) -> float:
        if not any(metric.metric is Revenue for metric in self.metrics):
            return 1.0
        return mean_price(item_prices(data.items))


def validation_folds(data: Dataset, protocol: str = "temporal") -> tuple[Split, Split]:
    """Two validation splits carved from ``data`` alone (the user's training data).

    The first is ``split_by_name(data, protocol)``. The second holds out earlier events
    than the first, so its test events differ: with ``temporal``, a cut at 70% of the
    given events (training on the first 70%, validating on 70-80%, before the first
    fold's period); with ``leave-last-one-out``, each user's second-to-last event
    (training on what came before it). Any other protocol repeats itself on the first
    fold's training data.

    Examples
    --------
    >>> from tailored.testing import checkerboard
    >>> data = checkerboard()
    >>> first, second = validation_folds(data, "temporal")
    >>> len(data), len(first.train), len(second.train)
    (200, 160, 140)
    """
    first = split_by_name(data, protocol)
    if protocol == "temporal":  # 12.5% of the first 80% is the 70-80% window
        second = temporal_split(first.train, test_fraction=0.125)
    else:
        second = split_by_name(first.train, protocol)
    for position, fold in (("first", first), ("second", second)):
        if fold.truth.empty:
            raise InvalidDataError(
                f"the {position} validation fold ({protocol} protocol) carved from the "
                f"{len(data)} training events has no test users; tuning needs more "
                "events per user or a longer history (or use another protocol)")
    return first, second
