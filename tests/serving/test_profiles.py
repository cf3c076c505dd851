"""New users from their profile: a user created after training is answered from the
profile as stored now (the segments model's cold start), and a profile change counts
from the very next request, cached lists included."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

from tailored.dataset import UserQuery
from tailored.ingest import import_file
from tailored.jobs import train_model
from tailored.pipeline import LiveRecommender, Recipe
from tailored.sample import shop
from tailored.schema import User, by_purpose
from tailored.serving import create_app
from tailored.settings import Settings
from tailored.store import open_store
from tailored.testing import LOCAL

from .conftest import TestClient


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("profiles")
    settings = Settings(store_url=f"sqlite:///{root / 'shop.db'}", model_dir=root / "models")
    sample = shop(n_users=400, n_items=120, n_events=15_000, seed=7)
    paths = {path.stem: path for path in sample.write(root / "data", format="csv")}
    with closing(open_store(settings.store_url)) as store:
        for kind in ("items", "users", "events"):
            import_file(store, paths[kind], kind)
        train_model(store, settings, Recipe.of("segments"), validate=False)
    return settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url=LOCAL) as client:
        yield client


def _items(client: TestClient, user: str) -> list[str]:
    answer = client.get(f"/recommendations/{user}", params={"k": 6})
    assert answer.status_code == 200, answer.text
    return [item["item_id"] for item in answer.json()["items"]]


def _two_profiles(settings: Settings) -> tuple[dict[str, object], dict[str, object],
                                               list[str], list[str]]:
    """Two stored profiles whose newcomers the model answers differently, and those
    answers (the model's own cold start, asked offline)."""
    with closing(open_store(settings.store_url)) as store:
        live = LiveRecommender.active(store)
        users = store.users.frame().head(60)
        answers = {}
        for row in users.itertuples(index=False):
            profile = pd.DataFrame([{"user_id": "someone-new", **row.attributes}])
            query = UserQuery(("someone-new",), store.events.frame(user_ids=[]),
                              profiles=profile)
            answers[row.user_id] = (row.attributes,
                                    live.pipeline.run(query, 6)["item_id"].tolist())
    first, *others = answers.values()
    second = next(other for other in others if other[1] != first[1])
    return first[0], second[0], first[1], second[1]


def test_a_user_created_after_training_is_answered_from_the_profile(
        settings: Settings, client: TestClient) -> None:
    profile_a, profile_b, answer_a, answer_b = _two_profiles(settings)
    stranger = _items(client, "no-profile-at-all")

    created = client.put("/users/newbie", json={"attributes": profile_a})
    assert created.status_code == 201
    assert _items(client, "newbie") == answer_a != stranger
    assert _items(client, "newbie") == answer_a  # from the cache now

    changed = client.patch("/users/newbie", json={"attributes": profile_b})
    assert changed.status_code == 200
    assert _items(client, "newbie") == answer_b  # the next request, cache or not

    client.put("/users/newbie/consent", json={"personalization": False})
    assert _items(client, "newbie") == stranger  # no profile read without consent


def test_batch_recommendations_read_profiles_too(settings: Settings, tmp_path: Path) -> None:
    profile_a, _, answer_a, _ = _two_profiles(settings)
    with closing(open_store(settings.store_url)) as store:
        store.users.upsert([User(user_id="newbie", attributes=profile_a,
                                 consent=by_purpose(True))])
        live = LiveRecommender.active(store)
        many = [f"nobody-{n}" for n in range(150)] + ["newbie"]  # the batch path
        lists = live.recommend(many, k=6).groupby("user_id")["item_id"].apply(list)
        assert lists["newbie"] == answer_a
        assert live.recommend(["newbie"], k=6)["item_id"].tolist() == answer_a

