"""The per-worker cache: read-your-writes across workers, and bounded size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tailored.jobs import TrainedModel
from tailored.pipeline.live import TopList
from tailored.serving.cache import CacheKey, TopListCache
from tailored.settings import Settings

from .conftest import ClientFactory


def _items(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [item["item_id"] for item in response.json()["items"]]


def test_an_event_posted_to_one_worker_changes_the_next_answer_of_another(
        trained: TrainedModel, make_client: ClientFactory) -> None:
    """Two apps on one store stand for two worker processes, each with its own cache."""
    first, second = make_client(), make_client()
    cached = _items(second.get("/recommendations/bob1", params={"k": 1}))
    assert _items(second.get("/recommendations/bob1", params={"k": 1})) == cached

    posted = first.post("/events", json={"user_id": "bob1", "item_id": cached[0],
                                         "event_type": "purchase"})
    assert posted.status_code == 201

    assert cached[0] not in _items(second.get("/recommendations/bob1", params={"k": 5}))


def test_a_catalog_change_through_one_worker_applies_in_another(
        trained: TrainedModel, make_client: ClientFactory) -> None:
    first, second = make_client(), make_client()
    top = _items(second.get("/recommendations/alice4", params={"k": 1}))[0]
    from tailored.schema import Item

    first.app.state.service.store.items.upsert(  # type: ignore[attr-defined]
        [Item(item_id=top, available=False)])

    assert top not in _items(second.get("/recommendations/alice4", params={"k": 5}))


def test_no_cache_when_it_is_sized_zero(trained: TrainedModel, settings: Settings,
                                        make_client: ClientFactory) -> None:
    client = make_client(settings.model_copy(update={"cache_entries": 0}))
    answers = [_items(client.get("/recommendations/alice5", params={"k": 3}))
               for _ in range(2)]

    assert answers[0] == answers[1]
    assert len(client.app.state.service.cache) == 0  # type: ignore[attr-defined]


def test_the_cache_keeps_the_most_recently_used_entries() -> None:
    cache = TopListCache(max_entries=2)
    top = TopList.of(np.array([1.0, 2.0]), 1)
    keys = [CacheKey(1, user, ()) for user in ("a", "b", "c")]
    cache.put(keys[0], (1, 1), top)
    cache.put(keys[1], (1, 1), top)
    assert cache.get(keys[0], (1, 1)) is top  # "a" used last: "b" goes next
    cache.put(keys[2], (1, 1), top)

    assert cache.get(keys[1], (1, 1)) is None
    assert cache.get(keys[0], (1, 1)) is top and len(cache) == 2


def test_the_context_and_the_version_are_part_of_the_key() -> None:
    cache = TopListCache(max_entries=10)
    top = TopList.of(np.array([1.0, 2.0]), 1)
    cache.put(CacheKey(1, "a", (("device", "mobile"),)), (1, 1), top)

    assert cache.get(CacheKey(1, "a", ()), (1, 1)) is None
    assert cache.get(CacheKey(2, "a", (("device", "mobile"),)), (1, 1)) is None


def test_lists_from_an_item_index_leave_out_seen_filtered_and_excluded_items(
        settings: Settings, make_client: ClientFactory, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """ALS with its approximate item index serves through the cache: the index's
    candidates go through the user's history, the filter and the exclusions exactly, and
    an event posted now leaves the next answer."""
    pytest.importorskip("faiss")
    from tailored.ingest import import_file
    from tailored.jobs import train_model
    from tailored.models.ann import ItemIndex
    from tailored.sample import shop
    from tailored.store import open_store

    searches = []
    search = ItemIndex.search
    monkeypatch.setattr(ItemIndex, "search", lambda self, queries, n: (
        searches.append(n), search(self, queries, n))[1])

    sample = shop(n_users=600, n_items=1_500, n_events=24_000, seed=3)
    store = open_store(settings.store_url)
    for path in sample.write(tmp_path / "files", format="parquet"):
        import_file(store, path, path.stem)
    trained = train_model(store, settings, "als", {"factors": 8, "ann_min_items": 300},
                          validate=False)
    assert trained.pipeline.scorer.item_index_ is not None
    client = make_client()
    live = client.app.state.service.live  # type: ignore[attr-defined]
    assert live is not None and live.model.item_index_ is not None
    price = dict(zip(sample.items["item_id"], sample.items["price"], strict=True))
    events = sample.events
    for user in events["user_id"].drop_duplicates().head(8):
        seen = set(events.loc[events["user_id"] == user, "item_id"])
        first = _items(client.get(f"/recommendations/{user}", params={"k": 10}))
        assert len(first) == 10 and not set(first) & seen
        excluded = first[:3]
        second = _items(client.get(f"/recommendations/{user}", params={
            "k": 10, "exclude": excluded, "filter": "price < 50"}))
        assert second and not set(second) & (seen | set(excluded))
        assert all(price[item] < 50 for item in second)
    posted = client.post("/events", json={"user_id": user, "item_id": second[0],
                                          "event_type": "purchase"})
    assert posted.status_code == 201
    after = _items(client.get(f"/recommendations/{user}", params={"k": 10,
                                                                   "filter": "price < 50"}))
    assert second[0] not in after
    # Each user's first answer and the one after the event searched the index (for
    # cache_top_n plus the history); the filtered answers came from the cached list.
    assert len(searches) == 9 and min(searches) > 200
    store.close()
