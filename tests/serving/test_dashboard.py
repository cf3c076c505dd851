"""GET /dashboard and /dashboard/data over a store with a sample shop, two trained
versions, an A/B test between them with simulated traffic, a CTR drift alert and a
retraining decision; the browser test (test_dashboard_browser.py) uses the same store."""

from __future__ import annotations

import json
import shutil
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tailored.jobs import train_model
from tailored.jobs.retrain import retrain
from tailored.monitoring.abtest import analyze
from tailored.monitoring.drift import check_drift
from tailored.monitoring.experiments import assign
from tailored.pipeline import Pipeline, Recipe
from tailored.sample import shop
from tailored.sample.shop import PERIOD_END
from tailored.schema import Event, Item
from tailored.serving import create_app
from tailored.serving.routers.dashboard import _Cache
from tailored.settings import Settings
from tailored.store import Store, open_store
from tailored.store.served import Served
from tailored.testing import LOCAL

from .conftest import Keys

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

EXPERIMENT = "pop-vs-knn"
DAYS = 6


@dataclass(frozen=True)
class Shop:
    """A store file filled once per session, and what the tests check against."""

    database: Path
    model_dir: Path
    events: int
    experiment_id: str
    verdict: str
    winner: str | None


def _items(sample: pd.DataFrame) -> list[Item]:
    return [Item(item_id=row.item_id, title=row.title, text=row.text,
                 categories=list(row.categories), attributes={"price": float(row.price)},
                 available=bool(row.available), created_at=row.created_at)
            for row in sample.itertuples(index=False)]


def _events(sample: pd.DataFrame) -> list[Event]:
    return [Event(event_id=row.event_id, user_id=row.user_id, item_id=row.item_id,
                  event_type=row.event_type, timestamp=row.timestamp,
                  context={"device": row.device})
            for row in sample.itertuples(index=False)]


def _experiment_traffic(store: Store, sample: object, experiment_id: str,
                        answers: int = 1_500, k: int = 5, seed: int = 0) -> None:
    """What the service and the shop's users would have logged: each answer from the
    user's variant's model, one impression per slot, clicks drawn from the sample shop's
    hidden tastes. In the last two days every click is half as likely (a CTR drift)."""
    rng = np.random.default_rng(seed)
    experiment = store.experiments.get(experiment_id)
    assert experiment is not None
    users = sample.users["user_id"].astype(str).to_numpy()  # type: ignore[attr-defined]
    item_index = {str(i): n for n, i in enumerate(sample.items["item_id"])}  # type: ignore[attr-defined]
    chosen = rng.choice(len(users), size=answers)
    start = pd.Timestamp(PERIOD_END)
    moments = sorted(start + pd.Timedelta(seconds=float(s))
                     for s in rng.uniform(0, DAYS * 86_400, size=answers))
    models: dict[int, Pipeline] = {}
    lists: dict[tuple[int, str], list[str]] = {}
    for version in {v.version for v in experiment.variants}:
        found = store.models.get(version)
        assert found is not None
        models[version] = Pipeline.load(Path(found.path))
        picked = sorted({users[u] for u in chosen})
        recs = models[version].run(picked, k=k)
        for user, group in recs.groupby("user_id", sort=False):
            lists[(version, str(user))] = group["item_id"].astype(str).tolist()
    served: list[Served] = []
    shown_rows: list[tuple[int, str, str, pd.Timestamp, int]] = []  # answer, user, item, ...
    for n, (user_row, at) in enumerate(zip(chosen, moments, strict=True)):
        user = str(users[user_row])
        assignment = assign(experiment, user)
        assert assignment.version is not None
        shown = lists.get((assignment.version, user), [])
        served.append(Served(recommendation_id=f"rec{n:05d}", user_id=user, served_at=at,
                             model_name=models[assignment.version].name,
                             model_version=assignment.version, experiment_id=experiment_id,
                             variant=assignment.variant, item_ids=shown,
                             scores=[1.0] * len(shown), propensities=[1.0] * len(shown)))
        shown_rows += [(n, user, item, at, position)
                       for position, item in enumerate(shown, start=1)]
    frame = pd.DataFrame(shown_rows, columns=["answer", "user", "item", "at", "position"])
    user_rows = {str(u): i for i, u in enumerate(users)}
    # One vectorised draw for every shown item; the last two days click half as often.
    p_click = sample.click_probability(  # type: ignore[attr-defined]
        frame["user"].map(user_rows).to_numpy(), frame["item"].map(item_index).to_numpy(),
        timestamp=pd.DatetimeIndex(frame["at"]), position=frame["position"].to_numpy())
    p_click = np.where(frame["at"] > start + pd.Timedelta(days=DAYS - 2), 0.5, 1.0) * p_click
    clicked = rng.random(len(frame)) < p_click
    events: list[Event] = []
    for row, did_click in zip(frame.itertuples(index=False), clicked, strict=True):
        rid = f"rec{row.answer:05d}"
        context = {"recommendation_id": rid, "position": row.position}
        events.append(Event(event_id=f"{rid}-i{row.position}", user_id=row.user,
                            item_id=row.item, event_type="impression", timestamp=row.at,
                            context=context))
        if did_click:
            events.append(Event(event_id=f"{rid}-c{row.position}", user_id=row.user,
                                item_id=row.item, event_type="click",
                                timestamp=row.at + timedelta(seconds=5 + row.position),
                                context=context))
    store.served.record(served)
    store.events.add(events)


