"""SAE J1979 mode 01 PIDs: byte layouts, pure decoders and encoders, canonical signal names."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import signals
from .errors import MalformedResponseError

#: Mode 01 PIDs whose answer is a 32-bit bitmap of the next 32 supported PIDs.
SUPPORT_PIDS: tuple[int, ...] = (0x00, 0x20, 0x40, 0x60, 0x80, 0xA0, 0xC0, 0xE0)

#: Mode 01 PID 01: MIL (check-engine lamp) state and stored-DTC count, then monitor bits.
MONITOR_STATUS = 0x01

#: At most this many PIDs in one mode 01 request (ISO 15765-4 allows 6; older ECUs reject more).
MAX_PIDS_PER_REQUEST = 6


@dataclass(frozen=True, slots=True)
class Pid:
    """A mode 01 PID whose value is ``raw * scale + offset``, ``raw`` big-endian over ``length``.

    ``signal`` is the canonical name of DESIGN.md where one exists, else a ``Vehicle.OBD.*`` name
    in COVESA VSS style; ``unit`` is the unit of the decoded value (the canonical one).
    """

    pid: int
    signal: str
    unit: str
    length: int
    scale: float = 1.0
    offset: float = 0.0

    def decode(self, data: bytes) -> float:
        """Return the physical value of ``data`` (exactly ``length`` bytes, else ValueError)."""
        if len(data) != self.length:
            raise ValueError(
                f"PID 0x{self.pid:02X} needs {self.length} data bytes, got {len(data)}"
            )
        # rounded so that 121 * 0.05 reads 6.05, not 6.050000000000001; far below resolution
        return round(int.from_bytes(data, "big") * self.scale + self.offset, 9)

    def encode(self, value: float) -> bytes:
        """Return the bytes an ECU sends for ``value``, rounded and clamped to the byte range."""
        if math.isnan(value):
            raise ValueError(f"PID 0x{self.pid:02X}: cannot encode NaN")
        top = (1 << (8 * self.length)) - 1
        raw = round(min(max((value - self.offset) / self.scale, 0.0), float(top)))
        return raw.to_bytes(self.length, "big")

    @property
    def minimum(self) -> float:
        """Smallest value the PID can carry."""
        return self.offset

    @property
    def maximum(self) -> float:
        """Largest value the PID can carry."""
        return ((1 << (8 * self.length)) - 1) * self.scale + self.offset


_PERCENT = 100.0 / 255.0

PIDS: dict[int, Pid] = {
    p.pid: p
    for p in (
        Pid(0x04, "Vehicle.OBD.EngineLoad", "%", 1, _PERCENT),
        Pid(0x05, "Vehicle.OBD.CoolantTemperature", "celsius", 1, 1.0, -40.0),
        Pid(0x0C, signals.ENGINE_SPEED, "rpm", 2, 0.25),
        Pid(0x0D, signals.SPEED, "km/h", 1),
        Pid(0x0F, "Vehicle.OBD.IntakeTemp", "celsius", 1, 1.0, -40.0),
        Pid(0x10, signals.MAF, "g/s", 2, 0.01),
        Pid(0x11, "Vehicle.OBD.ThrottlePosition", "%", 1, _PERCENT),
        Pid(0x1F, "Vehicle.OBD.RunTime", "s", 2),
        Pid(0x2F, "Vehicle.OBD.FuelLevel", "%", 1, _PERCENT),
        Pid(0x46, "Vehicle.OBD.AmbientAirTemperature", "celsius", 1, 1.0, -40.0),
        # D and E are raw sensor voltages as % (idle ~15 %, floor ~80 %), not pedal travel;
        # 0x5A, the relative position, is the one that spans 0-100 % like the canonical signal.
        Pid(0x49, "Vehicle.OBD.AcceleratorPositionD", "%", 1, _PERCENT),
        Pid(0x4A, "Vehicle.OBD.AcceleratorPositionE", "%", 1, _PERCENT),
        Pid(0x5A, signals.ACCEL_PEDAL, "%", 1, _PERCENT),
        Pid(0x5E, signals.FUEL_RATE, "l/h", 2, 0.05),
        Pid(0xA6, signals.ODOMETER, "km", 4, 0.1),
    )
}


def decode_supported(base: int, data: bytes) -> frozenset[int]:
    """Return the PIDs ``base+1 .. base+32`` that the 4-byte bitmap ``data`` marks supported."""
    if len(data) != 4:
        raise ValueError(f"supported-PID bitmap 0x{base:02X} needs 4 bytes, got {len(data)}")
    bits = int.from_bytes(data, "big")
    return frozenset(base + i + 1 for i in range(32) if bits & (1 << (31 - i)))


def encode_supported(base: int, pids: frozenset[int] | set[int]) -> bytes:
    """Return the 4-byte bitmap for PIDs in ``base+1 .. base+32`` (others are ignored)."""
    bits = 0
    for pid in pids:
        if base < pid <= base + 32:
            bits |= 1 << (31 - (pid - base - 1))
    return bits.to_bytes(4, "big")


def decode_monitor_status(data: bytes) -> tuple[bool, int]:
    """Return ``(MIL on, number of stored DTCs)`` from PID 01's 4 bytes (byte A)."""
    if len(data) != 4:
        raise ValueError(f"PID 0x01 needs 4 data bytes, got {len(data)}")
    return bool(data[0] & 0x80), data[0] & 0x7F


