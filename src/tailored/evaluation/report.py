"""A static evaluation report: an HTML page with plots, and a JSON of every figure.

:func:`write_report` turns the results of :func:`~tailored.evaluation.compare` (one
``dict[str, ModelResult]`` per split) into ``report.html`` (no JavaScript, no network),
PNG plots beside it, and ``report.json`` with the numbers behind every plot.

Plots
-----
- NDCG@k by model with 95% bootstrap confidence intervals over test users, per split.
- Popularity against accuracy: mean training popularity of the recommended items
  (``popularity@k``) against NDCG@k, one point per model, per split.
- NDCG@k by list length, only when the results hold NDCG at several list lengths
  (``compare`` evaluates one ``k``, so usually this plot is left out).
- Fairness: NDCG@k by user group, one plot per user attribute, when ``user_groups``
  is given.
- Tuning history: each trial's validation value by trial number, per model family,
  when a :class:`~tailored.evaluation.TuningResult` is given.

Plots are drawn on matplotlib's non-interactive Agg canvas inside the call; pyplot and
the global backend are never touched.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tailored.dataset import Split

from .beyond import metric_by_group
from .jsonable import plain
from .offline import ModelResult
from .statistics import bootstrap_ci

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .tuning import TuningResult

Evaluation = tuple[Split, Mapping[str, ModelResult]]

_CONFIDENCE = 0.95


@dataclass
class _Plot:
    """One figure of the report: its PNG file, caption, and the numbers it shows."""

    kind: str
    file: str
    caption: str
    data: Any


def write_report(directory: str | Path, evaluations: Sequence[Evaluation], *, k: int = 10,
                 tuning: TuningResult | None = None,
                 user_groups: Mapping[str, Mapping[str, str]] | None = None,
                 n_resamples: int = 2000, seed: int = 0) -> Path:
    """Write ``report.html``, ``report.json`` and the PNG plots into ``directory``.

    Parameters
    ----------
    directory : str or Path
        Created if missing; files of an earlier report there are overwritten.
    evaluations : sequence of (Split, mapping of model name to ModelResult)
        E.g. ``[(split, compare(models, split)[1]) for split in splits]``.
    k : int, default 10
        The list length whose ``ndcg@k`` and ``popularity@k`` are plotted.
    tuning : TuningResult, optional
        Adds the tuning-history plot (``tuning.trials``: family, number, value, state).
    user_groups : mapping of attribute name to {user id: group}, optional
        Adds one fairness plot per attribute, e.g.
        ``{"gender": users.set_index("user_id")["gender"].to_dict()}``.
    n_resamples, seed
        For the bootstrap confidence intervals.

    Returns
    -------
    Path
        The path of ``report.html``.

    Examples
    --------
    >>> import tempfile
    >>> from tailored.dataset import temporal_split
    >>> from tailored.evaluation import evaluate_model
    >>> from tailored.models import create
    >>> from tailored.testing import checkerboard
    >>> split = temporal_split(checkerboard())
    >>> results = {"popular": evaluate_model(create("popular"), split)}
    >>> with tempfile.TemporaryDirectory() as out:
    ...     page = write_report(out, [(split, results)], n_resamples=200)
    ...     sorted(p.name for p in Path(out).iterdir())
    ['ndcg-ci-1.png', 'popularity-accuracy-1.png', 'report.html', 'report.json']
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not evaluations:
        raise ValueError("evaluations is empty; pass [(split, results)] for at least one split")
    ndcg, popularity = f"ndcg@{k}", f"popularity@{k}"
    for split, results in evaluations:
        if not results:
            raise ValueError(f"split {split.name!r} has no model results; evaluate a model first")
        for name, result in results.items():
            if ndcg not in result.per_user:
                raise ValueError(
                    f"model {name!r} on split {split.name!r} has no per-user {ndcg!r} (it has "
                    f"{sorted(result.per_user)}); evaluate it with k={k} or pass its k")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)

    def save(figure: Figure, file: str) -> None:
        figure.tight_layout()
        FigureCanvasAgg(figure).print_png(str(out / file))

    plots: list[_Plot] = []
    splits_record = []
    for number, (split, results) in enumerate(evaluations, start=1):
        intervals = {
            name: bootstrap_ci(result.per_user[ndcg], _CONFIDENCE, n_resamples, seed)._asdict()
            for name, result in results.items()}
        file = f"ndcg-ci-{number}.png"
        save(_interval_figure(Figure(figsize=(6, 3.5)), intervals, ndcg, split.name), file)
        plots.append(_Plot("ndcg_ci", file,
                           f"{ndcg} by model on split {split.name} ({len(split.test_users)} test "
                           f"users), with {_CONFIDENCE:.0%} bootstrap confidence intervals.",
                           {"split": split.name, "metric": ndcg, "confidence": _CONFIDENCE,
                            "models": intervals}))

        points = {name: {"x": result.metrics.get(popularity), "y": result.metrics[ndcg]}
                  for name, result in results.items() if popularity in result.metrics}
        if points:
            file = f"popularity-accuracy-{number}.png"
            save(_scatter_figure(Figure(figsize=(6, 4)), points, popularity, ndcg, split.name),
                 file)
            plots.append(_Plot("popularity_accuracy", file,
                               f"Mean training popularity of the recommended items "
                               f"({popularity}) against {ndcg} on split {split.name}; "
                               "up and to the left is accurate without leaning on popular items.",
                               {"split": split.name, "x": popularity, "y": ndcg,
                                "models": points}))

        by_k = _ndcg_by_k(results)
        if by_k:
            file = f"ndcg-by-k-{number}.png"
            save(_lines_figure(Figure(figsize=(6, 3.5)), by_k, "k", "NDCG", split.name), file)
            plots.append(_Plot("ndcg_by_k", file,
                               f"NDCG by list length k on split {split.name}.",
                               {"split": split.name, "models": by_k}))

        for attribute, groups in (user_groups or {}).items():
            tables = {name: metric_by_group(result.per_user_values(ndcg), groups,
                                            confidence=_CONFIDENCE, n_resamples=n_resamples,
                                            seed=seed)
                      for name, result in results.items()}
            values = {name: [{"group": str(row.Index), "users": row.users,
                              "mean": row.mean, "low": row.low, "high": row.high,
                              "relative_gap": row.relative_gap}
                             for row in table.itertuples()]
                      for name, table in tables.items()}
            file = f"fairness-{_slug(attribute)}-{number}.png"
            save(_group_figure(Figure(figsize=(7, 3.5)), values, ndcg, attribute, split.name),
                 file)
            plots.append(_Plot("fairness", file,
                               f"{ndcg} by user {attribute} on split {split.name}, with "
                               f"{_CONFIDENCE:.0%} bootstrap confidence intervals.",
                               {"split": split.name, "metric": ndcg, "attribute": attribute,
                                "models": values}))

        splits_record.append({
            "name": split.name, "test_users": len(split.test_users),
            "models": {name: {"metrics": dict(result.metrics),
                              "fit_seconds": result.fit_seconds,
                              "recommend_seconds": result.recommend_seconds}
                       for name, result in results.items()}})

    tuning_record = None
    if tuning is not None:
        trials = tuning.trials
        history = {str(family): [{"number": row.number, "value": row.value, "state": row.state}
                                 for row in rows.sort_values("number").itertuples()]
                   for family, rows in trials.groupby("family", sort=True)}
        file = "tuning-history.png"
        save(_history_figure(Figure(figsize=(7, 3.5)), history, tuning.metric), file)
        plots.append(_Plot("tuning_history", file,
                           f"Validation {tuning.metric} of each tuning trial by trial number; "
                           f"best: {tuning.best_name} at {tuning.best_score:.4f}. Pruned or "
                           "failed trials have no value.", {"metric": tuning.metric,
                                                            "families": history}))
        tuning_record = {"metric": tuning.metric, "best_name": tuning.best_name,
                         "best_params": tuning.best_params,
                         "best_reranker": tuning.best_reranker, "best_score": tuning.best_score}

    record = {"k": k, "splits": splits_record, "tuning": tuning_record,
              "figures": [{"kind": p.kind, "file": p.file, "caption": p.caption,
                           "data": p.data} for p in plots]}
    (out / "report.json").write_text(json.dumps(plain(record), indent=2), encoding="utf-8")
    page = out / "report.html"
    page.write_text(_html(splits_record, plots, k), encoding="utf-8")
    return page