@pytest.fixture(scope="session")
def dashboard_shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    return build_shop(tmp_path_factory.getbasetemp() / "dashboard-shop")


def build_shop(root: Path) -> Shop:
    """The store, built once per test session: the browser test's module has its own
    fixture of the same name, so the finished store is found on disk instead."""
    done = root / "shop.json"
    if done.exists():
        recorded = json.loads(done.read_text())
        return Shop(**{**recorded, "database": Path(recorded["database"]),
                       "model_dir": Path(recorded["model_dir"])})
    root.mkdir(parents=True, exist_ok=True)
    settings = Settings(store_url=f"sqlite:///{root / 'shop.db'}", model_dir=root / "models")
    sample = shop(n_users=400, n_items=120, n_events=12_000, seed=1)
    store = open_store(settings.store_url)
    try:
        store.items.upsert(_items(sample.items))
        store.events.add(_events(sample.events))
        popular = train_model(store, settings, "popular", promote=False).version
        knn = train_model(store, settings, "item_knn").version
        # A fixed id: users hash to the same variants every run (a stable screenshot).
        experiment = store.experiments.create(EXPERIMENT, [("A", popular.version, 1.0),
                                                           ("B", knn.version, 1.0)],
                                              planned_sample_size=2_000,
                                              experiment_id="exp-pop-vs-knn")
        store.experiments.start(experiment.experiment_id, at=PERIOD_END.to_pydatetime())
        _experiment_traffic(store, sample, experiment.experiment_id)
        check_drift(store)  # records the CTR drop as an alert
        # A scheduled retraining with a weaker recipe: registered, not promoted.
        retrain(store, settings, Recipe.of("popular"),
                reason="schedule")
        report = analyze(store, experiment.experiment_id)
        built = Shop(root / "shop.db", settings.model_dir, store.events.count(),
                     experiment.experiment_id, report.verdict, report.winner)
    finally:
        store.close()
    done.write_text(json.dumps({**asdict(built), "database": str(built.database),
                                "model_dir": str(built.model_dir)}))
    return built


def copy_shop(shop_data: Shop, target: Path) -> Settings:
    """A private copy of the shop's store (tests may write to it)."""
    target.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{shop_data.database}{suffix}")
        if source.exists():
            shutil.copyfile(source, target / f"shop.db{suffix}")
    return Settings(store_url=f"sqlite:///{target / 'shop.db'}", model_dir=shop_data.model_dir)


@pytest.fixture
def client(dashboard_shop: Shop, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(copy_shop(dashboard_shop, tmp_path)), base_url=LOCAL) as client:
        yield client


def test_the_shop_has_a_winner_and_an_alert(dashboard_shop: Shop) -> None:
    # The premise of the page: item-kNN beats popularity on the sample shop's tastes.
    assert dashboard_shop.winner == "B", dashboard_shop.verdict
    with closing(open_store(f"sqlite:///{dashboard_shop.database}")) as store:
        assert [a.detector for a in store.alerts.list(unhandled=True)] == ["ctr"]


def test_page_and_assets_are_served(client: TestClient) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/dashboard/static/vendor/chart.umd.min.js" in page.text
    for name, kind in (("dashboard.js", "javascript"), ("dashboard.css", "css"),
                       ("vendor/chart.umd.min.js", "javascript")):
        asset = client.get(f"/dashboard/static/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"]
    assert "Chart.js v4" in client.get("/dashboard/static/vendor/chart.umd.min.js").text


@pytest.mark.parametrize("name", ["nope.js", "../routers/dashboard.py", "index.html",
                                  "vendor/LICENSE-chart.js.md"])
def test_only_the_dashboard_assets_are_served(client: TestClient, name: str) -> None:
    answer = client.get(f"/dashboard/static/{name}")
    assert answer.status_code == 404
    if name == "nope.js":
        assert "dashboard.js" in answer.json()["detail"]


