"""The ``tailored`` command line: import data, train, evaluate, recommend, serve, demo."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from tailored.errors import TailoredError
from tailored.settings import Settings, load_settings
from tailored.store import Store, open_store

app = typer.Typer(help="tailored: a self-hosted personalization engine.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
import_app = typer.Typer(help="Import events, items, users or a MovieLens directory.",
                         no_args_is_help=True)
app.add_typer(import_app, name="import")
console = Console()

StoreOption = Annotated[str | None, typer.Option(
    "--store", help="Store URL, e.g. sqlite:///tailored.db or postgresql://host/db "
    "(default: TAILORED_STORE_URL, tailored.toml, then sqlite:///tailored.db).")]
DEFAULT_MODELS = ("popular", "item_knn", "als")


def _settings(store_url: str | None = None, **overrides: Any) -> Settings:
    return load_settings(store_url=store_url, **overrides)


@contextmanager
def _store(settings: Settings) -> Iterator[Store]:
    store = open_store(settings.store_url)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def _progress() -> Iterator[Progress]:
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        yield progress


def _step(progress: Progress, description: str) -> Any:
    return progress.add_task(description, total=None)


def _parse_params(assignments: list[str] | None) -> dict[str, Any]:
    """``key=value`` pairs; values are JSON where they parse (numbers, booleans)."""
    params: dict[str, Any] = {}
    for assignment in assignments or []:
        key, sep, raw = assignment.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{assignment!r} is not key=value", param_hint="--set")
        try:
            params[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[key.strip()] = raw
    return params


# ---- init / import ---------------------------------------------------------------------

TOML_TEMPLATE = """# tailored settings; environment variables TAILORED_* override these.
store_url = "{store_url}"
model_dir = "tailored_models"
model = "als"
host = "127.0.0.1"
port = 8000

