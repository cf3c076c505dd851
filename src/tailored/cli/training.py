"""`tailored train` (also as the retraining worker, with --schedule/--on-drift) and
`tailored tune`."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from tailored.cli.common import (
    ModelOption,
    RecipeOption,
    SetOption,
    StoreOption,
    _label,
    _load_recipe,
    _parse_params,
    _progress,
    _settings,
    _step,
    _store,
    console,
)
from tailored.settings import Settings


def _recipe(model: str | None, set_: list[str] | None, recipe: str | None,
            settings: Settings) -> Any:
    """The recipe to train: ``--recipe`` (a file or a shipped name), else ``--model``
    with ``--set`` parameters, else the settings' model."""
    from tailored.pipeline import Recipe

    if recipe is not None:
        if model or set_:
            raise typer.BadParameter("give either --recipe or --model/--set, not both")
        return _load_recipe(recipe)
    try:
        return Recipe.of(model or settings.model, **_parse_params(set_))
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--model/--set") from None


def train(model: ModelOption = None, set_: SetOption = None, recipe: RecipeOption = None,
          store: StoreOption = None,
          promote: Annotated[bool, typer.Option(help="Make the new version the one that "
                                                     "serves.")] = True,
          validate: Annotated[bool, typer.Option(
              help="Score a fit on a temporal split first (the version's offline metrics); "
              "--no-validate fits once, for data too large to fit twice.")] = True,
          schedule: Annotated[str | None, typer.Option(
              help="Keep running and retrain every INTERVAL (30m, 1h, 1d), counted from the "
              "newest registered version; a new version is promoted only if it is not worse "
              "offline than the serving one on the same temporal split.")] = None,
          on_drift: Annotated[bool, typer.Option(
              "--on-drift", help="Keep running and retrain when a drift detector raises an "
              "alert (see `tailored monitor`); combines with --schedule.")] = False,
          metric: Annotated[str, typer.Option(
              help="With --schedule/--on-drift: the offline metric compared.")] = "ndcg@10",
          tolerance: Annotated[float, typer.Option(
              min=0.0, max=0.99, help="With --schedule/--on-drift: how much lower "
              "(relative) the new version may score and still be promoted.")] = 0.0,
          poll: Annotated[str, typer.Option(
              help="With --schedule/--on-drift: how often to check (drift detectors and "
              "the interval).")] = "1m",
          runs: Annotated[int | None, typer.Option(
              min=1, hidden=True, help="Stop after this many checks (for tests).")] = None,
          engine: Annotated[str, typer.Option(
              help="Where the model is fitted: memory (this process) or spark (ALS only, "
              "with pyspark.ml; the same artifact; needs the spark extra and Java).")
          ] = "memory",
          master: Annotated[str, typer.Option(
              help="With --engine spark: the Spark master (local[2], spark://host:7077, "
              "yarn, ...).")] = "local[2]",
          ) -> None:
    """Train a pipeline on everything in the store, validate it, register it under its
    recipe's name and promote it.

    With --schedule or --on-drift it keeps running as a retraining worker."""
    from tailored.jobs import train_model

    settings = _settings(store)
    if engine not in ("memory", "spark"):
        raise typer.BadParameter(f"{engine!r} is not an engine; choose memory or spark",
                                 param_hint="--engine")
    if engine == "spark":
        if schedule is not None or on_drift:
            raise typer.BadParameter("the retraining worker trains in memory; drop "
                                     "--engine spark or --schedule/--on-drift",
                                     param_hint="--engine")
        _train_on_spark(_recipe(model, set_, recipe, settings), settings, master, promote,
                        validate)
        return
    if schedule is not None or on_drift:
        _retrain_worker(settings, None if not (model or set_ or recipe) else
                        _recipe(model, set_, recipe, settings), schedule=schedule,
                        on_drift=on_drift, metric=metric, tolerance=tolerance, poll=poll,
                        runs=runs)
        return
    chosen = _recipe(model, set_, recipe, settings)
    with _store(settings) as opened, _progress() as progress:
        task = _step(progress, f"training {chosen.name}")
        trained = train_model(opened, settings, chosen, promote=promote, validate=validate,
                              progress=lambda m: progress.update(task, description=m))
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in trained.metrics.items()) or "not run"
    console.print(f"model {chosen.name} version {trained.version.version} at "
                  f"{trained.version.path}"
                  f"{' (active)' if trained.version.active else ''}; temporal split: {metrics}")


