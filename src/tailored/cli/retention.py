"""`tailored retain`: delete events, served answers and model versions past their
retention (the settings ``retention_days``, ``served_retention_days``, ``keep_versions``)."""

from __future__ import annotations

from typing import Annotated

import typer

from tailored.cli.common import StoreOption, _settings, _store, console


def retain(store: StoreOption = None,
           retention_days: Annotated[int | None, typer.Option(
               min=1, help="Delete events older than this many days (default: the "
               "retention_days setting; unset keeps them).")] = None,
           served_retention_days: Annotated[int | None, typer.Option(
               min=1, help="Delete served answers and impressions older than this many "
               "days (default: the served_retention_days setting).")] = None,
           keep_versions: Annotated[int | None, typer.Option(
               min=1, help="Keep the newest N model versions, forget older ones and "
               "delete their artifacts under the model directory (default: the "
               "keep_versions setting).")] = None,
           dry_run: Annotated[bool, typer.Option(
               "--dry-run", help="Show what would be deleted; delete nothing.")] = False,
           ) -> None:
    """Delete what is older than the retention settings allow, and print the counts.

    The retraining worker (`train --schedule`) does the same every round."""
    from tailored.jobs.retention import apply_retention

    settings = _settings(store, retention_days=retention_days,
                         served_retention_days=served_retention_days,
                         keep_versions=keep_versions)
    if (settings.retention_days is None and settings.served_retention_days is None
            and settings.keep_versions is None):
        console.print("no retention is set (retention_days, served_retention_days, "
                      "keep_versions): everything is kept")
        return
    with _store(settings) as opened:
        report = apply_retention(opened, settings, dry_run=dry_run)
    for label, cutoff in (("events", report.events_cutoff),
                          ("served answers and impressions", report.served_cutoff)):
        if cutoff is not None:
            console.print(f"{label} before {cutoff:%Y-%m-%d %H:%M} UTC")
    console.print(report.summary())
    if report.versions:
        console.print(f"model versions {'to forget' if dry_run else 'forgotten'}: "
                      f"{', '.join(map(str, report.versions))}")
    for version, reason in report.kept_versions.items():
        console.print(f"model version {version} kept: {reason}")
    for path in report.kept_artifacts:
        console.print(f"[yellow]left on disk[/] (outside the model directory): {path}")
