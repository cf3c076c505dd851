"""`tailored users`: a user's data rights from the command line: export what the store
holds about them, change their consent, erase them everywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tailored.cli.common import StoreOption, _settings, _store, console

users_app = typer.Typer(help="Users: their data rights (export, consent, erasure) and the "
                        "users like them.",
                        no_args_is_help=True)
UserIdArgument = Annotated[str, typer.Argument(help="The user's id, as sent with their events.")]


@users_app.command("export")
def users_export(
    user_id: UserIdArgument,
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


@users_app.command("consent")
def users_consent(
    user_id: UserIdArgument,
    grant: Annotated[list[str] | None, typer.Option(
        help="A purpose to grant (personalization, analytics, or one of yours); repeat "
             "for several.")] = None,
    withdraw: Annotated[list[str] | None, typer.Option(
        help="A purpose to withdraw; repeat for several.")] = None,
    store: StoreOption = None,
) -> None:
    """Show a user's consent and its history; with --grant/--withdraw, change it first
    (each change is recorded with its time)."""
    from pydantic import ValidationError

    from tailored.schema import CONSENT_PURPOSES, User

    changes = {**dict.fromkeys(grant or [], True), **dict.fromkeys(withdraw or [], False)}
    settings = _settings(store)
    with _store(settings) as opened:
        if changes:
            try:
                user = User(user_id=user_id, consent=changes)
            except ValidationError as error:
                raise typer.BadParameter(
                    f"a purpose is a lowercase name such as analytics: {error}") from None
            if opened.users.update(user_id, {"consent": user.consent}) is None:
                opened.users.upsert([user])
        profile = opened.users.get(user_id)
        history = opened.users.consent_history(user_id)
    recorded = {} if profile is None else profile.consent
    for purpose, granted in {**dict.fromkeys(CONSENT_PURPOSES, True), **recorded}.items():
        console.print(f"{purpose}: {'granted' if granted else 'withheld'}"
                      + ("" if purpose in recorded else " (by default)"))
    for change in history:
        console.print(f"  {change.changed_at.isoformat()}  {change.purpose} "
                      f"{'granted' if change.granted else 'withdrawn'}")


@users_app.command("erase")
def users_erase(
    user_ids: Annotated[list[str] | None, typer.Argument(
        help="The users' ids, as sent with their events.")] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", help="A text file of user ids to erase, one per line (bulk).")] = None,
    store: StoreOption = None,
) -> None:
    """Erase users everywhere: their events, profile, consent history and served answers,
    and their rows in every registered model artifact; an audit record keeps a keyed
    hash. Running services reload the rewritten models within seconds."""
    from pydantic import TypeAdapter, ValidationError

    from tailored.jobs.erase import erase_users
    from tailored.schema import Id

    ids = list(user_ids or [])
    if file is not None:
        ids += [line.strip() for line in file.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    if not ids:
        raise typer.BadParameter("name the users to erase, or give --file")
    try:  # as the store holds them (NFC), so an id spelt another way still matches
        ids = [TypeAdapter(Id).validate_python(user_id) for user_id in ids]
    except ValidationError as error:
        raise typer.BadParameter(f"not a user id: {error}") from None
    settings = _settings(store)
    with _store(settings) as opened:
        report = erase_users(opened, settings, ids, erased_by="cli")
    print(json.dumps(report.summary(), indent=2))


@users_app.command("similar")
def users_similar(
    user_id: UserIdArgument,
    k: Annotated[int, typer.Option(min=1, max=1000)] = 10,
    store: StoreOption = None,
) -> None:
    """Users whose histories are most like this user's, by the active version's model
    (as GET /users/{id}/similar); nobody who withholds personalization."""
    from rich.table import Table

    from tailored.pipeline import LiveRecommender

    settings = _settings(store)
    with _store(settings) as opened:
        similar = LiveRecommender.active(opened).similar_users(user_id, k)
    table = Table(title=f"users like {user_id}")
    for column in ("rank", "user_id", "score"):
        table.add_column(column, justify="left" if column == "user_id" else "right")
    for row in similar.itertuples(index=False):
        table.add_row(str(row.rank), str(row.similar_user_id), f"{row.score:.4f}")
    console.print(table)
