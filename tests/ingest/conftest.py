from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tailored.store import Store, open_store

DATA = Path(__file__).parent / "data"


@pytest.fixture
def data_dir() -> Path:
    """Small hand-written files in every supported shape."""
    return DATA


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLite store in a file, as a user would have it."""
    opened = open_store("sqlite:///" + str(tmp_path / "t.db"))
    yield opened
    opened.close()

