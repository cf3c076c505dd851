"""`tailored recommend`: the active version's pipeline for users in the store, with the
same per-request overrides as the REST API (filter, boost, exclude, re-ranker knobs)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast, get_args

import typer
from rich.table import Table

from tailored.cli.common import StoreOption, _recommendations_table, _settings, _store, console

if TYPE_CHECKING:
    from tailored.pipeline import Ranked
    from tailored.pipeline.live import SimilarityKind


def deliver(
    output: Annotated[Path, typer.Option(
        help="The file to write: .csv, .parquet or .jsonl (one user per line); with "
        "--every, each run's time is added to its name.")],
    placement: Annotated[str | None, typer.Option(
        help="The placement whose lists are written (e.g. email-weekly).")] = None,
    every: Annotated[str | None, typer.Option(
        help="Repeat on this interval (e.g. 7d, 12h) until stopped.")] = None,
    runs: Annotated[int | None, typer.Option(
        min=1, help="With --every: stop after this many runs.")] = None,
    store: StoreOption = None,
) -> None:
    """Write every user's list for a placement to a file for another channel (email,
    push), and tell the `recommendations.ready` webhooks where it is."""
    from tailored.jobs.deliver import Delivery, deliver, deliver_every
    from tailored.jobs.retrain import parse_interval

    def said(delivery: Delivery) -> None:
        console.print(f"wrote {delivery.rows:,} recommendations for {delivery.users:,} users "
                      f"to {delivery.path}")

    settings = _settings(store)
    with _store(settings) as opened:
        if every is None:
            said(deliver(opened, placement, output))
            return
        try:
            interval = parse_interval(every)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--every") from None
        console.print(f"writing {placement or 'the serving version'}'s lists every {every}; "
                      "Ctrl-C stops")
        try:
            deliver_every(opened, placement, output, interval, runs=runs, done=said)
        except KeyboardInterrupt:
            console.print("stopped")


def recommend(
    users: Annotated[list[str] | None, typer.Argument(help="User ids.")] = None,
    k: Annotated[int | None, typer.Option(
        min=1, max=1000, help="List length; default: the placement's, else 10.")] = None,
    all_users: Annotated[bool, typer.Option("--all", help="Every user in the store.")] = False,
    placement: Annotated[str | None, typer.Option(
        help="A stored placement (e.g. email-weekly): its version, filter, boosts, knobs "
        "and k apply, and these options narrow and override them.")] = None,
    output: Annotated[Path | None, typer.Option(
        help="Write to this .csv, .parquet or .jsonl file instead of printing (JSON lines: "
        "one user per line with their items).")] = None,
    store: StoreOption = None,
    filter: Annotated[str | None, typer.Option(
        "--filter", help='Keep items where this holds, e.g. \'price < 100 and "shoes" in '
        "categories' (as the REST `filter`).")] = None,
    boost: Annotated[list[str] | None, typer.Option(
        "--boost", help="EXPRESSION:FACTOR, repeatable (as the REST `boost`); a factor "
        "below 1 buries.")] = None,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", help="An item id to leave out, repeatable.")] = None,
    diversity: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="MMR re-ranking: 0 keeps the scorer's order, 1 is all "
        "variety (similarity: the catalog's categories, else the scorer's); default: the "
        "recipe's.")] = None,
    novelty: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Penalise popular items: 0 off, 1 least popular first; "
        "default: the recipe's.")] = None,
    max_per_category: Annotated[int | None, typer.Option(
        min=1, help="At most this many items of one category per list; default: the "
        "recipe's.")] = None,
    revenue: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Mix expected revenue (price x relevance) into the order: 0 "
        "relevance only, 1 expected revenue only; default: the recipe's.")] = None,
    pool: Annotated[int | None, typer.Option(
        min=1, max=5000, help="Candidates per user the re-rankers choose from; default: "
        "the recipe's (100).")] = None,
    explain: Annotated[bool, typer.Option(
        "--explain", help="Add a reason per item (from the scorer's evidence).")] = False,
) -> None:
    """Recommend with the active version's pipeline (or the placement's) from each user's
    current history."""
    from tailored.expressions import ExpressionError
    from tailored.jobs.deliver import placed, write_recommendations
    from tailored.pipeline import Overrides

    settings = _settings(store)
    try:
        overrides = Overrides.parse(filter, boost or [], exclude or [], diversity=diversity,
                                    novelty=novelty, max_per_category=max_per_category,
                                    revenue=revenue, pool=pool)
    except ExpressionError as error:
        raise typer.BadParameter(str(error), param_hint="--filter/--boost") from None
    with _store(settings) as opened:
        live, spec = placed(opened, placement)
        ids = (opened.events.frame()["user_id"].unique().tolist() if all_users
               else list(users or []))
        if not ids:
            raise typer.BadParameter("name at least one user id, or pass --all")
        try:
            recs = live.recommend(ids, k or spec.k, spec.overrides(overrides), explain=explain)
        except ExpressionError as error:  # an attribute no item has
            raise typer.BadParameter(str(error), param_hint="--filter/--boost") from None
    if output is not None:
        write_recommendations(recs, output)
        console.print(f"wrote {len(recs):,} recommendations for {len(ids):,} users to {output}")
        return
    console.print(_recommendations_table(recs, live.name))


def similar(
    items: Annotated[list[str], typer.Argument(
        help="Item ids: one item, or several (a cart: the mean of their similarities).")],
    k: Annotated[int, typer.Option(min=1, max=1000)] = 10,
    store: StoreOption = None,
    filter: Annotated[str | None, typer.Option(
        "--filter", help="Keep items where this holds (as the REST `filter`).")] = None,
    boost: Annotated[list[str] | None, typer.Option(
        "--boost", help="EXPRESSION:FACTOR, repeatable (as the REST `boost`).")] = None,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", help="An item id to leave out, repeatable.")] = None,
    kind: Annotated[str, typer.Option(
        help="model (the serving model's measure), content (title, text, categories), "
        "co_views (users who touched both) or bought_together (purchases in the same "
        "session, or by the same user within a day, as stored now).")] = "model",
) -> None:
    """Items like the given ones by the active version's model, through its rules and the
    filter, boosts and exclusions given (as GET /items/{id}/similar and POST
    /items/similar)."""
    from tailored.expressions import ExpressionError
    from tailored.pipeline import LiveRecommender, Overrides

    settings = _settings(store)
    with _store(settings) as opened:
        live = LiveRecommender.active(opened)
        if not any(item in live.model.item_vocab_ or opened.items.get(item) is not None
                   for item in items):
            raise typer.BadParameter(f"neither the serving model nor the catalog knows any "
                                     f"of {items}; import the items first")
        try:
            overrides = Overrides.parse(filter, boost or [], exclude or [])
            ranked = live.similar_items(items, k, overrides, kind=_kind(kind))
        except ExpressionError as error:
            raise typer.BadParameter(str(error), param_hint="--filter/--boost") from None
    console.print(_ranked_table(ranked, f"like {', '.join(items)} ({live.name})"))


def _kind(kind: str) -> SimilarityKind:
    from tailored.pipeline.live import SimilarityKind

    kinds = get_args(SimilarityKind)
    if kind not in kinds:
        raise typer.BadParameter(f"choose one of {', '.join(kinds)}", param_hint="--kind")
    return cast("SimilarityKind", kind)


def popular(
    k: Annotated[int, typer.Option(min=1, max=1000)] = 10,
    category: Annotated[str | None, typer.Option(help="Only items of this category.")] = None,
    days: Annotated[float, typer.Option(min=0.001, max=3650,
                                        help="The window counted, in days back from now.")
                    ] = 7.0,
    trending: Annotated[bool, typer.Option(
        "--trending", help="By growth against the window before: (recent + 1) / "
        "(earlier + 1).")] = False,
    store: StoreOption = None,
    filter: Annotated[str | None, typer.Option(
        "--filter", help="Keep items where this holds (as the REST `filter`).")] = None,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", help="An item id to leave out, repeatable.")] = None,
) -> None:
    """The most popular (or trending) items of the last days, of a category (as GET
    /popular and GET /trending)."""
    from tailored.expressions import ExpressionError
    from tailored.pipeline import LiveRecommender, Overrides

    settings = _settings(store)
    with _store(settings) as opened:
        live = LiveRecommender.active(opened)
        try:
            ranked = live.popular_items(k, Overrides.parse(filter, [], exclude or []),
                                        category=category, days=days, trending=trending)
        except ExpressionError as error:
            raise typer.BadParameter(str(error), param_hint="--filter") from None
    kind = "trending" if trending else "popular"
    where = f" in {category}" if category else ""
    console.print(_ranked_table(ranked, f"{kind}{where}, last {days:g} days"))


def _ranked_table(ranked: Ranked, title: str) -> Table:
    table = Table(title=title)
    for column in ("rank", "item_id", "score"):
        table.add_column(column, justify="left" if column == "item_id" else "right")
    for rank, (item, score) in enumerate(zip(ranked.item_ids, ranked.scores, strict=True),
                                         start=1):
        table.add_row(str(rank), item, f"{score:.4f}")
    return table
