"""`tailored init` and `tailored import events|items|users|movielens`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tailored.cli.common import (
    DataFile,
    Rejects,
    SkipInvalid,
    StoreOption,
    _progress,
    _settings,
    _step,
    _store,
    console,
)

import_app = typer.Typer(help="Import events, items, users or a MovieLens directory.",
                         no_args_is_help=True)


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
        report = import_file(opened, path, kind, skip_invalid=skip_invalid,
                             rejects_path=rejects, event_weights=settings.event_weights)
    console.print(
        f"{kind}: read {report.rows_read:,} rows, imported {report.imported:,}, "
        f"already there {report.duplicates:,}, rejected {report.rejected:,} "
        f"in {report.seconds:.1f}s ({report.rows_read / max(report.seconds, 1e-9):,.0f} rows/s)")
    if report.rejected:
        console.print(f"[yellow]rejected rows and reasons: {report.rejects_path}[/]")


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
