"""msp-agent map check: inverted signs, wrong units and scales found from a log's physics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cantools
import pytest

from edge_agent import signals as sig
from edge_agent.cli import main
from edge_agent.mapcheck import check
from edge_agent.replay import Replay
from edge_agent.simulate import simulate
from tests.conftest import DATA, DEMO_MAP

DB = cantools.database.load_file(DATA / "mapcheck.dbc")
NAIVE = DATA / "maps" / "mapcheck_naive.toml"
FIXED = DATA / "maps" / "mapcheck_fixed.toml"

# (seconds, longitudinal m/s^2, yaw deg/s): pull away, cruise, left bend, brake, right bend,
# speed up, brake to a stop.
PHASES = [(8, 2.0, 0.0), (10, 0.0, 0.0), (8, 0.0, 12.0), (5, -2.5, 0.0), (8, 0.0, -12.0),
          (6, 1.5, 0.0), (10, 0.0, 0.0), (9, -2.0, 0.0), (3, 0.0, 0.0)]  # fmt: skip


def _drive_log(path: Path, *, moving: bool = True) -> Path:
    """A 20 Hz candump log of a drive on mapcheck.dbc, in that DBC's (Toyota-like) conventions:
    ACCEL_X positive backward, ACCEL_Y positive right, odometer in miles, pedal 0-1."""
    motion, driver = DB.get_message_by_name("MOTION"), DB.get_message_by_name("DRIVER")
    t, v, km, lines = 1795654800.0, 0.0, 1234.5, []
    for seconds, accel, yaw in PHASES:
        for _ in range(seconds * 20):
            accel_now = accel if moving else 0.0
            v = max(v + accel_now * 0.05, 0.0)
            km += v * 0.05 / 1000
            lateral = math.radians(yaw) * v if moving else 0.0
            frames = (
                (motion, {"SPEED": v * 3.6, "ACCEL_X": -accel_now, "ACCEL_Y": -lateral,
                          "YAW_RATE": yaw if moving else 0.0}),
                (driver, {"STEER_ANGLE": 10 * yaw if moving else 0.0,
                          "GAS_PEDAL": 0.4 if accel_now > 0 else 0.1, "ODOMETER": km / 1.609344}),
            )  # fmt: skip
            for message, values in frames:
                data = message.encode(values).hex().upper()
                lines.append(f"({t:.6f}) can0 {message.frame_id:03X}#{data}")
            t += 0.05
    path.write_text("\n".join(lines) + "\n")
    return path


def _findings(log: Path, map_path: Path) -> dict[str, tuple[str, str, float | None]]:
    found = check(Replay(log, map_path).samples())
    return {f.signal: (f.verdict, f.message, f.ratio) for f in found}


def test_naive_map_is_told_every_sign_and_unit_it_got_wrong(tmp_path: Path) -> None:
    found = _findings(_drive_log(tmp_path / "drive.log"), NAIVE)
    assert found[sig.ACCEL_LON][:2] == ("inverted", "sign looks inverted: set invert = true")
    assert found[sig.ACCEL_LAT][:2] == ("inverted", "sign looks inverted: set invert = true")
    assert found[sig.YAW_RATE][0] == "consistent"  # against the steering angle
    verdict, message, ratio = found[sig.ODOMETER]
    assert verdict == "scale" and 'set unit = "mi"' in message
    assert ratio == pytest.approx(1.609344, rel=0.02)
    verdict, message, ratio = found[sig.ACCEL_PEDAL]
    assert verdict == "scale" and 'set unit = "ratio"' in message and ratio == 100.0


def test_corrected_map_is_consistent_throughout(tmp_path: Path) -> None:
    found = _findings(_drive_log(tmp_path / "drive.log"), FIXED)
    assert {name: verdict for name, (verdict, _, _) in found.items()} == {
        sig.ACCEL_LON: "consistent",
        sig.ACCEL_LAT: "consistent",
        sig.YAW_RATE: "consistent",
        sig.ODOMETER: "consistent",
        sig.ACCEL_PEDAL: "consistent",
    }
    assert found[sig.ACCEL_LON][2] == pytest.approx(1.0, abs=0.1)
    assert found[sig.ODOMETER][2] == pytest.approx(1.0, abs=0.02)


def test_a_standing_vehicle_is_not_enough_motion_to_tell(tmp_path: Path) -> None:
    found = _findings(_drive_log(tmp_path / "still.log", moving=False), NAIVE)
    assert {verdict for verdict, _, _ in found.values()} == {"no_motion"}


def test_simulated_demo_drive_is_consistent_on_every_signal(tmp_path: Path) -> None:
    drive = simulate(tmp_path / "demo.log", scenario="city", seed=3, duration=240)
    found = _findings(drive.path, DEMO_MAP)
    assert len(found) == 8  # positions present: speed and steering are checked too
    assert {verdict for verdict, _, _ in found.values()} == {"consistent"}


def test_cli_json_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _drive_log(tmp_path / "drive.log")
    assert main(["map", "check", str(log), "--map", str(NAIVE), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    verdicts = {f["signal"]: f["verdict"] for f in out["findings"]}
    assert verdicts[sig.ACCEL_LON] == "inverted"
    assert main(["map", "check", str(log), "--map", str(FIXED)]) == 0
    text = capsys.readouterr().out
    assert "Vehicle.TraveledDistance" in text and "consistent" in text
