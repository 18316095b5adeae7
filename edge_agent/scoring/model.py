"""What scoring produces: driving events and trips, as frozen records with their contract JSON."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from msp_protocol.records import format_ts
from msp_protocol.scoring import EVENT_TYPES, EventType, Severity, event_points, trip_score

#: A JSON value as produced by ``to_json`` (ready for ``json.dumps`` or canonical JSON).
JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]


def _round(value: float, digits: int = 3) -> float:
    return round(value, digits)


@dataclass(frozen=True, slots=True)
class Location:
    """A WGS84 position in degrees."""

    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Event:
    """One driving event, closed (or, for a crash, raised the moment it is detected).

    ``start`` is the source clock in epoch seconds. ``peak`` is in the unit of the quantity
    the detector watches (see docs/scoring.md): m/s² for harsh events, pedal misapplication
    and crash, the highest speed in km/h for speeding, km/h for seatbelt, litres of fuel for
    idling, hours driven without a qualifying break for continuous driving. ``trigger``
    says what raised a crash (``crash_flag`` or ``deceleration``); None for other types.
    """

    type: EventType
    start: float
    duration_s: float
    peak: float
    speed_kmh: float
    severity: Severity
    location: Location | None = None
    trigger: str | None = None

    @property
    def end(self) -> float:
        """Source-clock time the event ended."""
        return self.start + self.duration_s

    @property
    def points(self) -> float:
        """Penalty points of this event (msp_protocol.scoring.event_points)."""
        return event_points(self.type, self.severity, self.duration_s)

    def to_json(self) -> dict[str, JsonValue]:
        """The ``event`` record body of the contract."""
        location: JsonValue = None
        if self.location is not None:
            location = {"lat": self.location.lat, "lon": self.location.lon}
        return {
            "type": self.type,
            "start": format_ts(self.start),
            "duration_s": _round(self.duration_s),
            "peak": _round(self.peak),
            "speed_kmh": _round(self.speed_kmh, 1),
            "severity": self.severity,
            "location": location,
        }


@dataclass(frozen=True, slots=True)
class Trip:
    """One trip: ignition on (or first motion) to ignition off, a long stop, or end of data.

    ``distance_km`` integrates speed; ``odometer_km`` is the odometer's difference over the
    trip (None without an odometer) and ``odometer_mismatch`` is set when the two disagree
    by more than the configured tolerance. ``fuel_l`` and ``co2_kg`` are None when the bus
    carries neither fuel rate nor a usable MAF. ``idle_s`` counts every moment stationary
    with the engine running; ``idle_fuel_l`` the fuel burned meanwhile.
    """

    start: float
    end: float
    distance_km: float
    odometer_km: float | None
    max_speed_kmh: float
    fuel_l: float | None
    co2_kg: float | None
    idle_s: float
    idle_fuel_l: float | None
    night_share: float
    events: tuple[Event, ...]
    odometer_mismatch: bool = False

    @property
    def duration_s(self) -> float:
        """Trip length on the source clock."""
        return self.end - self.start

    @property
    def event_counts(self) -> dict[EventType, int]:
        """Number of events of every type (zero for types that did not occur)."""
        counts = Counter(event.type for event in self.events)
        return {kind: counts.get(kind, 0) for kind in EVENT_TYPES}

    @property
    def penalty_points(self) -> float:
        """Sum of the events' penalty points."""
        return sum((event.points for event in self.events), 0.0)

    @property
    def score(self) -> float | None:
        """Trip score 0-100, None under 1 km (msp_protocol.scoring.trip_score)."""
        return trip_score(self.penalty_points, self.distance_km)

    def to_json(self) -> dict[str, JsonValue]:
        """The ``trip`` record body of the contract."""
        score = self.score
        return {
            "start": format_ts(self.start),
            "end": format_ts(self.end),
            "distance_km": _round(self.distance_km),
            "odometer_km": None if self.odometer_km is None else _round(self.odometer_km),
            "duration_s": _round(self.duration_s),
            "max_speed_kmh": _round(self.max_speed_kmh, 1),
            "fuel_l": None if self.fuel_l is None else _round(self.fuel_l),
            "co2_kg": None if self.co2_kg is None else _round(self.co2_kg),
            "idle_s": _round(self.idle_s),
            "night_share": _round(self.night_share),
            "events": {kind: count for kind, count in self.event_counts.items()},
            "penalty_points": _round(self.penalty_points),
            "score": None if score is None else _round(score, 2),
        }
