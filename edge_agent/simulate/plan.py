"""Drive plans: a seeded sequence of manoeuvres (phases), some of them injected driving events."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .vehicle import CAR, HEAVY_TRUCK, VehicleParams

SCENARIOS = ("city", "highway", "mixed", "truck")


@dataclass(frozen=True, slots=True)
class Phase:
    """One manoeuvre. ``episode`` ties the phases of one injected event together."""

    kind: str  # "idle", "speed", "cruise", "turn", "crash", "ignition"
    seconds: float = 0.0
    target_kmh: float = 0.0
    accel: float = 0.0
    angle_deg: float = 0.0
    lat_accel: float = 0.0
    limit_kmh: float | None = None
    on: bool = True
    episode: int | None = None


@dataclass(frozen=True, slots=True)
class Episode:
    """An injected driving event: what the scorer must find."""

    type: str
    severity: str | None = None


@dataclass(frozen=True, slots=True)
class Magnitudes:
    """Per-class ranges of normal and harsh manoeuvres, m/s^2 (harsh ones clear every threshold)."""

    accel: tuple[float, float]
    decel: tuple[float, float]
    lat: tuple[float, float]
    harsh_accel: tuple[float, float]
    harsh_decel: tuple[float, float]
    harsh_lat: tuple[float, float]
    highway_limit: float
    highway_accel: tuple[float, float]


CAR_MAGNITUDES = Magnitudes(
    (1.0, 1.8), (1.2, 2.0), (1.0, 2.2), (4.3, 5.0), (4.6, 6.0), (4.8, 5.6), 100.0, (1.0, 1.5)
)
TRUCK_MAGNITUDES = Magnitudes(
    (0.5, 0.9), (0.8, 1.4), (0.6, 1.3), (3.1, 3.5), (3.8, 4.6), (3.8, 4.4), 80.0, (0.4, 0.7)
)


class PlanBuilder:
    """Builds a plan of about ``duration`` seconds for a scenario, deterministic for a seed."""

    def __init__(self, scenario: str, seed: int, duration: float, crash: bool) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
        self.scenario = scenario
        self.rng = random.Random(seed)
        self.duration = duration
        self.crash = crash
        self.params: VehicleParams = HEAVY_TRUCK if scenario == "truck" else CAR
        self.mag = TRUCK_MAGNITUDES if scenario == "truck" else CAR_MAGNITUDES
        self.phases: list[Phase] = []
        self.episodes: list[Episode] = []
        self._elapsed = 0.0
        self._speed = 0.0  # km/h at the end of the plan so far
        self._limit = 50.0

    # --- primitives -------------------------------------------------------------------------
    def _u(self, bounds: tuple[float, float]) -> float:
        return self.rng.uniform(*bounds)

    def _add(self, phase: Phase) -> None:
        if phase.kind in ("idle", "cruise", "ignition"):
            self._elapsed += phase.seconds
        elif phase.kind == "speed":
            self._elapsed += abs(phase.target_kmh - self._speed) / 3.6 / phase.accel + 0.3
            self._speed = phase.target_kmh
        elif phase.kind == "turn":
            v = self._speed / 3.6
            self._elapsed += math.radians(abs(phase.angle_deg)) / (phase.lat_accel / v)
        if phase.limit_kmh is not None:
            self._limit = phase.limit_kmh
        self.phases.append(phase)

    def _episode(self, type_: str, severity: str | None = None) -> int:
        self.episodes.append(Episode(type_, severity))
        return len(self.episodes) - 1

    def _speed_to(self, kmh: float, accel: float, episode: int | None = None) -> None:
        self._add(Phase("speed", target_kmh=kmh, accel=accel, episode=episode))

    def _cruise(self, seconds: float) -> None:
        self._add(Phase("cruise", seconds=seconds))

    def _left(self) -> float:
        return self.duration - self._elapsed

    # --- legs --------------------------------------------------------------------------------
    def _city_leg(self) -> None:
        limit = self.rng.choice((40.0, 50.0, 60.0))
        self._add(Phase("cruise", seconds=0.0, limit_kmh=limit))
        cruise = limit - self._u((3.0, 8.0))
        if self._speed < 1 and self.rng.random() < 0.35:
            ep = self._episode("harsh_acceleration")
            self._speed_to(min(cruise, 45.0), self._u(self.mag.harsh_accel), ep)
        self._speed_to(cruise, self._u(self.mag.accel))
        self._cruise(self._u((12.0, 30.0)))
        if self.rng.random() < 0.3:
            ep = self._episode("harsh_cornering")
            self._speed_to(32.0, self._u(self.mag.decel))
            self._cruise(3.0)
            self._add(
                Phase(
                    "turn",
                    angle_deg=self.rng.choice((-1, 1)) * self._u((60, 90)),
                    lat_accel=self._u(self.mag.harsh_lat),
                    episode=ep,
                )
            )
        else:
            self._speed_to(20.0, self._u(self.mag.decel))
            self._add(
                Phase(
                    "turn",
                    angle_deg=self.rng.choice((-90.0, 90.0)),
                    lat_accel=min(self.mag.lat[1], (20 / 3.6) ** 2 / 14),
                )
            )
        self._cruise(3.0)
        self._speed_to(cruise, self._u(self.mag.accel))
        self._cruise(self._u((12.0, 25.0)))
        if self.rng.random() < 0.4:
            ep = self._episode("harsh_braking")
            self._speed_to(0.0, self._u(self.mag.harsh_decel), ep)
        else:
            self._speed_to(0.0, self._u(self.mag.decel))
        idling_odds = 0.5 if self.scenario == "truck" else 0.25
        if self._left() > 450 and self.rng.random() < idling_odds:
            ep = self._episode("idling")
            self._add(Phase("idle", seconds=self._u((310.0, 340.0)), episode=ep))
            self._add(Phase("idle", seconds=5.0))
        else:
            self._add(Phase("idle", seconds=self._u((6.0, 25.0))))

    def _highway_leg(self) -> None:
        limit = self.mag.highway_limit
        self._add(Phase("cruise", seconds=0.0, limit_kmh=limit))
        cruise = limit - self._u((3.0, 10.0))
        self._speed_to(cruise, self._u(self.mag.highway_accel))
        self._cruise(self._u((20.0, 50.0)))
        self._add(
            Phase(
                "turn",
                angle_deg=self.rng.choice((-1, 1)) * self._u((15, 30)),
                lat_accel=self._u(self.mag.lat),
            )
        )
        self._cruise(self._u((15.0, 30.0)))
        roll = self.rng.random()
        if roll < 0.5:
            major = self.rng.random() < 0.5
            ep = self._episode("speeding", "major" if major else "minor")
            over = self._u((24.0, 30.0)) if major else self._u((13.0, 17.0))
            self._speed_to(limit + over, 1.0, ep)
            self._add(
                Phase("cruise", seconds=self._u((8.0, 12.0) if major else (14.0, 18.0)), episode=ep)
            )
            self._speed_to(cruise, 1.0, ep)
        elif roll < 0.75:
            ep = self._episode("harsh_braking")
            self._speed_to(cruise - 35.0, self._u(self.mag.harsh_decel), ep)
            self._cruise(3.0)
            self._speed_to(cruise, self._u(self.mag.highway_accel))
        self._cruise(self._u((15.0, 40.0)))
        self._speed_to(50.0, self._u(self.mag.decel))

    def build(self) -> tuple[list[Phase], list[Episode]]:
        """Return the phases and injected episodes of the plan."""
        self._add(Phase("ignition", seconds=2.0, on=False))
        self._add(Phase("ignition", seconds=4.0, on=True))
        legs = {
            "city": ("city",),
            "highway": ("highway",),
            "mixed": ("city", "highway"),
            "truck": ("city", "highway"),
        }[self.scenario]
        reserve = 40.0 if self.crash else 20.0
        i = 0
        while self._left() > reserve + 60 or i == 0:
            leg = legs[i % len(legs)]
            (self._city_leg if leg == "city" else self._highway_leg)()
            i += 1
        if self.crash:
            self._add(Phase("cruise", seconds=0.0, limit_kmh=50.0))
            self._speed_to(40.0, self._u(self.mag.accel))
            self._cruise(8.0)
            self._add(Phase("crash", seconds=0.12, episode=self._episode("crash")))
            self._add(Phase("idle", seconds=5.0))
        else:
            self._speed_to(0.0, self._u(self.mag.decel))
            self._add(Phase("idle", seconds=3.0))
        self._add(Phase("ignition", seconds=3.0, on=False))
        return self.phases, self.episodes
