"""`tailored experiments ...` (A/B tests between model versions) and `tailored simulate`
(simulated shop traffic that feeds them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from tailored.cli.common import (
    ExperimentArg,
    StoreOption,
    _fraction,
    _p_text,
    _progress,
    _settings,
    _step,
    _store,
    console,
)

experiments_app = typer.Typer(
    help="A/B tests between model versions: create, start, stop, show the analysis, "
    "estimate a candidate off-policy.", no_args_is_help=True)


@experiments_app.command("create")
def experiments_create(
    variant: Annotated[list[str], typer.Option(
        help="NAME=VERSION or NAME=VERSION:SHARE, repeatable (at least two); the first is "
        "the control, shares default to equal.")],
    name: Annotated[str | None, typer.Option(
        help="A name for people (default: the variants' model names, e.g. "
        "popular-vs-als).")] = None,
    holdout: Annotated[float, typer.Option(
        min=0, max=0.99, help="Share of all users held out of the test.")] = 0.0,
    holdout_version: Annotated[int | None, typer.Option(
        help="The version held-out users get (e.g. a popular model); without it they get "
        "no recommendations.")] = None,
    planned_sample_size: Annotated[int | None, typer.Option(
        min=1, help="Impressions per variant the test is sized for.")] = None,
    baseline_ctr: Annotated[float | None, typer.Option(
        help="Size the test for this control CTR (with --mde) instead.")] = None,
    mde: Annotated[float | None, typer.Option(
        help="Minimum detectable relative lift, e.g. 0.1 for +10% (with --baseline-ctr).")
    ] = None,
    alpha: Annotated[float, typer.Option(help="Significance level for the sizing.")] = 0.05,
    power: Annotated[float, typer.Option(help="Power for the sizing.")] = 0.8,
    description: Annotated[str, typer.Option(help="What the test is about.")] = "",
    start: Annotated[bool, typer.Option("--start", help="Start it at once.")] = False,
    placement: Annotated[str | None, typer.Option(
        help="The placement whose lists it tests (default: lists asked without one); one "
        "experiment runs per placement at a time.")] = None,
    store: StoreOption = None,
) -> None:
    """Create an A/B test between registered model (or recipe) versions."""
    from tailored.monitoring.abtest import sample_size
    from tailored.monitoring.experiments import create_experiment, parse_variant

    variants = [parse_variant(text) for text in variant]
    if (baseline_ctr is None) != (mde is None):
        raise typer.BadParameter("give --baseline-ctr and --mde together", param_hint="--mde")
    if baseline_ctr is not None and mde is not None:
        if planned_sample_size is not None:
            raise typer.BadParameter("give --planned-sample-size or --baseline-ctr/--mde, "
                                     "not both", param_hint="--planned-sample-size")
        try:
            planned_sample_size = sample_size(baseline_ctr, mde, alpha=alpha, power=power)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--mde") from None
    settings = _settings(store)
    with _store(settings) as opened:
        if name is None:
            names = [getattr(opened.models.get(v), "name", f"v{v}") for _, v, _ in variants]
            name = "-vs-".join(names)
        experiment = create_experiment(
            opened, name, variants, holdout_share=holdout, holdout_version=holdout_version,
            planned_sample_size=planned_sample_size, description=description,
            placement=placement)
        if start:
            experiment = opened.experiments.start(experiment.experiment_id)
    shares = ", ".join(f"{v.name}=v{v.version} ({v.share:.0%})" for v in experiment.variants)
    console.print(f"experiment [bold]{experiment.experiment_id}[/] {experiment.name!r} "
                  f"({experiment.status}): {shares}"
                  + (f", holdout {experiment.holdout_share:.0%}" if experiment.holdout_share
                     else "")
                  + (f", planned {experiment.planned_sample_size:,} impressions per variant"
                     if experiment.planned_sample_size else ""))
    if not start:
        console.print(f"start it with: tailored experiments start {experiment.experiment_id}")


@experiments_app.command("list")
def experiments_list(store: StoreOption = None) -> None:
    """List the experiments."""
    settings = _settings(store)
    with _store(settings) as opened:
        experiments = opened.experiments.list()
    table = Table(title=f"{len(experiments)} experiments", box=box.SIMPLE_HEAD)
    for column in ("id", "name", "status", "variants", "holdout", "planned", "started",
                   "stopped"):
        table.add_column(column)
    for e in experiments:
        table.add_row(e.experiment_id, e.name, e.status,
                      ", ".join(f"{v.name}=v{v.version}" for v in e.variants),
                      f"{e.holdout_share:.0%}",
                      "" if e.planned_sample_size is None else f"{e.planned_sample_size:,}",
                      "" if e.started_at is None else f"{e.started_at:%Y-%m-%d %H:%M}",
                      "" if e.stopped_at is None else f"{e.stopped_at:%Y-%m-%d %H:%M}")
    console.print(table)


@experiments_app.command("start")
def experiments_start(experiment_id: ExperimentArg, store: StoreOption = None) -> None:
    """Start an experiment: running services assign users within seconds."""
    settings = _settings(store)
    with _store(settings) as opened:
        experiment = opened.experiments.start(experiment_id)
    console.print(f"experiment {experiment.experiment_id} is running")


@experiments_app.command("stop")
def experiments_stop(experiment_id: ExperimentArg, store: StoreOption = None) -> None:
    """Stop an experiment (its data stays for the analysis)."""
    from tailored.jobs.webhooks import experiment_stopped

    settings = _settings(store)
    with _store(settings) as opened:
        experiment = opened.experiments.stop(experiment_id)
        experiment_stopped(opened, experiment)  # subscribers hear of it (webhooks)
    console.print(f"experiment {experiment.experiment_id} is stopped")


@experiments_app.command("show")
def experiments_show(
    experiment_id: ExperimentArg,
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] =
        False,
    store: StoreOption = None,
) -> None:
    """The analysis: CTR per variant with its interval, lift, p-values (per impression and
    per user), probability to beat control, conversion, revenue per user, and the
    verdict (on the per-user test)."""
    from tailored.monitoring.abtest import analyze

    settings = _settings(store)
    with _store(settings) as opened:
        report = analyze(opened, experiment_id, alpha=alpha)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    experiment = report.experiment
    table = Table(title=f"experiment {experiment['experiment_id']} {experiment['name']!r} "
                        f"({experiment['status']}): CTR", box=box.SIMPLE_HEAD)
    for column in ("variant", "v", "impr.", "CTR", f"{report.confidence:.0%} CI",
                   "lift", "p", "p user", "diff CI (users)", "P(beat)"):
        table.add_column(column, justify="left" if column == "variant" else "right",
                         no_wrap=True)
    business = Table(title="users and outcomes (attributed)", box=box.SIMPLE_HEAD)
    for column in ("variant", "users", "clicks", "conv.", "rev/user", "ev/session",
                   "p (mSPRT)"):
        business.add_column(column, justify="left" if column == "variant" else "right",
                            no_wrap=True)
    for row in report.variants:
        label = row.variant + ("*" if row.is_control else "")
        table.add_row(
            label, "-" if row.version is None else str(row.version), f"{row.impressions:,}",
            _fraction(row.ctr),
            "-" if row.ci_low is None or row.ci_high is None
            else f"{_fraction(row.ci_low)}-{_fraction(row.ci_high)}",
            _fraction(row.lift, 1, signed=True),
            _p_text(row.p_value), _p_text(row.user_p_value),
            "-" if row.difference_ci_low is None or row.difference_ci_high is None
            else f"{_fraction(row.difference_ci_low, signed=True)}.."
                 f"{_fraction(row.difference_ci_high, signed=True)}",
            "-" if row.prob_beat_control is None else f"{row.prob_beat_control:.3f}")
        business.add_row(
            label, f"{row.users:,}", f"{row.clicks:,}", _fraction(row.conversion),
            "-" if row.revenue_per_user is None else f"{row.revenue_per_user:.2f}",
            "-" if row.engagement is None else f"{row.engagement:.2f}",
            _p_text(row.sequential_p_value))
    console.print(table)
    console.print(business)
    console.print(f"* control. CI: Wilson score interval; p: two-proportion z-test over "
                  "impressions; p user: delta-method z-test over users (the verdict's test), "
                  "diff CI (users): its interval of the CTR difference; P(beat): "
                  f"probability to beat the control (Beta posteriors); alpha {report.alpha}; "
                  "conv.: users who bought from a list; ev/session: events per session")
    if report.planned_sample_size:
        console.print(f"planned sample: {report.planned_sample_size:,} impressions per variant"
                      f" ({_fraction(report.sample_progress, 0)} reached)")
    else:
        console.print("no planned sample size (set one at create with --baseline-ctr and "
                      "--mde): p-values are only valid at a size fixed in advance")
    colour = "green" if report.winner else "yellow"
    console.print(f"verdict: [bold {colour}]{report.verdict}[/]")


@experiments_app.command("sample-size")
def experiments_sample_size(
    baseline_ctr: Annotated[float, typer.Option(help="The control's rate, e.g. 0.05.")],
    mde: Annotated[float, typer.Option(help="Minimum detectable relative lift, e.g. 0.1.")],
    alpha: Annotated[float, typer.Option(help="Significance level (two-sided).")] = 0.05,
    power: Annotated[float, typer.Option(help="Power.")] = 0.8,
) -> None:
    """Impressions per variant needed to detect a lift of a rate."""
    from tailored.monitoring.abtest import sample_size

    try:
        n = sample_size(baseline_ctr, mde, alpha=alpha, power=power)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    console.print(f"{n:,} impressions per variant to detect {baseline_ctr:.2%} -> "
                  f"{baseline_ctr * (1 + mde):.2%} (alpha {alpha}, power {power})")


@experiments_app.command("ope")
def experiments_ope(
    candidate: Annotated[int, typer.Option(help="The model version to evaluate.")],
    experiment: Annotated[str | None, typer.Option(
        help="Only the answers served in this experiment.")] = None,
    store: StoreOption = None,
) -> None:
    """Estimate a candidate version's CTR from logged impressions (IPS and SNIPS), before it
    gets any traffic."""
    from tailored.monitoring.ope import evaluate_candidate

    settings = _settings(store)
    with _store(settings) as opened:
        result = evaluate_candidate(opened, candidate, experiment_id=experiment)
    console.print(
        f"candidate v{candidate} on {result.impressions:,} logged impressions "
        f"({result.recommendations:,} answers): IPS CTR {result.ips:.2%} "
        f"[{result.ips_low:.2%} .. {result.ips_high:.2%}], SNIPS CTR "
        + ("-" if result.snips is None else f"{result.snips:.2%}")
        + f"; the logging policy got {result.logged_ctr:.2%}; support {result.support:.0%}, "
        f"effective sample size {result.effective_sample_size:,.0f}")
    if result.deterministic_logging:
        console.print("[yellow]the logging policy ranked deterministically (every propensity "
                      "1): only slots where both policies show the same item count, so the "
                      "estimate leans low; serve with exploration for unbiased estimates[/]")


@experiments_app.command("feedback")
def experiments_feedback(
    output: Annotated[Path, typer.Option(help="A .parquet or .csv file to write.")],
    store: StoreOption = None,
) -> None:
    """Export labelled impressions (clicked 1, shown and not clicked 0) for the ranker's
    next training (see tailored.monitoring.feedback)."""
    from tailored.monitoring.feedback import feedback_from_store

    settings = _settings(store)
    with _store(settings) as opened:
        labels = feedback_from_store(opened)
    if output.suffix == ".parquet":
        labels.assign(context=labels["context"].map(json.dumps)).to_parquet(output,
                                                                              index=False)
    else:
        labels.to_csv(output, index=False)
    console.print(f"wrote {len(labels):,} labelled impressions "
                  f"({int(labels['label'].sum()) if len(labels) else 0:,} clicked) to {output}")


def simulate(
    users: Annotated[int, typer.Option(min=1, help="Simulated shop users.")] = 500,
    sessions: Annotated[int, typer.Option(min=1, help="Sessions per user.")] = 1,
    k: Annotated[int, typer.Option(min=1, max=100, help="Items per list.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the users' choices.")] = 0,
    url: Annotated[str | None, typer.Option(
        help="A running service, e.g. http://127.0.0.1:8000 (default: the app in-process "
        "on the store).")] = None,
    api_key: Annotated[str | None, typer.Option(
        envvar="TAILORED_API_KEY", help="An API key with the write scope, when the service "
        "has keys.")] = None,
    shop_users: Annotated[int, typer.Option(help="The sample shop's size and seed, as the "
                                                 "store was filled (demo defaults).")] = 2_000,
    shop_items: Annotated[int, typer.Option()] = 500,
    shop_events: Annotated[int, typer.Option()] = 100_000,
    shop_seed: Annotated[int, typer.Option()] = 0,
    explore: Annotated[float | None, typer.Option(
        min=0, max=1, help="Share of slots the service's exploration bandit fills "
        "(new items get shown; default: the service's exploration_share).")] = None,
    new_arrivals: Annotated[float | None, typer.Option(
        min=0, max=1, help="Share of slots given to items added after training, chosen by "
        "content (default: the service's new_arrivals_share).")] = None,
    placement: Annotated[str | None, typer.Option(
        help="The placement every request names.")] = None,
    store: StoreOption = None,
) -> None:
    """Simulated traffic: sample shop users ask for recommendations, see them, click and buy
    by their hidden tastes (with position bias), and send impressions, clicks and
    purchases with the recommendation ids; an experiment running gathers real data."""
    import httpx

    from tailored.jobs.simulate import simulate as run_simulation
    from tailored.sample import shop

    settings = _settings(store)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with _progress() as progress:
        task = _step(progress, "generating the sample shop's hidden tastes")
        sample = shop(n_users=shop_users, n_items=shop_items, n_events=shop_events,
                      seed=shop_seed)

        def step(message: str) -> None:
            progress.update(task, description=message)

        if url is not None:
            with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
                report = run_simulation(client, sample, users=users, sessions=sessions, k=k,
                                        seed=seed, progress=step, explore=explore,
                                        new_arrivals=new_arrivals, placement=placement)
        else:
            import warnings

            from tailored.serving import create_app
            from tailored.testing import LOCAL  # in-process, as if on this machine

            with warnings.catch_warnings():  # Starlette's note on which httpx it prefers
                warnings.simplefilter("ignore", DeprecationWarning)
                from fastapi.testclient import TestClient

            with TestClient(create_app(settings), headers=headers, base_url=LOCAL) as client:
                report = run_simulation(client, sample, users=users, sessions=sessions, k=k,
                                        seed=seed, progress=step, explore=explore,
                                        new_arrivals=new_arrivals, placement=placement)
    console.print(f"{report.sessions:,} sessions of {report.users:,} users: "
                  f"{report.impressions:,} impressions, {report.clicks:,} clicks "
                  f"(CTR {report.ctr:.2%}), {report.purchases:,} purchases "
                  f"({report.revenue:,.2f}) in {report.seconds:.0f}s")
    for variant, count in sorted(report.variants.items()):
        console.print(f"  {variant}: {count:,} answers, "
                      f"{report.clicks_by_variant.get(variant, 0):,} clicks")
    if report.explored:
        console.print(f"  explored: {report.explored:,} slots placed by the bandit, "
                      f"{report.explored_clicks:,} clicks on them")
    if report.unknown_items:
        console.print(f"[yellow]{report.unknown_items:,} recommended items are not in the "
                      "sample shop (was the store filled from another shop? see --shop-*)[/]")
