"""Shared fixtures: real files under tests/data and dbc/; device signing keys for the protocol
and outbox tests; the registry's device CA, a card issuer, a registry store and ingestor, a
whole loopback deployment (broker + registry), and a PostgreSQL server (``pg_server``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.broker_process import MosquittoProcess
from cloud_sync.ingest import Ingestor
from cloud_sync.pki import DeviceCa
from cloud_sync.store import Store
from cloud_sync.store.open import open_store
from cloud_sync.store.sqlite import SqliteStore
from msp_protocol.jws import Signer
from tests.pg_server import PgServer, pg_bin
from tests.protocol_data import DEVICE
from tests.sync_deploy import Deployment
from tests.sync_kit import CardIssuer

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).parent.parent
DEMO_MAP = REPO / "dbc" / "msp_demo.toml"
DEMO_DBC = REPO / "dbc" / "msp_demo.dbc"


@pytest.fixture
def data_dir() -> Path:
    """tests/data."""
    return DATA


@pytest.fixture(scope="session")
def ed_signer() -> Signer:
    """An Ed25519 device signer (kid gw-0001)."""
    return Signer(Ed25519PrivateKey.generate(), DEVICE)


@pytest.fixture(scope="session")
def es_signer() -> Signer:
    """A P-256 (ES256) device signer (kid gw-0001)."""
    return Signer(ec.generate_private_key(ec.SECP256R1()), DEVICE)


@pytest.fixture(params=["EdDSA", "ES256"])
def signer(request: pytest.FixtureRequest, ed_signer: Signer, es_signer: Signer) -> Signer:
    """Each algorithm in turn."""
    return ed_signer if request.param == "EdDSA" else es_signer


@pytest.fixture(scope="session")
def device_ca(tmp_path_factory: pytest.TempPathFactory) -> DeviceCa:
    return DeviceCa.open(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def card_issuer(tmp_path_factory: pytest.TempPathFactory) -> CardIssuer:
    return CardIssuer(tmp_path_factory.mktemp("anchors"))


@pytest.fixture
def store(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    """A fresh registry store: SQLite, or PostgreSQL with ``MSP_TEST_STORE=postgresql`` (then
    every test on this fixture runs on the session's server; ``tests/cloud_sync/store/`` runs
    on both back ends always)."""
    if os.environ.get("MSP_TEST_STORE", "sqlite") == "postgresql":
        server: PgServer = request.getfixturevalue("pg_server")
        db = open_store(server.create_database(), secrets_dir=tmp_path / "registry.secrets")
    else:
        db = SqliteStore(tmp_path / "registry.db")
    yield db
    db.close()


@pytest.fixture
def ingestor(store: Store, card_issuer: CardIssuer) -> Ingestor:
    return Ingestor(store, card_issuer.anchors(), max_waiting=8)


@pytest.fixture
def deployment(tmp_path: Path, card_issuer: CardIssuer) -> Iterator[Deployment]:
    """Broker on the generated configuration and a registry process; gateways enrol on demand."""
    if not MosquittoProcess.available():
        pytest.fail("mosquitto is not installed: run scripts/test (it installs it)")
    deploy = Deployment(tmp_path, card_issuer)
    deploy.configure()
    assert deploy.broker is not None
    deploy.broker.start()
    try:
        yield deploy
    finally:
        deploy.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One real PostgreSQL server for the session (``tests/pg_server.py``); each test takes a
    fresh database with ``pg_server.create_database()``."""
    if pg_bin() is None:
        pytest.fail("PostgreSQL is not installed: run scripts/test (it installs it)")
    server = PgServer()
    try:
        server.start()
        yield server
    finally:
        server.close()
