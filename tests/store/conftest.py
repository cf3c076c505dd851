"""A PostgreSQL database for the store tests, when the server is there: one per test
module (``postgres_url``), emptied after each test that asks for ``empty_postgres_url``.
Set ``TAILORED_TEST_POSTGRES`` to the server's URL; without a server the tests that need
it are skipped with a warning that says so."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tailored.store.sqlbase import metadata

POSTGRES_URL = os.environ.get("TAILORED_TEST_POSTGRES", "postgresql://postgres@127.0.0.1/test")


def _engine(url: str, **options: object) -> sa.Engine:
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), **options)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """The URL of a new database on the server, dropped after the module's tests."""
    try:
        engine = _engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            name = f"tailored_test_{uuid.uuid4().hex[:10]}"
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # the server is not there: say so loudly
        warnings.warn(f"PostgreSQL store tests SKIPPED: cannot reach {POSTGRES_URL}: {error}",
                      stacklevel=1)
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_URL}: {error}")
    yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture
def empty_postgres_url(postgres_url: str) -> Iterator[str]:
    """``postgres_url``, with every table emptied after the test (once the fixtures that
    opened a store on it have closed it)."""
    yield postgres_url
    engine = _engine(postgres_url)
    with engine.begin() as conn:
        made = set(sa.inspect(conn).get_table_names())  # none if the test opened no store
        for table in metadata.sorted_tables:  # every role's tables, new ones too
            if table.name in made:
                conn.execute(sa.text(f"TRUNCATE {table.name} RESTART IDENTITY CASCADE"))
    engine.dispose()
