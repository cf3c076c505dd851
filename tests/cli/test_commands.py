"""The root app gathers every command and group from the modules of ``tailored.cli``, in
the order ``tailored --help`` lists them."""

from __future__ import annotations

import typer.main

from tailored.cli import app


def test_every_command_is_registered_in_help_order() -> None:
    root = typer.main.get_command(app)
    commands = [(name, list(getattr(command, "commands", {})))
                for name, command in root.commands.items()]

    assert commands == [
        ("init", []), ("train", []), ("evaluate", []), ("tune", []), ("recommend", []),
        ("deliver", []), ("similar", []), ("popular", []), ("serve", []), ("consume", []),
        ("demo", []),
        ("simulate", []), ("monitor", []), ("retain", []), ("version", []),
        ("import", ["events", "items", "users", "movielens"]),
        ("export", ["events"]),
        ("keys", ["create", "list", "revoke", "user-token"]),
        ("models", ["list", "promote", "rollback"]),
        ("experiments", ["create", "list", "start", "stop", "show", "sample-size", "ope",
                         "feedback"]),
        ("users", ["export", "consent", "erase", "similar"]),
        ("placements", ["load", "list", "show", "delete"]),
        ("webhooks", ["add", "list", "remove", "deliveries", "send"]),
    ]
