"""`tailored evaluate`: models compared on the same splits of the store's events."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from tailored.cli.common import (
    BEYOND_COLUMNS,
    DEFAULT_MODELS,
    StoreOption,
    _evaluation_table,
    _load_recipe,
    _progress,
    _settings,
    _step,
    _store,
    console,
)


def evaluate(
    models: Annotated[str, typer.Option(
        help="Comma-separated model families, or 'all' for every registered one.")] =
        ",".join(DEFAULT_MODELS),
    protocol: Annotated[list[str] | None, typer.Option(
        help="Split protocol, repeatable: temporal (the last 20% of events by time are the "
        "test period), leave-last-one-out (each user's last event, users with >= 5 "
        "events), user-temporal-ratio, random-holdout, user-kfold or time-series (the "
        "last two give several splits).")] = None,
    recipe: Annotated[list[str] | None, typer.Option(
        help="Also evaluate this recipe's pipeline: a TOML file or a shipped recipe's name "
        "(repeatable).")] = None,
    k: Annotated[int, typer.Option(min=1, help="List length for the metrics.")] = 10,
    beyond: Annotated[bool, typer.Option(
        "--beyond", help="Also show novelty, popularity, diversity, exposure Gini and "
        "personalization of the lists.")] = False,
    report: Annotated[Path | None, typer.Option(
        help="Also write an HTML report with plots (report.html, report.json and PNG files) "
        "into this directory.", file_okay=False)] = None,
    store: StoreOption = None,
) -> None:
    """Compare models on the same split of the store's events: NDCG, Recall, HitRate and
    MAP at k, catalog coverage, fit seconds.

    Test users, ground truth and what is ranked are defined per protocol (see
    tailored.dataset.splits); every model ranks all train items except the user's own."""
    from tailored.dataset import Dataset, splits_by_name
    from tailored.evaluation import compare
    from tailored.models import MODELS, create

    settings = _settings(store)
    names = list(MODELS) if models == "all" else [n.strip() for n in models.split(",")
                                                    if n.strip()]
    recipes = [_load_recipe(text) for text in recipe or []]
    with _store(settings) as opened, _progress() as progress:
        task = _step(progress, "reading the store")
        data = Dataset.from_store(opened, settings.event_weights)
        tables = []
        evaluations = []
        for name in protocol or ["temporal"]:
            for split in splits_by_name(data, name):

                def show(model: str, split_name: str = split.name) -> None:
                    progress.update(task, description=f"{split_name}: fitting {model}")

                candidates = ({n: create(n) for n in names}
                              | {r.name: r.build() for r in recipes})
                table, results = compare(candidates, split, k, progress=show)
                tables.append(table)
                evaluations.append((split, results))
        progress.update(task, description="evaluated")
    for table in tables:
        console.print(_evaluation_table(table))
        if beyond:
            console.print(_evaluation_table(table, BEYOND_COLUMNS))
    if report is not None:
        from tailored.evaluation import write_report

        page = write_report(report, evaluations, k=k, user_groups=_user_groups(data.users))
        console.print(f"report written to {page}")


def _user_groups(users: pd.DataFrame | None) -> dict[str, dict[str, str]] | None:
    """Attributes fit for a fairness breakdown: 2 to 20 distinct values (not zip codes)."""
    if users is None:
        return None
    indexed = users.set_index("user_id")
    groups = {str(column): {str(user): str(group)
                            for user, group in indexed[column].dropna().items()}
              for column in indexed.columns if 1 < indexed[column].nunique() <= 20}
    return groups or None