def _train_on_spark(chosen: Any, settings: Settings, master: str, promote: bool,
                    validate: bool) -> None:
    from tailored.jobs.spark import SPARK_FAMILIES, train_model_on_spark

    if chosen.model.model not in SPARK_FAMILIES:
        raise typer.BadParameter(
            f"Spark trains {', '.join(SPARK_FAMILIES)} only, not {chosen.model.model!r} "
            f"(recipe {chosen.name!r}); use --model als, or the default --engine memory",
            param_hint="--engine")
    with _store(settings) as opened, _progress() as progress:
        task = _step(progress, f"training {chosen.name} on Spark ({master})")
        trained = train_model_on_spark(opened, settings, chosen, master=master,
                                       promote=promote, validate=validate,
                                       progress=lambda m: progress.update(task, description=m))
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in trained.metrics.items()) or "not run"
    console.print(f"model {chosen.name} version {trained.version.version} at "
                  f"{trained.version.path}{' (active)' if trained.version.active else ''}, "
                  f"trained on Spark ({master}); temporal split: {metrics}")


def _retrain_worker(settings: Settings, recipe: Any, *, schedule: str | None, on_drift: bool,
                    metric: str, tolerance: float, poll: str, runs: int | None) -> None:
    from tailored.jobs.retrain import parse_interval, run_worker

    try:
        every = None if schedule is None else parse_interval(schedule)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--schedule") from None
    try:
        poll_every = parse_interval(poll)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--poll") from None
    what = recipe.name if recipe is not None else "the serving version's recipe"
    triggers = " and ".join(t for t in (f"every {schedule}" if schedule else "",
                                        "on drift alerts" if on_drift else "") if t)
    console.print(f"retraining {what} {triggers} (checking every {poll}); Ctrl-C stops")

    def say(message: str) -> None:
        console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}")

    with _store(settings) as opened:
        try:
            outcomes = run_worker(opened, settings, recipe, every=every, on_drift=on_drift,
                                  metric=metric, tolerance=tolerance, poll=poll_every,
                                  iterations=runs, progress=say)
        except KeyboardInterrupt:
            console.print("stopped")
            return
    for outcome in outcomes:
        console.print(f"version {outcome.candidate.version} ({outcome.reason}): "
                      f"{outcome.decision}")


