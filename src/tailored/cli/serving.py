"""`tailored serve` and `tailored demo` (the whole loop on a sample shop, then serve)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from tailored.cli.common import (
    DEFAULT_MODELS,
    Host,
    Port,
    StoreOption,
    _evaluation_table,
    _progress,
    _recommendations_table,
    _settings,
    _step,
    _store,
    console,
)
from tailored.settings import Settings


def _serve(settings: Settings) -> None:
    from tailored.serving import run

    console.print(f"serving on [bold]http://{settings.host}:{settings.port}[/] "
                  f"(API docs: http://{settings.host}:{settings.port}/docs); Ctrl-C stops")
    console.print(f"  try: curl 'http://{settings.host}:{settings.port}/recommendations/"
                  "u00001?k=5'")
    console.print(f"  dashboard: http://{settings.host}:{settings.port}/dashboard")
    if settings.demo_storefront:
        console.print(f"  demo shop: http://{settings.host}:{settings.port}/demo/shop")
    run(settings)


def serve(
    host: Host = None, port: Port = None, store: StoreOption = None,
    workers: Annotated[int | None, typer.Option(
        min=1, max=64, help="Worker processes (default 1; about one per core). Each "
        "checks the store per request, so an event posted to one is seen by all.")] = None,
) -> None:
    """Serve the REST API with the active model."""
    _serve(_settings(store, host=host, port=port, workers=workers))


def demo(
    serve_api: Annotated[bool, typer.Option(
        "--serve/--no-serve", help="Serve the API when done (until Ctrl-C).")] = True,
    users: Annotated[int, typer.Option(min=50, help="Sample shop users.")] = 2_000,
    items: Annotated[int, typer.Option(min=20, help="Sample shop items.")] = 500,
    events: Annotated[int, typer.Option(min=1_000, help="Sample shop events.")] = 100_000,
    data_dir: Annotated[Path, typer.Option(help="Where the sample shop's files go.")] =
        Path("sample_shop"),
    store: StoreOption = None, host: Host = None, port: Port = None,
) -> None:
    """The whole loop on the embedded default: generate a sample shop, import it, train
    popular / item-kNN / ALS, evaluate them, show recommendations, then serve."""
    from tailored.dataset import Dataset, temporal_split
    from tailored.evaluation import compare
    from tailored.ingest import import_file
    from tailored.jobs import train_model
    from tailored.models import create
    from tailored.pipeline import LiveRecommender
    from tailored.sample import shop

    settings = _settings(store, host=host, port=port)
    started = time.perf_counter()
    with _store(settings) as opened, _progress() as progress:
        task = _step(progress, f"generating a sample shop ({events:,} events)")
        sample = shop(n_users=users, n_items=items, n_events=events, seed=0)
        paths = {p.stem: p for p in sample.write(data_dir, format="csv")}
        for kind in ("items", "users", "events"):
            progress.update(task, description=f"importing {paths[kind]}")
            import_file(opened, paths[kind], kind, event_weights=settings.event_weights)
        progress.update(task, description="evaluating on a temporal split")
        split = temporal_split(Dataset.from_store(opened, settings.event_weights))
        table, _ = compare({name: create(name) for name in DEFAULT_MODELS}, split,
                           progress=lambda n: progress.update(task, description=f"fitting {n}"))
        for name in DEFAULT_MODELS:
            progress.update(task, description=f"training {name} on all events")
            train_model(opened, settings, name, validate=False, promote=name == settings.model)
        progress.update(task, description=f"ready in {time.perf_counter() - started:.0f}s")
        live = LiveRecommender.active(opened)
        examples = live.recommend(sample.users["user_id"].head(3).tolist(), k=5)
    console.print(_evaluation_table(table))
    titles = sample.items.set_index("item_id")["title"]
    examples["item_id"] = examples["item_id"] + " " + examples["item_id"].map(titles)
    console.print(_recommendations_table(examples, f"example recommendations ({settings.model})"))
    if serve_api:  # with the storefront, on the sample shop it was made for
        _serve(settings.model_copy(update={"demo_storefront": True}))
