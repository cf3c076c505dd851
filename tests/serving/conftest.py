"""Fixtures: a store holding the taste-group data, a trained item_knn model, apps on it."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tailored.jobs import TrainedModel, train_model
from tailored.serving import create_app
from tailored.settings import Settings
from tailored.store import Store, open_store
from tailored.testing import LOCAL

from .taste_groups import synthetic_events

with warnings.catch_warnings():
    # Starlette asks for httpx2 under its test client; whichever is installed works here.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient


@dataclass(frozen=True)
class Template:
    """A store file holding the synthetic events, and an item_knn model trained on them."""

    database: Path
    model: TrainedModel


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """Built once: each test copies the store file instead of writing it again."""
    root = tmp_path_factory.mktemp("template")
    events = open_store(f"sqlite:///{root / 'events.db'}")
    events.events.add(synthetic_events())
    events.close()
    _copy_database(root / "events.db", root / "trained.db")
    trained_store = open_store(f"sqlite:///{root / 'trained.db'}")
    model = train_model(trained_store,
                        Settings(store_url=trained_store.url, model_dir=root / "models"),
                        "item_knn")
    trained_store.close()
    return Template(root / "events.db", model)


def copy_artifact(path: str, model_dir: Path) -> str:
    """A copy of the artifact at ``path`` under ``model_dir``: what a test may rewrite."""
    copied = model_dir / Path(path).name
    if not copied.exists():
        shutil.copytree(path, copied)
    return str(copied)


def _copy_database(source: Path, target: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(store_url=f"sqlite:///{tmp_path / 'tailored.db'}",
                    model_dir=tmp_path / "models")


@pytest.fixture
def store(settings: Settings, template: Template) -> Iterator[Store]:
    """The store holding the synthetic events, as another process (`tailored import`,
    `tailored train`) sees it."""
    _copy_database(template.database, Path(settings.store_url.removeprefix("sqlite:///")))
    opened = open_store(settings.store_url)
    yield opened
    opened.close()


@pytest.fixture
def trained(store: Store, settings: Settings, template: Template) -> TrainedModel:
    """Version 1, active: item_knn trained with `train_model` on the same events (once per
    session; here a copy of its artifact is registered and promoted in this test's store,
    so an erasure rewrites the copy)."""
    model = template.model
    registered = store.models.register(model.version.name,
                                       copy_artifact(model.version.path, settings.model_dir),
                                       model.metrics, model.version.details)
    return TrainedModel(store.models.promote(registered.version), model.pipeline,
                        model.metrics)


ClientFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(settings: Settings) -> Iterator[ClientFactory]:
    """Start an app on the store (lifespan included), stopped at the end of the test."""
    with ExitStack() as stack:

        def make(app_settings: Settings | None = None, *,
                 registry_poll_seconds: float = 2.0) -> TestClient:
            app = create_app(app_settings or settings,
                             registry_poll_seconds=registry_poll_seconds)
            return stack.enter_context(TestClient(app, base_url=LOCAL))

        yield make


@pytest.fixture
def client(trained: TrainedModel, settings: Settings) -> Iterator[TestClient]:
    """A client on an app serving the trained item_knn model (registry version 1)."""
    with TestClient(create_app(settings), base_url=LOCAL) as client:
        yield client


@dataclass(frozen=True)
class Keys:
    """One API key of each scope, created in the test's store before the app starts."""

    read: str
    write: str
    admin: str

    def headers(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, scope)}"}


@pytest.fixture
def keys(store: Store) -> Keys:
    return Keys(*(store.keys.create(f"{scope}-key", [scope])[1]
                  for scope in ("read", "write", "admin")))


@pytest.fixture
def secured(trained: TrainedModel, keys: Keys, settings: Settings) -> Iterator[TestClient]:
    """A client on an app serving the trained model, whose store holds API keys (so every
    route but /health needs one); verified keys are cached for 0 s."""
    app = create_app(settings.model_copy(update={"key_cache_seconds": 0.0}))
    with TestClient(app, base_url=LOCAL) as client:
        yield client
