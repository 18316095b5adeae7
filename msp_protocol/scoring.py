"""Penalty points, trip score and the cross-vehicle person score: one formula for edge and cloud.

The gateway scores each trip with :func:`trip_score`; the registry pools every trip a person
drove, in any vehicle, with :func:`person_score`. Both read only ``distance_km`` and
``penalty_points`` of the trip record, so a score is the same wherever it is computed.
Sources for every constant: ``docs/scoring.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, cast, get_args

EventType = Literal[
    "harsh_braking",
    "harsh_acceleration",
    "harsh_cornering",
    "speeding",
    "idling",
    "continuous_driving",
    "pedal_misapplication",
    "seatbelt",
    "crash",
]
Severity = Literal["minor", "major", "critical"]

#: Every event type, in the order reports list them.
EVENT_TYPES: Final = cast(tuple[EventType, ...], get_args(EventType))
SEVERITIES: Final = cast(tuple[Severity, ...], get_args(Severity))

#: Points per event, independent of its length.
FLAT_POINTS: Final[dict[EventType, float]] = {
    "harsh_braking": 5.0,
    "harsh_acceleration": 4.0,
    "harsh_cornering": 4.0,
    "pedal_misapplication": 15.0,
    "seatbelt": 10.0,
    "idling": 0.0,  # eco figure, not a safety fault
    "crash": 0.0,  # the crash itself is not scored; the behaviour before it is
}
#: Speeding: points per started minute, by severity ("critical" counts as "major").
SPEEDING_POINTS_PER_MIN: Final[dict[Severity, float]] = {
    "minor": 3.0,
    "major": 8.0,
    "critical": 8.0,
}
#: Continuous driving: points per started 30 minutes driven past the limit.
CONTINUOUS_POINTS_PER_30MIN: Final = 10.0

#: Trips shorter than this get no score (null).
MIN_SCORED_KM: Final = 1.0
#: Shorter trips are normalised over this distance, so one event on a 2 km trip is not fatal.
SHORT_TRIP_KM: Final = 20.0
#: Time constant of the person score's exponential decay.
DECAY_DAYS: Final = 90.0


def _started(duration_s: float, unit_s: float) -> int:
    """Number of started ``unit_s`` periods in ``duration_s``; an event always starts one."""
    return max(1, math.ceil(duration_s / unit_s - 1e-9))


def event_points(event_type: str, severity: str, duration_s: float) -> float:
    """Penalty points of one event.

    ``duration_s`` matters only for speeding (per started minute) and continuous driving
    (per started 30 minutes past the limit; the event's duration is the time past the
    limit). Raises ValueError for an unknown type or severity or a negative duration.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r} (expected one of {EVENT_TYPES})")
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r} (expected one of {SEVERITIES})")
    if not (math.isfinite(duration_s) and duration_s >= 0):
        raise ValueError(f"duration_s must be a finite number >= 0, got {duration_s!r}")
    if event_type == "speeding":
        return SPEEDING_POINTS_PER_MIN[severity] * _started(duration_s, 60.0)
    if event_type == "continuous_driving":
        return CONTINUOUS_POINTS_PER_30MIN * _started(duration_s, 1800.0)
    return FLAT_POINTS[cast(EventType, event_type)]


def _check_totals(distance_km: float, penalty_points: float) -> None:
    if not (math.isfinite(distance_km) and distance_km >= 0):
        raise ValueError(f"distance_km must be a finite number >= 0, got {distance_km!r}")
    if not (math.isfinite(penalty_points) and penalty_points >= 0):
        raise ValueError(f"penalty_points must be a finite number >= 0, got {penalty_points!r}")


def trip_score(penalty_points: float, distance_km: float) -> float | None:
    """Score of one trip, 0-100 (100 = no penalty), or None for a trip under 1 km.

    ``100 - min(100, points * 100 / max(distance_km, 20))``: penalty points per 100 km,
    with trips under 20 km normalised over 20 km. Raises ValueError for negative or
    non-finite inputs.
    """
    _check_totals(distance_km, penalty_points)
    if distance_km < MIN_SCORED_KM:
        return None
    return 100.0 - min(100.0, penalty_points * 100.0 / max(distance_km, SHORT_TRIP_KM))


@dataclass(frozen=True, slots=True)
class TripTotals:
    """What the person score needs from one trip record: when it ended, km and points."""

    ended: datetime
    distance_km: float
    penalty_points: float


def decay_weight(ended: datetime, now: datetime, tau_days: float = DECAY_DAYS) -> float:
    """Weight ``exp(-age / tau)`` of a trip that ended at ``ended``; future trips weigh 1."""
    age_days = max(0.0, (now - ended).total_seconds() / 86400.0)
    return math.exp(-age_days / tau_days)


def person_score(
    trips: Iterable[TripTotals],
    now: datetime,
    *,
    tau_days: float = DECAY_DAYS,
    min_km: float = SHORT_TRIP_KM,
) -> float | None:
    """A person's score over all their trips in every vehicle, 0-100, or None.

    ``100 - min(100, 100 * Σ wᵢ·pointsᵢ / Σ wᵢ·kmᵢ)`` with ``wᵢ = exp(-ageᵢ / tau_days)``:
    penalty points per 100 km pooled across vehicles, recent trips counting most. None
    when the trips total less than ``min_km`` (too little driving to judge) or every
    weight has decayed to zero. ``ended`` and ``now`` must both be timezone-aware (or both
    naive). Raises ValueError for negative or non-finite totals.
    """
    if not tau_days > 0:
        raise ValueError(f"tau_days must be > 0, got {tau_days!r}")
    total_km = weighted_km = weighted_points = 0.0
    for trip in trips:
        _check_totals(trip.distance_km, trip.penalty_points)
        weight = decay_weight(trip.ended, now, tau_days)
        total_km += trip.distance_km
        weighted_km += weight * trip.distance_km
        weighted_points += weight * trip.penalty_points
    if total_km < min_km or weighted_km <= 0.0:
        return None
    return 100.0 - min(100.0, 100.0 * weighted_points / weighted_km)
