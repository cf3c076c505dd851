"""`tailored export events`: the store's events as Parquet, for Spark and other engines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tailored.cli.common import StoreOption, _progress, _settings, _step, _store, console

export_app = typer.Typer(help="Export the store's events (as Parquet) for other engines.",
                         no_args_is_help=True)


@export_app.command("events")
def export_events_command(
    output: Annotated[Path, typer.Option(
        "--output", "-o", dir_okay=False,
        help="The Parquet file to write (replaced if it exists).")] = Path("events.parquet"),
    store: StoreOption = None,
) -> None:
    """Write every event (user_id, item_id, event_type, value, timestamp, session_id,
    context) as one Parquet file, oldest first; users who withhold consent are left out."""
    from tailored.jobs.parquet import export_events

    settings = _settings(store)
    with _store(settings) as opened, _progress() as progress:
        _step(progress, f"exporting events to {output}")
        exported = export_events(opened, output)
    withheld = (f" ({exported.withheld_users:,} users withholding consent left out)"
                if exported.withheld_users else "")
    console.print(f"wrote {exported.events:,} events of {exported.users:,} users on "
                  f"{exported.items:,} items to {exported.path}{withheld}")