def test_data_is_computed_from_the_store(client: TestClient, dashboard_shop: Shop) -> None:
    data = client.get("/dashboard/data").json()
    assert data["totals"]["events"] == dashboard_shop.events
    assert data["totals"]["items"] == 120
    over = data["events_over_time"]
    assert over["period"] == "day"
    assert sum(sum(counts) for counts in over["series"].values()) == dashboard_shop.events
    assert set(over["series"]) >= {"view", "click", "impression"}

    versions = data["models"]
    assert [v["name"] for v in versions] == ["popular", "item_knn", "popular"]
    assert [v["active"] for v in versions] == [False, True, False]
    assert data["serving"] == 2
    assert versions[1]["metrics"]["ndcg@10"] > 0
    assert versions[2]["retrain"]["promoted"] is False
    assert versions[2]["retrain"]["incumbent"] == 2

    (experiment,) = data["experiments"]
    assert experiment["experiment"]["experiment_id"] == dashboard_shop.experiment_id
    assert experiment["verdict"] == dashboard_shop.verdict
    assert {v["variant"] for v in experiment["variants"]} == {"A", "B"}
    assert {p["variant"] for p in experiment["curve"]} == {"A", "B"}

    detectors = {d["name"]: d for d in data["drift"]["detectors"]}
    assert set(detectors) == {"ctr", "event_mix", "item_popularity"}
    assert detectors["ctr"]["observations"] == data["totals"]["impressions"]
    assert detectors["ctr"]["status"] == "alert"
    assert any(a["detector"] == "ctr" and a["handled_at"] is None
               for a in data["drift"]["alerts"])
    assert data["drift"]["unhandled"] >= 1

    top = data["top_items"]
    assert len(top) == 15 and top[0]["events"] >= top[-1]["events"] and top[0]["title"]
    coverage = data["coverage"]
    assert coverage["catalog"] == 120 and 0 < coverage["recommended"] <= 120
    assert coverage["answers"] == 1_500
    assert coverage["long_tail"]["interaction_share"][-1] == pytest.approx(1.0)


@pytest.fixture
def small_client(tmp_path: Path) -> Iterator[TestClient]:
    """An app over a store with a handful of events (cheap to recompute)."""
    settings = Settings(store_url=f"sqlite:///{tmp_path / 'small.db'}",
                        model_dir=tmp_path / "models")
    with closing(open_store(settings.store_url)) as store:
        store.events.add([Event(user_id=f"u{n % 3}", item_id=f"i{n % 5}") for n in range(20)])
    with TestClient(create_app(settings), base_url=LOCAL) as client:
        yield client


def test_data_is_cached_unless_fresh_is_asked(small_client: TestClient) -> None:
    first = small_client.get("/dashboard/data").json()
    assert first["totals"]["events"] == 20
    store = small_client.app.state.service.store  # type: ignore[attr-defined]
    store.events.add([Event(user_id="newcomer", item_id="i00001")])
    assert small_client.get("/dashboard/data").json()["totals"] == first["totals"]
    fresh = small_client.get("/dashboard/data", params={"fresh": "true"}).json()
    assert fresh["totals"]["events"] == 21


def test_an_empty_store_gives_an_empty_dashboard(tmp_path: Path) -> None:
    settings = Settings(store_url=f"sqlite:///{tmp_path / 'empty.db'}",
                        model_dir=tmp_path / "models")
    with TestClient(create_app(settings), base_url=LOCAL) as client:
        data = client.get("/dashboard/data").json()
    assert data["totals"]["events"] == 0 and data["models"] == []
    assert data["experiments"] == [] and data["top_items"] == []
    assert [d["status"] for d in data["drift"]["detectors"]] == ["no data"] * 3


def test_data_needs_a_read_key_once_keys_exist(small_client: TestClient) -> None:
    client = small_client
    store = client.app.state.service.store  # type: ignore[attr-defined]
    _key, secret = store.keys.create("dashboard", ["read"])
    client.app.state.keys.key_created()  # type: ignore[attr-defined]
    assert client.get("/dashboard").status_code == 200  # the page itself holds no data
    refused = client.get("/dashboard/data")
    assert refused.status_code == 401 and "scope 'read'" in refused.json()["detail"]
    allowed = client.get("/dashboard/data", headers={"Authorization": f"Bearer {secret}"})
    assert allowed.status_code == 200


def test_fresh_figures_need_an_admin_key(secured: TestClient, keys: Keys) -> None:
    cached = secured.get("/dashboard/data", headers=keys.headers("read"))
    refused = secured.get("/dashboard/data", params={"fresh": "true"},
                          headers=keys.headers("read"))
    fresh = secured.get("/dashboard/data", params={"fresh": "true"},
                        headers=keys.headers("admin"))

    assert cached.status_code == 200 and fresh.status_code == 200
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]


def test_concurrent_fresh_requests_share_one_computation() -> None:
    cache = _Cache()
    started = threading.Barrier(6)
    computations: list[int] = []

    def compute() -> dict[str, object]:
        computations.append(1)
        time.sleep(0.2)
        return {"n": len(computations)}

    def ask() -> None:
        started.wait()
        cache.get(compute, fresh=True)

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Those who asked before a computation started share it; those who asked during it
    # share the next one: never one computation per request.
    assert len(computations) <= 2