# ---- figures ------------------------------------------------------------------------

def _interval_figure(figure: Figure, intervals: Mapping[str, Mapping[str, float]],
                     metric: str, split: str) -> Figure:
    axes = figure.add_subplot()
    names = list(intervals)
    means = np.array([intervals[n]["mean"] for n in names])
    errors = np.array([[intervals[n]["mean"] - intervals[n]["low"] for n in names],
                       [intervals[n]["high"] - intervals[n]["mean"] for n in names]])
    axes.bar(names, means, yerr=errors, capsize=4, color="#4c72b0")
    axes.set_ylabel(metric)
    axes.set_title(f"{metric} ({split})")
    axes.tick_params(axis="x", labelrotation=30)
    return figure


def _scatter_figure(figure: Figure, points: Mapping[str, Mapping[str, Any]], x: str, y: str,
                    split: str) -> Figure:
    axes = figure.add_subplot()
    for name, point in points.items():
        axes.scatter(point["x"], point["y"])
        axes.annotate(name, (point["x"], point["y"]), textcoords="offset points",
                      xytext=(4, 4))
    axes.set_xlabel(f"{x} (mean share of users who touched the item)")
    axes.set_ylabel(y)
    axes.set_title(f"popularity vs accuracy ({split})")
    return figure


def _lines_figure(figure: Figure, series: Mapping[str, Mapping[int, float]], x: str, y: str,
                  split: str) -> Figure:
    axes = figure.add_subplot()
    for name, values in series.items():
        axes.plot(list(values), list(values.values()), marker="o", label=name)
    axes.set_xlabel(x)
    axes.set_ylabel(y)
    axes.set_title(f"{y} by {x} ({split})")
    axes.legend()
    return figure


