"""GET /recommendations/{user_id}: shape, exclusions, fallback, and read-your-writes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tailored.ranking import rules

from .taste_groups import GROUP_A, GROUP_B, USERS_A, USERS_B, popularity_order, seen_by


def item_ids(response_json: dict) -> list[str]:
    return [item["item_id"] for item in response_json["items"]]


def test_answer_has_the_documented_shape(client: TestClient) -> None:
    response = client.get("/recommendations/alice0", params={"k": 3})

    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == "alice0"
    assert body["model"] == {"name": "item_knn", "version": 1}
    assert [item["rank"] for item in body["items"]] == [1, 2, 3]
    assert all(set(item) == {"item_id", "score", "rank"} for item in body["items"])
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("user", [USERS_A[0], USERS_A[7], USERS_B[2]])
def test_group_members_get_the_rest_of_their_group_and_nothing_seen(
        client: TestClient, user: str) -> None:
    group = GROUP_A if user in USERS_A else GROUP_B

    items = item_ids(client.get(f"/recommendations/{user}", params={"k": 12}).json())

    assert not set(items) & seen_by(user)
    assert set(items[:2]) == set(group) - seen_by(user)
    assert len(items) == 12 - len(seen_by(user))


def test_an_unknown_user_gets_the_most_popular_items(client: TestClient) -> None:
    response = client.get("/recommendations/never-seen-before", params={"k": 5})

    assert response.status_code == 200
    assert item_ids(response.json()) == popularity_order()[:5]


def test_excluded_items_are_left_out(client: TestClient) -> None:
    wanted = sorted(set(GROUP_A) - seen_by("alice0"))

    response = client.get("/recommendations/alice0",
                          params={"k": 3, "exclude": [wanted[0], "not-an-item"]})

    items = item_ids(response.json())
    assert wanted[0] not in items
    assert wanted[1] == items[0]


@pytest.mark.parametrize("k", [0, -1, 1001, "ten"])
def test_k_out_of_bounds_is_refused_with_the_parameter_named(client: TestClient,
                                                            k: int | str) -> None:
    response = client.get("/recommendations/alice0", params={"k": k})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "k"]


def test_k_bounds_are_inclusive(client: TestClient) -> None:
    assert len(client.get("/recommendations/alice0", params={"k": 1}).json()["items"]) == 1
    assert client.get("/recommendations/alice0", params={"k": 1000}).status_code == 200


def test_a_new_user_is_recommended_from_events_posted_a_moment_ago(client: TestClient) -> None:
    before = item_ids(client.get("/recommendations/newcomer", params={"k": 4}).json())
    assert set(before) <= set(GROUP_A)  # the popular fallback

    posted = client.post("/events", json=[{"user_id": "newcomer", "item_id": "b0"},
                                          {"user_id": "newcomer", "item_id": "b1"}])
    assert posted.status_code == 201

    after = item_ids(client.get("/recommendations/newcomer", params={"k": 4}).json())
    assert set(after) == {"b2", "b3", "b4", "b5"}


def test_an_item_seen_a_moment_ago_is_no_longer_recommended(client: TestClient) -> None:
    first = item_ids(client.get("/recommendations/bob0", params={"k": 1}).json())[0]

    client.post("/events", json={"user_id": "bob0", "item_id": first, "event_type": "click"})

    assert first not in item_ids(client.get("/recommendations/bob0", params={"k": 12}).json())


def test_a_too_long_user_id_is_refused(client: TestClient) -> None:
    response = client.get("/recommendations/" + "u" * 300)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "user_id"]


# ---- recommendation ids and the served log -------------------------------------------------


def served_log(client: TestClient):
    """The app's served log, flushed (the writer batches in the background)."""
    state = client.app.state.service  # type: ignore[attr-defined]
    assert state.served_log.flush()
    return state.store.served


