"""MovieLens 100K for the benchmarks: imported through tailored's own importer, so a
benchmark measures the same dataset (weights, timestamps, genres) a user would get."""

from __future__ import annotations

import tempfile
from pathlib import Path

from tailored.dataset import Dataset

ML100K = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"


def movielens_100k(directory: Path = ML100K) -> Dataset:
    """The ratings, items and users of ``directory`` as a :class:`Dataset`."""
    from tailored.ingest import import_movielens
    from tailored.store import open_store

    with tempfile.TemporaryDirectory() as scratch:
        store = open_store(f"sqlite:///{scratch}/ml.db")
        import_movielens(store, directory)
        data = Dataset.from_store(store)
        store.close()
    return data
