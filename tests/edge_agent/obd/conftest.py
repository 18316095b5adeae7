"""Fixtures for the OBD tests: a fresh python-can virtual channel and a bus on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import can
import pytest


@pytest.fixture
def channel() -> str:
    """A virtual CAN channel no other test uses."""
    return f"obd-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def bus(channel: str) -> Iterator[can.BusABC]:
    """The tester's end of ``channel``."""
    tester = can.Bus(interface="virtual", channel=channel)
    yield tester
    tester.shutdown()
