"""Fixtures for the card tests: a test CA, card images, a virtual card in an in-process reader."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from edge_agent.card.image import CardImage, make_test_card
from edge_agent.card.issuer import TestIssuer
from edge_agent.card.licence import LicenceData
from edge_agent.card.transport import InProcessTransport
from edge_agent.card.virtual import VirtualCard

PIN = "1234"


@pytest.fixture(scope="session")
def issuer() -> TestIssuer:
    return TestIssuer.create()


@pytest.fixture(scope="session")
def image(issuer: TestIssuer) -> CardImage:
    return make_test_card(issuer, pin=PIN, licence=LicenceData(date(2030, 1, 31), ("普通",)))


@pytest.fixture
def card(image: CardImage) -> VirtualCard:
    return VirtualCard(image)


@pytest.fixture
def reader(card: VirtualCard) -> InProcessTransport:
    transport = InProcessTransport(card)
    transport.connect()
    return transport


def card_with(image: CardImage, **changes: object) -> VirtualCard:
    """A virtual card from ``image`` with some fields changed (e.g. jpki_tries_left=1)."""
    return VirtualCard(replace(image, **changes))  # type: ignore[arg-type]
