"""What the agent's stages produce, turned into the record bodies of msp_protocol.

Scoring's events and trips and identity's session bodies each have their own dataclasses; this
is the one place that maps them onto the wire contract, so the live agent and a replay append
exactly the same records. Every body is checked against its kind's schema here, once, when it
is made (``RecordError`` if the data breaks it); the outbox signs it without checking it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from msp_protocol import bodies
from msp_protocol.records import body_from_json, checked, format_ts, parse_ts

from .scoring import Event, Trip

if TYPE_CHECKING:  # identity brings X.509 and RSA: the agent without a card never loads it
    from .identity.binding import SessionEndBody, SessionStartBody


def trip_body(trip: Trip) -> bodies.Trip:
    """The ``trip`` record body of a finished trip."""
    body = body_from_json("trip", trip.to_json())
    assert isinstance(body, bodies.Trip)
    return body


def event_body(event: Event) -> bodies.Event:
    """The ``event`` record body of a driving event (crashes included)."""
    body = body_from_json("event", event.to_json())
    assert isinstance(body, bodies.Event)
    return body


def emergency_body(crash: Event) -> bodies.Emergency:
    """The ``emergency`` record body of a crash event, sent the moment it is detected."""
    if crash.type != "crash":
        raise ValueError(f"an emergency is a crash, not {crash.type!r}")
    if crash.trigger is None:
        raise ValueError("a crash event must name its trigger")
    location = crash.location
    return checked(bodies.Emergency(
        detected_at=format_ts(crash.start),
        trigger=crash.trigger,
        peak_decel_ms2=round(crash.peak, 3),
        speed_kmh=round(crash.speed_kmh, 1),
        location=None if location is None else bodies.Location(location.lat, location.lon),
    ))  # fmt: skip


def session_start_body(start: SessionStartBody) -> bodies.SessionStart:
    """The ``session.start`` record body of a card login."""
    body = body_from_json("session.start", start.to_json())
    assert isinstance(body, bodies.SessionStart)
    return body


def session_end_body(end: SessionEndBody, trips: Sequence[Trip]) -> bodies.SessionEnd:
    """The ``session.end`` record body, with the totals of the ``trips`` driven in the session."""
    ended = parse_ts(end.ended_at).timestamp()
    return checked(bodies.SessionEnd(
        reason=end.reason.value,
        ended_at=format_ts(ended),
        totals=bodies.SessionTotals(
            trips=len(trips),
            distance_km=round(sum(t.distance_km for t in trips), 3),
            duration_s=round(end.duration_s, 3),
            events=sum(len(t.events) for t in trips),
        ),
    ))  # fmt: skip
