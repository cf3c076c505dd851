"""Erasure end to end: a user of the sample shop, trained on by several recipes and
served, is erased over REST and leaves no trace in any table, any artifact byte, the
cache or the logs; their next request is a newcomer's, and events sent later make a new
user. Consent end to end: a user without it is never trained on nor personalised, over
REST and in batch (`tailored recommend --all`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from tailored.cli import app as cli
from tailored.ingest import import_file
from tailored.jobs import train_model
from tailored.pipeline import LiveRecommender, Recipe, find_recipe
from tailored.sample import shop
from tailored.serving import create_app
from tailored.serving.security import RedactUserIds
from tailored.settings import Settings
from tailored.store import open_store_from, pseudonym
from tailored.testing import LOCAL, files_holding, rows_holding

from .conftest import TestClient

ERASED = "erase-me-7c1f"  # distinctive: found only where this user left a trace
WITHHELD = "no-consent-41d9"
RECIPES = (find_recipe("ranked"), find_recipe("shop-with-rules"), Recipe.of("segments"))


@pytest.fixture(scope="module")
def shop_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample shop's files, with two users renamed to distinctive ids."""
    sample = shop(n_users=300, n_items=120, n_events=12_000, seed=5)
    first, second = sample.users["user_id"].iloc[:2]
    rename = {first: ERASED, second: WITHHELD}
    sample.events["user_id"] = sample.events["user_id"].replace(rename)
    sample.users["user_id"] = sample.users["user_id"].replace(rename)
    paths = sample.write(tmp_path_factory.mktemp("shop"), format="csv")
    return {path.stem: path for path in paths}


SECRET = "an erasure test secret of 32 characters"


@pytest.fixture(params=[False, True], ids=["raw-ids", "pseudonymous"])
def settings(request: pytest.FixtureRequest, tmp_path: Path,
             shop_files: dict[str, Path]) -> Iterator[Settings]:
    settings = Settings(store_url=f"sqlite:///{tmp_path / 'shop.db'}",
                        model_dir=tmp_path / "models", pseudonymize_user_ids=request.param,
                        privacy_secret=SECRET if request.param else None)
    store = open_store_from(settings)
    for kind in ("items", "users", "events"):
        import_file(store, shop_files[kind], kind)
    store.close()
    yield settings


def _stored(settings: Settings, user: str) -> str:
    """How the store and the artifacts name ``user``."""
    return pseudonym(SECRET, user) if settings.pseudonymize_user_ids else user


def _train(settings: Settings) -> None:
    store = open_store_from(settings)
    for recipe in RECIPES:  # the last one serves; the others are registered versions
        train_model(store, settings, recipe, validate=False)
    store.close()


def _items(client: TestClient, user: str, **params: Any) -> list[str]:
    answer = client.get(f"/recommendations/{user}", params={"k": 8, **params})
    assert answer.status_code == 200, answer.text
    return [item["item_id"] for item in answer.json()["items"]]


