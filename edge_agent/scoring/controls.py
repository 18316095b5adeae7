"""The driver's use of the controls: pedal misapplication (踏み間違い) and the seatbelt."""

from __future__ import annotations

import enum
from collections.abc import Sequence

from .. import signals as sig
from .config import ScoringConfig
from .level import LevelDetector, LevelRule, closed
from .model import Event, Location
from .state import VehicleState


class _Stomp(enum.Enum):
    IDLE = "idle"
    ARMED = "armed"  # pedal went to full quickly at low speed; waiting for the car to lunge
    ACTIVE = "active"  # the car lunged: an event is open until the pedal comes back


class PedalMisapplicationDetector:
    """Two rules, one event type.

    *Stomp* (critical): the accelerator goes from released (≤ ``pedal_released_pct``) to
    ≥ ``pedal_full_pct`` within ``pedal_rise_s`` while below ``pedal_low_speed_kmh`` or in
    reverse, and within the following ``pedal_rise_s`` the vehicle accelerates harder than
    ``pedal_accel_mps2`` (either direction in reverse). Peak: the largest |acceleration|,
    m/s². The event runs until the accelerator is released below full less hysteresis.

    *Both pedals* (major): accelerator and brake both above ``pedal_overlap_pct`` for
    ``pedal_overlap_s`` above ``pedal_overlap_min_speed_kmh``. Peak: the lower pedal's %.
    """

    signals = frozenset({sig.ACCEL_PEDAL, sig.BRAKE_PEDAL, sig.ACCEL_LON, sig.SPEED})

    def __init__(self, config: ScoringConfig) -> None:
        self._config = config
        self._phase = _Stomp.IDLE
        self._released_at: float | None = None
        self._start = 0.0
        self._speed = 0.0
        self._peak = 0.0
        self._location: Location | None = None
        self._overlap = LevelDetector(
            LevelRule(
                "pedal_misapplication",
                config.pedal_overlap_pct,
                config.pedal_overlap_s,
                config.hysteresis,
                config.rearm_s,
                inclusive=False,
                fixed_severity="major",
            )
        )

    def update(self, name: str, timestamp: float, state: VehicleState) -> Sequence[Event]:
        """Advance both rules with the current pedals, speed and acceleration."""
        stomp = self._update_stomp(name, timestamp, state)
        overlap = None
        if name in (sig.ACCEL_PEDAL, sig.BRAKE_PEDAL, sig.SPEED):
            overlap = self._update_overlap(timestamp, state)
        return closed(stomp, overlap)

    def _update_overlap(self, timestamp: float, state: VehicleState) -> Event | None:
        if state.accel_pedal is None or state.brake_pedal is None or state.speed is None:
            return None
        both = min(state.accel_pedal, state.brake_pedal)
        fast_enough = state.speed > self._config.pedal_overlap_min_speed_kmh
        return self._overlap.update(
            timestamp,
            both if fast_enough else 0.0,
            speed_kmh=state.speed,
            locate=state.location,
        )

    def _update_stomp(self, name: str, timestamp: float, state: VehicleState) -> Event | None:
        config = self._config
        pedal = state.accel_pedal
        if pedal is None:
            return None
        if name == sig.ACCEL_PEDAL and pedal <= config.pedal_released_pct:
            self._released_at = timestamp
        if self._phase is _Stomp.IDLE:
            if name != sig.ACCEL_PEDAL or pedal < config.pedal_full_pct:
                return None
            slow = state.speed is not None and state.speed < config.pedal_low_speed_kmh
            quick = (
                self._released_at is not None
                and timestamp - self._released_at <= config.pedal_rise_s
            )
            if quick and (slow or state.reversing):
                self._phase = _Stomp.ARMED
                self._start, self._speed, self._peak = timestamp, state.speed or 0.0, 0.0
                self._location = state.location(timestamp)
            return None
        released = pedal < config.pedal_full_pct * (1.0 - config.hysteresis)
        lunge = abs(state.accel_lon) if state.accel_lon is not None else 0.0
        if not state.reversing and state.accel_lon is not None:
            lunge = max(0.0, state.accel_lon)
        if self._phase is _Stomp.ARMED:
            if released or timestamp - self._start > config.pedal_rise_s:
                self._phase = _Stomp.IDLE
            elif lunge > config.pedal_accel_mps2:
                self._phase = _Stomp.ACTIVE
                self._peak = lunge
            return None
        self._peak = max(self._peak, lunge)
        return self._close(timestamp) if released else None

    def _close(self, timestamp: float) -> Event:
        self._phase = _Stomp.IDLE
        return Event(
            type="pedal_misapplication",
            start=self._start,
            duration_s=max(0.0, timestamp - self._start),
            peak=self._peak,
            speed_kmh=self._speed,
            severity="critical",
            location=self._location,
        )

    def close(self, timestamp: float) -> Sequence[Event]:
        """Close open events at ``timestamp`` and re-arm."""
        stomp = self._close(timestamp) if self._phase is _Stomp.ACTIVE else None
        self._phase = _Stomp.IDLE
        self._released_at = None
        return closed(stomp, self._overlap.finish(timestamp))


class SeatbeltDetector:
    """Driver unbelted for ``seatbelt_s`` above ``seatbelt_min_speed_kmh``; peak is km/h."""

    signals = frozenset({sig.BELTED, sig.SPEED})

    def __init__(self, config: ScoringConfig) -> None:
        self._level = LevelDetector(
            LevelRule(
                "seatbelt",
                config.seatbelt_min_speed_kmh,
                config.seatbelt_s,
                config.hysteresis,
                config.rearm_s,
                inclusive=False,
                fixed_severity="major",
            )
        )

    def update(self, name: str, timestamp: float, state: VehicleState) -> Sequence[Event]:
        """Watch the speed while the belt is known to be open (0 while belted)."""
        if state.speed is None or state.belted is None:
            return []
        value = 0.0 if state.belted else state.speed
        return closed(
            self._level.update(
                timestamp, value, speed_kmh=state.speed, locate=state.location
            )
        )

    def close(self, timestamp: float) -> Sequence[Event]:
        """Close an open event at ``timestamp``."""
        return closed(self._level.finish(timestamp))