[event_weights]
view = 1.0
click = 2.0
add_to_cart = 4.0
purchase = 8.0
rating = "value"
"""


@app.command()
def init(store: StoreOption = None) -> None:
    """Create the store (tables included) and a tailored.toml to edit, if there is none."""
    settings = _settings(store)
    with _store(settings):
        console.print(f"store ready at [bold]{settings.store_url}[/]")
    config = Path("tailored.toml")
    if not config.exists():
        config.write_text(TOML_TEMPLATE.format(store_url=settings.store_url))
        console.print(f"wrote {config} (edit it to change weights, model and port)")


def _import(kind: str, path: Path, store: str | None, skip_invalid: bool,
            rejects: Path | None) -> None:
    from tailored.ingest import import_file

    settings = _settings(store)
    with _store(settings) as opened, _progress() as progress:
        _step(progress, f"importing {kind} from {path}")
        report = import_file(opened, path, kind, skip_invalid=skip_invalid, rejects_path=rejects)
    console.print(
        f"{kind}: read {report.rows_read:,} rows, imported {report.imported:,}, "
        f"already there {report.duplicates:,}, rejected {report.rejected:,} "
        f"in {report.seconds:.1f}s ({report.rows_read / max(report.seconds, 1e-9):,.0f} rows/s)")
    if report.rejected:
        console.print(f"[yellow]rejected rows and reasons: {report.rejects_path}[/]")


SkipInvalid = Annotated[bool, typer.Option(
    "--skip-invalid", help="Import the valid rows and write rejected ones, with reasons, to a "
    "rejects file (default: a file with any bad row imports nothing).")]
Rejects = Annotated[Path | None, typer.Option(
    help="Where --skip-invalid writes rejected rows (default FILE.rejects.csv).")]
DataFile = Annotated[Path, typer.Argument(
    help="A .csv, .tsv, .jsonl or .parquet file.", exists=True, dir_okay=False)]


@import_app.command("events")
def import_events(file: DataFile, store: StoreOption = None, skip_invalid: SkipInvalid = False,
                  rejects: Rejects = None) -> None:
    """Import events: user_id, item_id, [event_id, event_type, value, timestamp, session_id];
    other columns become context (device, location, ...)."""
    _import("events", file, store, skip_invalid, rejects)


@import_app.command("items")
def import_items(file: DataFile, store: StoreOption = None, skip_invalid: SkipInvalid = False,
                 rejects: Rejects = None) -> None:
    """Import items: item_id, [title, text, categories (a|b), available, created_at];
    other columns become attributes (price, brand, ...)."""
    _import("items", file, store, skip_invalid, rejects)


@import_app.command("users")
def import_users(file: DataFile, store: StoreOption = None, skip_invalid: SkipInvalid = False,
                 rejects: Rejects = None) -> None:
    """Import users: user_id, [consent]; other columns become attributes (age_band, ...)."""
    _import("users", file, store, skip_invalid, rejects)


@import_app.command("movielens")
def import_movielens_command(
    directory: Annotated[Path, typer.Argument(
        help="A MovieLens directory: ML-100K (u.data, u.item, u.user) or ml-latest "
        "(ratings.csv, movies.csv).", exists=True, file_okay=False)],
    store: StoreOption = None,
) -> None:
    """Import a MovieLens dataset: ratings become events, movies items, people users."""
    from tailored.ingest import import_movielens

    settings = _settings(store)
    with _store(settings) as opened, _progress() as progress:
        _step(progress, f"importing MovieLens from {directory}")
        reports = import_movielens(opened, directory)
    for report in reports:
        console.print(f"{report.kind}: imported {report.imported:,} of {report.rows_read:,} rows "
                      f"in {report.seconds:.1f}s")


# ---- train / evaluate / recommend ------------------------------------------------------

ModelOption = Annotated[str | None, typer.Option(
    "--model", help="Model family: popular, item_knn or als (default: settings.model).")]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", help="A model parameter as key=value, repeatable (e.g. --set factors=64).")]


RecipeOption = Annotated[Path | None, typer.Option(
    "--recipe", help="A TOML recipe (model, parameters, rules); see recipes/.",
    exists=True, dir_okay=False)]


PipelineOption = Annotated[str | None, typer.Option(
    "--pipeline", help="A shipped pipeline recipe by name (hybrid, ranked, stacked, "
    "switching, ...; the files in recipes/).")]


def _pipeline_recipe(pipeline: str | None, recipe: Path | None) -> Path | None:
    """The recipe file of a shipped pipeline name (or ``recipe`` when none is named)."""
    if pipeline is None:
        return recipe
    if recipe is not None:
        raise typer.BadParameter("give either --pipeline or --recipe, not both")
    from tailored.pipeline.recipe import shipped_recipes

    found = shipped_recipes()
    if pipeline not in found:
        raise typer.BadParameter(f"no pipeline named {pipeline!r}; shipped pipelines: "
                                 f"{sorted(found)}", param_hint="--pipeline")
    return found[pipeline]


def _recipe(model: str | None, set_: list[str] | None, recipe: Path | None,
            settings: Settings) -> Any:
    from tailored.pipeline import ModelStage, Recipe, load_recipe

    if recipe is not None:
        if model or set_:
            raise typer.BadParameter("give either --recipe or --model/--set, not both")
        return load_recipe(recipe)
    name = model or settings.model
    return Recipe(name=name, model=ModelStage(name=name, **_parse_params(set_)))


@app.command()
def train(model: ModelOption = None, set_: SetOption = None, recipe: RecipeOption = None,
          pipeline: PipelineOption = None, store: StoreOption = None,
          promote: Annotated[bool, typer.Option(help="Make the new version the one that "
                                                     "serves.")] = True,
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
          ) -> None:
    """Train a model on everything in the store, validate it, register it and promote it.

    With --schedule or --on-drift it keeps running as a retraining worker."""
    from tailored.jobs import train_model

    settings = _settings(store)
    recipe = _pipeline_recipe(pipeline, recipe)
    if schedule is not None or on_drift:
        _retrain_worker(settings, None if not (model or set_ or recipe) else
                        _recipe(model, set_, recipe, settings), schedule=schedule,
                        on_drift=on_drift, metric=metric, tolerance=tolerance, poll=poll,
                        runs=runs)
        return
    chosen = _recipe(model, set_, recipe, settings)
    name = chosen.model.name
    with _store(settings) as opened, _progress() as progress:
        task = _step(progress, f"training {chosen.name}")
        trained = train_model(opened, settings, chosen, promote=promote,
                              progress=lambda m: progress.update(task, description=m))
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in trained.metrics.items())
    console.print(f"model {name} version {trained.version.version} at {trained.version.path}"
                  f"{' (active)' if trained.version.active else ''}; temporal split: {metrics}")


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


_LABELS = {"ndcg": "NDCG", "recall": "Recall", "hit_rate": "HR", "map": "MAP",
           "coverage": "cover", "fit_s": "fit s", "recommend_ms_per_user": "ms/user",
           "novelty": "novel", "popularity": "pop", "diversity": "div",
           "personalization": "person"}
ACCURACY_COLUMNS = ("ndcg", "recall", "hit_rate", "map", "coverage", "fit_s")
BEYOND_COLUMNS = ("ndcg", "coverage", "novelty", "popularity", "diversity", "gini",
                  "personalization")


def _label(column: str) -> str:
    metric, _, k = column.partition("@")
    return _LABELS.get(metric, metric) + (f"@{k}" if k else "")


def _evaluation_table(table: pd.DataFrame, kinds: tuple[str, ...] = ACCURACY_COLUMNS) -> Table:
    attrs = table.attrs
    table = table[[c for c in table.columns if str(c).partition("@")[0] in kinds]]
    rich_table = Table(title=f"{attrs.get('split')} split, {attrs.get('test_users')} test users",
                       box=box.SIMPLE_HEAD)
    rich_table.add_column("model", no_wrap=True)
    for column in table.columns:
        rich_table.add_column(_label(str(column)), justify="right", no_wrap=True)
    for name, row in table.iterrows():
        rich_table.add_row(str(name), *(f"{value:.3f}" for value in row))
    return rich_table


@app.command()
def evaluate(
    models: Annotated[str, typer.Option(
        help="Comma-separated model families, or 'all' for every registered one.")] =
        ",".join(DEFAULT_MODELS),
    protocol: Annotated[list[str] | None, typer.Option(
        help="Split protocol, repeatable: temporal (the last 20% of events by time are the "
        "test period), leave-last-one-out (each user's last event, users with >= 5 "
        "events), user-temporal-ratio, random-holdout, user-kfold or time-series (the "
        "last two give several splits).")] = None,
    recipe: Annotated[list[Path] | None, typer.Option(
        help="Also evaluate this TOML recipe (repeatable).", exists=True,
        dir_okay=False)] = None,
    k: Annotated[int, typer.Option(min=1, help="List length for the metrics.")] = 10,
    beyond: Annotated[bool, typer.Option(
        "--beyond", help="Also show novelty, popularity, diversity, exposure Gini and "
        "personalization of the lists.")] = False,
    report: Annotated[Path | None, typer.Option(
        help="Also write an HTML report with plots (report.html, report.json and PNG files) "
        "into this directory.", file_okay=False)] = None,
    store: StoreOption = None,
) -> None:
    """Compare models on the same split of the store's events: NDCG, Recall, HitRate and
    MAP at k, catalog coverage, fit seconds.

    Test users, ground truth and what is ranked are defined per protocol (see
    tailored.dataset.splits); every model ranks all train items except the user's own."""
    from tailored.dataset import Dataset, splits_by_name
    from tailored.evaluation import compare
    from tailored.models import MODELS, create
    from tailored.pipeline import load_recipe

    settings = _settings(store)
    names = list(MODELS) if models == "all" else [n.strip() for n in models.split(",")
                                                    if n.strip()]
    recipes = [load_recipe(path) for path in recipe or []]
    with _store(settings) as opened, _progress() as progress:
        task = _step(progress, "reading the store")
        data = Dataset.from_store(opened, settings.event_weights)
        tables = []
        evaluations = []
        for name in protocol or ["temporal"]:
            for split in splits_by_name(data, name):

                def show(model: str, split_name: str = split.name) -> None:
                    progress.update(task, description=f"{split_name}: fitting {model}")

                candidates = ({n: create(n) for n in names}
                              | {r.name: r.build() for r in recipes})
                table, results = compare(candidates, split, k, progress=show)
                tables.append(table)
                evaluations.append((split, results))
        progress.update(task, description="evaluated")
    for table in tables:
        console.print(_evaluation_table(table))
        if beyond:
            console.print(_evaluation_table(table, BEYOND_COLUMNS))
    if report is not None:
        from tailored.evaluation import write_report

        page = write_report(report, evaluations, k=k, user_groups=_user_groups(data.users))
        console.print(f"report written to {page}")


