"""Fixtures for identity tests: a test CA trusted by the agent, cards, a manual clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from edge_agent.card.image import CardImage, make_test_card
from edge_agent.card.issuer import TestIssuer
from edge_agent.card.licence import LicenceData
from edge_agent.identity.binding import Consent
from edge_agent.identity.trust import TrustStore

PIN = "1234"
VIN = "JTDKB20U093456789"


@pytest.fixture(scope="session")
def issuer() -> TestIssuer:
    return TestIssuer.create()


@pytest.fixture(scope="session")
def other_issuer() -> TestIssuer:
    return TestIssuer.create("Some other CA")


@pytest.fixture(scope="session")
def image(issuer: TestIssuer) -> CardImage:
    return make_test_card(issuer, pin=PIN, licence=LicenceData(date(2030, 1, 31), ("普通",)))


@pytest.fixture(scope="session")
def trust(issuer: TestIssuer) -> TrustStore:
    return TrustStore((issuer.certificate,))


CONSENTS = (Consent("fleet-acme", ("driving", "score"), "2027-03-31T00:00:00.000Z"),)


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