def test_each_answer_has_its_own_recommendation_id_in_the_served_log(
        client: TestClient) -> None:
    first = client.get("/recommendations/alice0", params={"k": 3, "context": "device:mobile"})
    second = client.get("/recommendations/alice0", params={"k": 3})

    ids = [first.json()["recommendation_id"], second.json()["recommendation_id"]]
    assert ids[0] != ids[1] and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    served = served_log(client).get(ids[0])
    assert served is not None
    assert served.user_id == "alice0" and served.model_name == "item_knn"
    assert served.model_version == 1 and served.experiment_id is None
    assert served.item_ids == item_ids(first.json())
    assert served.scores == pytest.approx([i["score"] for i in first.json()["items"]])
    assert served.propensities == [1.0, 1.0, 1.0]
    assert served.context == {"device": "mobile"}


def test_an_impression_is_neither_interest_nor_seen(client: TestClient) -> None:
    answer = client.get("/recommendations/newcomer2", params={"k": 3}).json()
    shown = answer["items"][0]["item_id"]
    impressions = [{"user_id": "newcomer2", "item_id": item["item_id"],
                    "event_type": "impression",
                    "context": {"recommendation_id": answer["recommendation_id"],
                                "position": item["rank"]}} for item in answer["items"]]
    assert client.post("/events", json=impressions).status_code == 201

    again = client.get("/recommendations/newcomer2", params={"k": 3}).json()

    assert shown in item_ids(again)  # shown, not seen: still recommendable
    assert item_ids(again) == item_ids(answer)  # and no interest: the popular fallback


# ---- context, filters, boosts ---------------------------------------------------------------


@pytest.fixture
def catalog(client: TestClient) -> dict[str, dict]:
    """Attributes for every item: B items are cheap, a0 is out of stock."""
    state = client.app.state.service  # type: ignore[attr-defined]
    from tailored.schema import Item

    items = {}
    for group, price in ((GROUP_A, 150.0), (GROUP_B, 20.0)):
        for n, item_id in enumerate(group):
            items[item_id] = {"price": price + n, "in_stock": item_id != "a0",
                              "color": "red" if n % 2 else "blue"}
    state.store.items.upsert([Item(item_id=i, categories=[i[0] + "-things"], attributes=a)
                              for i, a in items.items()])
    return items


def test_a_filter_keeps_only_matching_items(client: TestClient, catalog: dict) -> None:
    response = client.get("/recommendations/alice0",
                          params={"k": 20, "filter": 'color == "red" and price < 200'})

    assert response.status_code == 200
    items = item_ids(response.json())
    assert items and all(catalog[i]["color"] == "red" and catalog[i]["price"] < 200
                         for i in items)
    assert not set(items) & seen_by("alice0")


def test_a_filter_reads_categories_and_the_context(client: TestClient, catalog: dict) -> None:
    only_b = client.get("/recommendations/alice0", params={
        "k": 20, "filter": '"b-things" in categories'}).json()
    by_context = client.get("/recommendations/alice0", params={
        "k": 20, "filter": "price < context.budget", "context": "budget:100"}).json()

    assert item_ids(only_b) and set(item_ids(only_b)) <= set(GROUP_B)
    assert set(item_ids(by_context)) == set(item_ids(only_b))  # B items are the cheap ones


def test_a_boost_lifts_matching_items_and_a_bury_lowers_them(client: TestClient,
                                                             catalog: dict) -> None:
    # A newcomer gets popularity scores, positive for every item (a boost scales a score).
    plain = item_ids(client.get("/recommendations/newcomer", params={"k": 20}).json())
    boosted = item_ids(client.get("/recommendations/newcomer", params={
        "k": 20, "boost": '"b-things" in categories:1000'}).json())
    buried = item_ids(client.get("/recommendations/newcomer", params={
        "k": 20, "boost": "price > 100:0.001"}).json())

    assert plain[0] in GROUP_A
    assert boosted[0] in GROUP_B
    assert buried[0] in GROUP_B
    assert set(plain) == set(boosted) == set(buried)