def _user_groups(users: pd.DataFrame | None) -> dict[str, dict[str, str]] | None:
    """Attributes fit for a fairness breakdown: 2 to 20 distinct values (not zip codes)."""
    if users is None:
        return None
    indexed = users.set_index("user_id")
    groups = {str(column): {str(user): str(group)
                            for user, group in indexed[column].dropna().items()}
              for column in indexed.columns if 1 < indexed[column].nunique() <= 20}
    return groups or None


@app.command()
def tune(
    budget: Annotated[float, typer.Option(
        min=1, help="Seconds of search, spread over the families.")] = 600,
    metric: Annotated[str, typer.Option(
        help="What to maximise: ndcg@K, recall@K, hit_rate@K, map@K, precision@K, "
        "f1@K or mrr@K.")] = "ndcg@10",
    models: Annotated[str | None, typer.Option(
        help="Comma-separated families to search (default: every family with a search "
        "space whose packages are installed: single models such as popular, item_knn, "
        "ease, als, bpr, sasrec, and the weighted hybrid and ranked pipeline; the ranked "
        "pipeline is searched last, stacked on the best of the others).")] = None,
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
    from tailored.evaluation import SEARCH_SPACES, ValidationMetric, evaluate_model
    from tailored.evaluation import tune as run_tuning

    try:
        ValidationMetric.parse(metric)
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
    console.print(f"best: [bold]{result.best_name}[/] {result.best_params} "
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


@app.command()
def recommend(
    users: Annotated[list[str] | None, typer.Argument(help="User ids.")] = None,
    k: Annotated[int, typer.Option(min=1, max=1000)] = 10,
    all_users: Annotated[bool, typer.Option("--all", help="Every user in the store.")] = False,
    output: Annotated[Path | None, typer.Option(
        help="Write to this .csv or .parquet file instead of printing.")] = None,
    store: StoreOption = None,
    diversity: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="MMR re-ranking: 0 keeps the model's order, 1 is all "
        "variety (similarity: the catalog's categories, else the model's).")] = 0.0,
    novelty: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Penalise popular items: 0 off, 1 least popular first.")] = 0.0,
    max_per_category: Annotated[int | None, typer.Option(
        min=1, help="At most this many items of one category per list.")] = None,
    candidates: Annotated[int, typer.Option(
        min=1, max=5000, help="Candidates per user the re-rankers choose from.")] = 100,
    explain: Annotated[bool, typer.Option(
        "--explain", help="Add a reason per item (from the model that scored it).")] = False,
) -> None:
    """Recommend with the active model from each user's current history in the store."""
    from tailored.pipeline import LiveRecommender

    settings = _settings(store)
    with _store(settings) as opened:
        live = LiveRecommender.active(opened)
        ids = (opened.events.frame()["user_id"].unique().tolist() if all_users
               else list(users or []))
        if not ids:
            raise typer.BadParameter("name at least one user id, or pass --all")
        reranking = diversity > 0 or novelty > 0 or max_per_category is not None
        recs = live.recommend(ids, k=max(k, candidates) if reranking else k)
        if reranking or explain:
            recs = _rerank_and_explain(live, opened, ids, recs, k, diversity=diversity,
                                       novelty=novelty, max_per_category=max_per_category,
                                       explain=explain)
    if output is not None:
        if output.suffix == ".parquet":
            recs.to_parquet(output, index=False)
        else:
            recs.to_csv(output, index=False)
        console.print(f"wrote {len(recs):,} recommendations for {len(ids):,} users to {output}")
        return
    console.print(_recommendations_table(recs, live.version.name if live.version else "model"))