def tune(
    budget: Annotated[float, typer.Option(
        min=1, help="Seconds of search, spread over the families.")] = 600,
    metric: Annotated[str, typer.Option(
        help="What to maximise: ndcg@K, recall@K, hit_rate@K, map@K, precision@K, "
        "f1@K or mrr@K, or a weighted sum with revenue@K and diversity@K, e.g. "
        "'ndcg@10 + 0.5*revenue@10' (the re-ranker's knobs are tuned too).")] = "ndcg@10",
    models: Annotated[str | None, typer.Option(
        help="Comma-separated families to search (default: every family with a search "
        "space whose packages are installed: single models such as popular, item_knn, "
        "ease, als, bpr, transitions, sasrec, and the ranked pipeline and weighted "
        "hybrid, which are searched last, stacked on the best of the others: the hybrid "
        "blends them).")] = None,
    protocol: Annotated[str, typer.Option(
        help="Split protocol, as in evaluate (temporal, leave-last-one-out, ...). The test "
        "part is held out; tuning validates inside the training part only.")] = "temporal",
    n_trials: Annotated[int | None, typer.Option(
        "--n-trials", min=1, help="Exactly this many trials per family instead of a time "
        "budget (reproducible for a seed).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the samplers and the models.")] = 0,
    report: Annotated[Path | None, typer.Option(
        help="Write the full record (every trial, both folds, test metrics) as JSON.",
        dir_okay=False)] = None,
    k: Annotated[int, typer.Option(min=1, help="List length for the test metrics.")] = 10,
    store: StoreOption = None,
) -> None:
    """Search model families and hyperparameters for the store's events.

    The events are split by --protocol; the tuner only sees the training part (it
    validates on two folds carved from it), and the winner is then scored on the
    held-out test part. Prints the command that trains the winner."""
    from tailored.dataset import SPLITS, Dataset, split_by_name
    from tailored.evaluation import SEARCH_SPACES, evaluate_model
    from tailored.evaluation import tune as run_tuning
    from tailored.evaluation.tuning import Objective

    try:
        Objective.parse(metric)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--metric") from None
    if protocol not in SPLITS:
        raise typer.BadParameter(f"{protocol!r} is not one of {sorted(SPLITS)}",
                                 param_hint="--protocol")
    names = None if models is None else [n.strip() for n in models.split(",") if n.strip()]
    unknown = sorted(set(names or []) - set(SEARCH_SPACES))
    if unknown or names == []:
        raise typer.BadParameter(f"cannot tune {unknown or 'no family'}; families with a "
                                 f"search space: {', '.join(SEARCH_SPACES)}",
                                 param_hint="--models")
    settings = _settings(store)
    with _store(settings) as opened, _progress() as progress:
        task = _step(progress, "reading the store")
        data = Dataset.from_store(opened, settings.event_weights)
        split = split_by_name(data, protocol)
        result = run_tuning(split.train, budget_seconds=budget, metric=metric, models=names,
                            protocol=protocol, seed=seed, n_trials=n_trials,
                            progress=lambda m: progress.update(task, description=m))
        progress.update(task, description="scoring the winner on the held-out test")
        test = evaluate_model(result.best_model, split, k, fit=False).metrics
    table = Table(title=f"{protocol}: best {result.metric} per family (first validation fold)",
                  box=box.SIMPLE_HEAD)
    for column in ("family", "trials", "pruned", "best"):
        table.add_column(column, justify="left" if column == "family" else "right")
    for family, rows in result.trials.groupby("family", sort=False):
        table.add_row(str(family), str(len(rows)), str(int((rows["state"] == "PRUNED").sum())),
                      f"{rows['value'].max():.4f}")
    console.print(table)
    for row in result.second_fold.itertuples(index=False):
        console.print(f"re-checked {row.family} #{row.number}: first fold {row.first_fold:.4f}, "
                      f"second fold {row.second_fold:.4f}, mean {row.mean:.4f}")
    settings_text = " ".join("--set " + shlex.quote(f"{key}={json.dumps(value)}")
                             for key, value in result.best_params.items())
    knobs = "".join(f", re-ranker {key} {value:.2f}"
                    for key, value in (result.best_reranker or {}).items())
    console.print(f"best: [bold]{result.best_name}[/] {result.best_params}{knobs} "
                  f"(validation {result.metric} {result.best_score:.4f}, "
                  f"{result.elapsed:.0f}s)")
    console.print("held-out test: " + ", ".join(f"{_label(name)} {value:.4f}"
                                                for name, value in test.items()))
    console.print(f"train it with: tailored train --model {result.best_name} {settings_text}",
                  soft_wrap=True, markup=False, highlight=False)  # one line, to copy
    if report is not None:
        record = json.loads(result.to_json())
        record["test"] = {"split": split.name, "users": len(split.test_users), **test}
        report.write_text(json.dumps(record, indent=2) + "\n")
        console.print(f"report written to {report}")
