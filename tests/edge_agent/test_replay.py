"""Replay through the live path: reports, the CLI contract, and live virtual buses."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import can
import cantools
import pytest

from edge_agent.buses import BusSpec, LiveBuses
from edge_agent.cli import main
from edge_agent.decode import DbcDecoder
from edge_agent.keys import init_device_key, load_signer
from edge_agent.outbox import Outbox
from edge_agent.pipeline import DecodeStage
from edge_agent.replay import Replay
from edge_agent.signalmap import load_signal_map
from edge_agent.signals import CANONICAL
from edge_agent.simulate import SimulationResult, simulate
from msp_protocol.records import parse_ts
from tests.conftest import DATA, DEMO_MAP

# Plausible ranges per canonical signal for a simulated car drive.
PLAUSIBLE = {
    "Vehicle.Speed": (0.0, 160.0),
    "Vehicle.SpeedLimit": (30.0, 120.0),
    "Vehicle.Acceleration.Longitudinal": (-160.0, 160.0),
    "Vehicle.Acceleration.Lateral": (-12.0, 12.0),
    "Vehicle.AngularVelocity.Yaw": (-90.0, 90.0),
    "Vehicle.Chassis.SteeringWheel.Angle": (-720.0, 720.0),
    "Vehicle.Chassis.Accelerator.PedalPosition": (0.0, 100.0),
    "Vehicle.Chassis.Brake.PedalPosition": (0.0, 100.0),
    "Vehicle.Powertrain.CombustionEngine.Speed": (0.0, 7000.0),
    "Vehicle.Powertrain.Transmission.CurrentGear": (-1.0, 8.0),
    "Vehicle.OBD.FuelRate": (0.0, 60.0),
    "Vehicle.OBD.MAF": (0.0, 200.0),
    "Vehicle.TraveledDistance": (1000.0, 100_000.0),
    "Vehicle.CurrentLocation.Latitude": (35.0, 36.5),
    "Vehicle.CurrentLocation.Longitude": (139.0, 140.5),
    "Vehicle.Cabin.Seat.Row1.DriverSide.IsBelted": (0.0, 1.0),
    "Vehicle.Safety.CrashDetected": (0.0, 1.0),
    "Vehicle.IsIgnitionOn": (0.0, 1.0),
}


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    return simulate(
        tmp_path_factory.mktemp("replay") / "drive.log",
        scenario="mixed",
        seed=2,
        duration=60,
        crash=True,
    )


def test_replay_reports_every_canonical_signal_in_plausible_ranges(
    drive: SimulationResult,
) -> None:
    report = Replay(drive.path, DEMO_MAP).run().to_json()
    assert report["frames"] == drive.frames
    assert report["ignored"]["unmapped_id"] + report["decoded_frames"] == drive.frames
    assert report["rejected"] == {
        "bad_length": 0,
        "decode_error": 0,
        "implausible": 0,
        "corrupt_line": 0,
    }
    assert set(report["signals"]) == set(CANONICAL) == set(PLAUSIBLE)
    for name, (lo, hi) in PLAUSIBLE.items():
        stats = report["signals"][name]
        assert stats["count"] > 0, name
        assert lo <= stats["min"] <= stats["max"] <= hi, (name, stats)
    signals = report["signals"]
    assert signals["Vehicle.Safety.CrashDetected"]["max"] == 1.0
    assert signals["Vehicle.Speed"]["max"] > 30
    travelled = (
        signals["Vehicle.TraveledDistance"]["max"] - signals["Vehicle.TraveledDistance"]["min"]
    )
    assert travelled == pytest.approx(drive.truth["distance_km"], abs=0.02)


def test_replay_cli_json_contract(
    drive: SimulationResult, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(drive.path), "--map", str(DEMO_MAP), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"source", "frames", "decoded_frames", "ignored", "rejected", "signals"}
    assert report["source"] == "drive.log"
    assert set(report["signals"]["Vehicle.Speed"]) == {"count", "min", "max"}


def test_replay_cli_summary_and_errors(
    drive: SimulationResult, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["replay", str(drive.path), "--map", str(DEMO_MAP)]) == 0
    out = capsys.readouterr().out
    assert f"{drive.frames:,} frames" in out
    assert "Vehicle.Speed" in out
    assert main(["replay", str(tmp_path / "none.log"), "--map", str(DEMO_MAP)]) == 2
    assert "no such log file" in capsys.readouterr().err
    assert (
        main(["replay", str(drive.path), "--map", str(DATA / "maps" / "missing_signal.toml")]) == 2
    )
    assert "NoSuchSignal" in capsys.readouterr().err


def test_bad_frames_inside_a_log_are_counted_and_replay_continues(tmp_path: Path) -> None:
    log = tmp_path / "bad.log"
    log.write_text(
        (DATA / "malformed.log").read_text()
        + "(1795654801.0) can0 130#0102\n"  # KINEMATICS, 2 bytes instead of 8
        + "(1795654801.1) can0 0B4#FF00320000000000\n"
    )
    report = Replay(log, DEMO_MAP).run().to_json()
    assert report["rejected"]["corrupt_line"] == 3
    assert report["rejected"]["bad_length"] == 2  # 0B4 with 4 bytes, 130 with 2
    # 0xFFFF * 0.01 = 655.35 km/h is not a plausible speed (above 450 km/h)
    assert report["rejected"]["implausible"] == 1
    assert report["signals"]["Vehicle.Speed"]["count"] == 3
    assert report["signals"]["Vehicle.Speed"]["max"] == pytest.approx(20.0)


def _play(path: Path, channel: str, done: threading.Event) -> None:
    with can.Bus(interface="virtual", channel=channel, preserve_timestamps=True) as bus:
        for msg in can.LogReader(path):
            bus.send(msg)
            time.sleep(0)  # let the reader thread keep up with the bounded queue
    done.set()


def test_live_virtual_buses_take_the_same_path_as_file_replay(
    drive: SimulationResult, tmp_path: Path
) -> None:
    # A short piece of the drive keeps the live run quick; two buses carry their halves.
    messages = list(can.LogReader(drive.path))[:6000]
    halves = {"powertrain": messages[::2], "chassis": messages[1::2]}
    logs = {}
    for name, msgs in halves.items():
        logs[name] = tmp_path / f"{name}.log"
        with can.Logger(logs[name]) as writer:
            for msg in msgs:
                writer.on_message_received(msg)

    stage = DecodeStage([DbcDecoder(load_signal_map(DEMO_MAP))])
    specs = [BusSpec(name, "virtual", f"msp-test-{name}") for name in halves]
    with LiveBuses(specs, stage.wanted, maxsize=100_000) as buses:
        done = {name: threading.Event() for name in halves}
        players = [
            threading.Thread(target=_play, args=(logs[n], f"msp-test-{n}", done[n])) for n in halves
        ]
        for player in players:
            player.start()
        for player in players:
            player.join(timeout=60)
        live = list(stage.run(buses.frames(idle_timeout=1.0)))
        counts = dict(buses.counts)

    expected = {}
    for name in halves:
        replay = Replay(logs[name], DEMO_MAP)
        expected[name] = list(replay.samples())
    by_bus = {name: [s for s in live if s.source == name] for name in halves}
    for name in halves:
        got = [(s.name, s.value, s.timestamp) for s in by_bus[name]]
        want = [(s.name, s.value, s.timestamp) for s in expected[name]]
        assert got == want
        assert counts.get(f"{name}.dropped", 0) == 0
    # The bus filters let only mapped IDs through to the agent.
    mapped = sum(m.arbitration_id in stage.wanted for m in messages)
    assert counts["powertrain.frames"] + counts["chassis.frames"] == mapped
    assert stage.unmapped == 0


def test_replay_scores_the_drive_against_its_truth(drive: SimulationResult) -> None:
    report = Replay(drive.path, DEMO_MAP).run().to_json()
    (trip,) = report["trips"]
    assert trip["distance_km"] == pytest.approx(drive.truth["distance_km"], rel=0.01)
    truth_events = drive.truth["events"]
    assert isinstance(truth_events, list)
    found = [(e["type"], e["start"]) for e in report["events"]]
    assert [e["type"] for e in truth_events] == [t for t, _ in found]
    for truth, (_, start) in zip(truth_events, found, strict=True):
        assert abs(parse_ts(start).timestamp() - parse_ts(truth["start"]).timestamp()) <= 1.0
    assert trip["events"]["crash"] == 1
    assert all("location" not in e for e in report["events"])


def test_replay_appends_signed_records_to_an_outbox(
    drive: SimulationResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = init_device_key(tmp_path / "device.key", "gw-0007")
    db = tmp_path / "outbox.db"
    args = [
        "replay",
        str(drive.path),
        "--map",
        str(DEMO_MAP),
        "--json",
        "--outbox",
        str(db),
        "--key",
        str(key.key_path),
        "--device",
        "gw-0007",
        "--vin",
        "JT1234567890ABCDE",
    ]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    outbox = Outbox.open(db, load_signer(key.key_path, "gw-0007"), "JT1234567890ABCDE")
    try:
        records = list(outbox.records())
    finally:
        outbox.close()
    kinds = [r.kind for r in records]
    # A crash gets its emergency record ahead of its event record.
    assert kinds.count("trip") == len(report["trips"]) == 1
    assert kinds.count("event") == len(report["events"])
    assert kinds.count("emergency") == 1
    assert kinds[kinds.index("emergency") + 1] == "event"
    assert report["records"] == {"emergency": 1, "event": len(report["events"]), "trip": 1}
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    assert main(["outbox", "verify", str(db), "--key", str(key.key_path)]) == 0


def test_replay_outbox_options_go_together(
    drive: SimulationResult, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(drive.path), "--map", str(DEMO_MAP), "--outbox", "x.db"]) == 2
    assert "go together" in capsys.readouterr().err


def test_braking_on_a_dbc_declaring_unsigned_ranges_is_detected(tmp_path: Path) -> None:
    """opendbc's Toyota KINEMATICS declares [0|65535] on offset signals: every deceleration
    lies "outside" it. Such values are kept, so the braking is seen."""
    db = cantools.database.load_file(DATA / "nonsense_ranges.dbc")
    kinematics, speed = db.get_message_by_name("KINEMATICS"), db.get_message_by_name("SPEED")
    lines, t, v = [], 1795654800.0, 60.0
    for n in range(400):  # 20 s at 50 Hz: cruise, brake hard for 2.5 s, cruise on
        accel = -5.0 if 250 <= n < 375 else 0.0
        v = max(v + accel * 0.02 * 3.6, 0.0)
        for message, values in (
            (kinematics, {"ACCEL_X": accel, "ACCEL_Y": 0.0, "YAW_RATE": 0.0}),
            (speed, {"SPEED": v}),
        ):
            data = message.encode(values, strict=False).hex().upper()
            lines.append(f"({t + n * 0.02:.6f}) can0 {message.frame_id:03X}#{data}")
    log = tmp_path / "rav4.log"
    log.write_text("\n".join(lines) + "\n")
    report = Replay(log, DATA / "maps" / "nonsense_ranges.toml").run().to_json()
    assert report["rejected"]["implausible"] == 0
    assert report["outside_dbc_range"]["KINEMATICS.ACCEL_X"] == 125
    assert report["signals"]["Vehicle.Acceleration.Longitudinal"]["min"] == pytest.approx(
        -5.0, abs=0.02
    )
    assert [e["type"] for e in report["events"]] == ["harsh_braking"]
