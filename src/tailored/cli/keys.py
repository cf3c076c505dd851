"""`tailored keys create|list|revoke|user-token`: API keys and user tokens for the REST API."""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.table import Table

from tailored.cli.common import StoreOption, _settings, _store, console

keys_app = typer.Typer(help="API keys for the REST API: create, list, revoke; user tokens.",
                       no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what uses the key, e.g. shop-backend.")],
    scope: Annotated[list[str], typer.Option(
        help="read (recommendations, items), write (also events, catalog, users) or admin "
        "(also models and keys); repeatable.")],
    store: StoreOption = None,
) -> None:
    """Create an API key; its secret is printed this once (only its hash is stored)."""
    settings = _settings(store)
    with _store(settings) as opened:
        key, secret = opened.keys.create(name, scope)
    console.print(f"created key [bold]{key.key_id}[/] ({key.name}, scopes "
                  f"{', '.join(key.scopes)}). Its secret, shown this once; store it now:")
    # Plain print: no wrapping or markup, so the secret copies (and pipes) whole.
    print(secret)
    console.print("send it as `Authorization: Bearer <secret>`; from now on every request "
                  "to the API needs a key (except /health)")


@keys_app.command("list")
def keys_list(store: StoreOption = None) -> None:
    """List the API keys (never their secrets)."""
    settings = _settings(store)
    with _store(settings) as opened:
        keys = opened.keys.list()
    table = Table(title=f"{len(keys)} API keys", box=box.SIMPLE_HEAD)
    for column in ("key_id", "name", "scopes", "created", "revoked"):
        table.add_column(column)
    for key in keys:
        table.add_row(key.key_id, key.name, ",".join(key.scopes),
                      f"{key.created_at:%Y-%m-%d %H:%M}",
                      "" if key.revoked_at is None else f"{key.revoked_at:%Y-%m-%d %H:%M}")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="A key id from `keys list`.")],
                store: StoreOption = None) -> None:
    """Revoke an API key: refused at once by new servers, within seconds by running ones."""
    settings = _settings(store)
    with _store(settings) as opened:
        key = opened.keys.revoke(key_id)
    console.print(f"revoked key {key.key_id} ({key.name})")


@keys_app.command("user-token")
def keys_user_token(
    user_id: Annotated[str, typer.Argument(help="The user the token is bound to.")],
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds (at most a day).")] = 3600,
    store: StoreOption = None,
) -> None:
    """Issue a user token: what a page sends for one signed-in user instead of a key
    (signed with the user_token_secret setting; the README's Security section shows the
    scheme, for a backend that signs its own)."""
    from tailored.serving import user_tokens

    settings = _settings(store)
    if settings.user_token_secret is None:
        raise typer.BadParameter("user tokens are off: set user_token_secret "
                                 "(TAILORED_USER_TOKEN_SECRET, at least 32 characters)")
    if not 1 <= ttl <= user_tokens.MAX_TTL_SECONDS:
        raise typer.BadParameter(f"--ttl must be between 1 and {user_tokens.MAX_TTL_SECONDS}")
    print(user_tokens.issue(settings.user_token_secret.get_secret_value(), user_id,
                            ttl_seconds=ttl))
