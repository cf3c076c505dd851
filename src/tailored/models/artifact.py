"""Saved state on disk, for models, pipelines and bandits alike: a directory holding
``config.json`` (what it is, its typed configuration, the package version) and
``arrays.npz`` (what it learned, as named numpy arrays). Never pickle: loading reads
plain JSON and arrays only (``allow_pickle=False``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

CONFIG = "config.json"
ARRAYS = "arrays.npz"


def package_version() -> str:
    try:
        return version("tailored")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def write_artifact(path: str | Path, meta: Mapping[str, Any],
                   arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``meta`` (with the package version added) and ``arrays`` into ``path``.

    Examples
    --------
    >>> import tempfile
    >>> path = write_artifact(tempfile.mkdtemp(), {"kind": "demo"}, {"x": np.arange(3)})
    >>> meta, arrays = read_artifact(path)
    >>> meta["kind"], arrays["x"].tolist()
    ('demo', [0, 1, 2])
    """
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG).write_text(
        json.dumps({**meta, "tailored_version": package_version()}, indent=2) + "\n")
    np.savez(directory / ARRAYS, allow_pickle=False, **arrays)
    return directory


def read_meta(path: str | Path) -> dict[str, Any]:
    """The ``config.json`` of an artifact (a clear error when there is none)."""
    file = Path(path) / CONFIG
    if not file.is_file():
        raise FileNotFoundError(f"{path} holds no saved artifact (no {CONFIG}); save one "
                                "with .save(path) first")
    meta: dict[str, Any] = json.loads(file.read_text())
    return meta


def read_artifact(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """What :func:`write_artifact` wrote: the meta dict and the named arrays."""
    meta = read_meta(path)
    with np.load(Path(path) / ARRAYS, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    return meta, arrays


__all__ = ["ARRAYS", "CONFIG", "package_version", "read_artifact", "read_meta",
           "write_artifact"]
