"""`tailored placements load|list|show|delete`: where lists are shown, and how."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from tailored.cli.common import StoreOption, _settings, _store, console
from tailored.errors import NotFoundError

placements_app = typer.Typer(
    help="Placements (home, product-page, email-weekly): a pipeline version with its own "
    "filter, boosts, knobs, shares and fallback, asked for with ?placement=NAME.",
    no_args_is_help=True)


@placements_app.command("load")
def placements_load(
    file: Annotated[Path, typer.Argument(help="A placements TOML file, one [NAME] table "
                                              "each.")],
    store: StoreOption = None,
) -> None:
    """Store every placement of a file; each one that changed gets a new version."""
    from tailored.pipeline import load_placements, save_placement

    placements = load_placements(file)  # all checked before any is stored
    settings = _settings(store)
    with _store(settings) as opened:
        before = {p.name: p.version for p in opened.placements.list()}
        for name, placement in placements.items():
            stored = save_placement(opened, name, placement, by=f"file {file.name}")
            state = ("unchanged" if before.get(name) == stored.version
                     else "new" if name not in before else "changed")
            console.print(f"{name}: version {stored.version} ({state})")


@placements_app.command("list")
def placements_list(store: StoreOption = None) -> None:
    """The current version of every placement."""
    settings = _settings(store)
    with _store(settings) as opened:
        placements = opened.placements.list()
    table = Table(title=f"{len(placements)} placements", box=box.SIMPLE_HEAD)
    for column in ("name", "version", "configuration", "changed", "by"):
        table.add_column(column)
    for placement in placements:
        table.add_row(placement.name, str(placement.version),
                      json.dumps(placement.spec, sort_keys=True),
                      f"{placement.created_at:%Y-%m-%d %H:%M}", placement.created_by)
    console.print(table)


@placements_app.command("show")
def placements_show(name: Annotated[str, typer.Argument(help="The placement's name.")],
                    store: StoreOption = None) -> None:
    """Every version of one placement, oldest first, as JSON lines."""
    settings = _settings(store)
    with _store(settings) as opened:
        history = opened.placements.history(name)
    if not history:
        raise NotFoundError(f"no placement named {name!r}; `tailored placements list` shows "
                            "them")
    for version in history:
        print(json.dumps({"name": version.name, "version": version.version,
                          "placement": version.spec, "created_at": version.created_at
                          .isoformat(), "created_by": version.created_by}))


@placements_app.command("delete")
def placements_delete(name: Annotated[str, typer.Argument(help="The placement's name.")],
                      store: StoreOption = None) -> None:
    """Delete a placement (requests naming it get a 404; its versions are kept)."""
    settings = _settings(store)
    with _store(settings) as opened:
        if not opened.placements.delete(name, by="cli"):
            raise NotFoundError(f"no placement named {name!r}; `tailored placements list` "
                                "shows them")
    console.print(f"deleted placement {name}")