def _rerank_and_explain(live: Any, store: Store, ids: list[str], recs: pd.DataFrame, k: int,
                        *, diversity: float, novelty: float, max_per_category: int | None,
                        explain: bool) -> pd.DataFrame:
    """Diversity/novelty re-ranking and explanations on the model's candidates."""
    from tailored.ranking import (
        categories_of,
        diversify,
        explain_recommendations,
        item_popularity,
        similarity_for,
        titles_of,
    )

    items = store.items.frame()
    has_categories = "categories" in items.columns
    if max_per_category is not None and not has_categories:
        raise typer.BadParameter("--max-per-category needs item categories in the catalog; "
                                 "import items with categories first")
    if diversity > 0 or novelty > 0 or max_per_category is not None:
        recs = diversify(
            recs, k, diversity=diversity,
            similarity=similarity_for(live.model, items) if diversity > 0 else None,
            categories=categories_of(items) if has_categories else None,
            max_per_category=max_per_category, novelty=novelty,
            popularity=item_popularity(live.model) if novelty > 0 else None)
    if explain:
        recs = explain_recommendations(live.model, live.query(ids), recs,
                                       titles=titles_of(items))
    return recs


def _recommendations_table(recs: pd.DataFrame, title: str) -> Table:
    table = Table(title=title)
    columns = ["user_id", "rank", "item_id", "score"]
    if "reason" in recs.columns:
        columns.append("reason")
    for column in columns:
        table.add_column(column, justify="right" if column in ("rank", "score") else "left")
    for row in recs.itertuples(index=False):
        cells = [str(row.user_id), str(row.rank), str(row.item_id), f"{row.score:.4f}"]
        if "reason" in recs.columns:
            cells.append(str(row.reason))
        table.add_row(*cells)
    return table


# ---- serve / demo ----------------------------------------------------------------------

Host = Annotated[str | None, typer.Option(help="Interface to listen on (default 127.0.0.1).")]
Port = Annotated[int | None, typer.Option(help="Port (default 8000).")]


def _serve(settings: Settings) -> None:
    from tailored.serving import run

    console.print(f"serving on [bold]http://{settings.host}:{settings.port}[/] "
                  f"(API docs: http://{settings.host}:{settings.port}/docs); Ctrl-C stops")
    console.print(f"  try: curl 'http://{settings.host}:{settings.port}/recommendations/"
                  "u00001?k=5'")
    console.print(f"  dashboard: http://{settings.host}:{settings.port}/dashboard")
    run(settings)


@app.command()
def serve(
    host: Host = None, port: Port = None, store: StoreOption = None,
    workers: Annotated[int | None, typer.Option(
        min=1, max=64, help="Worker processes (default 1; about one per core). Each "
        "checks the store per request, so an event posted to one is seen by all.")] = None,
) -> None:
    """Serve the REST API with the active model."""
    _serve(_settings(store, host=host, port=port, workers=workers))


@app.command()
def demo(
    serve_api: Annotated[bool, typer.Option(
        "--serve/--no-serve", help="Serve the API when done (until Ctrl-C).")] = True,
    users: Annotated[int, typer.Option(min=50, help="Sample shop users.")] = 2_000,
    items: Annotated[int, typer.Option(min=20, help="Sample shop items.")] = 500,
    events: Annotated[int, typer.Option(min=1_000, help="Sample shop events.")] = 100_000,
    data_dir: Annotated[Path, typer.Option(help="Where the sample shop's files go.")] =
        Path("sample_shop"),
    store: StoreOption = None, host: Host = None, port: Port = None,
) -> None:
    """The whole loop on the embedded default: generate a sample shop, import it, train
    popular / item-kNN / ALS, evaluate them, show recommendations, then serve."""
    from tailored.dataset import Dataset, temporal_split
    from tailored.evaluation import compare
    from tailored.ingest import import_file
    from tailored.jobs import train_model
    from tailored.models import create
    from tailored.pipeline import LiveRecommender
    from tailored.sample import shop

    settings = _settings(store, host=host, port=port)
    started = time.perf_counter()
    with _store(settings) as opened, _progress() as progress:
        task = _step(progress, f"generating a sample shop ({events:,} events)")
        sample = shop(n_users=users, n_items=items, n_events=events, seed=0)
        paths = {p.stem: p for p in sample.write(data_dir, format="csv")}
        for kind in ("items", "users", "events"):
            progress.update(task, description=f"importing {paths[kind]}")
            import_file(opened, paths[kind], kind)
        progress.update(task, description="evaluating on a temporal split")
        split = temporal_split(Dataset.from_store(opened, settings.event_weights))
        table, _ = compare({name: create(name) for name in DEFAULT_MODELS}, split,
                           progress=lambda n: progress.update(task, description=f"fitting {n}"))
        for name in DEFAULT_MODELS:
            progress.update(task, description=f"training {name} on all events")
            train_model(opened, settings, name, validate=False, promote=name == settings.model)
        progress.update(task, description=f"ready in {time.perf_counter() - started:.0f}s")
        live = LiveRecommender.active(opened)
        examples = live.recommend(sample.users["user_id"].head(3).tolist(), k=5)
    console.print(_evaluation_table(table))
    titles = sample.items.set_index("item_id")["title"]
    examples["item_id"] = examples["item_id"] + " " + examples["item_id"].map(titles)
    console.print(_recommendations_table(examples, f"example recommendations ({settings.model})"))
    if serve_api:
        _serve(settings)


# ---- keys / models ---------------------------------------------------------------------

