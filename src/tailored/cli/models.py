"""`tailored models list|promote|rollback`: the model registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from tailored.cli.common import StoreOption, _label, _settings, _store, console
from tailored.errors import TailoredError
from tailored.store import Store

models_app = typer.Typer(help="The model registry: list versions, promote, roll back.",
                         no_args_is_help=True)


@models_app.command("list")
def models_list(store: StoreOption = None) -> None:
    """List trained versions with their validation metrics; * marks the active one."""
    settings = _settings(store)
    with _store(settings) as opened:
        versions = opened.models.list()
        pending = opened.privacy.erasures(pending=True)
    table = Table(title=f"{len(versions)} model versions", box=box.SIMPLE_HEAD)
    for column in ("", "version", "name", "created", "metrics"):
        table.add_column(column, justify="right" if column == "version" else "left")
    for v in versions:
        metrics = ", ".join(f"{_label(k)} {value:.4f}" for k, value in v.metrics.items()
                            if isinstance(value, int | float))
        table.add_row("*" if v.active else "", str(v.version), v.name,
                      f"{v.created_at:%Y-%m-%d %H:%M}", metrics)
    console.print(table)
    if pending:
        due = min(e.retrain_due for e in pending if e.retrain_due is not None)
        console.print(f"{len(pending)} erasures wait for a retraining (due by "
                      f"{due:%Y-%m-%d %H:%M} UTC): the models above still carry those users "
                      "at item level")


def _promote_loadable(opened: Store, version: int) -> Any:
    """Promote ``version`` once its artifact loads (a broken one is never promoted)."""
    from tailored.errors import ModelNotFoundError
    from tailored.pipeline import Pipeline

    found = opened.models.get(version)
    if found is None:
        raise ModelNotFoundError(f"model version {version} is not in the registry; "
                                 "`tailored models list` shows the versions there are")
    try:
        Pipeline.load(Path(found.path))
    except Exception as error:
        raise TailoredError(f"model version {version} cannot be loaded from {found.path} "
                            f"({type(error).__name__}: {error}); nothing changed") from None
    from tailored.jobs.webhooks import model_promoted

    previous = opened.models.active()
    promoted = opened.models.promote(version)
    model_promoted(opened, promoted, None if previous is None else previous.version)
    return promoted


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