def encode_monitor_status(mil: bool, dtc_count: int) -> bytes:
    """Return PID 01's 4 bytes for a MIL state and DTC count (monitor bits all clear)."""
    return bytes([(0x80 if mil else 0) | min(dtc_count, 0x7F), 0, 0, 0])


def data_length(pid: int) -> int | None:
    """Return how many data bytes PID ``pid`` carries, or None for a PID not in the table."""
    if pid in SUPPORT_PIDS or pid == MONITOR_STATUS:
        return 4
    spec = PIDS.get(pid)
    return spec.length if spec else None


def split_mode01(payload: bytes, ecu: str = "?") -> list[tuple[int, bytes]]:
    """Split a mode 01 answer (``41 pid data [pid data ...]``) into ``(pid, data)`` pairs.

    Raises MalformedResponseError, naming ``ecu``, for a wrong service byte, a PID not in the
    table (its length is unknown, so nothing after it can be read) or a short answer.
    """
    if not payload or payload[0] != 0x41:
        raise MalformedResponseError(
            f"ECU {ecu}: expected a mode 01 answer (0x41), got {payload.hex()}"
        )
    pairs: list[tuple[int, bytes]] = []
    i = 1
    while i < len(payload):
        pid = payload[i]
        length = data_length(pid)
        if length is None:
            raise MalformedResponseError(f"ECU {ecu}: unknown PID 0x{pid:02X} in {payload.hex()}")
        data = payload[i + 1 : i + 1 + length]
        if len(data) != length:
            raise MalformedResponseError(
                f"ECU {ecu}: PID 0x{pid:02X} needs {length} bytes, answer {payload.hex()} is short"
            )
        pairs.append((pid, data))
        i += 1 + length
    if not pairs:
        raise MalformedResponseError(f"ECU {ecu}: mode 01 answer without a PID: {payload.hex()}")
    return pairs


def mode01_request(pids: list[int] | tuple[int, ...]) -> bytes:
    """Return a mode 01 request for 1 to 6 PIDs (ValueError otherwise)."""
    if not 1 <= len(pids) <= MAX_PIDS_PER_REQUEST:
        raise ValueError(
            f"a mode 01 request carries 1 to {MAX_PIDS_PER_REQUEST} PIDs, got {len(pids)}"
        )
    return bytes([0x01, *pids])
