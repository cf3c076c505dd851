"""`tailored users export`: what the store holds about a user, for their access request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tailored.cli.common import StoreOption, _settings, _store, console

users_app = typer.Typer(help="Users' data rights: export what the store holds about them.",
                        no_args_is_help=True)


@users_app.command("export")
def users_export(
    user_id: Annotated[str, typer.Argument(help="The user's id, as sent with their events.")],
    output: Annotated[Path | None, typer.Option(
        help="Write the JSON document here instead of printing it.")] = None,
    store: StoreOption = None,
) -> None:
    """Everything stored about a user as one JSON document (format
    tailored.user-export/1: profile, events, recommendations; the README lists its
    fields)."""
    from tailored.jobs.export import export_user

    settings = _settings(store)
    with _store(settings) as opened:
        document = export_user(opened, user_id)
    text = json.dumps(document, indent=2, ensure_ascii=False)
    if output is None:
        print(text)  # plain: the document pipes whole
        return
    output.write_text(text + "\n", encoding="utf-8")
    counts = document["counts"]
    console.print(f"wrote {counts['events']:,} events and {counts['recommendations']:,} "
                  f"recommendations of user {user_id!r} to {output}")