keys_app = typer.Typer(help="API keys for the REST API: create, list, revoke.",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")
models_app = typer.Typer(help="The model registry: list versions, promote, roll back.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what uses the key, e.g. shop-backend.")],
    scope: Annotated[list[str], typer.Option(
        help="read (recommendations, items), write (also events, catalog, users) or admin "
        "(also models and keys); repeatable.")],
    store: StoreOption = None,
) -> None:
    """Create an API key; its secret is printed this once (only its hash is stored)."""
    settings = _settings(store)
    with _store(settings) as opened:
        key, secret = opened.keys.create(name, scope)
    console.print(f"created key [bold]{key.key_id}[/] ({key.name}, scopes "
                  f"{', '.join(key.scopes)}). Its secret, shown this once; store it now:")
    # Plain print: no wrapping or markup, so the secret copies (and pipes) whole.
    print(secret)
    console.print("send it as `Authorization: Bearer <secret>`; from now on every request "
                  "to the API needs a key (except /health)")


@keys_app.command("list")
def keys_list(store: StoreOption = None) -> None:
    """List the API keys (never their secrets)."""
    settings = _settings(store)
    with _store(settings) as opened:
        keys = opened.keys.list()
    table = Table(title=f"{len(keys)} API keys", box=box.SIMPLE_HEAD)
    for column in ("key_id", "name", "scopes", "created", "revoked"):
        table.add_column(column)
    for key in keys:
        table.add_row(key.key_id, key.name, ",".join(key.scopes),
                      f"{key.created_at:%Y-%m-%d %H:%M}",
                      "" if key.revoked_at is None else f"{key.revoked_at:%Y-%m-%d %H:%M}")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="A key id from `keys list`.")],
                store: StoreOption = None) -> None:
    """Revoke an API key: refused at once by new servers, within seconds by running ones."""
    settings = _settings(store)
    with _store(settings) as opened:
        key = opened.keys.revoke(key_id)
    console.print(f"revoked key {key.key_id} ({key.name})")


@models_app.command("list")
def models_list(store: StoreOption = None) -> None:
    """List trained versions with their validation metrics; * marks the active one."""
    settings = _settings(store)
    with _store(settings) as opened:
        versions = opened.models.list()
    table = Table(title=f"{len(versions)} model versions", box=box.SIMPLE_HEAD)
    for column in ("", "version", "name", "created", "metrics"):
        table.add_column(column, justify="right" if column == "version" else "left")
    for v in versions:
        metrics = ", ".join(f"{_label(k)} {value:.4f}" for k, value in v.metrics.items()
                            if isinstance(value, int | float))
        table.add_row("*" if v.active else "", str(v.version), v.name,
                      f"{v.created_at:%Y-%m-%d %H:%M}", metrics)
    console.print(table)


def _promote_loadable(opened: Store, version: int) -> Any:
    """Promote ``version`` once its artifact loads (a broken one is never promoted)."""
    from tailored.errors import ModelNotFoundError
    from tailored.models import Recommender

    found = opened.models.get(version)
    if found is None:
        raise ModelNotFoundError(f"model version {version} is not in the registry; "
                                 "`tailored models list` shows the versions there are")
    try:
        Recommender.load(Path(found.path))
    except Exception as error:
        raise TailoredError(f"model version {version} cannot be loaded from {found.path} "
                            f"({type(error).__name__}: {error}); nothing changed") from None
    return opened.models.promote(version)


@models_app.command("promote")
def models_promote(version: Annotated[int, typer.Argument(min=1, help="A version number.")],
                   store: StoreOption = None) -> None:
    """Make a version the one that serves; running servers follow within seconds."""
    settings = _settings(store)
    with _store(settings) as opened:
        promoted = _promote_loadable(opened, version)
    console.print(f"version {promoted.version} ({promoted.name}) is active")


@models_app.command("rollback")
def models_rollback(store: StoreOption = None) -> None:
    """Serve again the version active before the current one (again: one further back)."""
    settings = _settings(store)
    with _store(settings) as opened:
        active = opened.models.active()
        target = opened.models.previous()
        if target is None:
            raise TailoredError("no earlier version to roll back to; `tailored models list` "
                                "shows the versions, `tailored models promote N` serves one")
        promoted = _promote_loadable(opened, target.version)
    console.print(f"rolled back from version {active.version if active else None} to "
                  f"{promoted.version} ({promoted.name})")


# ---- experiments (A/B tests) / simulate ------------------------------------------------

experiments_app = typer.Typer(
    help="A/B tests between model versions: create, start, stop, show the analysis, "
    "estimate a candidate off-policy.", no_args_is_help=True)
app.add_typer(experiments_app, name="experiments")


