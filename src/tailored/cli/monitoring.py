"""`tailored monitor`: the drift detectors' state and alerts."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from tailored.cli.common import StoreOption, _monitor_view, _settings, _store, console


def monitor(
    watch: Annotated[float | None, typer.Option(
        min=1, help="Check again every SECONDS until Ctrl-C (default: check once).")] = None,
    record: Annotated[bool, typer.Option(
        help="Write new drift alerts to the store (what the retraining worker acts "
        "on).")] = True,
    window: Annotated[int | None, typer.Option(
        min=20, help="Events per window of the input-distribution detectors (default: "
        "about a hundredth of the events).")] = None,
    delta: Annotated[float, typer.Option(
        min=1e-9, max=0.5, help="ADWIN's confidence; smaller needs stronger "
        "evidence.")] = 0.002,
    rounds: Annotated[int | None, typer.Option(min=1, hidden=True)] = None,
    store: StoreOption = None,
) -> None:
    """Drift detectors (ADWIN) on the online CTR and on what users do: their state, and
    the alerts they raised."""
    from rich.console import Group
    from rich.live import Live

    from tailored.monitoring.drift import DriftConfig, check_drift

    settings = _settings(store)
    config = DriftConfig(window_events=window, delta=delta)
    with _store(settings) as opened:
        if watch is None:
            console.print(_monitor_view(opened, check_drift(opened, config, record=record)))
            return
        done = 0
        with Live(console=console, auto_refresh=False) as live:
            try:
                while rounds is None or done < rounds:
                    report = check_drift(opened, config, record=record)
                    live.update(Group(_monitor_view(opened, report),
                                      f"[dim]every {watch:g}s; Ctrl-C stops[/]"), refresh=True)
                    done += 1
                    if rounds is None or done < rounds:
                        time.sleep(watch)
            except KeyboardInterrupt:
                pass
