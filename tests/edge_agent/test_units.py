"""Unit conversion to canonical units."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.errors import ConfigError
from edge_agent.units import UNITS, convert, dimension, factor

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@pytest.mark.parametrize(
    ("value", "source", "target", "expected"),
    [
        (10.0, "m/s", "km/h", 36.0),
        (60.0, "mph", "km/h", 96.56064),
        (1.0, "g", "m/s^2", 9.80665),
        (math.pi, "rad/s", "deg/s", 180.0),
        (math.pi / 2, "rad", "deg", 90.0),
        (0.25, "ratio", "%", 25.0),
        (1500.0, "m", "km", 1.5),
        (1.0, "mi", "km", 1.609344),
    ],
)
def test_known_conversions(value: float, source: str, target: str, expected: float) -> None:
    assert convert(value, source, target) == pytest.approx(expected)


def test_bool_is_nonzero() -> None:
    assert convert(2.0, "bool", "bool") is True
    assert convert(0.0, "bool", "bool") is False


def test_unknown_unit_names_it() -> None:
    with pytest.raises(ConfigError, match="furlong"):
        dimension("furlong")


def test_incompatible_units_refused() -> None:
    with pytest.raises(ConfigError, match=r"rpm.*km/h"):
        factor("rpm", "km/h")


@given(finite, st.sampled_from(sorted(UNITS - {"bool"})), st.data())
def test_round_trip_within_a_dimension(value: float, unit: str, data: st.DataObject) -> None:
    same = sorted(u for u in UNITS if dimension(u) == dimension(unit))
    other = data.draw(st.sampled_from(same))
    there = convert(value, unit, other)
    assert isinstance(there, float)
    assert convert(there, other, unit) == pytest.approx(value, rel=1e-9, abs=1e-9)