@experiments_app.command("create")
def experiments_create(
    variant: Annotated[list[str], typer.Option(
        help="NAME=VERSION or NAME=VERSION:SHARE, repeatable (at least two); the first is "
        "the control, shares default to equal.")],
    name: Annotated[str | None, typer.Option(
        help="A name for people (default: the variants' model names, e.g. "
        "popular-vs-als).")] = None,
    holdout: Annotated[float, typer.Option(
        min=0, max=0.99, help="Share of all users held out of the test.")] = 0.0,
    holdout_version: Annotated[int | None, typer.Option(
        help="The version held-out users get (e.g. a popular model); without it they get "
        "no recommendations.")] = None,
    planned_sample_size: Annotated[int | None, typer.Option(
        min=1, help="Impressions per variant the test is sized for.")] = None,
    baseline_ctr: Annotated[float | None, typer.Option(
        help="Size the test for this control CTR (with --mde) instead.")] = None,
    mde: Annotated[float | None, typer.Option(
        help="Minimum detectable relative lift, e.g. 0.1 for +10% (with --baseline-ctr).")
    ] = None,
    alpha: Annotated[float, typer.Option(help="Significance level for the sizing.")] = 0.05,
    power: Annotated[float, typer.Option(help="Power for the sizing.")] = 0.8,
    description: Annotated[str, typer.Option(help="What the test is about.")] = "",
    start: Annotated[bool, typer.Option("--start", help="Start it at once.")] = False,
    store: StoreOption = None,
) -> None:
    """Create an A/B test between registered model (or recipe) versions."""
    from tailored.monitoring.abtest import sample_size
    from tailored.monitoring.experiments import create_experiment, parse_variant

    variants = [parse_variant(text) for text in variant]
    if (baseline_ctr is None) != (mde is None):
        raise typer.BadParameter("give --baseline-ctr and --mde together", param_hint="--mde")
    if baseline_ctr is not None and mde is not None:
        if planned_sample_size is not None:
            raise typer.BadParameter("give --planned-sample-size or --baseline-ctr/--mde, "
                                     "not both", param_hint="--planned-sample-size")
        try:
            planned_sample_size = sample_size(baseline_ctr, mde, alpha=alpha, power=power)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--mde") from None
    settings = _settings(store)
    with _store(settings) as opened:
        if name is None:
            names = [getattr(opened.models.get(v), "name", f"v{v}") for _, v, _ in variants]
            name = "-vs-".join(names)
        experiment = create_experiment(
            opened, name, variants, holdout_share=holdout, holdout_version=holdout_version,
            planned_sample_size=planned_sample_size, description=description)
        if start:
            experiment = opened.experiments.start(experiment.experiment_id)
    shares = ", ".join(f"{v.name}=v{v.version} ({v.share:.0%})" for v in experiment.variants)
    console.print(f"experiment [bold]{experiment.experiment_id}[/] {experiment.name!r} "
                  f"({experiment.status}): {shares}"
                  + (f", holdout {experiment.holdout_share:.0%}" if experiment.holdout_share
                     else "")
                  + (f", planned {experiment.planned_sample_size:,} impressions per variant"
                     if experiment.planned_sample_size else ""))
    if not start:
        console.print(f"start it with: tailored experiments start {experiment.experiment_id}")


@experiments_app.command("list")
def experiments_list(store: StoreOption = None) -> None:
    """List the experiments."""
    settings = _settings(store)
    with _store(settings) as opened:
        experiments = opened.experiments.list()
    table = Table(title=f"{len(experiments)} experiments", box=box.SIMPLE_HEAD)
    for column in ("id", "name", "status", "variants", "holdout", "planned", "started",
                   "stopped"):
        table.add_column(column)
    for e in experiments:
        table.add_row(e.experiment_id, e.name, e.status,
                      ", ".join(f"{v.name}=v{v.version}" for v in e.variants),
                      f"{e.holdout_share:.0%}",
                      "" if e.planned_sample_size is None else f"{e.planned_sample_size:,}",
                      "" if e.started_at is None else f"{e.started_at:%Y-%m-%d %H:%M}",
                      "" if e.stopped_at is None else f"{e.stopped_at:%Y-%m-%d %H:%M}")
    console.print(table)


ExperimentArg = Annotated[str, typer.Argument(help="An experiment id (`experiments list`).")]


@experiments_app.command("start")
def experiments_start(experiment_id: ExperimentArg, store: StoreOption = None) -> None:
    """Start an experiment: running services assign users within seconds."""
    settings = _settings(store)
    with _store(settings) as opened:
        experiment = opened.experiments.start(experiment_id)
    console.print(f"experiment {experiment.experiment_id} is running")


@experiments_app.command("stop")
def experiments_stop(experiment_id: ExperimentArg, store: StoreOption = None) -> None:
    """Stop an experiment (its data stays for the analysis)."""
    settings = _settings(store)
    with _store(settings) as opened:
        experiment = opened.experiments.stop(experiment_id)
    console.print(f"experiment {experiment.experiment_id} is stopped")


def _fraction(value: float | None, digits: int = 2, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:{'+' if signed else ''}.{digits}f}%"


def _p_text(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.0001" if value < 0.0001 else f"{value:.4f}"


@experiments_app.command("show")
def experiments_show(
    experiment_id: ExperimentArg,
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] =
        False,
    store: StoreOption = None,
) -> None:
    """The analysis: CTR per variant with its interval, lift, p-values, probability to beat
    control, conversion, revenue per user, and the verdict."""
    from tailored.monitoring.abtest import analyze

    settings = _settings(store)
    with _store(settings) as opened:
        report = analyze(opened, experiment_id, alpha=alpha)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    experiment = report.experiment
    table = Table(title=f"experiment {experiment['experiment_id']} {experiment['name']!r} "
                        f"({experiment['status']}): CTR", box=box.SIMPLE_HEAD)
    for column in ("variant", "v", "impr.", "CTR", f"{report.confidence:.0%} CI",
                   "lift", "p", "P(beat)"):
        table.add_column(column, justify="left" if column == "variant" else "right",
                         no_wrap=True)
    business = Table(title="users and outcomes (attributed)", box=box.SIMPLE_HEAD)
    for column in ("variant", "users", "clicks", "conv.", "rev/user", "ev/session",
                   "p (mSPRT)"):
        business.add_column(column, justify="left" if column == "variant" else "right",
                            no_wrap=True)
    for row in report.variants:
        label = row.variant + ("*" if row.is_control else "")
        table.add_row(
            label, "-" if row.version is None else str(row.version), f"{row.impressions:,}",
            _fraction(row.ctr),
            "-" if row.ci_low is None or row.ci_high is None
            else f"{_fraction(row.ci_low)}-{_fraction(row.ci_high)}",
            _fraction(row.lift, 1, signed=True),
            _p_text(row.p_value),
            "-" if row.prob_beat_control is None else f"{row.prob_beat_control:.3f}")
        business.add_row(
            label, f"{row.users:,}", f"{row.clicks:,}", _fraction(row.conversion),
            "-" if row.revenue_per_user is None else f"{row.revenue_per_user:.2f}",
            "-" if row.engagement is None else f"{row.engagement:.2f}",
            _p_text(row.sequential_p_value))
    console.print(table)
    console.print(business)
    console.print(f"* control. CI: Wilson score interval; p: two-proportion z-test; P(beat): "
                  f"probability to beat the control (Beta posteriors); alpha {report.alpha}; "
                  "conv.: users who bought from a list; ev/session: events per session")
    if report.planned_sample_size:
        console.print(f"planned sample: {report.planned_sample_size:,} impressions per variant"
                      f" ({_fraction(report.sample_progress, 0)} reached)")
    else:
        console.print("no planned sample size (set one at create with --baseline-ctr and "
                      "--mde): p-values are only valid at a size fixed in advance")
    colour = "green" if report.winner else "yellow"
    console.print(f"verdict: [bold {colour}]{report.verdict}[/]")


