"""Speeding: time over the posted limit (or the class maximum), graded minor, major, critical."""

from __future__ import annotations

import enum

from msp_protocol.scoring import Severity

from .. import signals as sig
from .config import ScoringConfig
from .model import Event, Location
from .state import VehicleState


class _Phase(enum.Enum):
    IDLE = "idle"
    PENDING = "pending"
    ACTIVE = "active"
    REARM = "rearm"


class SpeedingDetector:
    """One event per stretch over the limit.

    The excess is speed - ``Vehicle.SpeedLimit`` (or - ``max_speed_kmh`` while the bus
    offers no limit). A stretch becomes an event once the excess has stayed above
    ``speeding_minor_over_kmh`` for ``speeding_minor_s`` (minor), or above
    ``speeding_major_over_kmh`` for ``speeding_major_s`` (major; critical when it peaked
    above ``speeding_critical_over_kmh``). It ends when the excess falls below the minor
    margin less the hysteresis. ``peak`` is the highest speed in km/h.

    A minor event starts at the first moment over the minor margin; a major (or critical)
    one at the start of the stretch over the major margin that made it major, so its
    start, speed and duration describe the serious part (the approach is not counted).
    """

    signals = frozenset({sig.SPEED, sig.SPEED_LIMIT})

    def __init__(self, config: ScoringConfig) -> None:
        self._config = config
        self._release = config.speeding_minor_over_kmh * (1.0 - config.hysteresis)
        self._phase = _Phase.IDLE
        self._start = 0.0
        self._speed = 0.0
        self._peak = 0.0
        self._peak_excess = 0.0
        self._location: Location | None = None
        self._major_since: float | None = None
        self._major_speed = 0.0
        self._major_location: Location | None = None
        self._major: tuple[float, float, Location | None] | None = None  # start, speed, where
        self._below_since: float | None = None

    def excess(self, state: VehicleState) -> float | None:
        """km/h over the limit in force (None while speed is unknown)."""
        if state.speed is None:
            return None
        limit = state.speed_limit if state.speed_limit is not None else self._config.max_speed_kmh
        return state.speed - limit

    def update(self, name: str, timestamp: float, state: VehicleState) -> list[Event]:
        """Advance with the current speed and limit; return the stretch that ended."""
        excess = self.excess(state)
        if excess is None:
            return []
        config = self._config
        if self._phase is _Phase.REARM:
            if excess >= self._release:
                self._below_since = None
            elif self._below_since is None:
                self._below_since = timestamp
            if self._below_since is None or timestamp - self._below_since < config.rearm_s:
                return []
            self._phase = _Phase.IDLE
        if self._phase is _Phase.IDLE:
            if excess > config.speeding_minor_over_kmh:
                self._phase = _Phase.PENDING
                self._start, self._speed = timestamp, state.speed or 0.0
                self._peak, self._peak_excess = self._speed, excess
                self._location = state.location(timestamp)
                self._major_since, self._major = None, None
                self._track_major(timestamp, state)
            return []
        if self._phase is _Phase.PENDING and excess <= config.speeding_minor_over_kmh:
            self._phase = _Phase.IDLE
            return []
        if self._phase is _Phase.ACTIVE and excess < self._release:
            return [self._close(timestamp)]
        self._peak = max(self._peak, state.speed or 0.0)
        self._peak_excess = max(self._peak_excess, excess)
        self._track_major(timestamp, state)
        if self._phase is _Phase.PENDING and (
            self._major is not None or timestamp - self._start >= config.speeding_minor_s
        ):
            self._phase = _Phase.ACTIVE
        return []

    def _track_major(self, timestamp: float, state: VehicleState) -> None:
        if self._major is not None:
            return
        excess = self.excess(state)
        if excess is None or excess <= self._config.speeding_major_over_kmh:
            self._major_since = None
            return
        if self._major_since is None:
            self._major_since = timestamp
            self._major_speed = state.speed or 0.0
            self._major_location = state.location(timestamp)
        if timestamp - self._major_since >= self._config.speeding_major_s:
            self._major = (self._major_since, self._major_speed, self._major_location)

    def _close(self, timestamp: float) -> Event:
        self._phase = _Phase.REARM
        self._below_since = timestamp
        severity: Severity = "minor"
        start, speed, location = self._start, self._speed, self._location
        if self._major is not None:
            start, speed, location = self._major
            severity = "major"
            if self._peak_excess > self._config.speeding_critical_over_kmh:
                severity = "critical"
        return Event(
            type="speeding",
            start=start,
            duration_s=max(0.0, timestamp - start),
            peak=self._peak,
            speed_kmh=speed,
            severity=severity,
            location=location,
        )

    def close(self, timestamp: float) -> list[Event]:
        """Close an open stretch at ``timestamp`` and re-arm."""
        events = [self._close(timestamp)] if self._phase is _Phase.ACTIVE else []
        self._phase = _Phase.IDLE
        return events
