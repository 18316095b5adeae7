"""A simple longitudinal/lateral vehicle model: speed, yaw, powertrain, fuel, position."""

from __future__ import annotations

import math
from dataclasses import dataclass

G = 9.80665
EARTH_RADIUS_M = 6_371_000.0


@dataclass(frozen=True, slots=True)
class VehicleParams:
    """Physical parameters of a simulated vehicle class."""

    vehicle_class: str
    mass_kg: float
    drag_area_m2: float  # Cd·A
    rolling_coeff: float
    wheel_radius_m: float
    gear_ratios: tuple[float, ...]
    final_drive: float
    idle_rpm: float
    upshift_rpm: float
    downshift_rpm: float
    idle_fuel_lph: float
    fuel_energy_j_per_l: float  # lower heating value
    engine_efficiency: float
    max_power_w: float
    fuel_density_g_per_l: float
    air_fuel_ratio: float


CAR = VehicleParams(
    "car",
    1500.0,
    0.68,
    0.012,
    0.31,
    (3.5, 2.1, 1.4, 1.0, 0.8, 0.65),
    4.1,
    750.0,
    2600.0,
    1200.0,
    0.7,
    32.0e6,
    0.27,
    110e3,
    740.0,
    14.7,
)
HEAVY_TRUCK = VehicleParams(
    "heavy_truck",
    12000.0,
    5.5,
    0.007,
    0.5,
    (9.0, 6.0, 4.2, 3.0, 2.1, 1.5, 1.1, 0.85),
    3.4,
    600.0,
    1700.0,
    1000.0,
    1.6,
    35.8e6,
    0.38,
    260e3,
    832.0,
    14.5,
)


@dataclass(slots=True)
class VehicleState:
    """The true state of the simulated vehicle at one instant (SI units unless named)."""

    t: float = 0.0
    speed: float = 0.0  # m/s
    accel: float = 0.0  # m/s^2, + forward
    yaw_rate: float = 0.0  # rad/s, + counter-clockwise
    heading: float = 0.0  # rad, clockwise from north
    lat: float = 35.6812
    lon: float = 139.7671
    odometer_m: float = 0.0
    distance_m: float = 0.0
    fuel_l: float = 0.0
    fuel_rate_lph: float = 0.0
    rpm: float = 0.0
    gear: int = 0
    accel_pedal: float = 0.0
    brake_pedal: float = 0.0
    ignition: bool = False
    engine_running: bool = False
    belted: bool = True
    crash: bool = False
    speed_limit_kmh: float = 50.0
    steering_deg: float = 0.0
    maf_gps: float = 0.0

    @property
    def lateral(self) -> float:
        """Lateral acceleration, m/s^2, + left (ISO 8855)."""
        return self.speed * self.yaw_rate


class Vehicle:
    """Integrates commanded acceleration and yaw rate into a consistent vehicle state."""

    #: Time constants of the response to a command: drivers and vehicles are not instantaneous.
    ACCEL_TAU_S = 0.12
    YAW_TAU_S = 0.2
    WHEELBASE_M = 2.7
    STEERING_RATIO = 15.0

    def __init__(self, params: VehicleParams, odometer_km: float) -> None:
        self.params = params
        self.state = VehicleState(odometer_m=odometer_km * 1000.0)

    def step(self, dt: float, accel_cmd: float, yaw_cmd: float, pedal_cap: float = 75.0) -> None:
        """Advance the model by ``dt`` seconds towards the commanded accel and yaw rate."""
        s = self.state
        s.t += dt
        if s.crash:  # an impact is not a driver input: no lag
            s.accel, yaw_cmd = accel_cmd, 0.0
        else:
            s.accel += (accel_cmd - s.accel) * min(1.0, dt / self.ACCEL_TAU_S)
        new_speed = max(0.0, s.speed + s.accel * dt)
        if new_speed == 0.0 and s.accel < 0:
            s.accel = -s.speed / dt if s.speed > 0 else 0.0
        avg = 0.5 * (s.speed + new_speed)
        s.speed = new_speed
        s.yaw_rate += (yaw_cmd - s.yaw_rate) * min(1.0, dt / self.YAW_TAU_S)
        if s.speed < 0.5:
            s.yaw_rate = 0.0
        s.heading = (s.heading - s.yaw_rate * dt) % (2 * math.pi)
        s.distance_m += avg * dt
        s.odometer_m += avg * dt
        s.lat += math.degrees(avg * dt * math.cos(s.heading) / EARTH_RADIUS_M)
        s.lon += math.degrees(
            avg * dt * math.sin(s.heading) / (EARTH_RADIUS_M * math.cos(math.radians(s.lat)))
        )
        s.steering_deg = (
            math.degrees(math.atan(self.WHEELBASE_M * s.yaw_rate / s.speed)) * self.STEERING_RATIO
            if s.speed > 0.5
            else s.steering_deg * 0.9
        )
        self._powertrain(dt, pedal_cap)

    def _powertrain(self, dt: float, pedal_cap: float) -> None:
        s, p = self.state, self.params
        if not s.engine_running:
            s.rpm = s.fuel_rate_lph = s.maf_gps = s.accel_pedal = s.brake_pedal = 0.0
            s.gear = 0
            return
        resist = p.mass_kg * G * p.rolling_coeff + 0.5 * 1.2 * p.drag_area_m2 * s.speed**2
        traction = p.mass_kg * s.accel + (resist if s.speed > 0.1 else 0.0)
        power = max(0.0, traction * s.speed)
        s.fuel_rate_lph = (
            p.idle_fuel_lph + power / (p.engine_efficiency * p.fuel_energy_j_per_l) * 3600
        )
        s.fuel_l += s.fuel_rate_lph * dt / 3600
        s.maf_gps = s.fuel_rate_lph * p.fuel_density_g_per_l / 3600 * p.air_fuel_ratio
        if traction > 0:
            demand = (
                100.0 * (power + 0.15 * p.max_power_w * min(1.0, s.accel / 2.0)) / p.max_power_w
            )
            s.accel_pedal, s.brake_pedal = min(pedal_cap, max(0.0, 5.0 + demand)), 0.0
        else:
            s.accel_pedal = 0.0
            s.brake_pedal = min(100.0, max(0.0, -traction / (p.mass_kg * G) * 160.0))
        wheel_rpm = s.speed / (2 * math.pi * p.wheel_radius_m) * 60
        if s.speed < 0.3:
            s.gear = 1
        else:
            s.gear = max(1, s.gear)
            while (
                s.gear < len(p.gear_ratios)
                and wheel_rpm * p.gear_ratios[s.gear - 1] * p.final_drive > p.upshift_rpm
            ):
                s.gear += 1
            while (
                s.gear > 1
                and wheel_rpm * p.gear_ratios[s.gear - 1] * p.final_drive < p.downshift_rpm
            ):
                s.gear -= 1
        s.rpm = max(p.idle_rpm, wheel_rpm * p.gear_ratios[s.gear - 1] * p.final_drive)