@pytest.mark.parametrize(("params", "loc", "column"), [
    ({"filter": "price < 100 and"}, ["query", "filter"], 16),
    ({"filter": "prise < 100"}, ["query", "filter"], 1),
    ({"filter": "user.age > 3"}, ["query", "filter"], 1),
    ({"boost": ["in_stock == true:1.5", "price <:2"]}, ["query", "boost", 1], 8),
    ({"boost": "in_stock == true"}, ["query", "boost", 0], 17),
    ({"boost": "in_stock:-1"}, ["query", "boost", 0], 10),
    ({"boost": "in_stock:many"}, ["query", "boost", 0], 10),
])
def test_a_bad_expression_is_a_422_with_the_column(client: TestClient, catalog: dict,
                                                   params: dict, loc: list,
                                                   column: int) -> None:
    response = client.get("/recommendations/alice0", params=params)

    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == loc
    assert detail["column"] == column


def test_a_filter_too_costly_for_the_catalog_is_a_422_before_it_runs(
        client: TestClient, catalog: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real budget takes a large catalog to exceed: here a tiny one stands for it.
    monkeypatch.setattr(rules, "REQUEST_COST_BUDGET", 1.0)

    response = client.get("/recommendations/alice0",
                          params={"filter": "len(lower(item_id)) > 0"})

    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["query", "filter"] and "budget" in detail["msg"]


@pytest.mark.parametrize("context", ["no-colon", ":value", "bad key:1", "k:" + "v" * 300])
def test_a_malformed_context_is_refused(client: TestClient, context: str) -> None:
    response = client.get("/recommendations/alice0", params={"context": context})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "context", 0]


def test_an_unavailable_item_is_gone_from_the_very_next_answer(client: TestClient) -> None:
    state = client.app.state.service  # type: ignore[attr-defined]
    from tailored.schema import Item

    first = item_ids(client.get("/recommendations/alice1", params={"k": 2}).json())
    again = item_ids(client.get("/recommendations/alice1", params={"k": 2}).json())
    assert again == first  # served from the cache now
    state.store.items.upsert([Item(item_id=first[0], available=False)])

    after = item_ids(client.get("/recommendations/alice1", params={"k": 2}).json())

    assert first[0] not in after and after[0] == first[1]


def test_cached_lists_are_used_and_a_users_event_invalidates_only_them(
        client: TestClient) -> None:
    cache = client.app.state.service.cache  # type: ignore[attr-defined]
    for user in ("alice2", "alice3", "alice2", "alice3"):
        client.get(f"/recommendations/{user}", params={"k": 2})
    assert (cache.hits, cache.misses) == (2, 2)

    client.post("/events", json={"user_id": "alice2", "item_id": "b0"})
    client.get("/recommendations/alice2", params={"k": 2})
    client.get("/recommendations/alice3", params={"k": 2})

    assert (cache.hits, cache.misses) == (3, 3)


# ---- model versions ---------------------------------------------------------------------------


def test_a_version_can_be_asked_for_by_number_or_name(client: TestClient) -> None:
    by_number = client.get("/recommendations/alice0", params={"model": "1", "k": 3})
    by_name = client.get("/recommendations/alice0", params={"model": "item_knn", "k": 3})

    assert by_number.status_code == by_name.status_code == 200
    assert by_number.json()["model"] == by_name.json()["model"] == {
        "name": "item_knn", "version": 1}
    assert item_ids(by_number.json()) == item_ids(by_name.json())


@pytest.mark.parametrize("model", ["99", "no-such-model"])
def test_an_unknown_version_is_a_404(client: TestClient, model: str) -> None:
    response = client.get("/recommendations/alice0", params={"model": model})

    assert response.status_code == 404
    assert "GET /models" in response.json()["detail"]


# ---- anonymous sessions -------------------------------------------------------------------------


