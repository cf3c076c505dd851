"""The ``tailored`` command line: import data, train, evaluate, recommend, serve, demo.

This module builds the root app from the command groups (one module each) and holds the
entry point, ``main``; the pieces the commands share are in ``tailored.cli.common``.
"""

from __future__ import annotations

import typer
from pydantic import ValidationError

from tailored.cli.common import console
from tailored.cli.data import import_app, init
from tailored.cli.evaluation import evaluate
from tailored.cli.experiments import experiments_app, simulate
from tailored.cli.export import export_app
from tailored.cli.keys import keys_app
from tailored.cli.models import models_app
from tailored.cli.monitoring import monitor
from tailored.cli.placements import placements_app
from tailored.cli.recommending import deliver, popular, recommend, similar
from tailored.cli.retention import retain
from tailored.cli.serving import demo, serve
from tailored.cli.streams import consume
from tailored.cli.training import train, tune
from tailored.cli.users import users_app
from tailored.cli.webhooks import webhooks_app
from tailored.errors import TailoredError

__all__ = ["app", "main"]

app = typer.Typer(help="tailored: a self-hosted personalization engine.", no_args_is_help=True,
                  pretty_exceptions_enable=False)


def version() -> None:
    """Print the version."""
    from tailored import __version__

    console.print(__version__)


app.command("init")(init)
app.command("train")(train)
app.command("evaluate")(evaluate)
app.command("tune")(tune)
app.command("recommend")(recommend)
app.command("deliver")(deliver)
app.command("similar")(similar)
app.command("popular")(popular)
app.command("serve")(serve)
app.command("consume")(consume)
app.command("demo")(demo)
app.command("simulate")(simulate)
app.command("monitor")(monitor)
app.command("retain")(retain)
app.command("version")(version)
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")
app.add_typer(keys_app, name="keys")
app.add_typer(models_app, name="models")
app.add_typer(experiments_app, name="experiments")
app.add_typer(users_app, name="users")
app.add_typer(placements_app, name="placements")
app.add_typer(webhooks_app, name="webhooks")


def main() -> None:
    try:
        app()
    except (TailoredError, ValidationError) as error:
        console.print(f"[red]error:[/] {error}")
        raise SystemExit(1) from None
