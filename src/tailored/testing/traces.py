"""Where a user id is still found: the tool of the no-trace tests.

An erasure must leave no trace of the user, and a pseudonymous store none of a raw id:
:func:`rows_holding` searches every text cell of a SQLite store, :func:`files_holding`
every byte of a folder of model artifacts. Both search for the text anywhere (inside a
JSON column, a list of ids, a longer string), so a test that expects nothing is strict;
a test should first show that they find the trace before the erasure, so it can fail.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path


def rows_holding(database: Path, text: str) -> list[tuple[str, str]]:
    """The ``(table, column)`` of every cell of a SQLite database whose text holds
    ``text``, ASCII letters in any case (SQL ``LIKE``, ``%`` and ``_`` taken literally).

    The database is opened read-only: a path where there is none raises instead of
    finding nothing in a new, empty database.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> database = Path(folder.name) / "store.db"
    >>> with closing(sqlite3.connect(database)) as conn, conn:
    ...     _ = conn.execute("CREATE TABLE events (user_id TEXT, context TEXT, seq INTEGER)")
    ...     _ = conn.execute("INSERT INTO events VALUES ('alice', 'shared by Bob', 7)")
    >>> rows_holding(database, "alice"), rows_holding(database, "bob")
    ([('events', 'user_id')], [('events', 'context')])
    >>> rows_holding(database, "carol"), rows_holding(database, "a_ice")
    ([], [])
    >>> folder.cleanup()
    """
    found = []
    uri = f"{database.resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for column in [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]:
                hits = conn.execute(f'SELECT count(*) FROM "{table}" WHERE '
                                    f'CAST("{column}" AS TEXT) LIKE ? ESCAPE ?',
                                    (f"%{_literal(text)}%", "\\"))
                if hits.fetchone()[0]:
                    found.append((table, column))
    return found


def _literal(text: str) -> str:
    """``text`` as a ``LIKE`` pattern that matches only itself (escaped with ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def files_holding(root: Path, text: str) -> list[Path]:
    """The files under ``root`` (at any depth) whose bytes hold ``text`` as UTF-8 (JSON,
    LightGBM text) or UTF-32-LE (how numpy stores a ``str`` array in an ``.npz``), sorted.

    An ``.npz`` written by ``np.savez`` keeps its arrays' bytes as they are; a compressed
    file (``np.savez_compressed``, gzip) would hide the text from this search. A ``root``
    that is not a folder raises instead of holding nothing.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> folder = tempfile.TemporaryDirectory()
    >>> root = Path(folder.name)
    >>> np.savez(root / "arrays.npz", user_ids=np.array(["alice", "bob"]))
    >>> (root / "v2").mkdir()
    >>> _ = (root / "v2" / "config.json").write_text('{"users": ["bob"]}')
    >>> [path.relative_to(root).as_posix() for path in files_holding(root, "bob")]
    ['arrays.npz', 'v2/config.json']
    >>> files_holding(root, "alice") == [root / "arrays.npz"], files_holding(root, "carol")
    (True, [])
    >>> folder.cleanup()
    """
    if not root.is_dir():  # searching nothing would find nothing: a test that cannot fail
        raise FileNotFoundError(f"no folder {root} to search for {text!r}")
    needles = (text.encode("utf-8"), text.encode("utf-32-le"))
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if any(needle in data for needle in needles):
                found.append(path)
    return found
