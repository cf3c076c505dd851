"""Placements over REST (versioned configurations a request names), experiments per
placement, and new arrivals: items put into the catalog after training get a share of
the slots at once, chosen by content."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from tailored.ingest import import_file
from tailored.jobs import train_model
from tailored.pipeline import Ranked, Recipe
from tailored.sample import shop
from tailored.serving import create_app
from tailored.serving.exploration import Shown
from tailored.settings import Settings
from tailored.store import open_store
from tailored.testing import LOCAL

from .conftest import TestClient


@pytest.fixture(scope="module")
def trained_shop(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The sample shop with two versions: item_knn (active) and popular."""
    root = tmp_path_factory.mktemp("placements")
    settings = Settings(store_url=f"sqlite:///{root / 'shop.db'}", model_dir=root / "models",
                        served_log_flush_seconds=0.05)
    sample = shop(n_users=300, n_items=100, n_events=8_000, seed=3)
    paths = {path.stem: path for path in sample.write(root / "data", format="csv")}
    with closing(open_store(settings.store_url)) as store:
        for kind in ("items", "users", "events"):
            import_file(store, paths[kind], kind)
        train_model(store, settings, Recipe.of("popular"), validate=False, promote=False)
        train_model(store, settings, Recipe.of("item_knn"), validate=False)
    return settings


@pytest.fixture
def settings(trained_shop: Settings, tmp_path: Path) -> Settings:
    """A copy of the trained shop's store for one test (the artifacts are shared)."""
    source = Path(trained_shop.store_url.removeprefix("sqlite:///"))
    target = tmp_path / "shop.db"
    with closing(open_store(trained_shop.store_url)) as store:
        store.engine.dispose()  # type: ignore[attr-defined]
    target.write_bytes(source.read_bytes())
    return trained_shop.model_copy(update={"store_url": f"sqlite:///{target}"})


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url=LOCAL) as client:
        yield client


