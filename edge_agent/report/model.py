"""What a trip report shows, gathered from one replay: traces, events, trips and thresholds."""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from msp_protocol.scoring import EVENT_TYPES, event_points

from ..scoring import ScoringConfig


def parse_ts(text: str) -> float:
    """Epoch seconds of a record timestamp (``2026-11-26T01:00:00.000Z``)."""
    return datetime.fromisoformat(text).timestamp()


@dataclass(frozen=True, slots=True)
class Trace:
    """One signal over time: source-clock timestamps (epoch seconds) and values in ``unit``.

    The arrays are the recorder's own (compact, one C double per value); treat them as
    read-only.
    """

    name: str
    label: str
    unit: str
    t: array[float]
    v: array[float]

    def __len__(self) -> int:
        return len(self.t)


@dataclass(frozen=True, slots=True)
class EventMark:
    """One event the replay detected, as ``msp-agent replay --json`` lists it, with its
    penalty points and, when the log has positions, where it happened."""

    type: str
    severity: str
    start: float
    duration_s: float
    peak: float
    speed_kmh: float
    points: float
    location: tuple[float, float] | None = None

    @property
    def end(self) -> float:
        """Source-clock time the event ended."""
        return self.start + self.duration_s

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EventMark:
        """An event of the replay report (``report.extra["events"]``)."""
        kind, severity, duration = str(data["type"]), str(data["severity"]), data["duration_s"]
        return cls(
            type=kind,
            severity=severity,
            start=parse_ts(data["start"]),
            duration_s=float(duration),
            peak=float(data["peak"]),
            speed_kmh=float(data["speed_kmh"]),
            points=event_points(kind, severity, float(duration)),
        )


@dataclass(frozen=True, slots=True)
class PenaltyLine:
    """One line of a trip's penalty breakdown: the events of one type and their points."""

    type: str
    count: int
    points: float


@dataclass(frozen=True, slots=True)
class TripSummary:
    """One trip of the replay (its ``trip`` record body) and the breakdown of its points."""

    start: float
    end: float
    distance_km: float
    duration_s: float
    max_speed_kmh: float
    fuel_l: float | None
    co2_kg: float | None
    penalty_points: float
    score: float | None
    penalties: tuple[PenaltyLine, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any], events: tuple[EventMark, ...]) -> TripSummary:
        """A trip of the replay report; ``events`` are all the replay's events, of which
        those between the trip's start and end make its breakdown."""
        start, end = parse_ts(data["start"]), parse_ts(data["end"])
        mine = [e for e in events if start - 1e-3 <= e.start <= end + 1e-3]
        lines = []
        for kind in EVENT_TYPES:
            of_kind = [e for e in mine if e.type == kind]
            if of_kind:
                lines.append(PenaltyLine(kind, len(of_kind), sum(e.points for e in of_kind)))
        return cls(
            start=start,
            end=end,
            distance_km=float(data["distance_km"]),
            duration_s=float(data["duration_s"]),
            max_speed_kmh=float(data["max_speed_kmh"]),
            fuel_l=None if data["fuel_l"] is None else float(data["fuel_l"]),
            co2_kg=None if data["co2_kg"] is None else float(data["co2_kg"]),
            penalty_points=float(data["penalty_points"]),
            score=None if data["score"] is None else float(data["score"]),
            penalties=tuple(lines),
        )


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The scoring thresholds a report draws, from the replay's :class:`ScoringConfig`."""

    vehicle_class: str
    harsh_braking_mps2: float
    harsh_acceleration_mps2: float
    harsh_cornering_mps2: float
    braking_min_speed_kmh: float
    cornering_min_speed_kmh: float
    smoothing_s: float
    max_speed_kmh: float
    speeding_minor_over_kmh: float

    @classmethod
    def of(cls, config: ScoringConfig) -> Thresholds:
        """The thresholds ``config`` scores with."""
        return cls(
            vehicle_class=config.vehicle_class,
            harsh_braking_mps2=config.harsh_braking_mps2,
            harsh_acceleration_mps2=config.harsh_acceleration_mps2,
            harsh_cornering_mps2=config.harsh_cornering_mps2,
            braking_min_speed_kmh=config.braking_min_speed_kmh,
            cornering_min_speed_kmh=config.cornering_min_speed_kmh,
            smoothing_s=config.smoothing_s,
            max_speed_kmh=config.max_speed_kmh,
            speeding_minor_over_kmh=config.speeding_minor_over_kmh,
        )


@dataclass(frozen=True, slots=True)
class TripReport:
    """Everything a trip report shows.

    ``traces`` holds the recorded signals by canonical name (only those the log has);
    ``scored_lon`` / ``scored_lat`` are the smoothed accelerations the harsh detectors
    compare with the thresholds (from the acceleration signals, or from speed and yaw rate
    where the bus has none); ``route`` is (time, lat, lon) per position fix.
    """

    source: str
    frames: int
    decoded_frames: int
    rejected: tuple[tuple[str, int], ...]
    scoring_rejected: tuple[tuple[str, int], ...]
    traces: Mapping[str, Trace]
    scored_lon: Trace | None
    scored_lat: Trace | None
    route: tuple[tuple[float, float, float], ...]
    events: tuple[EventMark, ...]
    trips: tuple[TripSummary, ...]
    thresholds: Thresholds

    @property
    def start(self) -> float | None:
        """The first recorded timestamp, or None when nothing was recorded."""
        starts = [trace.t[0] for trace in self.traces.values() if len(trace)]
        return min(starts) if starts else None
