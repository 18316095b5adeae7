"""Crash detection: the bus's crash flag, a horizontal shock, or a sudden speed drop; at once."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .. import signals as sig
from .config import ScoringConfig
from .level import NO_EVENTS
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

    def update(self, name: str, timestamp: float, state: VehicleState) -> Sequence[Event]:
        """Check the triggers the ``name`` sample can fire; return the crash, if any."""
        config = self._config
        trigger = "deceleration"
        speed_before = state.speed if state.speed is not None else 0.0
        if name == sig.ACCEL_LON or name == sig.ACCEL_LAT:  # noqa: PLR1714 - faster than "in"
            peak = math.hypot(state.raw_lon, state.raw_lat)  # a shock
            if peak < config.crash_accel_mps2:
                return NO_EVENTS
        elif name == sig.SPEED:  # a sudden drop
            if state.speed_drop < config.crash_speed_drop_kmh:
                return NO_EVENTS
            peak = state.speed_drop / 3.6 / config.crash_window_s
            if state.speed is not None:
                speed_before = state.speed + state.speed_drop
        elif name == sig.CRASH:  # the flag turning true
            rising = state.crash_flag and not self._flag
            self._flag = state.crash_flag
            if not rising:
                return NO_EVENTS
            peak = math.hypot(state.raw_lon, state.raw_lat)
            trigger = "crash_flag"
        else:
            return NO_EVENTS
        if timestamp < self._quiet_until:
            return NO_EVENTS
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
