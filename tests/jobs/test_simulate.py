"""Simulated shop users against the service: events with recommendation ids, and an A/B
test the statistics can call."""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tailored.errors import InvalidDataError
from tailored.ingest import import_file
from tailored.jobs import train_model
from tailored.jobs.simulate import simulate
from tailored.monitoring.abtest import analyze
from tailored.monitoring.experiments import create_experiment
from tailored.sample import shop
from tailored.serving import create_app
from tailored.settings import Settings
from tailored.store import Store, open_store
from tailored.testing import LOCAL

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient


class _Answer:
    def __init__(self, status_code: int, body: Any) -> None:
        self.status_code, self._body, self.text = status_code, body, str(body)

    def json(self) -> Any:
        return self._body


class FakeService:
    """Answers every user with the same list; keeps what is posted."""

    def __init__(self, items: list[str], with_id: bool = True) -> None:
        self.items, self.with_id, self.posted, self.asked = items, with_id, [], 0

    def get(self, url: str, *, params: Any = None) -> _Answer:
        self.asked += 1
        body = {"items": [{"item_id": i, "score": 1.0, "rank": r}
                          for r, i in enumerate(self.items, 1)],
                "experiment": {"experiment_id": "e", "variant": "A"}}
        if self.with_id:
            body["recommendation_id"] = f"rec{self.asked}"
        return _Answer(200, body)

    def post(self, url: str, *, json: Any = None) -> _Answer:
        self.posted.extend(json)
        return _Answer(201, {"stored": len(json)})


