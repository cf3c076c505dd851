"""What the commands share: the console, settings and store set-up, progress, ``--set``
parsing, the option and argument types, and the rendering (tables, number formats)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich import box
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from tailored.settings import Settings, load_settings
from tailored.store import Store, open_store_from

console = Console()
DEFAULT_MODELS = ("popular", "item_knn", "als")

# ---- option and argument types ---------------------------------------------------------

StoreOption = Annotated[str | None, typer.Option(
    "--store", help="Store URL, e.g. sqlite:///tailored.db or postgresql://host/db "
    "(default: TAILORED_STORE_URL, tailored.toml, then sqlite:///tailored.db).")]

ModelOption = Annotated[str | None, typer.Option(
    "--model", help="Model family: popular, item_knn or als (default: settings.model).")]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", help="A model parameter as key=value, repeatable (e.g. --set factors=64).")]

RecipeOption = Annotated[str | None, typer.Option(
    "--recipe", help="A pipeline recipe: a TOML file, or the name of a shipped one "
    "(hybrid, ranked, stacked, switching, shop-with-rules, ...; see recipes/).")]

SkipInvalid = Annotated[bool, typer.Option(
    "--skip-invalid", help="Import the valid rows and write rejected ones, with reasons, to a "
    "rejects file (default: a file with any bad row imports nothing).")]
Rejects = Annotated[Path | None, typer.Option(
    help="Where --skip-invalid writes rejected rows (default FILE.rejects.csv).")]
DataFile = Annotated[Path, typer.Argument(
    help="A .csv, .tsv, .jsonl or .parquet file.", exists=True, dir_okay=False)]

Host = Annotated[str | None, typer.Option(help="Interface to listen on (default 127.0.0.1).")]
Port = Annotated[int | None, typer.Option(help="Port (default 8000).")]

ExperimentArg = Annotated[str, typer.Argument(help="An experiment id (`experiments list`).")]


# ---- set-up ----------------------------------------------------------------------------


def _settings(store_url: str | None = None, **overrides: Any) -> Settings:
    return load_settings(store_url=store_url, **overrides)


@contextmanager
def _store(settings: Settings) -> Iterator[Store]:
    store = open_store_from(settings)
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
    """``key=value`` pairs; values are JSON where they parse (numbers, booleans).

    >>> _parse_params(["factors=64", "loss=warp", "exact=true"])
    {'factors': 64, 'loss': 'warp', 'exact': True}
    """
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


# ---- rendering -------------------------------------------------------------------------

_LABELS = {"ndcg": "NDCG", "recall": "Recall", "hit_rate": "HR", "map": "MAP",
           "coverage": "cover", "fit_s": "fit s", "recommend_ms_per_user": "ms/user",
           "novelty": "novel", "popularity": "pop", "diversity": "div",
           "personalization": "person"}
ACCURACY_COLUMNS = ("ndcg", "recall", "hit_rate", "map", "coverage", "fit_s")
BEYOND_COLUMNS = ("ndcg", "coverage", "novelty", "popularity", "diversity", "gini",
                  "personalization")


def _label(column: str) -> str:
    """A metric column's short header.

    >>> _label("hit_rate@10"), _label("gini")
    ('HR@10', 'gini')
    """
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


def _fraction(value: float | None, digits: int = 2, signed: bool = False) -> str:
    """A rate as a percentage; ``-`` when unknown.

    >>> _fraction(0.0523), _fraction(0.1, 1, signed=True), _fraction(None)
    ('5.23%', '+10.0%', '-')
    """
    if value is None:
        return "-"
    return f"{100 * value:{'+' if signed else ''}.{digits}f}%"


def _p_text(value: float | None) -> str:
    """A p-value to four places; ``-`` when unknown.

    >>> _p_text(0.03125), _p_text(0.00001), _p_text(None)
    ('0.0312', '<0.0001', '-')
    """
    if value is None:
        return "-"
    return "<0.0001" if value < 0.0001 else f"{value:.4f}"


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


def _load_recipe(text: str) -> Any:
    """A recipe from a TOML file, or a shipped one by name (``--recipe``)."""
    from tailored.errors import InvalidDataError
    from tailored.pipeline import find_recipe, load_recipe

    try:
        if text.endswith(".toml") or Path(text).is_file():
            return load_recipe(text)
        return find_recipe(text)
    except InvalidDataError as error:
        raise typer.BadParameter(str(error), param_hint="--recipe") from None
