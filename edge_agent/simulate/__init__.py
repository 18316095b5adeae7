"""Drive simulator: a physically plausible drive of the demo vehicle, written as a CAN log.

``simulate()`` runs a seeded plan (:mod:`.plan`) through a vehicle model (:mod:`.vehicle`),
encodes the state with the demo DBC plus background traffic (:mod:`.bus`), writes the log in
the format its suffix names, and returns the ground truth the scoring is tested against.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import can

from msp_protocol.records import format_ts

from ..errors import ConfigError
from .bus import BusEncoder, load_demo_dbc
from .drive import Drive
from .plan import SCENARIOS, PlanBuilder
from .vehicle import Vehicle

__all__ = ["DEFAULT_DBC", "DEFAULT_START", "SCENARIOS", "SimulationResult", "simulate"]

DEFAULT_DBC = Path(__file__).resolve().parents[2] / "dbc" / "msp_demo.dbc"
#: Frames are stamped from this instant (10:00 JST) unless told otherwise, so runs are repeatable.
DEFAULT_START = datetime(2026, 11, 26, 1, 0, 0, tzinfo=UTC).timestamp()


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """What was written, and the ground truth of the drive."""

    path: Path
    frames: int
    truth: dict[str, object]


def iso(epoch: float) -> str:
    """ISO 8601 UTC with milliseconds, the format records and reports use."""
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def simulate(
    out: str | Path,
    *,
    scenario: str = "mixed",
    seed: int = 1,
    duration: float = 600.0,
    crash: bool = False,
    background: bool = True,
    start_epoch: float = DEFAULT_START,
    dbc_path: str | Path = DEFAULT_DBC,
) -> SimulationResult:
    """Simulate a drive and write it to ``out`` (format from the suffix, as python-can names it).

    ``background=False`` leaves out the unmapped traffic (fast runs for scoring tests).
    Deterministic for the same arguments. Raises ConfigError for an unknown scenario or suffix.
    """
    out = Path(out)
    if not Path(dbc_path).is_file():
        # The demo DBC lives in the repository's dbc/, which a wheel does not carry.
        raise ConfigError(f"{dbc_path}: no such DBC (the demo vehicle's is dbc/msp_demo.dbc "
                          "of the repository)")  # fmt: skip
    try:
        builder = PlanBuilder(scenario, seed, duration, crash)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    phases, episodes = builder.build()
    rng = random.Random(seed * 7919 + 1)
    vehicle = Vehicle(builder.params, odometer_km=rng.uniform(5_000, 80_000))
    drive = Drive(vehicle, phases, episodes)
    encoder = BusEncoder(load_demo_dbc(str(dbc_path)), rng, start_epoch, background=background)
    odometer_start = vehicle.state.odometer_m / 1000
    frames = 0
    try:
        writer = _AscWriter(str(out)) if Path(out).suffix == ".asc" else can.Logger(str(out))
    except ValueError as exc:
        raise ConfigError(f"{out}: {exc}") from None
    with writer:
        for state in drive.ticks():
            for f in encoder.frames(state):
                writer.on_message_received(
                    can.Message(
                        timestamp=f.timestamp,
                        arbitration_id=f.arbitration_id,
                        is_extended_id=f.is_extended_id,
                        data=f.data,
                        channel=f.bus,
                    )
                )
                frames += 1
    s = vehicle.state
    events = drive.truth_events()
    for event in events:
        event["start"] = format_ts(start_epoch + float(str(event["t"])))
    truth: dict[str, object] = {
        "scenario": scenario,
        "seed": seed,
        "vehicle_class": builder.params.vehicle_class,
        "start": format_ts(start_epoch),
        "end": format_ts(start_epoch + s.t),
        "duration_s": round(s.t, 2),
        "distance_km": round(s.distance_m / 1000, 4),
        "odometer_start_km": round(odometer_start, 3),
        "fuel_l": round(s.fuel_l, 4),
        "frames": frames,
        "events": events,
    }
    return SimulationResult(out, frames, truth)


def write_truth(result: SimulationResult, path: str | Path) -> None:
    """Write the ground truth as JSON."""
    Path(path).write_text(json.dumps(result.truth, indent=2) + "\n", encoding="utf-8")


class _AscWriter(can.ASCWriter):
    """python-can's ASC writer with the header's milliseconds as three digits (as Vector tools
    write them): python-can 4.6 writes 10 ms as ".10", which every reader takes for 100 ms."""

    def _format_header_datetime(self, dt: datetime) -> str:
        return dt.strftime(f"%a %b %d %H:%M:%S.{dt.microsecond // 1000:03d} %Y")
