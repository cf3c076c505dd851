"""The per-worker cache: read-your-writes across workers, and bounded size."""

from __future__ import annotations

import numpy as np

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
