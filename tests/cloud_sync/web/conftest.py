"""Fixtures of the dashboard's tests: a seeded SQLite registry, ``msp-registry web`` on it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloud_sync.pki import DeviceCa
from cloud_sync.store.sqlite import SqliteStore
from tests.cloud_sync.web.seed import Seeded, WebServer, seed
from tests.sync_kit import CardIssuer


@dataclass
class Registry:
    """A seeded registry database and what was seeded."""

    db: Path
    seeded: Seeded


@pytest.fixture
def registry(tmp_path: Path, device_ca: DeviceCa, card_issuer: CardIssuer) -> Registry:
    store = SqliteStore(tmp_path / "registry.db")
    try:
        seeded = seed(store, device_ca, card_issuer)
    finally:
        store.close()
    return Registry(tmp_path / "registry.db", seeded)


@pytest.fixture
def web(registry: Registry, tmp_path: Path) -> Iterator[WebServer]:
    server = WebServer(registry.db).start(tmp_path / "web.log")
    try:
        yield server
    finally:
        server.stop()
