"""The catalogue from the command line and the configuration: ``msp-agent vehicles``,
``replay --vehicle NAME``, ``vehicle = "NAME"`` on a ``[[bus]]``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent import signals as sig
from edge_agent.cli import main
from edge_agent.config import load_config
from edge_agent.errors import ConfigError
from edge_agent.signalmap import load_signal_map
from edge_agent.vehicles import BY_NAME, vehicle

from .bus import BUSES, Motion, encode_frames


def test_vehicles_json_lists_every_entry_with_its_signals(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["vehicles", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["opendbc"] == "0.3.1" and out["dbc_source"]
    by_name = {v["name"]: v for v in out["vehicles"]}
    assert set(by_name) == set(BY_NAME)
    toyota = by_name["toyota_nodsu_pt"]
    assert toyota["dbc"] == "opendbc:toyota_nodsu_pt"
    assert sig.ACCEL_LON in toyota["signals"] and sig.GEAR in toyota["signals"]
    assert toyota["sign_unverified"] == [sig.ACCEL_LAT, sig.YAW_RATE]
    assert Path(toyota["map"]).is_file()


def test_vehicles_text_marks_unverified_signs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vehicles"]) == 0
    out = capsys.readouterr().out
    assert "hyundai_canfd" in out and "AngularVelocity.Yaw?" in out
    assert "DBC files: opendbc 0.3.1," in out


def _drive(tmp_path: Path, name: str) -> Path:
    """20 s at 50 Hz on ``name``'s bus: cruise at 60 km/h, brake at 5 m/s^2 for 2.5 s."""
    signal_map = load_signal_map(vehicle(name).map_path)
    lines, t0, v = [], 1795654800.0, 60.0
    for n in range(1000):
        accel = -5.0 if 500 <= n < 625 else 0.0
        v = max(v + accel * 0.02 * 3.6, 0.0)
        motion = Motion("drive", v, accel, 0.0, 0.0, 0.0, accel < 0, "D")
        for frame in encode_frames(signal_map, BUSES[name](motion), t0 + n * 0.02):
            lines.append(f"({frame.timestamp:.6f}) can0 {frame.arbitration_id:03X}"
                         f"#{frame.data.hex().upper()}")  # fmt: skip
    log = tmp_path / f"{name}.log"
    log.write_text("\n".join(lines) + "\n")
    return log


def test_replay_vehicle_detects_braking_on_a_toyota(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's RAV4 symptom: on opendbc's Toyota DBC, braking must be seen."""
    log = _drive(tmp_path, "toyota_new_mc_pt")
    assert main(["replay", str(log), "--vehicle", "toyota_new_mc_pt", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rejected"]["implausible"] == 0
    signals = report["signals"]
    assert signals[sig.ACCEL_LON]["min"] == pytest.approx(-5.0, abs=0.05)
    assert signals[sig.BRAKE_PEDAL]["max"] == 100.0
    assert signals[sig.GEAR]["min"] == signals[sig.GEAR]["max"] == 1
    assert "harsh_braking" in [e["type"] for e in report["events"]]
    # the same as naming the map file
    assert main(["replay", str(log), "--map", str(vehicle("toyota_new_mc_pt").map_path),
                 "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["signals"] == signals


def test_replay_vehicle_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _drive(tmp_path, "mazda_3_2019")
    assert main(["replay", str(log), "--vehicle", "mazda_2099"]) == 2
    assert "'mazda_2099': no such vehicle" in capsys.readouterr().err
    # a bare --map or --vehicle takes every channel: not two of them
    assert main(["replay", str(log), "--vehicle", "mazda_3_2019", "--map", "x.toml"]) == 2
    assert "name each channel" in capsys.readouterr().err


def _config(tmp_path: Path, bus: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        'device = "gw-0001"\nvin = "JTDKB20U093456789"\n[card]\nenabled = false\n'
        '[uplink]\nbroker = "mqtt://127.0.0.1:1883"\n[[bus]]\nname = "can0"\n' + bus
    )
    return path


def test_bus_vehicle_resolves_to_the_catalogue_map(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, 'vehicle = "honda_civic_2016"\n'))
    assert config.buses[0].signal_map == vehicle("honda_civic_2016").map_path


@pytest.mark.parametrize(
    ("bus", "message"),
    [
        ('vehicle = "honda_civic_1972"\n', r"bus\[0\]\.vehicle: 'honda_civic_1972': no such"),
        ('vehicle = ""\n', r"bus\[0\]\.vehicle: expected a non-empty string"),
        (f'vehicle = "mazda_2017"\nsignal_map = "{vehicle("mazda_2017").map_path}"\n',
         r"bus\[0\]: set signal_map or vehicle, not both"),
    ],
)  # fmt: skip
def test_bus_vehicle_errors_name_the_key(tmp_path: Path, bus: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_config(tmp_path, bus))


def test_replay_vehicle_decodes_can_fd_frames_from_a_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """hyundai_canfd's messages are 16-32 bytes: a candump FD log (``##``) replays through."""
    signal_map = load_signal_map(vehicle("hyundai_canfd").map_path)
    lines = []
    for n in range(200):
        motion = Motion("left", 40.0, 0.0, 2.0, 10.0, 45.0, False, "D")
        for frame in encode_frames(signal_map, BUSES["hyundai_canfd"](motion), 1795654800 + n / 50):
            lines.append(f"({frame.timestamp:.6f}) can0 {frame.arbitration_id:03X}"
                         f"##0{frame.data.hex().upper()}")  # fmt: skip
    log = tmp_path / "ioniq.log"
    log.write_text("\n".join(lines) + "\n")
    assert main(["replay", str(log), "--vehicle", "hyundai_canfd", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rejected"]["bad_length"] == 0
    assert report["signals"][sig.SPEED]["min"] == pytest.approx(40.0, abs=0.02)
    assert report["signals"][sig.ACCEL_LAT]["max"] == pytest.approx(2.0, abs=0.01)
    assert report["signals"][sig.STEERING_ANGLE]["max"] == pytest.approx(45.0, abs=0.06)


def test_map_check_vehicle_finds_the_toyota_map_consistent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _drive(tmp_path, "toyota_new_mc_pt")
    assert main(["map", "check", str(log), "--vehicle", "toyota_new_mc_pt", "--json"]) == 0
    findings = {f["signal"]: f for f in json.loads(capsys.readouterr().out)["findings"]}
    assert findings[sig.ACCEL_LON]["verdict"] == "consistent"
    assert findings[sig.ACCEL_LON]["ratio"] == pytest.approx(1.0, abs=0.1)
