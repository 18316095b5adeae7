"""Encodes the simulated vehicle state into demo-DBC frames plus realistic background traffic."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cantools
from cantools.database.can import Database, Message

from ..frames import Frame
from .vehicle import G, VehicleState

Values = dict[str, float]


@dataclass(frozen=True, slots=True)
class _Periodic:
    message: Message
    period_ticks: int
    offset_s: float
    values: Callable[[VehicleState, random.Random], Values]


def _kinematics(s: VehicleState, rng: random.Random) -> Values:
    # IMU noise, plus the rare single-sample spike real sensors show (issue: 0.4 g on a calm road).
    ax = s.accel + rng.gauss(0.0, 0.08)
    ay = s.lateral + rng.gauss(0.0, 0.08)
    if rng.random() < 0.002:
        spike = rng.choice((-1, 1)) * rng.uniform(0.35, 0.45) * G
        if rng.random() < 0.5:
            ax += spike
        else:
            ay += spike
    return {
        "AccelX": ax,
        "AccelY": -ay / G,
        "YawRate": math.degrees(s.yaw_rate) + rng.gauss(0, 0.1),
    }


def _wheels(s: VehicleState, rng: random.Random) -> Values:
    kmh, spread = s.speed * 3.6, s.yaw_rate * 0.8 * 3.6  # outer wheels faster in a turn
    return {
        "WheelSpeedFL": max(0.0, kmh - spread),
        "WheelSpeedFR": max(0.0, kmh + spread),
        "WheelSpeedRL": max(0.0, kmh - spread),
        "WheelSpeedRR": max(0.0, kmh + spread),
    }


_SIGNALS: dict[str, tuple[float, Callable[[VehicleState, random.Random], Values]]] = {
    # message: (period s, values)
    "VEHICLE_SPEED": (
        0.02,
        lambda s, r: {"VehicleSpeed": s.speed * 3.6, "SpeedLimit": s.speed_limit_kmh},
    ),
    "WHEEL_SPEEDS": (0.02, _wheels),
    "KINEMATICS": (0.01, _kinematics),
    "STEERING": (0.01, lambda s, r: {"SteeringAngle": s.steering_deg}),
    "PEDALS": (
        0.02,
        lambda s, r: {
            "AcceleratorPedal": s.accel_pedal,
            "BrakePedal": s.brake_pedal,
            "BrakeSwitch": float(s.brake_pedal > 2),
        },
    ),
    "ENGINE": (0.01, lambda s, r: {"EngineSpeed": s.rpm, "EngineRunning": float(s.engine_running)}),
    "FUEL": (0.1, lambda s, r: {"FuelRate": s.fuel_rate_lph, "MassAirFlow": s.maf_gps}),
    "TRANSMISSION": (0.05, lambda s, r: {"Gear": float(s.gear)}),
    "ODOMETER": (1.0, lambda s, r: {"TotalDistance": s.odometer_m, "TripDistance": s.distance_m}),
    "BODY": (
        0.1,
        lambda s, r: {
            "DriverBelted": float(s.belted),
            "IgnitionOn": float(s.ignition),
            "CrashDetected": float(s.crash),
        },
    ),
    "GNSS_POSITION": (0.1, lambda s, r: {"Latitude": s.lat, "Longitude": s.lon}),
}

#: Background traffic on IDs the demo map does not use: (count, period in ticks of 10 ms).
_BACKGROUND = ((12, 1), (10, 2), (14, 10), (10, 100))


class BusEncoder:
    """Produces the frames a vehicle's CAN bus carries at each 10 ms tick, in time order."""

    def __init__(
        self,
        dbc: Database,
        rng: random.Random,
        start_epoch: float,
        bus: str = "can0",
        background: bool = True,
    ) -> None:
        self._rng = rng
        self._epoch = start_epoch
        self._bus = bus
        self._tick = 0
        self._periodic = [
            _Periodic(
                dbc.get_message_by_name(name), round(period / 0.01), rng.uniform(0, 0.009), fn
            )
            for name, (period, fn) in _SIGNALS.items()
        ]
        used = {m.frame_id for m in dbc.messages}
        self._background: list[tuple[int, bool, int, int, float, bytearray]] = []
        for count, period in _BACKGROUND if background else ():
            for _ in range(count):
                extended = rng.random() < 0.15
                while True:
                    can_id = (
                        rng.randrange(0x0C000000, 0x1FFFFFFF)
                        if extended
                        else rng.randrange(0x100, 0x7FF)
                    )
                    if can_id not in used:
                        used.add(can_id)
                        break
                payload = bytearray(rng.randbytes(rng.choice((2, 4, 6, 8, 8, 8))))
                self._background.append(
                    (
                        can_id,
                        extended,
                        period,
                        rng.randrange(period),
                        rng.uniform(0, 0.009),
                        payload,
                    )
                )
        self._counters: dict[int, int] = {}

    def frames(self, s: VehicleState) -> Iterator[Frame]:
        """Frames due at the current tick for state ``s``, sorted by timestamp."""
        tick, base = self._tick, self._epoch + s.t
        self._tick += 1
        due: list[Frame] = []
        for p in self._periodic:
            if tick % p.period_ticks:
                continue
            values = p.values(s, self._rng)
            counter = self._counters.get(p.message.frame_id, 0)
            self._counters[p.message.frame_id] = (counter + 1) % 16
            data = self._encode(p.message, values, counter)
            due.append(
                Frame(
                    base + p.offset_s,
                    p.message.frame_id,
                    data,
                    p.message.is_extended_frame,
                    self._bus,
                )
            )
        for can_id, extended, period, phase, offset, payload in self._background:
            if tick % period != phase:
                continue
            payload[0] = (payload[0] + 1) & 0xFF  # a rolling counter, like most ECUs send
            if len(payload) > 2 and self._rng.random() < 0.3:
                payload[-1] = self._rng.randrange(256)
            due.append(Frame(base + offset, can_id, bytes(payload), extended, self._bus))
        due.sort(key=lambda f: f.timestamp)
        return iter(due)

    @staticmethod
    def _encode(message: Message, values: Values, counter: int) -> bytes:
        full: dict[str, float] = {}
        for signal in message.signals:
            value = values.get(signal.name, float(counter) if "Counter" in signal.name else 0.0)
            lo = signal.minimum if signal.minimum is not None else -math.inf
            hi = signal.maximum if signal.maximum is not None else math.inf
            full[signal.name] = min(max(value, lo), hi)
        data: bytes = message.encode(full, scaling=True, padding=False, strict=False)
        return data


def load_demo_dbc(path: str) -> Database:
    """Load the demo DBC the simulator encodes with."""
    db = cantools.database.load_file(path)
    assert isinstance(db, Database)
    return db
