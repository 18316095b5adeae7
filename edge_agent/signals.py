"""The canonical signals of DESIGN.md: names (COVESA VSS style), canonical units and kinds."""

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

CANONICAL: dict[str, SignalSpec] = {
    spec.name: spec
    for spec in (
        SignalSpec(SPEED, "km/h"),
        SignalSpec(SPEED_LIMIT, "km/h"),
        SignalSpec(ACCEL_LON, "m/s^2"),
        SignalSpec(ACCEL_LAT, "m/s^2"),
        SignalSpec(YAW_RATE, "deg/s"),
        SignalSpec(STEERING_ANGLE, "deg"),
        SignalSpec(ACCEL_PEDAL, "%"),
        SignalSpec(BRAKE_PEDAL, "%"),
        SignalSpec(ENGINE_SPEED, "rpm"),
        SignalSpec(GEAR, "1", "int"),
        SignalSpec(FUEL_RATE, "l/h"),
        SignalSpec(MAF, "g/s"),
        SignalSpec(ODOMETER, "km"),
        SignalSpec(LATITUDE, "deg"),
        SignalSpec(LONGITUDE, "deg"),
        SignalSpec(BELTED, "bool", "bool"),
        SignalSpec(CRASH, "bool", "bool"),
        SignalSpec(IGNITION, "bool", "bool"),
    )
}
