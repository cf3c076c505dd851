"""`explore` on GET /recommendations and the session route: new items get shown, the served
log keeps real propensities, explanations name exploration, bad shares are refused."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tailored.jobs import TrainedModel
from tailored.monitoring.ope import logged_impressions
from tailored.schema import Event, Item
from tailored.serving import create_app
from tailored.settings import Settings
from tailored.store import Store
from tailored.testing import LOCAL

from .taste_groups import GROUP_A, GROUP_B, seen_by


@pytest.fixture
def catalog(store: Store) -> Store:
    """The model's items priced 1, and two items added after training (new to it)."""
    store.items.upsert([Item(item_id=i, attributes={"price": 1.0})
                        for i in (*GROUP_A, *GROUP_B)])
    store.items.upsert([Item(item_id="fresh-cheap", title="Fresh cheap",
                             attributes={"price": 5.0}),
                        Item(item_id="fresh-dear", attributes={"price": 50.0})])
    return store


@pytest.fixture
def exploring(trained: TrainedModel, catalog: Store, settings: Settings
              ) -> Iterator[TestClient]:
    quick = settings.model_copy(update={"served_log_flush_seconds": 0.05})
    with TestClient(create_app(quick), base_url=LOCAL) as client:
        yield client


def served(client: TestClient, store: Store) -> pd.DataFrame:
    assert client.app.state.service.served_log.flush()  # type: ignore[attr-defined]
    return store.served.frame()


def test_without_explore_nothing_changes(exploring: TestClient, catalog: Store) -> None:
    body = exploring.get("/recommendations/alice0", params={"k": 4}).json()

    assert all(set(item) == {"item_id", "score", "rank"} for item in body["items"])
    assert not {"fresh-cheap", "fresh-dear"} & {i["item_id"] for i in body["items"]}
    record = served(exploring, catalog).iloc[0]
    assert record["propensities"] == [1.0] * 4 and "exploration" not in record["context"]


def test_full_exploration_shows_new_items_and_logs_what_it_did(exploring: TestClient,
                                                               catalog: Store) -> None:
    body = exploring.get("/recommendations/alice0",
                         params={"k": 6, "explore": 1, "explain": True}).json()

    items = {item["item_id"]: item for item in body["items"]}
    assert {"fresh-cheap", "fresh-dear"} <= set(items)  # never shown: the widest bounds
    assert not set(items) & seen_by("alice0")
    assert items["fresh-cheap"]["explored"] is True
    assert items["fresh-cheap"]["score"] == 0.0
    assert items["fresh-cheap"]["reason"] == "new in the catalog"
    assert all(isinstance(item["explored"], bool) for item in body["items"])
    record = served(exploring, catalog).iloc[0]
    assert record["item_ids"] == [item["item_id"] for item in body["items"]]
    exploration = record["context"]["exploration"]
    assert exploration["share"] == 1.0
    assert exploration["explored"] == [item["explored"] for item in body["items"]]
    new_slots = [n for n, item in enumerate(record["item_ids"]) if item.startswith("fresh")]
    assert [exploration["base_rank"][n] for n in new_slots] == [0, 0]
    # share 1: the bandit decides every slot, so each shown item had probability 1
    assert record["propensities"] == [1.0] * 6


def test_partial_exploration_logs_propensities_below_one(exploring: TestClient,
                                                         catalog: Store) -> None:
    """With share 0.5 an explored slot had half a chance; OPE reads those propensities."""
    answers = [exploring.get(f"/recommendations/{user}",
                             params={"k": 5, "explore": 0.5}).json()
               for user in ("alice0", "alice1", "alice2", "bob0", "bob1") * 4]
    shown_fresh = [a for a in answers if any(i["item_id"].startswith("fresh")
                                             for i in a["items"])]
    assert shown_fresh, "half of the slots explored: new items must show up"
    events = [Event(user_id=a["user_id"], item_id=i["item_id"], event_type="impression",
                    context={"recommendation_id": a["recommendation_id"],
                             "position": i["rank"]})
              for a in answers for i in a["items"]]
    catalog.events.add(events)
    log = served(exploring, catalog)
    explored_odds = [p for odds, ctx in zip(log["propensities"], log["context"], strict=True)
                     for p, e in zip(odds, ctx["exploration"]["explored"], strict=True) if e]
    assert explored_odds and all(p == 0.5 for p in explored_odds)
    impressions = logged_impressions(log, catalog.events.frame(
        user_ids=log["user_id"].unique().tolist()))
    assert len(impressions) == len(events)
    assert (impressions["propensity"] == 0.5).sum() >= len(explored_odds)


def test_filters_and_exclusions_apply_to_new_items(exploring: TestClient) -> None:
    for _ in range(5):
        body = exploring.get("/recommendations/alice0",
                             params={"k": 8, "explore": 1, "filter": "price < 10",
                                     "exclude": "fresh-cheap"}).json()
        shown = {item["item_id"] for item in body["items"]}
        assert not {"fresh-dear", "fresh-cheap"} & shown
    body = exploring.get("/recommendations/alice0",
                         params={"k": 8, "explore": 1, "filter": "price < 10"}).json()
    assert "fresh-cheap" in {item["item_id"] for item in body["items"]}


def test_a_new_item_the_user_already_met_is_not_offered(exploring: TestClient,
                                                        catalog: Store) -> None:
    catalog.events.add([Event(user_id="alice0", item_id="fresh-cheap", event_type="view")])

    body = exploring.get("/recommendations/alice0", params={"k": 8, "explore": 1}).json()

    assert "fresh-cheap" not in {item["item_id"] for item in body["items"]}
    assert "fresh-dear" in {item["item_id"] for item in body["items"]}


def test_sessions_explore_too(exploring: TestClient, catalog: Store) -> None:
    response = exploring.post("/recommendations/session",
                              json={"items": ["a1", "a2"], "k": 5, "explore": 1,
                                    "explain": True})

    assert response.status_code == 200
    items = response.json()["items"]
    assert {"fresh-cheap", "fresh-dear"} <= {i["item_id"] for i in items}
    assert not {"a1", "a2"} & {i["item_id"] for i in items}
    assert all("reason" in i for i in items)
    assert served(exploring, catalog).iloc[0]["context"]["exploration"]["share"] == 1.0


def test_the_setting_is_the_default_share(trained: TrainedModel, catalog: Store,
                                          settings: Settings) -> None:
    default_on = settings.model_copy(update={"exploration_share": 1.0})
    with TestClient(create_app(default_on), base_url=LOCAL) as client:
        shown = {i["item_id"] for i in client.get("/recommendations/alice0",
                                                   params={"k": 6}).json()["items"]}
        assert {"fresh-cheap", "fresh-dear"} <= shown
        off = client.get("/recommendations/alice0", params={"k": 6, "explore": 0}).json()
        assert not {"fresh-cheap", "fresh-dear"} & {i["item_id"] for i in off["items"]}
        assert client.app.state.service.bandits._thread is not None  # type: ignore[attr-defined]
    assert client.app.state.service is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("share", ["-0.1", "1.5", "a lot"])
def test_a_share_outside_zero_to_one_is_refused(exploring: TestClient, share: str) -> None:
    response = exploring.get("/recommendations/alice0", params={"explore": share})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "explore"]
    session = exploring.post("/recommendations/session", json={"explore": 2})
    assert session.status_code == 422
    assert session.json()["detail"][0]["loc"] == ["body", "explore"]
