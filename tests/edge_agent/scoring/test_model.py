"""Events and trips as records: contract JSON, valid against msp_protocol's schemas."""

from __future__ import annotations

import pytest

from edge_agent import signals as sig
from edge_agent.scoring import Event, Location
from msp_protocol.errors import RecordError
from msp_protocol.schema import validator

from .streams import T0, car, const, score, steps


def test_scored_trip_and_events_validate_against_the_schemas() -> None:
    stream = car(40, steps((0, 60.0), (30, 0.0)), period=0.02)
    stream.add(sig.SPEED_LIMIT, 0.1, steps((0, 80.0), (5, 40.0)))
    stream.add(sig.LATITUDE, 0.1, const(35.68)).add(sig.LONGITUDE, 0.1, const(139.76))
    stream.add(sig.FUEL_RATE, 0.1, const(6.0)).add(sig.ODOMETER, 1.0, lambda t: 1000 + t / 60)
    outcome = score(stream)  # speeding, then the step to 0 km/h reads as a crash
    [trip] = outcome.trips
    assert {e.type for e in trip.events} == {"speeding", "crash"}
    validator("trip").validate(trip.to_json())
    for event in trip.events:
        validator("event").validate(event.to_json())
        assert event.to_json()["location"] == {"lat": 35.68, "lon": 139.76}
    [crash] = [e for e in trip.events if e.type == "crash"]
    assert (crash.trigger, crash.speed_kmh) == ("deceleration", 60.0)


def test_event_json_rounds_and_formats_time() -> None:
    event = Event("harsh_braking", T0 + 0.1234, 1.23456, 4.56789, 51.26, "major", Location(1, 2))
    assert event.to_json() == {
        "type": "harsh_braking",
        "start": "2026-11-26T01:00:00.123Z",
        "duration_s": 1.235,
        "peak": 4.568,
        "speed_kmh": 51.3,
        "severity": "major",
        "location": {"lat": 1, "lon": 2},
    }
    assert event.points == 5 and event.end == pytest.approx(T0 + 1.35796)


def test_schema_rejects_a_broken_event_so_the_check_above_means_something() -> None:
    body = Event("seatbelt", T0, 12.0, 30.0, 30.0, "major").to_json()
    body["severity"] = "awful"
    with pytest.raises(RecordError):
        validator("event").validate(body)
