"""Pseudonymous user ids end to end: with ``pseudonymize_user_ids`` the service answers
raw ids exactly as without it, while the store and the model artifacts hold pseudonyms
only; export and erasure take the raw id."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from tailored.cli import app as cli
from tailored.jobs import train_model
from tailored.serving import create_app
from tailored.settings import Settings
from tailored.store import open_store_from, pseudonym
from tailored.testing import LOCAL, files_holding, rows_holding

from .conftest import TestClient
from .taste_groups import GROUP_B, USERS_A, synthetic_events

SECRET = "a serving test secret of 32 characters or more"
RAW = "alice"  # also in every group A user's id (alice0 .. alice9)
SEEN = ("b0", "b1")


def _system(root: Path, pseudonymize: bool) -> Settings:
    """A store holding the taste-group events and an item_knn model trained on it, as
    `tailored import` and `tailored train` would make them."""
    name = "pseudonymous" if pseudonymize else "plain"
    settings = Settings(store_url=f"sqlite:///{root / name}.db", model_dir=root / name,
                        pseudonymize_user_ids=pseudonymize,
                        privacy_secret=SECRET if pseudonymize else None)
    with closing(open_store_from(settings)) as store:
        store.events.add(synthetic_events())
        train_model(store, settings, "item_knn")
    return settings


def _serve(settings: Settings) -> dict[str, Any]:
    """Alice's views over REST, then her recommendations and her export."""
    with TestClient(create_app(settings), base_url=LOCAL) as client:
        posted = client.post("/events", json=[
            {"user_id": RAW, "item_id": item, "event_type": "view"} for item in SEEN])
        assert posted.status_code == 201, posted.text
        answer = client.get(f"/recommendations/{RAW}", params={"k": 4, "explain": True})
        assert answer.status_code == 200, answer.text
        newcomer = client.get("/recommendations/never-seen-anywhere",
                              params={"k": 4, "explain": True})
        client.app.state.service.served_log.flush()  # type: ignore[attr-defined]
        export = client.get(f"/users/{RAW}/export")
        assert export.status_code == 200, export.text
    return {"answer": answer.json(), "newcomer": newcomer.json(), "export": export.json()}


def _items(answer: dict[str, Any]) -> list[tuple[str, float, str]]:
    return [(item["item_id"], item["score"], item["reason"]) for item in answer["items"]]


def test_raw_ids_are_served_as_without_pseudonyms_and_never_stored(tmp_path: Path) -> None:
    plain, pseudonymous = _system(tmp_path, False), _system(tmp_path, True)
    assert files_holding(plain.model_dir, RAW)  # the test can see a trace

    expected, served = _serve(plain), _serve(pseudonymous)

    # Personal (the rest of group B, not the popular A items) and the same as without.
    answer = served["answer"]
    assert answer["user_id"] == RAW
    assert {item for item, _, _ in _items(answer)} == set(GROUP_B) - set(SEEN)
    assert _items(answer) != _items(served["newcomer"])
    assert _items(answer) == _items(expected["answer"])
    # The export by raw id finds her events and the answer she was given.
    export = served["export"]
    assert export["user_id"] == RAW and export["counts"] == {"events": 2,
                                                             "recommendations": 1}
    assert sorted(event["item_id"] for event in export["events"]) == list(SEEN)
    assert export["recommendations"][0]["recommendation_id"] == answer["recommendation_id"]
    # Stored and trained on as pseudonyms only (the group A users too).
    database = Path(pseudonymous.store_url.removeprefix("sqlite:///"))
    assert rows_holding(database, RAW) == []
    assert files_holding(pseudonymous.model_dir, RAW) == []
    stored = pseudonym(SECRET, RAW)
    assert {table for table, _ in rows_holding(database, stored)} == {"events", "served"}
    assert files_holding(pseudonymous.model_dir, pseudonym(SECRET, USERS_A[0]))

    with TestClient(create_app(pseudonymous), base_url=LOCAL) as client:
        erased = client.post(f"/users/{RAW}/erase")
        assert erased.status_code == 200, erased.text
        assert erased.json()["deleted"] == {"events": 2, "profile": 0, "served": 1,
                                            "consent_changes": 0}
        assert client.get(f"/users/{RAW}/export").status_code == 404
        assert rows_holding(database, stored) == []
        assert rows_holding(database, RAW) == []
        again = client.get(f"/recommendations/{RAW}", params={"k": 4, "explain": True})
        assert _items(again.json()) == _items(served["newcomer"])


def test_batch_recommendations_name_users_by_pseudonym(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`tailored recommend --all` writes pseudonyms; the shop computes them to join."""
    plain, pseudonymous = _system(tmp_path, False), _system(tmp_path, True)

    def batch(settings: Settings, env: dict[str, str]) -> pd.Series:
        output = tmp_path / f"{Path(settings.store_url).stem}.csv"
        result = CliRunner().invoke(cli, ["recommend", "--all", "--k", "4", "--output",
                                          str(output), "--store", settings.store_url],
                                    env=env)
        assert result.exit_code == 0, result.output
        return pd.read_csv(output).groupby("user_id")["item_id"].apply(list)

    expected = batch(plain, {})
    lists = batch(pseudonymous, {"TAILORED_PSEUDONYMIZE_USER_IDS": "true",
                                 "TAILORED_PRIVACY_SECRET": SECRET})

    assert sorted(lists.index) == sorted(pseudonym(SECRET, user) for user in expected.index)
    for user in expected.index:
        assert lists[pseudonym(SECRET, user)] == expected[user]


def test_an_erasure_forgets_a_trained_user_in_the_artifacts(tmp_path: Path) -> None:
    settings = _system(tmp_path, True)
    trained = pseudonym(SECRET, USERS_A[0])
    assert files_holding(settings.model_dir, trained)
    with TestClient(create_app(settings), base_url=LOCAL) as client:
        erased = client.post(f"/users/{USERS_A[0]}/erase")
    assert erased.status_code == 200, erased.text
    assert {v["users"] for v in erased.json()["models"].values()} == {1}
    assert files_holding(settings.model_dir, trained) == []