@experiments_app.command("sample-size")
def experiments_sample_size(
    baseline_ctr: Annotated[float, typer.Option(help="The control's rate, e.g. 0.05.")],
    mde: Annotated[float, typer.Option(help="Minimum detectable relative lift, e.g. 0.1.")],
    alpha: Annotated[float, typer.Option(help="Significance level (two-sided).")] = 0.05,
    power: Annotated[float, typer.Option(help="Power.")] = 0.8,
) -> None:
    """Impressions per variant needed to detect a lift of a rate."""
    from tailored.monitoring.abtest import sample_size

    try:
        n = sample_size(baseline_ctr, mde, alpha=alpha, power=power)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    console.print(f"{n:,} impressions per variant to detect {baseline_ctr:.2%} -> "
                  f"{baseline_ctr * (1 + mde):.2%} (alpha {alpha}, power {power})")


@experiments_app.command("ope")
def experiments_ope(
    candidate: Annotated[int, typer.Option(help="The model version to evaluate.")],
    experiment: Annotated[str | None, typer.Option(
        help="Only the answers served in this experiment.")] = None,
    store: StoreOption = None,
) -> None:
    """Estimate a candidate version's CTR from logged impressions (IPS and SNIPS), before it
    gets any traffic."""
    from tailored.monitoring.ope import evaluate_candidate

    settings = _settings(store)
    with _store(settings) as opened:
        result = evaluate_candidate(opened, candidate, experiment_id=experiment)
    console.print(
        f"candidate v{candidate} on {result.impressions:,} logged impressions "
        f"({result.recommendations:,} answers): IPS CTR {result.ips:.2%} "
        f"[{result.ips_low:.2%} .. {result.ips_high:.2%}], SNIPS CTR "
        + ("-" if result.snips is None else f"{result.snips:.2%}")
        + f"; the logging policy got {result.logged_ctr:.2%}; support {result.support:.0%}, "
        f"effective sample size {result.effective_sample_size:,.0f}")
    if result.deterministic_logging:
        console.print("[yellow]the logging policy ranked deterministically (every propensity "
                      "1): only slots where both policies show the same item count, so the "
                      "estimate leans low; serve with exploration for unbiased estimates[/]")


@experiments_app.command("feedback")
def experiments_feedback(
    output: Annotated[Path, typer.Option(help="A .parquet or .csv file to write.")],
    store: StoreOption = None,
) -> None:
    """Export labelled impressions (clicked 1, shown and not clicked 0) for the ranker's
    next training (see tailored.monitoring.feedback)."""
    from tailored.monitoring.feedback import feedback_from_store

    settings = _settings(store)
    with _store(settings) as opened:
        labels = feedback_from_store(opened)
    if output.suffix == ".parquet":
        labels.assign(context=labels["context"].map(json.dumps)).to_parquet(output,
                                                                              index=False)
    else:
        labels.to_csv(output, index=False)
    console.print(f"wrote {len(labels):,} labelled impressions "
                  f"({int(labels['label'].sum()) if len(labels) else 0:,} clicked) to {output}")