def test_an_erased_user_leaves_no_trace(settings: Settings, caplog: pytest.LogCaptureFixture
                                        ) -> None:
    _train(settings)
    database = Path(settings.store_url.removeprefix("sqlite:///"))
    stored = _stored(settings, ERASED)
    traces = {ERASED, stored}
    assert files_holding(settings.model_dir, stored)  # the test can see a trace
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(settings), base_url=LOCAL) as client:
        newcomer = _items(client, "never-seen-anywhere")
        personal = _items(client, ERASED)
        assert personal != newcomer
        shown = client.get(f"/recommendations/{ERASED}", params={"explain": True}).json()
        clicked = client.post("/events", json={
            "user_id": ERASED, "item_id": personal[0], "event_type": "click",
            "context": {"recommendation_id": shown["recommendation_id"]}})
        assert clicked.status_code == 201
        client.put(f"/users/{ERASED}/consent", json={"analytics": True})
        client.app.state.service.served_log.flush()  # type: ignore[attr-defined]
        assert rows_holding(database, stored)

        erased = client.post(f"/users/{ERASED}/erase")

        assert erased.status_code == 200, erased.text
        report = erased.json()
        assert report["erased"] == 1 and report["deleted"]["events"] > 0
        assert report["deleted"]["served"] >= 2 and report["deleted"]["profile"] == 1
        assert {v["users"] for v in report["models"].values()} == {1}
        assert report["retrain_due"] is not None  # ALS and the ranker learned from them
        print(f"\nerasure of one user, {len(report['models'])} artifacts rewritten: "
              f"{report['seconds'] * 1000:.0f} ms")
        service = client.app.state.service  # type: ignore[attr-defined]
        assert not [key for key in service.cache._entries if key.user_id == ERASED]

        for trace in traces:
            assert rows_holding(database, trace) == []
            assert files_holding(settings.model_dir, trace) == []
        assert _items(client, ERASED) == newcomer  # served from the rewritten model
        server_logs = [r.getMessage() for r in caplog.records if r.name != "httpx"]
        assert not [line for line in server_logs for t in traces if t in line]
        assert client.get(f"/users/{ERASED}/export").status_code == 404
        pending = client.get("/models").json()
        assert pending["erasures_pending"] == 1 and pending["erasure_retrain_due"]

        # Events sent later make a new user: nothing of the old one comes back.
        again = client.post("/events", json={"user_id": ERASED, "item_id": personal[1],
                                             "event_type": "view"})
        assert again.status_code == 201
        export = client.get(f"/users/{ERASED}/export").json()
        assert export["counts"] == {"events": 1, "recommendations": 0}
        assert export["profile"] is None and export["consent_history"] == []


def test_a_user_without_consent_is_never_trained_on_nor_personalised(
        settings: Settings, tmp_path: Path) -> None:
    with TestClient(create_app(settings), base_url=LOCAL) as client:
        withdrawn = client.put(f"/users/{WITHHELD}/consent",
                               json={"personalization": False})
        assert withdrawn.json()["consent"]["personalization"] is False
    _train(settings)

    assert files_holding(settings.model_dir, _stored(settings, WITHHELD)) == []  # never
    with TestClient(create_app(settings), base_url=LOCAL) as client:
        newcomer = _items(client, "never-seen-anywhere")
        assert _items(client, WITHHELD) == newcomer
        explained = client.get(f"/recommendations/{WITHHELD}", params={"explain": True})
        assert not [item for item in explained.json()["items"]
                    if "because you" in item["reason"]]

    output = tmp_path / "all.csv"
    result = CliRunner().invoke(cli, ["recommend", "--all", "--k", "8", "--output",
                                      str(output), "--store", settings.store_url])
    assert result.exit_code == 0, result.output
    lists = pd.read_csv(output).groupby("user_id")["item_id"].apply(list)
    withheld, other = _stored(settings, WITHHELD), _stored(settings, ERASED)
    assert withheld in lists.index and other in lists.index  # batch names stored ids
    assert lists[withheld] != lists[other]  # the others are personal
    store = open_store_from(settings)
    try:
        # Batch: the newcomer's list, which the service gives a stranger.
        stranger = LiveRecommender.active(store).recommend(["never-seen-anywhere"], k=8)
        assert lists[withheld] == stranger["item_id"].tolist()
    finally:
        store.close()


def test_access_logs_name_the_route_not_the_user() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5", "GET",
                               f"/recommendations/{ERASED}?k=5", "1.1", 200), None)
    RedactUserIds().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "GET /recommendations/{user_id}?k=5 HTTP/1.1" 200'
    for path in (f"/users/{ERASED}", f"/users/{ERASED}/erase", "/items/i1/similar"):
        record.args = ("a", "POST", path, "1.1", 200)
        RedactUserIds().filter(record)
        assert ERASED not in record.getMessage() and record.args[2].count("/") == path.count("/")
