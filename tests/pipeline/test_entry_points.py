"""One pipeline produces every list: a recipe with business rules (a boost and a filter),
request overrides (filter, boost, exclude) and MMR diversity gives the same lists from
Python, `tailored recommend`, offline evaluation, and REST (GET and session)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tailored.cli import app
from tailored.dataset import Dataset, Split, UserQuery
from tailored.evaluation import evaluate_model
from tailored.pipeline import LiveRecommender, Overrides, Pipeline
from tailored.sample import shop
from tailored.serving import create_app
from tailored.settings import Settings
from tailored.store import open_store
from tailored.testing import LOCAL

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

K = 8
RECIPE = """
name = "shop-knn"
pool = 40

[model]
model = "item_knn"
params = { neighbors = 30 }

[[rules]]
name = "sports first"
boost = { where = '"sports" in categories', factor = 1.5 }

[[rules]]
name = "nothing dear"
filter = { where = "price < 150" }

[[rerankers]]
kind = "diversify"
diversity = 0.3
"""
#: The same request overrides, spelt for REST, the CLI and Python.
FILTER = '"home" in categories or price < 60'
BOOST = "price < 30:2"
DIVERSITY = 0.5


@dataclass
class Shop:
    store_url: str
    settings: Settings
    users: list[str]
    live: LiveRecommender
    client: TestClient


@pytest.fixture(scope="module")
def trained_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """A small sample shop imported and trained through the CLI, served in-process."""
    root = tmp_path_factory.mktemp("entry-points")
    sample = shop(n_users=120, n_items=150, n_events=6_000, seed=3)
    sample.write(root)
    (root / "recipe.toml").write_text(RECIPE)
    store_url = f"sqlite:///{root / 'shop.db'}"
    settings = Settings(store_url=store_url, model_dir=root / "models")
    runner = CliRunner(env={"TAILORED_MODEL_DIR": str(root / "models")})
    for kind in ("items", "events"):
        result = runner.invoke(app, ["import", kind, str(root / f"{kind}.csv"),
                                     "--store", store_url], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", "--recipe", str(root / "recipe.toml"),
                                 "--store", store_url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    store = open_store(store_url)
    version = store.models.active()
    assert version is not None and version.name == "shop-knn"
    users = sorted(store.events.frame()["user_id"].unique().tolist())[:25]
    live = LiveRecommender(store, Pipeline.load(version.path), version)
    with TestClient(create_app(settings), base_url=LOCAL) as client:
        yield Shop(store_url, settings, users, live, client)
    store.close()


def _python(shop: Shop, overrides: Overrides = Overrides()) -> dict[str, list[str]]:
    live = shop.live
    recs = live.pipeline.run(live.query(shop.users), K, overrides, catalog=live.catalog())
    return _lists(recs)


def _lists(recs: pd.DataFrame) -> dict[str, list[str]]:
    return {str(user): group.sort_values("rank")["item_id"].astype(str).tolist()
            for user, group in recs.groupby("user_id")}


def _cli(shop: Shop, tmp_path: Path, *flags: str) -> dict[str, list[str]]:
    output = tmp_path / "recs.csv"
    result = CliRunner().invoke(app, ["recommend", *shop.users, "--k", str(K), "--output",
                                      str(output), "--store", shop.store_url, *flags],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return _lists(pd.read_csv(output, dtype={"user_id": str, "item_id": str}))


def _rest(shop: Shop, **params: object) -> dict[str, list[str]]:
    lists = {}
    for user in shop.users:
        response = shop.client.get(f"/recommendations/{user}", params={"k": K, **params})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"]["name"] == "shop-knn"
        lists[user] = [item["item_id"] for item in body["items"]]
    return lists


def test_the_recipe_gives_one_list_everywhere(trained_shop: Shop, tmp_path: Path) -> None:
    python = _python(trained_shop)

    assert _cli(trained_shop, tmp_path) == python
    assert _rest(trained_shop) == python
    # Offline evaluation runs the same pipeline on the same data (nothing held out).
    data = Dataset.from_store(trained_shop.live.store, trained_shop.settings.event_weights)
    truth = pd.DataFrame({"user_id": trained_shop.users, "item_id": "none"})
    result = evaluate_model(trained_shop.live.pipeline, Split("all", data, truth), K,
                            fit=False, beyond_accuracy=False)
    assert result.recommended == python
    # The stages did something: the rules filter, and MMR reorders the scorer's list.
    items = trained_shop.live.store.items.frame().set_index("item_id")
    assert all(items.loc[item, "attributes"]["price"] < 150
               for items_ in python.values() for item in items_)
    bare = _lists(trained_shop.live.model.recommend(trained_shop.live.query(trained_shop.users),
                                                    k=K))
    assert sum(bare[user] != python[user] for user in python) >= len(python) // 2


def test_request_overrides_give_one_list_everywhere(trained_shop: Shop,
                                                    tmp_path: Path) -> None:
    excluded = _python(trained_shop)[trained_shop.users[0]][0]
    overrides = Overrides.parse(FILTER, [BOOST], [excluded], diversity=DIVERSITY)
    python = _python(trained_shop, overrides)

    assert python != _python(trained_shop)
    assert excluded not in python[trained_shop.users[0]]
    assert _cli(trained_shop, tmp_path, "--filter", FILTER, "--boost", BOOST,
                "--exclude", excluded, "--diversity", str(DIVERSITY)) == python
    assert _rest(trained_shop, filter=FILTER, boost=BOOST, exclude=excluded,
                 diversity=DIVERSITY) == python


def test_a_session_gets_the_list_python_gives_for_its_history(trained_shop: Shop) -> None:
    events = trained_shop.live.store.events.frame(user_ids=[trained_shop.users[1]])
    viewed = list(dict.fromkeys(events["item_id"].astype(str)))[:6]
    query = UserQuery.from_histories({"session:s1": viewed})
    overrides = Overrides.parse(FILTER, [BOOST], diversity=DIVERSITY)
    live = trained_shop.live
    for body, stages in (({}, Overrides()),
                         ({"filter": FILTER, "boost": [BOOST], "diversity": DIVERSITY},
                          overrides)):
        expected = _lists(live.pipeline.run(query, K, stages, catalog=live.catalog()))
        response = trained_shop.client.post("/recommendations/session", json={
            "items": viewed, "k": K, "session_id": "s1", **body})
        assert response.status_code == 200, response.text
        assert [item["item_id"] for item in response.json()["items"]] == expected["session:s1"]