def test_users_see_click_and_buy_by_their_tastes() -> None:
    sample = shop(n_users=200, n_items=40, n_events=2000, seed=3)
    service = FakeService([*sample.items["item_id"].head(5).tolist(), "not-in-shop"])
    report = simulate(service, sample, users=100, sessions=2, k=6, seed=1)
    assert (report.users, report.sessions, service.asked) == (100, 200, 200)
    impressions = [e for e in service.posted if e["event_type"] == "impression"]
    clicks = [e for e in service.posted if e["event_type"] == "click"]
    purchases = [e for e in service.posted if e["event_type"] == "purchase"]
    assert len(impressions) == report.impressions == 200 * 6
    assert len(clicks) == report.clicks > 0 and len(purchases) == report.purchases
    assert report.unknown_items == 200
    assert all(e["context"]["recommendation_id"].startswith("rec") for e in service.posted)
    assert {e["context"]["position"] for e in impressions} == set(range(1, 7))
    assert all(e["value"] > 0 for e in purchases)
    assert report.variants == {"A": 200}
    # Position bias: the same item in slot 5 gets 1/log2(6) of the clicks of slot 1.
    first, fifth = sample.click_probability([0, 0], [3, 3], position=[1, 5])
    assert first / fifth == pytest.approx(math.log2(6))
    # Taste: a user's favourite cluster attracts more than their least favourite.
    user = 0
    favourite, least = sample.user_taste[user].argmax(), sample.user_taste[user].argmin()
    item_of = {c: int((sample.item_cluster == c).nonzero()[0][0]) for c in (favourite, least)}
    liked, disliked = sample.click_probability([user, user],
                                               [item_of[favourite], item_of[least]])
    assert liked > 2 * disliked
    again = FakeService(service.items)
    simulate(again, sample, users=100, sessions=2, k=6, seed=1)

    def choices(posted: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        return [(e["user_id"], e["item_id"], e["event_type"]) for e in posted]

    assert choices(again.posted) == choices(service.posted)  # seeded: the same choices


def test_answers_without_a_recommendation_id_are_refused() -> None:
    sample = shop(n_users=60, n_items=20, n_events=600, seed=3)
    with pytest.raises(InvalidDataError, match="no recommendation_id"):
        simulate(FakeService(["i00001"], with_id=False), sample, users=5)
    with pytest.raises(InvalidDataError, match="cannot simulate"):
        simulate(FakeService(["i00001"]), sample, users=61)


@pytest.mark.slow
def test_an_experiment_between_popular_and_als_finds_als(tmp_path: Path) -> None:
    """End to end: sample shop in a store, two versions, an experiment, simulated traffic
    in-process through the app, and the analysis calls the better variant."""
    sample = shop(n_users=600, n_items=150, n_events=20_000, seed=0)
    settings = Settings(store_url=f"sqlite:///{tmp_path / 'shop.db'}",
                        model_dir=tmp_path / "models")
    store = open_store(settings.store_url)
    paths = {p.stem: p for p in sample.write(tmp_path / "shop")}
    for kind in ("items", "users", "events"):
        import_file(store, paths[kind], kind)
    popular = train_model(store, settings, "popular", validate=False).version.version
    als = train_model(store, settings, "als", validate=False).version.version
    experiment = create_experiment(store, "popular-vs-als", [("A", popular, 1.0),
                                                             ("B", als, 1.0)],
                                   planned_sample_size=1500)  # the impressions logged
    store.experiments.start(experiment.experiment_id)
    with TestClient(create_app(settings), base_url=LOCAL) as client:
        report = simulate(client, sample, users=400, sessions=1, k=10, seed=0)
    assert set(report.variants) == {"A", "B"}
    result = analyze(store, experiment.experiment_id)
    counted = _analytics_counts(store)
    store.close()
    a, b = result.variant("A"), result.variant("B")
    # Answers to users who withhold analytics consent are never logged, so not counted.
    assert a.impressions + b.impressions == counted["impressions"] < report.impressions
    assert result.winner == "B", result.verdict
    assert b.ci_low is not None and a.ci_high is not None and b.ci_low > a.ci_high
    assert result.verdict.startswith("variant B wins")


@pytest.mark.slow
def test_the_demo_path_on_the_command_line(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """create, start, simulate, show, ope, feedback, stop: as the README shows them."""
    from typer.testing import CliRunner

    from tailored.cli import app

    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    sample = shop(n_users=300, n_items=100, n_events=8000, seed=4)
    store = open_store(url)
    paths = {p.stem: p for p in sample.write(tmp_path / "shop")}
    for kind in ("items", "users", "events"):
        import_file(store, paths[kind], kind)
    store.close()
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, [*args, "--store", url], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    run("train", "--model", "popular")
    run("train", "--model", "als")
    created = run("experiments", "create", "--variant", "A=1", "--variant", "B=2",
                  "--planned-sample-size", "1000")
    assert "popular-vs-als" in created
    opened = open_store(url)
    experiment_id = opened.experiments.list()[0].experiment_id
    opened.close()
    run("experiments", "start", experiment_id)
    simulated = run("simulate", "--users", "200", "--shop-users", "300", "--shop-items",
                    "100", "--shop-events", "8000", "--shop-seed", "4")
    assert "2,000 impressions" in simulated
    shown = run("experiments", "show", experiment_id)
    assert "Wilson" in shown and "verdict:" in shown
    report = run("experiments", "show", experiment_id, "--json")
    assert '"verdict"' in report
    assert "IPS CTR" in run("experiments", "ope", "--candidate", "2")
    assert "labelled impressions" in run("experiments", "feedback", "--output",
                                         str(tmp_path / "labels.csv"))
    assert "running" in run("experiments", "list")
    run("experiments", "stop", experiment_id)
    sized = runner.invoke(app, ["experiments", "sample-size", "--baseline-ctr", "0.05",
                                "--mde", "0.1"])
    assert sized.exit_code == 0 and "impressions per variant" in sized.output


@pytest.mark.slow
def test_exploration_shows_a_new_item_users_like_and_learns_it(tmp_path: Path) -> None:
    """An item added after training: explored slots show it, simulated users click it,
    the bandit's estimate of it rises from its prior, and OPE weighs by the logged
    propensities (below 1 on explored slots)."""
    import numpy as np

    from tailored.monitoring.ope import estimate, logged_impressions, target_rankings
    from tailored.ranking.exploration import features
    from tailored.schema import Item

    sample = shop(n_users=300, n_items=60, n_events=6000, seed=2)
    users, items = len(sample.users), len(sample.items)
    appeal = sample.click_probability(np.repeat(np.arange(users), items),
                                      np.tile(np.arange(items), users)).reshape(users, items)
    new = int(appeal.mean(axis=0).argmax())  # the item the shop's users like best
    new_id = str(sample.items["item_id"].iloc[new])
    paths = {p.stem: p for p in sample.write(tmp_path / "shop")}
    for kind, keep in (("events", lambda line: f",{new_id}," not in line),
                       ("items", lambda line: not line.startswith(f"{new_id},"))):
        lines = paths[kind].read_text().splitlines(keepends=True)
        paths[kind].write_text("".join(line for line in lines if keep(line)))
    settings = Settings(store_url=f"sqlite:///{tmp_path / 'shop.db'}",
                        model_dir=tmp_path / "models", served_log_flush_seconds=0.05,
                        exploration_feedback_seconds=0.0, exploration_poll_seconds=0.1)
    store = open_store(settings.store_url)
    for kind in ("items", "users", "events"):
        import_file(store, paths[kind], kind)
    trained = train_model(store, settings, "item_knn", validate=False)
    assert new_id not in set(trained.pipeline.item_ids)
    row = sample.items.iloc[new]
    store.items.upsert([Item(item_id=new_id, title=row["title"],
                             categories=list(row["categories"]),
                             attributes={"price": float(row["price"])})])

    with TestClient(create_app(settings), base_url=LOCAL) as client:
        report = simulate(client, sample, users=250, sessions=2, k=10, seed=0, explore=0.2)
        service = client.app.state.service
        assert service.served_log.flush()
        bandits = service.bandits
        deadline = time.monotonic() + 20
        while (bandits.stats().get(1, {}).get("impressions", 0) < report.impressions
               and time.monotonic() < deadline):
            bandits.poll()
            time.sleep(0.05)
    assert report.explored > 0 and report.explored_clicks > 0
    events = store.events.frame()
    attributed = events[[isinstance(c, dict) and "recommendation_id" in c
                         for c in events["context"]]]
    shown_new = attributed[(attributed["item_id"] == new_id)]
    assert (shown_new["event_type"] == "impression").sum() > 10
    assert (shown_new["event_type"] == "click").sum() > 0
    learnt = bandits.stats()[1]
    assert learnt == _analytics_counts(store)  # of users who allow analytics
    bandit = bandits.bandit(1)
    # Its estimate started at 0 (the prior); now it is above what the bandit expects of
    # a new item it never showed: users liked this one.
    mean, _ = bandit.predict([new_id, "never-shown"], features([0, 0], [1, 1]))
    print(f"new item estimate {mean[0]:.3f}, unseen new item {mean[1]:.3f}")
    assert mean[0] > max(0.02, mean[1])

    served = store.served.frame()
    logged = logged_impressions(served, events)
    assert (logged["propensity"] < 1).any() and (logged["propensity"] > 0).all()
    explored_odds = [p for odds, context in zip(served["propensities"], served["context"],
                                                strict=True)
                     for p, flag in zip(odds, context["exploration"]["explored"], strict=True)
                     if flag]
    assert explored_odds and max(explored_odds) <= 0.2 + 1e-9
    target = target_rankings(trained.pipeline, served, events, 10)
    result = estimate(logged, target)
    assert not result.deterministic_logging
    keys = ["recommendation_id", "item_id", "position"]
    joined = logged.merge(target, on=keys, how="left").fillna({"probability": 0.0})
    manual = float((joined["clicked"] * joined["probability"] / joined["propensity"]).mean())
    assert result.ips == pytest.approx(manual)
    naive = estimate(logged.assign(propensity=1.0), target)
    assert result.ips >= naive.ips
    store.close()


def _analytics_counts(store: Store) -> dict[str, int]:
    """Attributed impressions and clicks of the users who do not withhold analytics
    (the sample shop has some who withhold all consent)."""
    events = store.events.frame()
    withheld = set(store.users.without_consent(purpose="analytics"))
    attributed = events[np.array([isinstance(c, dict) and "recommendation_id" in c
                                  for c in events["context"]])
                        & ~events["user_id"].isin(withheld).to_numpy()]
    return {kind + "s": int((attributed["event_type"] == kind).sum())
            for kind in ("impression", "click")}
