"""The agent's body builders: whatever the stages hand them, a body they return satisfies its
schema, and the record the outbox signs of it (body not checked again) parses strictly."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.identity.binding import EndReason, SessionEndBody
from edge_agent.records import emergency_body, event_body, session_end_body, trip_body
from edge_agent.scoring import Event, Location, Trip
from msp_protocol.bodies import Body
from msp_protocol.codec import to_json
from msp_protocol.errors import RecordError
from msp_protocol.records import Record, check_body, format_ts, kind_of, parse_record
from msp_protocol.scoring import EVENT_TYPES
from tests.protocol_data import DEVICE, VIN

# Values as the stages may hand them, well beyond the schemas' ranges: negative, huge,
# non-finite, and instants before 1990 (a log replayed with relative timestamps).
_numbers = st.floats(allow_nan=True, allow_infinity=True) | st.floats(-1e3, 1e7)
_instants = st.floats(0.0, 4102444800.0)
_locations = st.none() | st.builds(Location, lat=_numbers, lon=_numbers)
_events = st.builds(
    Event,
    type=st.sampled_from(EVENT_TYPES),
    start=_instants,
    duration_s=_numbers,
    peak=_numbers,
    speed_kmh=_numbers,
    severity=st.sampled_from(["minor", "major", "critical"]),
    location=_locations,
    trigger=st.sampled_from(["crash_flag", "deceleration"]),
)
_trips = st.builds(
    Trip,
    start=_instants,
    end=_instants,
    distance_km=_numbers,
    odometer_km=st.none() | _numbers,
    max_speed_kmh=_numbers,
    fuel_l=st.none() | _numbers,
    co2_kg=st.none() | _numbers,
    idle_s=_numbers,
    idle_fuel_l=st.none() | _numbers,
    night_share=_numbers,
    events=st.lists(_events, max_size=3).map(tuple),
)
_ends = st.builds(
    SessionEndBody,
    session=st.just("s-1"),
    reason=st.sampled_from(list(EndReason)),
    started_at=st.just("2026-11-26T08:00:00.000Z"),
    ended_at=_instants.map(format_ts),
    duration_s=_numbers,
)


def _signed_and_parsed(body: Body) -> None:
    """The body satisfies its schema, and the bytes the outbox signs of it (``body_checked``)
    are the canonical form the registry's strict parser accepts, of the very same record."""
    kind = kind_of(body)
    check_body(kind, to_json(body))
    record = Record(kind, DEVICE, VIN, 7, "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg",
                    "2026-11-26T10:15:30.123Z", "s-1", body)  # fmt: skip
    data = record.canonical(body_checked=True)
    assert parse_record(data) == record
    assert data == record.canonical()


def _built_or_refused(build: Any, source: Any) -> Body | None:
    try:
        body: Body = build(source)
    except (RecordError, ValueError, OverflowError):
        return None  # refused when made: the writer counts it, nothing is signed
    return body


_SETTINGS = settings(max_examples=150, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])  # fmt: skip


@_SETTINGS
@given(event=_events)
def test_event_and_emergency_bodies_satisfy_their_schemas_or_are_refused(event: Event) -> None:
    for build in (event_body, emergency_body):
        source = event if build is event_body else Event(**{**_fields(event), "type": "crash"})
        body = _built_or_refused(build, source)
        if body is not None:
            _signed_and_parsed(body)


@_SETTINGS
@given(trip=_trips)
def test_trip_bodies_satisfy_their_schema_or_are_refused(trip: Trip) -> None:
    body = _built_or_refused(trip_body, trip)
    if body is not None:
        _signed_and_parsed(body)


@_SETTINGS
@given(end=_ends, trips=st.lists(_trips, max_size=3))
def test_session_end_bodies_satisfy_their_schema_or_are_refused(
    end: SessionEndBody, trips: list[Trip]
) -> None:
    body = _built_or_refused(lambda e: session_end_body(e, trips), end)
    if body is not None:
        _signed_and_parsed(body)


def test_the_builders_accept_ordinary_values() -> None:
    # The properties above must not pass by refusing everything.
    event = Event("harsh_braking", 1.79e9, 1.5, 4.2, 50.0, "major", Location(35.6, 139.7))
    crash = Event("crash", 1.79e9, 0.1, 60.0, 50.0, "critical", None, "deceleration")
    trip = Trip(1.79e9, 1.79e9 + 900, 12.5, None, 82.0, 0.9, 2.1, 30.0, 0.1, 0.1, (event,))
    end = SessionEndBody("s-1", EndReason.IGNITION_OFF, "2026-11-26T08:00:00.000Z",
                         "2026-11-26T09:00:00.000Z", 3600.0)  # fmt: skip
    for body in (event_body(event), emergency_body(crash), trip_body(trip),
                 session_end_body(end, [trip])):  # fmt: skip
        _signed_and_parsed(body)


def _fields(event: Event) -> dict[str, Any]:
    return {name: getattr(event, name) for name in Event.__dataclass_fields__}
