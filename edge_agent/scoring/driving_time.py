"""Time-based detectors: idling, and continuous driving without breaks (改善基準告示)."""

from __future__ import annotations

from msp_protocol.scoring import Severity

from .. import signals as sig
from .config import ScoringConfig
from .model import Event, Location
from .state import VehicleState


class IdlingDetector:
    """Stationary with the engine running for at least ``idle_min_s``: one event per stop.

    The event closes when the vehicle moves or the engine stops. ``peak`` is the fuel
    burned while idling, in litres (0 when the bus carries no fuel figure).
    """

    signals = frozenset({sig.SPEED, sig.ENGINE_SPEED, sig.IGNITION, sig.FUEL_RATE, sig.MAF})

    def __init__(self, config: ScoringConfig) -> None:
        self._config = config
        self._since: float | None = None
        self._last = 0.0
        self._fuel_l = 0.0
        self._location: Location | None = None

    def update(self, name: str, timestamp: float, state: VehicleState) -> list[Event]:
        """Track the current stop; return the idling event when it ends."""
        if not state.idling:
            return self.close(timestamp)
        if self._since is None:
            self._since, self._last, self._fuel_l = timestamp, timestamp, 0.0
            self._location = state.location(timestamp)
            return []
        rate = state.fuel_rate_lph
        step = timestamp - self._last
        if rate is not None and step <= self._config.max_gap_s:
            self._fuel_l += rate * step / 3600.0
        self._last = timestamp
        return []

    def close(self, timestamp: float) -> list[Event]:
        """End the current stop at ``timestamp``; an event if it lasted ``idle_min_s``."""
        since, self._since = self._since, None
        if since is None or timestamp - since < self._config.idle_min_s:
            return []
        return [
            Event(
                type="idling",
                start=since,
                duration_s=timestamp - since,
                peak=self._fuel_l,
                speed_kmh=0.0,
                severity="minor",
                location=self._location,
            )
        ]


class ContinuousDrivingDetector:
    """Driving past the limit without breaks: Japan's rule for truck drivers (2024).

    Driving time accumulates while moving; a stop counts as a break only if it lasts
    ``break_min_s`` (10 min), and once breaks total ``break_total_s`` (30 min) both
    counters restart. When driving time passes ``continuous_driving_limit_s`` an event
    opens; it closes at the start of the stop that completes the breaks, or at trip end.
    ``duration_s`` is the time past the limit; ``peak`` the hours driven without a
    qualifying rest. Trucks: major (a legal limit); cars: minor (advisory).

    The counters run on the source clock across trips: time with no samples at all
    (vehicle off between trips) is a stop.
    """

    signals = frozenset({sig.SPEED})

    def __init__(self, config: ScoringConfig) -> None:
        self._config = config
        self._driving_s = 0.0
        self._breaks_s = 0.0
        self._last: float | None = None
        self._was_moving = False
        self._stop_since: float | None = None
        self._open_since: float | None = None
        self._speed = 0.0
        self._location: Location | None = None

    @property
    def driving_s(self) -> float:
        """Driving time counted since the last complete rest."""
        return self._driving_s

    def update(self, name: str, timestamp: float, state: VehicleState) -> list[Event]:
        """Advance with the current speed; return an event closed by a complete rest."""
        config = self._config
        events: list[Event] = []
        # Each interval between samples belongs to the state at its start.
        last, self._last = self._last, timestamp
        was_moving, self._was_moving = self._was_moving, state.moving
        if last is not None and was_moving:
            if timestamp - last > config.max_gap_s:
                events = self._end_stop(last, timestamp)  # no data: the vehicle was off
            else:
                self._driving_s += timestamp - last
                self._check_limit(last, timestamp, state)
        if not state.moving:
            if self._stop_since is None:
                self._stop_since = timestamp
            stopped = timestamp - self._stop_since
            if stopped >= config.break_min_s and self._breaks_s + stopped >= config.break_total_s:
                events += self._rest(self._stop_since)
                self._stop_since = timestamp  # the rest is spent; later stopping is a new stop
        elif self._stop_since is not None:
            events += self._end_stop(self._stop_since, timestamp)
            self._stop_since = None
        return events

    def _check_limit(self, last: float, timestamp: float, state: VehicleState) -> None:
        limit = self._config.continuous_driving_limit_s
        if self._open_since is None and self._driving_s > limit:
            crossed = timestamp - (self._driving_s - limit)
            # Reopened after a trip closed the event: the new one starts now, not in the past.
            self._open_since = max(crossed, last)
            self._speed = state.speed or 0.0
            self._location = state.location(timestamp)

    def _end_stop(self, since: float, until: float) -> list[Event]:
        stopped = until - since
        if stopped < self._config.break_min_s:
            return []
        self._breaks_s += stopped
        if self._breaks_s >= self._config.break_total_s:
            return self._rest(since)
        return []

    def _rest(self, at: float) -> list[Event]:
        events = self.close(at)
        self._driving_s = self._breaks_s = 0.0
        return events

    def close(self, timestamp: float) -> list[Event]:
        """Close an open event at ``timestamp``; the counters keep running."""
        since, self._open_since = self._open_since, None
        if since is None:
            return []
        severity: Severity = "minor" if self._config.vehicle_class == "car" else "major"
        return [
            Event(
                type="continuous_driving",
                start=since,
                duration_s=max(0.0, timestamp - since),
                peak=self._driving_s / 3600.0,
                speed_kmh=self._speed,
                severity=severity,
                location=self._location,
            )
        ]
