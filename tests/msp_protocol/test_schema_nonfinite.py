"""JSON has no NaN or Infinity: a body holding one is refused when it is made, with the field
named, whether or not its schema bounds the number."""

from __future__ import annotations

import math

import pytest

from msp_protocol import bodies
from msp_protocol.errors import RecordError
from msp_protocol.records import checked
from msp_protocol.schema import _compile

T = "2026-11-26T10:15:30.123Z"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_number_is_refused_with_its_field(bad: float) -> None:
    with pytest.raises(RecordError) as speed:
        checked(bodies.Emergency(detected_at=T, trigger="crash_flag", peak_decel_ms2=30.0,
                                 speed_kmh=bad, location=None))  # fmt: skip
    assert "speed_kmh" in str(speed.value)
    with pytest.raises(RecordError) as lat:
        checked(bodies.Emergency(detected_at=T, trigger="crash_flag", peak_decel_ms2=30.0,
                                 speed_kmh=40.0, location=bodies.Location(bad, 139.7)))  # fmt: skip
    assert "lat" in str(lat.value)


def test_finite_numbers_still_pass() -> None:
    body = bodies.Emergency(detected_at=T, trigger="crash_flag", peak_decel_ms2=30.0,
                            speed_kmh=40.0, location=bodies.Location(35.68, 139.76))  # fmt: skip
    assert checked(body) is body



@pytest.mark.parametrize("schema", [{"type": "number"}, {"type": ["number", "null"]},
                                    {"type": "number", "minimum": 0}])  # fmt: skip
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_number_without_bounds_refuses_non_finite_values(schema: dict[str, object],
                                                           bad: float) -> None:
    check = _compile(schema)
    check(1.5, "x", None)
    with pytest.raises(RecordError, match=r"not a JSON number|below"):
        check(bad, "x", None)
