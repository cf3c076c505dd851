"""The ``tailored`` command line: import data, train, evaluate, recommend, serve, demo."""

from __future__ import annotations

import json
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
          store: StoreOption = None,
          promote: Annotated[bool, typer.Option(help="Make the new version the one that "
                                                     "serves.")] = True) -> None:
    """Train a model on everything in the store, validate it, register it and promote it."""
    from tailored.jobs import train_model

    settings = _settings(store)
    chosen = _recipe(model, set_, recipe, settings)
    name = chosen.model.name
    with _store(settings) as opened, _progress() as progress:
        task = _step(progress, f"training {chosen.name}")
        trained = train_model(opened, settings, chosen, promote=promote,
                              progress=lambda m: progress.update(task, description=m))
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in trained.metrics.items())
    console.print(f"model {name} version {trained.version.version} at {trained.version.path}"
                  f"{' (active)' if trained.version.active else ''}; temporal split: {metrics}")


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
        "space: popular, item_knn, user_knn, ease, als, bpr).")] = None,
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
    settings_text = " ".join(f"--set {key}={json.dumps(value)}"
                             for key, value in result.best_params.items())
    console.print(f"best: [bold]{result.best_name}[/] {result.best_params} "
                  f"(validation {result.metric} {result.best_score:.4f}, "
                  f"{result.elapsed:.0f}s)")
    console.print("held-out test: " + ", ".join(f"{_label(name)} {value:.4f}"
                                                for name, value in test.items()))
    console.print(f"train it with: tailored train --model {result.best_name} {settings_text}")
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
        recs = live.recommend(ids, k=k)
    if output is not None:
        if output.suffix == ".parquet":
            recs.to_parquet(output, index=False)
        else:
            recs.to_csv(output, index=False)
        console.print(f"wrote {len(recs):,} recommendations for {len(ids):,} users to {output}")
        return
    console.print(_recommendations_table(recs, live.version.name if live.version else "model"))


def _recommendations_table(recs: pd.DataFrame, title: str) -> Table:
    table = Table(title=title)
    for column in ("user_id", "rank", "item_id", "score"):
        table.add_column(column, justify="right" if column in ("rank", "score") else "left")
    for row in recs.itertuples(index=False):
        table.add_row(str(row.user_id), str(row.rank), str(row.item_id), f"{row.score:.4f}")
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
    run(settings)


@app.command()
def serve(host: Host = None, port: Port = None, store: StoreOption = None) -> None:
    """Serve the REST API with the active model."""
    _serve(_settings(store, host=host, port=port))


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
