"""Fixtures: a store holding the taste-group data, a trained item_knn model, apps on it."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from taste_groups import synthetic_events

from tailored.jobs import TrainedModel, train_model
from tailored.serving import create_app
from tailored.settings import Settings
from tailored.store import Store, open_store

with warnings.catch_warnings():
    # Starlette suggests httpx2 for its test client; httpx is what the project has.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(store_url=f"sqlite:///{tmp_path / 'tailored.db'}",
                    model_dir=tmp_path / "models")


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    """The store as another process (`tailored import`, `tailored train`) sees it."""
    opened = open_store(settings.store_url)
    opened.events.add(synthetic_events())
    yield opened
    opened.close()


@pytest.fixture
def trained(store: Store, settings: Settings) -> TrainedModel:
    return train_model(store, settings, "item_knn")


ClientFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(settings: Settings) -> Iterator[ClientFactory]:
    """Start an app on the store (lifespan included), stopped at the end of the test."""
    with ExitStack() as stack:

        def make(app_settings: Settings | None = None, *,
                 registry_poll_seconds: float = 2.0) -> TestClient:
            app = create_app(app_settings or settings,
                             registry_poll_seconds=registry_poll_seconds)
            return stack.enter_context(TestClient(app))

        yield make


@pytest.fixture
def client(trained: TrainedModel, settings: Settings) -> Iterator[TestClient]:
    """A client on an app serving the trained item_knn model (registry version 1)."""
    with TestClient(create_app(settings)) as client:
        yield client