def _group_figure(figure: Figure, values: Mapping[str, Sequence[Mapping[str, Any]]],
                  metric: str, attribute: str, split: str) -> Figure:
    axes = figure.add_subplot()
    groups = sorted({row["group"] for rows in values.values() for row in rows})
    width = 0.8 / max(1, len(values))
    for offset, (name, rows) in enumerate(values.items()):
        by_group = {row["group"]: row for row in rows}
        xs = [i + offset * width for i, g in enumerate(groups) if g in by_group]
        present = [by_group[g] for g in groups if g in by_group]
        means = [row["mean"] for row in present]
        errors = [[row["mean"] - row["low"] for row in present],
                  [row["high"] - row["mean"] for row in present]]
        axes.bar(xs, means, width, yerr=errors, capsize=3, label=name)
    axes.set_xticks([i + width * (len(values) - 1) / 2 for i in range(len(groups))], groups)
    axes.set_xlabel(attribute)
    axes.set_ylabel(metric)
    axes.set_title(f"{metric} by {attribute} ({split})")
    axes.legend()
    return figure


def _history_figure(figure: Figure, history: Mapping[str, Sequence[Mapping[str, Any]]],
                    metric: str) -> Figure:
    axes = figure.add_subplot()
    for family, rows in history.items():
        done = [r for r in rows if r["value"] is not None and not math.isnan(r["value"])]
        axes.plot([r["number"] for r in done], [r["value"] for r in done], marker="o",
                  label=family)
    axes.set_xlabel("trial number")
    axes.set_ylabel(f"validation {metric}")
    axes.set_title("tuning history")
    if history:
        axes.legend()
    return figure


# ---- helpers ------------------------------------------------------------------------

def _ndcg_by_k(results: Mapping[str, ModelResult]) -> dict[str, dict[int, float]]:
    """NDCG at each list length a result holds, or nothing if some model has fewer than two."""
    series = {}
    for name, result in results.items():
        values = {int(key.split("@")[1]): value for key, value in result.metrics.items()
                  if re.fullmatch(r"ndcg@\d+", key)}
        if len(values) < 2:
            return {}
        series[name] = dict(sorted(values.items()))
    return series


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "attribute"




def _number(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else f"{value:.4f}"
    return html.escape(str(value))


def _html(splits: Sequence[Mapping[str, Any]], plots: Sequence[_Plot], k: int) -> str:
    esc = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>tailored evaluation report</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:70em}"
             "table{border-collapse:collapse;margin-bottom:2em}"
             "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
             "th:first-child,td:first-child{text-align:left}"
             "figure{margin:1em 0 2em}figcaption{color:#444}</style></head><body>",
             "<h1>tailored evaluation report</h1>",
             f"<p>Metrics at k={k}; numbers behind every plot are in "
             '<a href="report.json">report.json</a>.</p>']
    for split in splits:
        models = split["models"]
        columns = list(dict.fromkeys(m for r in models.values() for m in r["metrics"]))
        parts.append(f"<h2>Split {esc(split['name'])} ({split['test_users']} test users)</h2>")
        parts.append("<table><thead><tr><th>model</th>"
                     + "".join(f"<th>{esc(c)}</th>" for c in columns)
                     + "<th>fit seconds</th></tr></thead><tbody>")
        for name, row in models.items():
            cells = "".join(f"<td>{_number(row['metrics'].get(c, math.nan))}</td>"
                            for c in columns)
            parts.append(f"<tr><td>{esc(name)}</td>{cells}"
                         f"<td>{_number(row['fit_seconds'])}</td></tr>")
        parts.append("</tbody></table>")
    parts.append("<h2>Plots</h2>")
    for plot in plots:
        parts.append(f'<figure><img src="{esc(plot.file)}" alt="{esc(plot.caption)}">'
                     f"<figcaption>{esc(plot.caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
