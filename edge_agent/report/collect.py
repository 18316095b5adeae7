"""Gathering a trip report: one replay through the live code path, its samples recorded."""

from __future__ import annotations

import logging
from array import array
from collections.abc import Callable, Sequence
from typing import Final

from .. import signals as sig
from ..replay import Progress, Replay
from ..samples import Sample
from ..scoring import ScoringConfig
from ..scoring.state import VehicleState, check_sample
from .errors import ReportError
from .model import EventMark, Thresholds, Trace, TripReport, TripSummary

log = logging.getLogger(__name__)

#: The signals a report draws: canonical name -> label.
TRACED: Final[dict[str, str]] = {
    sig.SPEED: "speed",
    sig.SPEED_LIMIT: "speed limit",
    sig.ACCEL_LON: "longitudinal acceleration",
    sig.ACCEL_LAT: "lateral acceleration",
    sig.YAW_RATE: "yaw rate",
    sig.ACCEL_PEDAL: "accelerator pedal",
    sig.BRAKE_PEDAL: "brake pedal",
    sig.STEERING_ANGLE: "steering wheel angle",
    sig.LATITUDE: "latitude",
    sig.LONGITUDE: "longitude",
}
#: What the smoothed accelerations are made from (VehicleState, as the harsh detectors see it).
_MOTION: Final = frozenset({sig.SPEED, sig.ACCEL_LON, sig.ACCEL_LAT, sig.YAW_RATE})
_POSITION: Final = frozenset({sig.LATITUDE, sig.LONGITUDE})


class TraceRecorder:
    """A replay's ``tap``: records the drawn signals and the smoothed accelerations.

    Samples scoring would reject (out of range, running backwards) are left out, as scoring
    leaves them out. The smoothed accelerations come from the scorer's own
    :class:`~edge_agent.scoring.state.VehicleState` fed the same samples, so they are what
    the harsh detectors compare with their thresholds (the detectors' speed gates aside).
    A position of exactly 0°, 0° is taken for "no fix" and not drawn.
    """

    def __init__(self, config: ScoringConfig) -> None:
        self._config = config
        self._t = {name: array("d") for name in TRACED}
        self._v = {name: array("d") for name in TRACED}
        self._last: dict[str, float] = {}
        self._state = VehicleState(config)
        self._scored = {name: (array("d"), array("d")) for name in (sig.ACCEL_LON, sig.ACCEL_LAT)}
        self._clock: float | None = None
        self._lat: float | None = None
        self._lon: float | None = None
        self.route: list[tuple[float, float, float]] = []

    def __call__(self, batch: Sequence[Sample]) -> None:
        """Take one frame's samples."""
        moved = False
        for sample in batch:
            name = sample.name
            times = self._t.get(name)
            if times is None:
                continue
            ts = sample.timestamp
            if check_sample(sample, self._last.get(name)) is not None:
                continue
            self._last[name] = ts
            value = float(sample.value)
            times.append(ts)
            self._v[name].append(value)
            if name in _MOTION:
                self._motion(name, ts, sample)
            elif name == sig.LATITUDE:
                self._lat, moved = value, True
            elif name == sig.LONGITUDE:
                self._lon, moved = value, True
        lat, lon = self._lat, self._lon
        if moved and lat is not None and lon is not None and (lat != 0.0 or lon != 0.0):
            self.route.append((batch[-1].timestamp, lat, lon))

    def _motion(self, name: str, ts: float, sample: Sample) -> None:
        state = self._state
        if self._clock is not None and ts - self._clock > self._config.max_gap_s:
            state.forget_motion()  # as the scorer does across a gap in the data
        if self._clock is None or ts > self._clock:
            self._clock = ts
        state.apply(sample)
        lon_from = sig.ACCEL_LON if state.has_lon_signal else sig.SPEED
        lat_from = sig.ACCEL_LAT if state.has_lat_signal else sig.YAW_RATE
        if name == lon_from and state.accel_lon is not None:
            t, v = self._scored[sig.ACCEL_LON]
            t.append(ts)
            v.append(state.accel_lon)
        elif name == lat_from and state.accel_lat is not None:
            t, v = self._scored[sig.ACCEL_LAT]
            t.append(ts)
            v.append(state.accel_lat)

    def traces(self) -> dict[str, Trace]:
        """The recorded signals that have any values, by canonical name."""
        return {
            name: Trace(name, label, sig.CANONICAL[name].unit, self._t[name], self._v[name])
            for name, label in TRACED.items()
            if self._t[name]
        }

    def scored(self, name: str) -> Trace | None:
        """The smoothed acceleration ``name`` as the harsh detectors see it, or None."""
        t, v = self._scored[name]
        if not t:
            return None
        label = "longitudinal" if name == sig.ACCEL_LON else "lateral"
        return Trace(name, f"{label}, as scored", "m/s^2", t, v)


def _located(event: EventMark, route: Sequence[tuple[float, float, float]],
             max_age_s: float) -> EventMark:  # fmt: skip
    """``event`` with the last position at or before its start (if fresh, as scoring's)."""
    lo, hi = 0, len(route)
    while lo < hi:
        mid = (lo + hi) // 2
        if route[mid][0] <= event.start:
            lo = mid + 1
        else:
            hi = mid
    if lo == 0 or event.start - route[lo - 1][0] > max_age_s:
        return event
    _, lat, lon = route[lo - 1]
    return EventMark(event.type, event.severity, event.start, event.duration_s, event.peak,
                     event.speed_kmh, event.points, (lat, lon))  # fmt: skip


def collect(replay: Replay, progress: Callable[[Progress], None] | None = None) -> TripReport:
    """Run ``replay`` (scoring and, given its writer, records included: the code path of
    ``msp-agent replay``) and gather its report. Raises ReportError when the log yields no
    sample of the map's signals (nothing to draw)."""
    recorder = TraceRecorder(replay.scoring)
    result = replay.run(progress, tap=recorder)
    data = result.to_json()
    traces = recorder.traces()
    if not result.signals:
        rejected = ", ".join(f"{k} {v}" for k, v in data["rejected"].items() if v) or "none"
        raise ReportError(f"{replay.source.path}: no sample decoded with the map from "
                          f"{data['frames']:,} frames (rejected: {rejected}): nothing to "
                          "report")  # fmt: skip
    max_age = replay.scoring.location_max_age_s
    events = tuple(_located(EventMark.from_json(e), recorder.route, max_age)
                   for e in data["events"])  # fmt: skip
    trips = tuple(TripSummary.from_json(t, events) for t in data["trips"])
    for trip, raw in zip(trips, data["trips"], strict=True):
        counted = sum(line.count for line in trip.penalties)
        if counted != sum(raw["events"].values()):
            log.warning("trip at %s: %d events in its time span, its record counts %d",
                        raw["start"], counted, sum(raw["events"].values()))  # fmt: skip
    return TripReport(
        source=data["source"],
        frames=data["frames"],
        decoded_frames=data["decoded_frames"],
        rejected=tuple((k, v) for k, v in data["rejected"].items() if v),
        scoring_rejected=tuple(sorted(data.get("scoring_rejected", {}).items())),
        traces=traces,
        scored_lon=recorder.scored(sig.ACCEL_LON),
        scored_lat=recorder.scored(sig.ACCEL_LAT),
        route=tuple(recorder.route),
        events=events,
        trips=trips,
        thresholds=Thresholds.of(replay.scoring),
    )
