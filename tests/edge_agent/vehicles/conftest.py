"""opendbc's DBC files for the catalogue tests, without manual steps.

The installed ``opendbc`` distribution (``pip install .[vehicles]``) when there is one, else
the pinned wheel fetched into the cache directory by the same code as ``msp-agent vehicles
fetch`` (``pip download``; CI reaches PyPI). A machine with neither fails here, loudly.
"""

from __future__ import annotations

import pytest

from edge_agent.vehicles import opendbc


@pytest.fixture(scope="session", autouse=True)
def opendbc_source() -> opendbc.DbcSource:
    try:
        return opendbc.find_source()
    except opendbc.VehicleError:
        opendbc.fetch()
    return opendbc.find_source()
