"""Shared fixtures: paths to the real files under tests/data and the repository's dbc/."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).parent.parent
DEMO_MAP = REPO / "dbc" / "msp_demo.toml"
DEMO_DBC = REPO / "dbc" / "msp_demo.dbc"


@pytest.fixture
def data_dir() -> Path:
    """tests/data."""
    return DATA
