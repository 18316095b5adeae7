"""Harsh braking, acceleration and cornering: threshold detectors on smoothed acceleration."""

from __future__ import annotations

from collections.abc import Sequence

from .. import signals as sig
from .config import ScoringConfig
from .level import LevelDetector, LevelRule, closed
from .model import Event
from .state import VehicleState


class LongitudinalDetector:
    """Harsh braking (deceleration, speed gate at start) and harsh acceleration.

    Watches the smoothed longitudinal acceleration; on a bus without an acceleration
    signal, the slope of speed over a 1 s window stands in for it.
    """

    signals = frozenset({sig.ACCEL_LON, sig.SPEED})

    def __init__(self, config: ScoringConfig) -> None:
        self._min_speed = config.braking_min_speed_kmh
        self._braking = LevelDetector(
            LevelRule(
                "harsh_braking",
                config.harsh_braking_mps2,
                config.harsh_sustain_s,
                config.hysteresis,
                config.rearm_s,
            )
        )
        self._accelerating = LevelDetector(
            LevelRule(
                "harsh_acceleration",
                config.harsh_acceleration_mps2,
                config.harsh_sustain_s,
                config.hysteresis,
                config.rearm_s,
            )
        )

    def update(self, name: str, timestamp: float, state: VehicleState) -> Sequence[Event]:
        """Advance on the acceleration signal (or on speed when there is none)."""
        source = sig.ACCEL_LON if state.has_lon_signal else sig.SPEED
        if name != source or state.accel_lon is None:
            return []
        speed = state.speed if state.speed is not None else 0.0
        braking = self._braking.update(
            timestamp,
            -state.accel_lon,
            speed_kmh=speed,
            gate=speed >= self._min_speed,
            locate=state.location,
        )
        accelerating = self._accelerating.update(
            timestamp, state.accel_lon, speed_kmh=speed, locate=state.location
        )
        return closed(braking, accelerating)

    def close(self, timestamp: float) -> Sequence[Event]:
        """Close open events at ``timestamp``."""
        return closed(self._braking.finish(timestamp), self._accelerating.finish(timestamp))


class CorneringDetector:
    """Harsh cornering: smoothed |lateral acceleration| (or yaw rate * speed), speed gate."""

    signals = frozenset({sig.ACCEL_LAT, sig.YAW_RATE})

    def __init__(self, config: ScoringConfig) -> None:
        self._min_speed = config.cornering_min_speed_kmh
        self._level = LevelDetector(
            LevelRule(
                "harsh_cornering",
                config.harsh_cornering_mps2,
                config.harsh_sustain_s,
                config.hysteresis,
                config.rearm_s,
            )
        )

    def update(self, name: str, timestamp: float, state: VehicleState) -> Sequence[Event]:
        """Advance on the lateral signal (or on yaw rate when there is none)."""
        source = sig.ACCEL_LAT if state.has_lat_signal else sig.YAW_RATE
        if name != source or state.accel_lat is None:
            return []
        speed = state.speed if state.speed is not None else 0.0
        return closed(
            self._level.update(
                timestamp,
                abs(state.accel_lat),
                speed_kmh=speed,
                gate=speed >= self._min_speed,
                locate=state.location,
            )
        )

    def close(self, timestamp: float) -> Sequence[Event]:
        """Close an open event at ``timestamp``."""
        return closed(self._level.finish(timestamp))
