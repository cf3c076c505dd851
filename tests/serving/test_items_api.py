"""GET /items/{item_id}/similar, and the catalog over REST: put, get, patch, delete."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tailored.schema import Item
from tailored.settings import Settings
from tailored.store import Store

from .conftest import Keys
from .taste_groups import GROUP_A, GROUP_B


@pytest.mark.parametrize(("item", "group"), [("a0", GROUP_A), ("b3", GROUP_B)])
def test_similar_items_come_from_the_same_group(client: TestClient, item: str,
                                                group: tuple[str, ...]) -> None:
    response = client.get(f"/items/{item}/similar", params={"k": 5})

    assert response.status_code == 200
    body = response.json()
    assert body["item_id"] == item
    assert [i["item_id"] for i in body["items"]] != []
    assert {i["item_id"] for i in body["items"]} == set(group) - {item}
    assert [i["rank"] for i in body["items"]] == list(range(1, len(body["items"]) + 1))
    assert all(i["score"] > 0 for i in body["items"])


def test_k_limits_the_answer(client: TestClient) -> None:
    body = client.get("/items/a0/similar", params={"k": 2}).json()

    assert len(body["items"]) == 2


def test_an_item_the_model_does_not_know_is_404_with_a_reason(client: TestClient) -> None:
    response = client.get("/items/brand-new-item/similar")

    assert response.status_code == 404
    assert "brand-new-item" in response.json()["detail"]
    assert "unknown to the serving model" in response.json()["detail"]


def test_similar_items_take_a_filter_a_boost_and_exclusions(client: TestClient,
                                                            store: Store) -> None:
    store.items.upsert(Item(item_id=item, attributes={"price": 10 * (n + 1)})
                       for n, item in enumerate(GROUP_A + GROUP_B))
    everything = client.get("/items/a0/similar", params={"k": 5}).json()["items"]

    cheap = client.get("/items/a0/similar", params={"k": 5, "filter": "price <= 40",
                                                    "exclude": ["a1"]}).json()["items"]
    pricey_first = client.get("/items/a0/similar", params={
        "k": 5, "boost": "price >= 50:100"}).json()["items"]

    assert {i["item_id"] for i in cheap} == {"a2", "a3"}  # a0 asked, a1 excluded
    assert {i["item_id"] for i in pricey_first[:2]} == {"a4", "a5"}  # 50 and 60
    assert {i["item_id"] for i in pricey_first} == {i["item_id"] for i in everything}
    bad = client.get("/items/a0/similar", params={"filter": "price <"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "filter"]


def test_similar_to_a_cart_is_the_mean_of_its_items(client: TestClient) -> None:
    response = client.post("/items/similar", json={"items": ["a0", "a1", "unknown-item"],
                                                   "k": 10, "exclude": ["a2"]})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["item_ids"] == ["a0", "a1", "unknown-item"]
    top = [i["item_id"] for i in body["items"]]
    assert set(top[:3]) == {"a3", "a4", "a5"}  # the rest of the cart's group first
    assert not {"a0", "a1", "a2"} & set(top)
    unknown = client.post("/items/similar", json={"items": ["x1", "x2"]})
    assert unknown.status_code == 404 and "unknown to the serving model" in \
        unknown.json()["detail"]
    empty = client.post("/items/similar", json={"items": []})
    assert empty.status_code == 422


def test_k_zero_is_refused(client: TestClient) -> None:
    response = client.get("/items/a0/similar", params={"k": 0})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "k"]


# ---- the catalog over REST --------------------------------------------------------------

def recommended(client: TestClient, user: str = "alice0", **headers: str) -> list[str]:
    response = client.get(f"/recommendations/{user}", params={"k": 12}, headers=headers)
    assert response.status_code == 200
    return [item["item_id"] for item in response.json()["items"]]


def test_put_creates_then_replaces_and_get_reads(client: TestClient, store: Store) -> None:
    created = client.put("/items/shoe-1", json={
        "title": "Trail shoe", "categories": ["shoes"], "attributes": {"price": 89.9}})
    replaced = client.put("/items/shoe-1", json={"title": "Trail shoe v2"})

    assert created.status_code == 201
    assert created.json()["attributes"] == {"price": 89.9}
    assert replaced.status_code == 200
    assert replaced.json() == {"item_id": "shoe-1", "title": "Trail shoe v2", "text": "",
                               "categories": [], "attributes": {}, "available": True,
                               "created_at": None}
    assert client.get("/items/shoe-1").json() == replaced.json()
    assert store.items.get("shoe-1") == Item(item_id="shoe-1", title="Trail shoe v2")


def test_several_items_are_read_at_once_in_the_order_asked(client: TestClient) -> None:
    for item_id, price in (("x1", 10), ("x2", 20)):
        client.put(f"/items/{item_id}", json={"title": item_id, "attributes": {"price": price}})

    found = client.get("/items", params=[("ids", "x2"), ("ids", "nope"), ("ids", "x1"),
                                         ("ids", "x2")])

    assert found.status_code == 200
    assert [(i["item_id"], i["attributes"]["price"]) for i in found.json()] == [
        ("x2", 20), ("x1", 10)]
    assert client.get("/items").status_code == 422  # ids are required
    assert client.get("/items", params=[("ids", f"i{n}") for n in range(101)]
                      ).status_code == 422


def test_patch_merges_attributes(client: TestClient, store: Store) -> None:
    client.put("/items/shoe-2", json={"title": "Shoe", "attributes": {"price": 50,
                                                                      "promo": "summer"}})

    response = client.patch("/items/shoe-2", json={
        "text": "Now cheaper", "attributes": {"price": 40, "promo": None, "colour": "red"}})

    assert response.status_code == 200
    assert response.json()["title"] == "Shoe"
    assert response.json()["attributes"] == {"price": 40, "colour": "red"}
    stored = store.items.get("shoe-2")
    assert stored is not None and stored.text == "Now cheaper"


def test_concurrent_patches_all_land(client: TestClient, store: Store) -> None:
    client.put("/items/shoe-3", json={"title": "Shoe"})
    writers = 12
    start = threading.Barrier(writers)

    def patch(n: int) -> int:
        start.wait()
        return client.patch("/items/shoe-3", json={"attributes": {f"a{n}": n}}).status_code

    with ThreadPoolExecutor(writers) as pool:
        statuses = list(pool.map(patch, range(writers)))

    stored = store.items.get("shoe-3")
    assert statuses == [200] * writers
    assert stored is not None and stored.attributes == {f"a{n}": n for n in range(writers)}


def test_an_item_made_unavailable_is_no_longer_recommended(client: TestClient) -> None:
    top = recommended(client)[0]

    assert client.patch(f"/items/{top}", json={"available": False}).status_code == 404
    client.put(f"/items/{top}", json={"title": "in the catalog now"})
    assert client.patch(f"/items/{top}", json={"available": False}).status_code == 200

    assert top not in recommended(client)
    assert top not in [i["item_id"] for i in
                       client.get("/items/a0/similar", params={"k": 20}).json()["items"]]
    client.patch(f"/items/{top}", json={"available": True})
    assert recommended(client)[0] == top


def test_a_deleted_item_is_never_recommended_until_put_again(client: TestClient) -> None:
    top = recommended(client)[0]
    client.put(f"/items/{top}", json={})

    deleted = client.delete(f"/items/{top}")

    assert deleted.status_code == 204
    assert client.get(f"/items/{top}").status_code == 404
    assert client.delete(f"/items/{top}").status_code == 404
    assert top not in recommended(client)  # the model still knows it; the store says no
    client.put(f"/items/{top}", json={})
    assert recommended(client)[0] == top


def test_a_batch_upserts_every_item(client: TestClient, store: Store) -> None:
    response = client.post("/items", json=[
        {"item_id": f"n{j}", "title": f"New {j}", "attributes": {"price": j}}
        for j in range(4)])

    assert response.status_code == 200
    assert response.json() == {"received": 4}
    assert store.items.count() == 4


def test_an_oversize_batch_is_413(trained: object, settings: Settings,
                                  make_client: Callable[..., TestClient]) -> None:
    small = make_client(settings.model_copy(update={"max_batch_events": 2}))

    response = small.post("/items", json=[{"item_id": f"n{j}"} for j in range(3)])

    assert response.status_code == 413
    assert "at most 2 items" in response.json()["detail"]


@pytest.mark.parametrize(("method", "path", "body", "location"), [
    ("PUT", "/items/x", {"title": 5}, ["body", "title"]),
    ("PUT", "/items/x", {"title": "a\x00b"}, ["body", "title"]),
    ("PUT", "/items/x", {"title": "t" * 1001}, ["body", "title"]),
    ("PUT", "/items/x", {"categories": "shoes"}, ["body", "categories"]),
    ("PUT", "/items/x", {"categories": ["ok"] * 101}, ["body", "categories"]),
    ("PUT", "/items/x", {"attributes": {"price": {"eur": 5}}}, ["body", "attributes", "price"]),
    ("PUT", "/items/x", {"available": "sometimes"}, ["body", "available"]),
    ("PUT", "/items/x", {"created_at": "last week"}, ["body", "created_at"]),
    ("PUT", "/items/x", {"item_id": "y"}, ["body", "item_id"]),
    ("PATCH", "/items/x", {"title": None}, ["body"]),
    ("PATCH", "/items/x", {"size": 3}, ["body", "size"]),
    ("POST", "/items", {"item_id": "x"}, ["body"]),
    ("POST", "/items", [], ["body"]),
    ("POST", "/items", [{"title": "no id"}], ["body", 0, "item_id"]),
    ("GET", "/items/" + "i" * 257, None, ["path", "item_id"]),
])
def test_malformed_items_are_422_naming_the_field(
        client: TestClient, method: str, path: str, body: Any, location: list[Any]) -> None:
    client.put("/items/x", json={})

    response = client.request(method, path, json=body)

    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    if isinstance(detail, str):
        assert location == ["body"]
    else:
        assert any(error["loc"][:len(location)] == location for error in detail), detail


def test_a_non_finite_attribute_is_refused(client: TestClient) -> None:
    response = client.put("/items/x", content=b'{"attributes": {"price": NaN}}',
                          headers={"content-type": "application/json"})

    assert response.status_code == 422


def test_catalog_reads_need_read_and_changes_need_write(secured: TestClient,
                                                       keys: Keys) -> None:
    assert secured.put("/items/x", json={}, headers=keys.headers("read")).status_code == 403
    assert secured.put("/items/x", json={}, headers=keys.headers("write")).status_code == 201
    assert secured.get("/items/x").status_code == 401
    assert secured.get("/items/x", headers=keys.headers("read")).status_code == 200
    assert secured.delete("/items/x", headers=keys.headers("read")).status_code == 403
    assert secured.delete("/items/x", headers=keys.headers("write")).status_code == 204


def test_popular_and_trending_items_count_recent_events_by_category(
        client: TestClient, store: Store) -> None:
    store.items.upsert(Item(item_id=item, categories=[item[0]]) for item in GROUP_A + GROUP_B)
    sent = [("b1", 3), ("b2", 2), ("a0", 1)]
    events = [{"user_id": f"fan{n}", "item_id": item, "event_type": "click"}
              for item, times in sent for n in range(times)]
    events.append({"user_id": "fan9", "item_id": "a1", "event_type": "impression"})
    assert client.post("/events", json=events).status_code == 201

    def listed(path: str, **params: Any) -> list[str]:
        response = client.get(path, params={"days": 1, **params})
        assert response.status_code == 200, response.text
        return [i["item_id"] for i in response.json()["items"]]

    assert listed("/popular") == ["b1", "b2", "a0"]  # impressions do not count
    assert listed("/popular", category="a") == ["a0"]
    assert listed("/popular", exclude=["b1"], filter='item_id != "a0"') == ["b2"]
    # The week before holds nothing here, so growth follows the recent count.
    assert listed("/trending") == ["b1", "b2", "a0"]
    everything = listed("/popular", days=3650)  # the synthetic history (2024) too
    assert set(everything) >= {"a0", "b1"} and len(everything) == 10
    assert client.get("/popular", params={"days": 0}).status_code == 422


def test_an_item_put_after_training_is_similar_by_its_content_at_once(
        client: TestClient, store: Store) -> None:
    store.items.upsert(Item(item_id=item, title=f"{'alpine' if item[0] == 'a' else 'beach'}"
                            f" gear {item}", categories=[f"group-{item[0]}"])
                       for item in GROUP_A + GROUP_B)
    created = client.put("/items/brand-new-item", json={
        "title": "alpine gear, new season", "categories": ["group-a"]})
    assert created.status_code == 201

    response = client.get("/items/brand-new-item/similar", params={"k": 6})

    assert response.status_code == 200, response.text
    assert {i["item_id"] for i in response.json()["items"]} == set(GROUP_A)
    cart = client.post("/items/similar", json={"items": ["brand-new-item"], "k": 3,
                                               "filter": 'item_id != "a0"'})
    assert cart.status_code == 200 and "a0" not in {
        i["item_id"] for i in cart.json()["items"]}


def test_similar_items_by_content_or_co_views_when_asked(client: TestClient,
                                                         store: Store) -> None:
    # Titles cross the taste groups: content pairs a0 with b0, co-views keep the groups.
    colours = ("red", "blue", "green", "black", "white", "pink")
    store.items.upsert(Item(item_id=item, title=f"{colours[int(item[1])]} shoe")
                       for item in GROUP_A + GROUP_B)

    def similar(kind: str) -> list[str]:
        response = client.get("/items/a0/similar", params={"k": 5, "kind": kind})
        assert response.status_code == 200, response.text
        return [i["item_id"] for i in response.json()["items"]]

    assert similar("content")[0] == "b0"  # both "red shoe"
    assert set(similar("co_views")) == set(GROUP_A) - {"a0"}
    cart = client.post("/items/similar", json={"items": ["a1"], "kind": "content", "k": 1})
    assert [i["item_id"] for i in cart.json()["items"]] == ["b1"]
    assert client.get("/items/a0/similar", params={"kind": "magic"}).status_code == 422


def test_items_bought_together_come_from_the_purchases_stored_now(client: TestClient,
                                                                  store: Store) -> None:
    # a0 is bought with b2 in two sessions and with a3 in one: across the taste groups,
    # so neither the model nor co-views would put b2 first.
    purchases = [("shopper1", "s1", "a0"), ("shopper1", "s1", "b2"),
                 ("shopper2", "s2", "a0"), ("shopper2", "s2", "b2"),
                 ("shopper2", "s2", "a3"), ("shopper3", "s3", "a4")]
    store.items.upsert([Item(item_id="a3", attributes={"price": 10}),
                        Item(item_id="b2", attributes={"price": 100})])
    assert client.post("/events", json=[
        {"user_id": user, "item_id": item, "event_type": "purchase", "session_id": session}
        for user, session, item in purchases]).status_code == 201

    def bought_with(item: str, **params: Any) -> list[dict[str, Any]]:
        response = client.get(f"/items/{item}/similar",
                              params={"kind": "bought_together", **params})
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    together = bought_with("a0")
    assert [i["item_id"] for i in together] == ["b2", "a3"]  # 2 of a0's 2 baskets, 1 of 2
    assert [i["score"] for i in together] == pytest.approx([1.0, 0.5])
    assert [i["item_id"] for i in bought_with("a0", filter="price < 50")] == ["a3"]
    assert bought_with("a5") == []  # bought by no one: nothing, not an error
    assert bought_with("a4") == []  # bought alone
    cart = client.post("/items/similar", json={"items": ["a0", "a3"],
                                               "kind": "bought_together"})
    assert [i["item_id"] for i in cart.json()["items"]] == ["b2"]  # the cart left out


def test_an_item_put_after_training_can_be_asked_what_was_bought_with_it(
        client: TestClient) -> None:
    assert client.put("/items/new-gift", json={"title": "gift box"}).status_code == 201
    assert client.post("/events", json=[
        {"user_id": "shopper", "item_id": item, "event_type": "purchase"}
        for item in ("new-gift", "a1")]).status_code == 201  # no session: the same day

    response = client.post("/items/similar", json={"items": ["a5", "new-gift"],
                                                   "kind": "bought_together"})

    assert response.status_code == 200, response.text
    assert [i["item_id"] for i in response.json()["items"]] == ["a1"]
    # The model does not know new-gift: it is never listed.
    assert client.get("/items/a1/similar", params={"kind": "bought_together"}
                      ).json()["items"] == []
