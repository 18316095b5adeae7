"""The store contract suite's fixtures: every test here runs against each back end.

``store`` is a fresh store of each kind in turn (a SQLite file in the test's directory, a new
database on the session's PostgreSQL server, ``tests/pg_server.py``); ``backend`` names the
kind, ``store_url`` is its ``--db`` value and ``secrets`` its secret files' directory, so a test
can open the same registry again (a second worker, the command line).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_sync.store import Store
from cloud_sync.store.open import open_store
from tests.pg_server import PgServer

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each back end in turn."""
    return str(request.param)


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    """The registry's secret files' directory (``--secrets-dir``)."""
    return tmp_path / "registry.secrets"


@pytest.fixture
def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A new, empty registry database of ``backend``: a SQLite URL or a PostgreSQL one."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.create_database()


@pytest.fixture
def store(store_url: str, secrets: Path) -> Iterator[Store]:
    """The registry store at ``store_url`` (made on first open)."""
    opened = open_store(store_url, secrets_dir=secrets)
    yield opened
    opened.close()
