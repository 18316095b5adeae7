"""Runs a drive plan through the vehicle model, tick by tick, and keeps the ground truth."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from .plan import Episode, Phase
from .vehicle import Vehicle, VehicleState

TICK_S = 0.01


@dataclass(slots=True)
class _Track:
    """What happened during one injected episode."""

    start: float | None = None
    end: float = 0.0
    peak: float = 0.0
    speed_kmh: float = 0.0


class Drive:
    """Executes phases on a vehicle; iterate :meth:`ticks` to advance time."""

    def __init__(self, vehicle: Vehicle, phases: list[Phase], episodes: list[Episode]) -> None:
        self.vehicle = vehicle
        self.phases = phases
        self.episodes = episodes
        self.tracks = [_Track() for _ in episodes]
        self.phase: Phase | None = None  # the phase being executed

    def ticks(self) -> Iterator[VehicleState]:
        """Advance the drive by TICK_S per iteration, yielding the (mutable) state each tick."""
        s = self.vehicle.state
        for phase in self.phases:
            self.phase = phase
            if phase.limit_kmh is not None:
                s.speed_limit_kmh = phase.limit_kmh
            if phase.kind == "ignition":
                s.ignition = s.engine_running = phase.on
            if phase.kind == "crash":
                s.crash = True
            start_speed, elapsed, turned = s.speed, 0.0, 0.0
            target = phase.target_kmh / 3.6
            while True:
                accel_cmd, yaw_cmd = self._control(phase, s, start_speed, target)
                if phase.kind == "turn":
                    turned += abs(s.yaw_rate) * TICK_S
                self.vehicle.step(TICK_S, accel_cmd, yaw_cmd)
                elapsed += TICK_S
                if phase.episode is not None:
                    self._track(phase, s)
                yield s
                if self._done(phase, s, elapsed, turned, target):
                    break
            if phase.kind == "crash":
                s.speed = s.accel = 0.0

    @staticmethod
    def _control(
        phase: Phase, s: VehicleState, start_speed: float, target: float
    ) -> tuple[float, float]:
        if phase.kind == "speed":
            return (phase.accel if target > s.speed else -phase.accel), 0.0
        if phase.kind == "turn":
            v = max(s.speed, 1.0)
            return 0.5 * (start_speed - s.speed), math.copysign(
                phase.lat_accel / v, phase.angle_deg
            )
        if phase.kind == "crash":
            return -start_speed / phase.seconds, 0.0
        if phase.kind == "idle" or s.speed < 0.05:
            return (-1.0 if s.speed > 0 else 0.0), 0.0
        return 0.5 * (start_speed - s.speed), 0.0

    @staticmethod
    def _done(phase: Phase, s: VehicleState, elapsed: float, turned: float, target: float) -> bool:
        if phase.kind == "speed":
            # Hand over slightly early so the response lag does not overshoot the target.
            return abs(target - s.speed) <= phase.accel * 0.12 or (target == 0 and s.speed == 0)
        if phase.kind == "turn":
            return turned >= math.radians(abs(phase.angle_deg))
        return elapsed >= phase.seconds - 1e-9

    def _track(self, phase: Phase, s: VehicleState) -> None:
        assert phase.episode is not None
        episode, track = self.episodes[phase.episode], self.tracks[phase.episode]
        kmh = s.speed * 3.6
        if episode.type == "speeding":
            if kmh - s.speed_limit_kmh <= (20.0 if episode.severity == "major" else 10.0):
                return
            value = kmh
        elif episode.type in {"harsh_braking", "crash"}:
            value = -s.accel
        elif episode.type == "harsh_acceleration":
            value = s.accel
        elif episode.type == "harsh_cornering":
            value = abs(s.lateral)
        else:  # idling
            value = 0.0
        if track.start is None:
            track.start, track.speed_kmh = s.t - TICK_S, kmh
        track.end = s.t
        track.peak = max(track.peak, value)

    def truth_events(self) -> list[dict[str, object]]:
        """The injected events as they actually happened, in time order (times from drive start)."""
        out: list[dict[str, object]] = []
        for episode, track in zip(self.episodes, self.tracks, strict=True):
            if track.start is None:
                continue
            event: dict[str, object] = {
                "type": episode.type,
                "t": round(track.start, 3),
                "duration_s": round(track.end - track.start, 3),
                "peak": round(track.peak, 3),
                "speed_kmh": round(track.speed_kmh, 2),
            }
            if episode.severity:
                event["severity"] = episode.severity
            out.append(event)
        return sorted(out, key=lambda e: float(str(e["t"])))