def test_a_session_is_recommended_from_the_items_it_saw(client: TestClient) -> None:
    response = client.post("/recommendations/session",
                           json={"items": ["b0", "b1"], "k": 4, "session_id": "s-1",
                                 "context": {"device": "mobile"}})

    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] is None
    assert set(item_ids(body)) == {"b2", "b3", "b4", "b5"}
    served = served_log(client).get(body["recommendation_id"])
    assert served is not None and served.user_id is None
    assert served.context == {"device": "mobile", "session_id": "s-1"}


def test_an_empty_session_gets_the_popular_items(client: TestClient) -> None:
    response = client.post("/recommendations/session", json={"k": 5})

    assert item_ids(response.json()) == popularity_order()[:5]


def test_a_session_takes_filters_and_boosts(client: TestClient, catalog: dict) -> None:
    response = client.post("/recommendations/session", json={
        "items": ["a1"], "k": 3, "filter": "price < 1000", "boost": ["in_stock == false:5"]})

    assert response.status_code == 200
    assert item_ids(response.json())[0] == "a0"  # the out-of-stock item, boosted


@pytest.mark.parametrize(("body", "loc"), [
    ({"items": "b0"}, ["body", "items"]),
    ({"k": 0}, ["body", "k"]),
    ({"context": {"device": [1]}}, ["body", "context", "device"]),
    ({"surprise": 1}, ["body", "surprise"]),
    ({"filter": "price <"}, ["body", "filter"]),
    ({"boost": ["price:x"]}, ["body", "boost", 0]),
])
def test_a_malformed_session_is_a_422(client: TestClient, body: dict, loc: list) -> None:
    response = client.post("/recommendations/session", json=body)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:len(loc)] == loc


def test_a_session_body_that_is_not_json_is_a_4xx(client: TestClient) -> None:
    response = client.post("/recommendations/session", content=b"{not json",
                           headers={"Content-Type": "application/json"})

    assert 400 <= response.status_code < 500


# ---- diversity and explanations (tailored.ranking) ------------------------------------------


def test_explanations_name_the_history_behind_each_item(client: TestClient) -> None:
    plain = client.get("/recommendations/alice0", params={"k": 2}).json()
    explained = client.get("/recommendations/alice0", params={"k": 2, "explain": True}).json()

    assert item_ids(explained) == item_ids(plain)
    assert all("reason" not in item for item in plain["items"])
    reasons = [item["reason"] for item in explained["items"]]
    assert all(isinstance(r, str) and r for r in reasons)
    assert any(seen in reason for reason in reasons for seen in seen_by("alice0"))


def test_diversity_mixes_categories_into_the_list(client: TestClient, catalog: dict) -> None:
    plain = item_ids(client.get("/recommendations/newcomer", params={"k": 4}).json())
    mixed = item_ids(client.get("/recommendations/newcomer",
                                params={"k": 4, "diversity": 0.9}).json())

    assert {item[0] for item in plain} == {"a"}  # the popular A items
    assert {item[0] for item in mixed} == {"a", "b"}


def test_a_session_can_be_explained_and_diversified(client: TestClient, catalog: dict) -> None:
    response = client.post("/recommendations/session", json={
        "items": ["b0", "b1"], "k": 3, "explain": True, "diversity": 0.5})

    assert response.status_code == 200
    assert all(item["reason"] for item in response.json()["items"])


@pytest.mark.parametrize("diversity", [-0.1, 1.5, "lots"])
def test_diversity_out_of_range_is_refused(client: TestClient, diversity: object) -> None:
    response = client.get("/recommendations/alice0", params={"diversity": diversity})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "diversity"]


def test_reasons_cost_the_same_few_store_reads_for_any_k(client: TestClient,
                                                         catalog: dict) -> None:
    engine = client.app.state.service.store.engine  # type: ignore[attr-defined]
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    client.get("/recommendations/bob0", params={"k": 2, "explain": True})  # warm caches
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        client.get("/recommendations/alice0", params={"k": 2, "explain": True})
        few = len(statements)
        statements.clear()
        client.get("/recommendations/alice1", params={"k": 12, "explain": True})
        many = len(statements)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)

    assert many <= few + 1  # not one read per item
