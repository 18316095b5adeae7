"""Shared fixtures: paths to the real files under tests/data and the repository's dbc/; device
signing keys for the protocol and outbox tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from msp_protocol.jws import Signer
from tests.protocol_data import DEVICE

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
