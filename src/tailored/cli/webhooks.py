"""`tailored webhooks add|list|remove|deliveries|send`: tell a shop's systems when
something happens (signed POSTs, retried; see tailored.jobs.webhooks)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from tailored.cli.common import StoreOption, _settings, _store, console
from tailored.errors import NotFoundError
from tailored.store.webhooks import EVENT_KINDS, MAX_DELIVERIES_LISTED

webhooks_app = typer.Typer(help="Webhooks: signed POSTs to your URLs when a model is "
                           "promoted, a drift alert is raised, an experiment stops or batch "
                           "recommendations are ready.", no_args_is_help=True)

SubscriptionArg = Annotated[str, typer.Argument(help="A webhook id from `webhooks list`.")]


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="Where to POST: an http:// or https:// URL.")],
    event: Annotated[list[str], typer.Option(
        help=f"An event kind to send, repeatable: {', '.join(EVENT_KINDS)}.")],
    store: StoreOption = None,
) -> None:
    """Subscribe a URL to events; the secret that signs them is printed this once."""
    settings = _settings(store)
    with _store(settings) as opened:
        subscription, secret = opened.webhooks.subscribe(url, event)
    console.print(f"added webhook [bold]{subscription.subscription_id}[/] for "
                  f"{', '.join(subscription.events)}. Its signing secret, shown this once; "
                  "give it to the receiver now:")
    # Plain print: no wrapping or markup, so the secret copies (and pipes) whole.
    print(secret)
    console.print("each request carries X-Tailored-Signature: sha256=HMAC-SHA256(secret, "
                  "f\"{X-Tailored-Timestamp}.{body}\"); the README's Webhooks section shows "
                  "how to check it")


@webhooks_app.command("list")
def webhooks_list(store: StoreOption = None) -> None:
    """List the webhooks (never their secrets)."""
    settings = _settings(store)
    with _store(settings) as opened:
        subscriptions = opened.webhooks.list()
    table = Table(title=f"{len(subscriptions)} webhooks", box=box.SIMPLE_HEAD)
    for column in ("id", "url", "events", "created", "removed"):
        table.add_column(column)
    for s in subscriptions:
        table.add_row(s.subscription_id, s.url, ", ".join(s.events),
                      f"{s.created_at:%Y-%m-%d %H:%M}",
                      "" if s.removed_at is None else f"{s.removed_at:%Y-%m-%d %H:%M}")
    console.print(table)


@webhooks_app.command("remove")
def webhooks_remove(subscription_id: SubscriptionArg, store: StoreOption = None) -> None:
    """Remove a webhook: nothing more is sent to it (its delivery log stays)."""
    settings = _settings(store)
    with _store(settings) as opened:
        subscription = opened.webhooks.remove(subscription_id)
    console.print(f"removed webhook {subscription.subscription_id} ({subscription.url})")


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    subscription_id: SubscriptionArg,
    limit: Annotated[int, typer.Option(min=1, max=MAX_DELIVERIES_LISTED,
                                       help="At most this many, the newest.")] = 20,
    store: StoreOption = None,
) -> None:
    """A webhook's delivery log, newest first: status, attempts, the last HTTP status or
    error, the next attempt."""
    settings = _settings(store)
    with _store(settings) as opened:
        if opened.webhooks.get(subscription_id) is None:
            raise NotFoundError(f"no webhook {subscription_id!r}; `tailored webhooks list` "
                                "shows the webhooks")
        deliveries = opened.webhooks.deliveries(subscription_id, limit=limit)
    table = Table(title=f"{len(deliveries)} deliveries (newest first)", box=box.SIMPLE_HEAD)
    # The id is what the receiver saw (X-Tailored-Delivery): folded, never cut.
    table.add_column("delivery", overflow="fold", min_width=8)
    table.add_column("event", no_wrap=True)
    table.add_column("created (UTC)", overflow="fold")
    table.add_column("status", no_wrap=True)
    for column in ("tries", "last", "next"):
        table.add_column(column, overflow="fold")
    for d in deliveries:
        last = (str(d.last_status) if d.last_status is not None else d.last_error or "")
        table.add_row(d.delivery_id, d.kind, f"{d.created_at:%Y-%m-%d %H:%M}", d.status,
                      str(d.attempts), last,
                      "" if d.next_attempt_at is None else f"{d.next_attempt_at:%H:%M:%S}")
    console.print(table)


@webhooks_app.command("send")
def webhooks_send(
    follow: Annotated[bool, typer.Option(
        "--follow", help="Keep sending as deliveries fall due, until interrupted (where "
        "no API worker sends them: webhook_delivery off).")] = False,
    store: StoreOption = None,
) -> None:
    """Send the webhook deliveries due now (the API's workers do it in the background)."""
    from tailored.jobs.webhooks import WebhookDispatcher

    settings = _settings(store)
    with _store(settings) as opened:
        dispatcher = WebhookDispatcher.from_settings(opened, settings)
        try:
            while True:
                attempts = dispatcher.run_once()
                if attempts or not follow:
                    delivered = sum(a.status == "delivered" for a in attempts)
                    failed = sum(a.status == "failed" for a in attempts)
                    console.print(f"{len(attempts)} attempts: {delivered} delivered, "
                                  f"{failed} failed for good, "
                                  f"{len(attempts) - delivered - failed} to retry")
                if not follow:
                    break
                time.sleep(settings.webhook_poll_seconds)
        except KeyboardInterrupt:
            pass
        finally:
            dispatcher.close()