def _recommend(client: TestClient, user: str, **params: object) -> dict:
    answer = client.get(f"/recommendations/{user}", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_placements_are_created_versioned_and_deleted_over_rest(client: TestClient) -> None:
    assert client.get("/placements").json() == []
    first = client.put("/placements/home", json={"k": 4, "filter": "price < 50"})
    assert first.status_code == 200, first.text
    assert (first.json()["version"], first.json()["placement"]["k"]) == (1, 4)
    assert client.put("/placements/home", json={"k": 4, "filter": "price < 50"}
                      ).json()["version"] == 1  # unchanged: no new version
    assert client.put("/placements/home", json={"k": 6}).json()["version"] == 2
    assert [p["name"] for p in client.get("/placements").json()] == ["home"]
    assert client.get("/placements/home").json()["placement"]["filter"] is None
    versions = client.get("/placements/home/versions").json()
    assert [v["version"] for v in versions] == [1, 2]
    assert client.delete("/placements/home").status_code == 200
    assert client.get("/placements/home").status_code == 404
    assert client.get("/placements/home/versions").status_code == 404
    missing = client.get("/recommendations/u00001", params={"placement": "home"})
    assert missing.status_code == 404 and "GET /placements" in missing.json()["detail"]
    client.put("/placements/home", json={"k": 3})  # back, as a new version
    assert [v["placement"] is None for v in client.get("/placements/home/versions").json()
            ] == [False, False, True, False]
    assert len(_recommend(client, "u00001", placement="home")["items"]) == 3


@pytest.mark.parametrize(("body", "field"), [
    ({"filter": "price <"}, "unexpected end"),
    ({"k": 0}, "k"),
    ({"explore": 2}, "explore"),
    ({"unknown": 1}, "unknown"),
    ({"fallback": "random"}, "fallback"),
])
def test_a_bad_placement_is_refused_naming_the_problem(client: TestClient, body: dict,
                                                        field: str) -> None:
    answer = client.put("/placements/home", json=body)
    assert answer.status_code == 422 and field in answer.text
    assert client.put("/placements/bad name!", json={}).status_code in (404, 422)


def test_a_placement_shapes_the_list_and_a_request_narrows_it(client: TestClient) -> None:
    client.put("/placements/cheap", json={"k": 5, "filter": "price < 40",
                                          "model": "popular"})
    answer = _recommend(client, "u00003", placement="cheap")
    assert answer["placement"] == {"name": "cheap", "version": 1}
    assert answer["model"]["name"] == "popular"  # the placement's version, no admin needed
    assert len(answer["items"]) == 5
    items = [client.get(f"/items/{i['item_id']}").json() for i in answer["items"]]
    assert all(item["attributes"]["price"] < 40 for item in items)
    narrowed = _recommend(client, "u00003", placement="cheap", filter="price < 20", k=3)
    assert len(narrowed["items"]) <= 3
    for item in narrowed["items"]:
        assert client.get(f"/items/{item['item_id']}").json()["attributes"]["price"] < 20
    unplaced = _recommend(client, "u00003")
    assert unplaced["placement"] is None and unplaced["model"]["name"] == "item_knn"


def test_answers_are_logged_and_counted_per_placement(client: TestClient) -> None:
    client.put("/placements/home", json={"k": 3})
    _recommend(client, "u00004", placement="home")
    _recommend(client, "u00004")
    service = client.app.state.service  # type: ignore[attr-defined]
    assert service.served_log.flush()
    served = service.store.served.frame()
    assert sorted(served["placement"].fillna("-")) == ["-", "home"]
    home = service.store.served.frame(placement="home")
    assert len(home) == 1 and home["context"].iloc[0]["placement_version"] == 1
    metrics = client.get("/metrics").text
    assert re.search(r'tailored_recommendations_total\{model="item_knn",placement="home"\} 1',
                     metrics), metrics


def test_experiments_on_two_placements_run_at_once(client: TestClient) -> None:
    client.put("/placements/home", json={})
    both = {"variants": [{"name": "A", "version": 1}, {"name": "B", "version": 2}],
            "start": True}
    home = client.post("/experiments", json={"name": "home test", "placement": "home",
                                             **both})
    assert home.status_code == 201, home.text
    everywhere = client.post("/experiments", json={"name": "plain test", **both})
    assert everywhere.status_code == 201, everywhere.text
    again = client.post("/experiments", json={"name": "again", "placement": "home", **both})
    assert again.status_code == 409 and "placement 'home'" in again.text
    on_home = _recommend(client, "u00005", placement="home")["experiment"]
    plain = _recommend(client, "u00005")["experiment"]
    assert on_home["experiment_id"] == home.json()["experiment_id"]
    assert plain["experiment_id"] == everywhere.json()["experiment_id"]
    # Independent hashing: across users, the two tests' arms do not coincide.
    arms = [(_recommend(client, f"u{n:05d}", placement="home")["experiment"]["variant"],
             _recommend(client, f"u{n:05d}")["experiment"]["variant"]) for n in range(40)]
    assert len(set(arms)) == 4


def _new_item(client: TestClient, like: str, item_id: str) -> None:
    """An item of ``like``'s categories and title words, put after training."""
    model = client.get(f"/items/{like}").json()
    answer = client.put(f"/items/{item_id}", json={
        "title": f"New {model['title']}", "categories": model["categories"],
        "attributes": {"price": 10.0}})
    assert answer.status_code in (200, 201), answer.text


def test_new_arrivals_get_a_share_of_the_slots_at_once(client: TestClient) -> None:
    user = "u00007"
    history = client.get(f"/users/{user}/export").json()["events"]
    liked = history[-1]["item_id"]
    unlike = client.put("/items/new-other", json={"title": "Qwerty zxcv",
                                                  "categories": ["nothing-alike"]})
    assert unlike.status_code in (200, 201), unlike.text
    _new_item(client, liked, "new-alike")
    plain = _recommend(client, user, k=10)
    assert not {"new-alike", "new-other"} & {i["item_id"] for i in plain["items"]}
    mixed = _recommend(client, user, k=10, new_arrivals=0.1, explain=True)
    placed = [i for i in mixed["items"] if i.get("new_arrival")]
    assert len(mixed["items"]) == 10 and [i["rank"] for i in placed] == [6]  # one, midway
    assert "new" in placed[0]["reason"].lower()
    many = _recommend(client, user, k=20, new_arrivals=0.5)["items"]
    new = {i["item_id"]: i for i in many if i.get("new_arrival")}
    assert len(new) == 3 and len(many) == 20  # every new item there is; the model fills
    # By content: the item like what the user touched scores, the unrelated one does not.
    assert new["new-alike"]["score"] > 0 == new["new-other"]["score"]
    assert new["new-alike"]["rank"] < new["new-other"]["rank"]
    filtered = _recommend(client, user, k=20, new_arrivals=0.5, filter="price > 20")
    assert not {"new-alike", "new-other"} & {i["item_id"] for i in filtered["items"]}
    client.put("/placements/home", json={"new_arrivals": 0.1})
    assert any(i.get("new_arrival") for i in _recommend(client, user,
                                                        placement="home")["items"])


def test_a_placement_file_is_stored_at_start(settings: Settings, tmp_path: Path) -> None:
    file = tmp_path / "placements.toml"
    file.write_text('[home]\nk = 7\nnew_arrivals = 0.1\n\n[product-page]\nmodel = "popular"\n')
    configured = settings.model_copy(update={"placements_file": file})
    with TestClient(create_app(configured), base_url=LOCAL) as client:
        names = {p["name"]: p["placement"] for p in client.get("/placements").json()}
        assert names["home"]["k"] == 7 and names["product-page"]["model"] == "popular"
        assert len(_recommend(client, "u00002", placement="home")["items"]) == 7


def test_a_session_list_has_new_arrivals_too(client: TestClient) -> None:
    client.put("/items/fresh", json={"title": "Fresh thing", "categories": ["sports"]})
    answer = client.post("/recommendations/session", json={"items": [], "k": 5,
                                                           "new_arrivals": 0.4})
    assert answer.status_code == 200, answer.text
    new = [i["item_id"] for i in answer.json()["items"] if i.get("new_arrival")]
    assert len(new) == 2 and "fresh" in new  # no history: the newest first


def test_a_fallback_fills_only_what_the_pipeline_leaves_empty(client: TestClient) -> None:
    """The model lists every item it knows for this user: the fallback adds nothing, and
    never an item twice nor one the user has."""
    events = [{"user_id": "newbie", "item_id": "i00013", "event_type": "view"}]
    assert client.post("/events", json=events).status_code in (200, 201)
    alone = [item["item_id"] for item in _recommend(client, "newbie", k=200)["items"]]
    client.put("/placements/wide", json={"k": 200, "fallback": "trending"})
    filled = [item["item_id"] for item in _recommend(client, "newbie",
                                                     placement="wide")["items"]]
    assert filled == alone and "i00013" not in filled


def test_a_fallback_appends_deterministic_slots() -> None:
    shown = Shown(Ranked(["a", "b"], [2.0, 1.0], np.arange(2)), [0.9, 1.0], 0.5,
                  [True, False], [3, 1])
    filled = shown.with_fallback(Ranked(["c"], [5.0], np.array([7])))
    assert filled.ranked.item_ids == ["a", "b", "c"] and filled.propensities == [0.9, 1.0, 1.0]
    assert (filled.explored, filled.base_ranks, filled.new_arrivals) == (
        [True, False, False], [3, 1, 0], None)
