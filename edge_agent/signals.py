"""The canonical signals of DESIGN.md: names (COVESA VSS style), units, kinds, plausible ranges."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["float", "int", "bool"]


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """A canonical signal: its name, the unit every decoder must deliver, and its value kind."""

    name: str
    unit: str
    kind: Kind = "float"
    #: Physically possible values in ``unit`` (DESIGN.md, "Plausibility"); None for bools.
    plausible: tuple[float, float] | None = None


SPEED = "Vehicle.Speed"
SPEED_LIMIT = "Vehicle.SpeedLimit"
ACCEL_LON = "Vehicle.Acceleration.Longitudinal"
ACCEL_LAT = "Vehicle.Acceleration.Lateral"
YAW_RATE = "Vehicle.AngularVelocity.Yaw"
STEERING_ANGLE = "Vehicle.Chassis.SteeringWheel.Angle"
ACCEL_PEDAL = "Vehicle.Chassis.Accelerator.PedalPosition"
BRAKE_PEDAL = "Vehicle.Chassis.Brake.PedalPosition"
ENGINE_SPEED = "Vehicle.Powertrain.CombustionEngine.Speed"
GEAR = "Vehicle.Powertrain.Transmission.CurrentGear"
FUEL_RATE = "Vehicle.OBD.FuelRate"
MAF = "Vehicle.OBD.MAF"
ODOMETER = "Vehicle.TraveledDistance"
LATITUDE = "Vehicle.CurrentLocation.Latitude"
LONGITUDE = "Vehicle.CurrentLocation.Longitude"
BELTED = "Vehicle.Cabin.Seat.Row1.DriverSide.IsBelted"
CRASH = "Vehicle.Safety.CrashDetected"
IGNITION = "Vehicle.IsIgnitionOn"

_PEDAL = (-5.0, 105.0)

CANONICAL: dict[str, SignalSpec] = {
    spec.name: spec
    for spec in (
        # negative speeds are plausible: some buses sign the speed in reverse
        SignalSpec(SPEED, "km/h", plausible=(-50.0, 450.0)),
        SignalSpec(SPEED_LIMIT, "km/h", plausible=(-50.0, 450.0)),
        # crash pulses included
        SignalSpec(ACCEL_LON, "m/s^2", plausible=(-300.0, 300.0)),
        SignalSpec(ACCEL_LAT, "m/s^2", plausible=(-300.0, 300.0)),
        SignalSpec(YAW_RATE, "deg/s", plausible=(-1000.0, 1000.0)),
        SignalSpec(STEERING_ANGLE, "deg", plausible=(-1500.0, 1500.0)),
        SignalSpec(ACCEL_PEDAL, "%", plausible=_PEDAL),
        SignalSpec(BRAKE_PEDAL, "%", plausible=_PEDAL),
        SignalSpec(ENGINE_SPEED, "rpm", plausible=(0.0, 20000.0)),
        SignalSpec(GEAR, "1", "int", plausible=(-2.0, 12.0)),
        # the OBD-II encodings' full ranges (PID 0x5E, PID 0x10)
        SignalSpec(FUEL_RATE, "l/h", plausible=(0.0, 3276.75)),
        SignalSpec(MAF, "g/s", plausible=(0.0, 655.35)),
        SignalSpec(ODOMETER, "km", plausible=(0.0, 10_000_000.0)),
        SignalSpec(LATITUDE, "deg", plausible=(-90.0, 90.0)),
        SignalSpec(LONGITUDE, "deg", plausible=(-180.0, 180.0)),
        SignalSpec(BELTED, "bool", "bool"),
        SignalSpec(CRASH, "bool", "bool"),
        SignalSpec(IGNITION, "bool", "bool"),
    )
}
