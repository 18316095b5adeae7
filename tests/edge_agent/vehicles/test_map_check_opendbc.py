"""msp-agent map check on a log built with a real DBC (opendbc's Toyota): a map that reads
``KINEMATICS.ACCEL_X`` as it is declared (positive backward on the RAV4, per comma2k19) and a
US car's miles odometer as km is told both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent import signals as sig
from edge_agent.cli import main
from edge_agent.signalmap import load_signal_map

from .bus import encode_frames

NAIVE = """dbc = "opendbc:toyota_new_mc_pt"
[signals."Vehicle.Speed"]
message = "SPEED"
signal = "SPEED"
unit = "km/h"
[signals."Vehicle.Acceleration.Longitudinal"]
message = "KINEMATICS"
signal = "ACCEL_X"
unit = "m/s^2"
[signals."Vehicle.TraveledDistance"]
message = "UI_SETTING"
signal = "ODOMETER"
unit = "km"
"""
# (seconds, m/s^2): pull away, cruise, brake, speed up, half an hour on the motorway (the
# odometer counts whole miles: 34 of them), brake to a stop
PHASES = [(8, 2.0), (10, 0.0), (5, -2.5), (12, 1.5), (1800, 0.0), (15, -2.0), (3, 0.0)]


def test_map_check_names_the_inverted_sign_and_the_miles_odometer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    map_path = tmp_path / "rav4_naive.toml"
    map_path.write_text(NAIVE)
    signal_map = load_signal_map(map_path)
    t, v, km, lines = 1795654800.0, 0.0, 23456.0, []
    for seconds, accel in PHASES:
        for _ in range(seconds * 10):
            v = max(v + accel * 0.1, 0.0)
            km += v * 0.1 / 1000
            bus = {("SPEED", "SPEED"): v * 3.6, ("KINEMATICS", "ACCEL_X"): -accel,
                   ("UI_SETTING", "ODOMETER"): round(km / 1.609344, 3)}  # fmt: skip
            for frame in encode_frames(signal_map, bus, t):  # type: ignore[arg-type]
                lines.append(f"({t:.6f}) can0 {frame.arbitration_id:03X}#{frame.data.hex()}")
            t += 0.1
    log = tmp_path / "rav4.log"
    log.write_text("\n".join(lines) + "\n")
    assert main(["map", "check", str(log), "--map", str(map_path), "--json"]) == 1
    found = {f["signal"]: f for f in json.loads(capsys.readouterr().out)["findings"]}
    assert found[sig.ACCEL_LON]["verdict"] == "inverted"
    assert found[sig.ACCEL_LON]["message"] == "sign looks inverted: set invert = true"
    assert found[sig.ODOMETER]["verdict"] == "scale"
    assert 'set unit = "mi"' in found[sig.ODOMETER]["message"]