@app.command()
def simulate(
    users: Annotated[int, typer.Option(min=1, help="Simulated shop users.")] = 500,
    sessions: Annotated[int, typer.Option(min=1, help="Sessions per user.")] = 1,
    k: Annotated[int, typer.Option(min=1, max=100, help="Items per list.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the users' choices.")] = 0,
    url: Annotated[str | None, typer.Option(
        help="A running service, e.g. http://127.0.0.1:8000 (default: the app in-process "
        "on the store).")] = None,
    api_key: Annotated[str | None, typer.Option(
        envvar="TAILORED_API_KEY", help="An API key with the write scope, when the service "
        "has keys.")] = None,
    shop_users: Annotated[int, typer.Option(help="The sample shop's size and seed, as the "
                                                 "store was filled (demo defaults).")] = 2_000,
    shop_items: Annotated[int, typer.Option()] = 500,
    shop_events: Annotated[int, typer.Option()] = 100_000,
    shop_seed: Annotated[int, typer.Option()] = 0,
    explore: Annotated[float | None, typer.Option(
        min=0, max=1, help="Share of slots the service's exploration bandit fills "
        "(new items get shown; default: the service's exploration_share).")] = None,
    store: StoreOption = None,
) -> None:
    """Simulated traffic: sample shop users ask for recommendations, see them, click and buy
    by their hidden tastes (with position bias), and send impressions, clicks and
    purchases with the recommendation ids; an experiment running gathers real data."""
    import httpx

    from tailored.jobs.simulate import simulate as run_simulation
    from tailored.sample import shop

    settings = _settings(store)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with _progress() as progress:
        task = _step(progress, "generating the sample shop's hidden tastes")
        sample = shop(n_users=shop_users, n_items=shop_items, n_events=shop_events,
                      seed=shop_seed)

        def step(message: str) -> None:
            progress.update(task, description=message)

        if url is not None:
            with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
                report = run_simulation(client, sample, users=users, sessions=sessions, k=k,
                                        seed=seed, progress=step, explore=explore)
        else:
            import warnings

            from tailored.serving import create_app

            with warnings.catch_warnings():  # Starlette's note on which httpx it prefers
                warnings.simplefilter("ignore", DeprecationWarning)
                from fastapi.testclient import TestClient

            with TestClient(create_app(settings), headers=headers) as client:
                report = run_simulation(client, sample, users=users, sessions=sessions, k=k,
                                        seed=seed, progress=step, explore=explore)
    console.print(f"{report.sessions:,} sessions of {report.users:,} users: "
                  f"{report.impressions:,} impressions, {report.clicks:,} clicks "
                  f"(CTR {report.ctr:.2%}), {report.purchases:,} purchases "
                  f"({report.revenue:,.2f}) in {report.seconds:.0f}s")
    for variant, count in sorted(report.variants.items()):
        console.print(f"  {variant}: {count:,} answers, "
                      f"{report.clicks_by_variant.get(variant, 0):,} clicks")
    if report.explored:
        console.print(f"  explored: {report.explored:,} slots placed by the bandit, "
                      f"{report.explored_clicks:,} clicks on them")
    if report.unknown_items:
        console.print(f"[yellow]{report.unknown_items:,} recommended items are not in the "
                      "sample shop (was the store filled from another shop? see --shop-*)[/]")


@app.command()
def monitor(
    watch: Annotated[float | None, typer.Option(
        min=1, help="Check again every SECONDS until Ctrl-C (default: check once).")] = None,
    record: Annotated[bool, typer.Option(
        help="Write new drift alerts to the store (what the retraining worker acts "
        "on).")] = True,
    window: Annotated[int | None, typer.Option(
        min=20, help="Events per window of the input-distribution detectors (default: "
        "about a hundredth of the events).")] = None,
    delta: Annotated[float, typer.Option(
        min=1e-9, max=0.5, help="ADWIN's confidence; smaller needs stronger "
        "evidence.")] = 0.002,
    rounds: Annotated[int | None, typer.Option(min=1, hidden=True)] = None,
    store: StoreOption = None,
) -> None:
    """Drift detectors (ADWIN) on the online CTR and on what users do: their state, and
    the alerts they raised."""
    from rich.console import Group
    from rich.live import Live

    from tailored.monitoring.drift import DriftConfig, check_drift

    settings = _settings(store)
    config = DriftConfig(window_events=window, delta=delta)
    with _store(settings) as opened:
        if watch is None:
            console.print(_monitor_view(opened, check_drift(opened, config, record=record)))
            return
        done = 0
        with Live(console=console, auto_refresh=False) as live:
            try:
                while rounds is None or done < rounds:
                    report = check_drift(opened, config, record=record)
                    live.update(Group(_monitor_view(opened, report),
                                      f"[dim]every {watch:g}s; Ctrl-C stops[/]"), refresh=True)
                    done += 1
                    if rounds is None or done < rounds:
                        time.sleep(watch)
            except KeyboardInterrupt:
                pass


def _monitor_view(store: Store, report: Any) -> Any:
    from rich.console import Group

    styles = {"ok": "green", "alert": "bold red", "no data": "dim"}
    table = Table(title=f"drift detectors ({report.checked_at:%Y-%m-%d %H:%M:%S} UTC)",
                  box=box.SIMPLE_HEAD)
    for column in ("detector", "status", "observations", "estimate", "latest", "last change"):
        table.add_column(column, justify="right" if column in ("observations", "estimate")
                         else "left")
    for state in report.detectors:
        is_ctr = state.name == "ctr"
        show = (lambda v: f"{v:.2%}") if is_ctr else (lambda v: f"{v:.3f}")
        last = state.last_drift
        latest = ", ".join(f"{k} {v:,.0f}" if k in ("impressions", "clicks") else f"{k} {v:.3f}"
                           for k, v in state.latest.items() if k != "no_drift_js")
        table.add_row(
            state.name, f"[{styles[state.status]}]{state.status}[/]",
            f"{state.observations:,}", "-" if state.estimate is None else show(state.estimate),
            latest or "-",
            "-" if last is None else f"{last.detected_at:%Y-%m-%d %H:%M}: {show(last.before)} "
                                     f"-> {show(last.after)}")
    alerts = Table(title="alerts (newest first)", box=box.SIMPLE_HEAD)
    for column in ("detected", "detector", "message", "handled"):
        alerts.add_column(column)
    for alert in store.alerts.list(limit=10):
        alerts.add_row(f"{alert.detected_at:%Y-%m-%d %H:%M}", alert.detector, alert.message,
                       "[red]open[/]" if alert.handled_at is None else alert.handled_by or "")
    parts: list[Any] = [table, alerts]
    if report.new_alerts:
        parts.append(f"[bold red]{len(report.new_alerts)} new alert(s)[/]; "
                     "`tailored train --on-drift` retrains on them")
    return Group(*parts)


@app.command()
def version() -> None:
    """Print the version."""
    from tailored import __version__

    console.print(__version__)


def main() -> None:
    try:
        app()
    except (TailoredError, ValidationError) as error:
        console.print(f"[red]error:[/] {error}")
        raise SystemExit(1) from None
