"""Crash detection: the bus's crash flag, a horizontal shock, or a sudden speed drop; at once."""

from __future__ import annotations

import math

from .. import signals as sig
from .config import ScoringConfig
from .model import Event
from .state import VehicleState


class CrashDetector:
    """Raises a crash event on the sample that shows it, never waiting for the trip's end.

    Triggers (any one): ``Vehicle.Safety.CrashDetected`` turning true; raw horizontal
    |a| = √(lon² + lat²) ≥ ``crash_accel_mps2`` (unsmoothed: a crash pulse lasts tens of
    ms); speed falling ≥ ``crash_speed_drop_kmh`` within ``crash_window_s``. After a crash
    the detector stays quiet for ``crash_rearm_s`` so one collision is one event.

    The event has ``duration_s`` 0, ``severity`` critical, ``peak`` the horizontal
    acceleration in m/s² (for a speed drop, the mean deceleration over the window), and
    ``speed_kmh`` the speed before the impact; ``trigger`` is ``crash_flag`` or
    ``deceleration`` (shock or speed drop), as the ``emergency`` record names them.
    """

    signals = frozenset({sig.CRASH, sig.ACCEL_LON, sig.ACCEL_LAT, sig.SPEED})

    def __init__(self, config: ScoringConfig) -> None:
        self._config = config
        self._quiet_until = -math.inf
        self._flag = False

    def update(self, name: str, timestamp: float, state: VehicleState) -> list[Event]:
        """Check the triggers the ``name`` sample can fire; return the crash, if any."""
        config = self._config
        rising_flag = name == sig.CRASH and state.crash_flag and not self._flag
        self._flag = state.crash_flag
        peak: float | None = None
        trigger = "crash_flag" if rising_flag else "deceleration"
        horizontal = math.hypot(state.raw_lon, state.raw_lat)
        shock = name in (sig.ACCEL_LON, sig.ACCEL_LAT) and horizontal >= config.crash_accel_mps2
        if rising_flag or shock:
            peak = horizontal
        elif name == sig.SPEED and state.speed_drop >= config.crash_speed_drop_kmh:
            peak = state.speed_drop / 3.6 / config.crash_window_s
        if name == sig.SPEED and state.speed is not None:
            speed_before = state.speed + state.speed_drop
        else:
            speed_before = state.speed if state.speed is not None else 0.0
        if peak is None or timestamp < self._quiet_until:
            return []
        self._quiet_until = timestamp + config.crash_rearm_s
        return [
            Event(
                type="crash",
                start=timestamp,
                duration_s=0.0,
                peak=peak,
                speed_kmh=speed_before,
                severity="critical",
                location=state.location(timestamp),
                trigger=trigger,
            )
        ]

    def close(self, timestamp: float) -> list[Event]:
        """Nothing is ever open: a crash is reported the moment it is seen."""
        return []
