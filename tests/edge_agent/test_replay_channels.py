"""Replay of real-world logs: several channels each with its own map, and the wall clock of
every format (candump, ASC with its header date in a given zone, BLF)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import cantools
import pytest

from edge_agent import signals as sig
from edge_agent.cli import main
from edge_agent.errors import ConfigError
from edge_agent.replay import Replay
from edge_agent.simulate import simulate
from msp_protocol.records import parse_ts
from tests.conftest import DATA, DEMO_MAP

NONSENSE = DATA / "maps" / "nonsense_ranges.toml"
MAPCHECK = DATA / "maps" / "mapcheck_fixed.toml"
T0 = 1795654800.0


def _two_bus_log(path: Path) -> Path:
    """can0: a car's SPEED (ID 0xB4, nonsense_ranges.dbc) at 50 km/h; can1: a radar bus that
    reuses ID 0xB4 for something else (all 0xFF, 655 km/h if read as speed) and carries
    mapcheck.dbc's MOTION (ID 0x100) at 30 km/h."""
    speed = cantools.database.load_file(DATA / "nonsense_ranges.dbc").get_message_by_name("SPEED")
    motion = cantools.database.load_file(DATA / "mapcheck.dbc").get_message_by_name("MOTION")
    lines = []
    for n in range(100):
        t = T0 + n * 0.02
        car = speed.encode({"SPEED": 50.0}).hex().upper()
        radar = motion.encode({"SPEED": 30.0, "ACCEL_X": 0.0, "ACCEL_Y": 0.0,
                               "YAW_RATE": 0.0}).hex().upper()  # fmt: skip
        lines += [f"({t:.6f}) can0 0B4#{car}", f"({t + 0.001:.6f}) can1 0B4#FFFFFFFFFFFFFFFF",
                  f"({t + 0.002:.6f}) can1 100#{radar}"]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def test_each_channel_decodes_with_its_own_map(tmp_path: Path) -> None:
    log = _two_bus_log(tmp_path / "two.log")
    report = Replay(log, {"can0": NONSENSE, "can1": MAPCHECK}).run().to_json()
    speed = report["signals"][sig.SPEED]
    assert speed["count"] == 200 and (speed["min"], speed["max"]) == (30.0, 50.0)
    assert report["rejected"]["implausible"] == 0  # can1's 0xB4 never read as a speed
    assert report["ignored"] == {"unmapped_id": 100, "unmapped_bus": 0}


def test_a_channel_no_map_claims_is_counted_not_decoded(tmp_path: Path) -> None:
    log = _two_bus_log(tmp_path / "two.log")
    report = Replay(log, {"can0": NONSENSE}).run().to_json()
    assert report["signals"][sig.SPEED]["max"] == 50.0
    assert report["ignored"]["unmapped_bus"] == 100  # can1's 0xB4 frames
    assert report["rejected"]["implausible"] == 0


def test_a_bare_map_takes_every_channel_and_mixes_them(tmp_path: Path) -> None:
    log = _two_bus_log(tmp_path / "two.log")
    report = Replay(log, NONSENSE).run().to_json()
    assert report["rejected"]["implausible"] == 100  # the radar's 0xB4 read as 655 km/h
    assert report["ignored"]["unmapped_bus"] == 0


def test_a_map_that_names_its_bus_takes_only_that_channel(tmp_path: Path) -> None:
    log = _two_bus_log(tmp_path / "two.log")
    named = tmp_path / "car.toml"
    dbc = DATA / "nonsense_ranges.dbc"
    text = NONSENSE.read_text()
    named.write_text(text.replace('dbc = "../nonsense_ranges.dbc"', f'dbc = "{dbc}"\nbus = "can0"'))
    report = Replay(log, named).run().to_json()
    assert report["ignored"]["unmapped_bus"] == 100
    # the command line overrides the map's own bus
    report = Replay(log, {"can1": named}).run().to_json()
    assert report["rejected"]["implausible"] == 100


def test_cli_map_per_channel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _two_bus_log(tmp_path / "two.log")
    assert main(["replay", str(log), "--map", f"can0={NONSENSE}", "--map", f"can1={MAPCHECK}",
                 "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["signals"][sig.SPEED]["min"] == 30.0
    assert main(["replay", str(log), "--map", str(NONSENSE), "--map", f"can1={MAPCHECK}"]) == 2
    assert "name each channel" in capsys.readouterr().err
    assert main(["replay", str(log), "--map", f"can0={NONSENSE}", "--map", f"can0={MAPCHECK}"]) == 2
    assert "two maps" in capsys.readouterr().err


def _report(log: Path, **kwargs: object) -> dict[str, object]:
    report = Replay(log, DEMO_MAP, **kwargs).run().to_json()  # type: ignore[arg-type]
    return {key: report[key] for key in ("frames", "decoded_frames", "signals", "trips", "events")}


@pytest.fixture(scope="module")
def drives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One drive (same seed) written as candump, ASC and BLF."""
    out = tmp_path_factory.mktemp("formats")
    paths = {}
    for suffix in (".log", ".asc", ".blf"):
        paths[suffix] = simulate(out / f"drive{suffix}", scenario="city", seed=4, duration=150,
                                 background=False).path  # fmt: skip
    return paths


def _same_to_the_millisecond(a: object, b: object) -> bool:
    """Equal, but for wire timestamps within a millisecond (a frame time a microsecond off
    in another format can round to the next millisecond)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_to_the_millisecond(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same_to_the_millisecond, a, b))
    if isinstance(a, str) and isinstance(b, str) and a.endswith("Z") and a[:4].isdigit():
        return abs((parse_ts(a) - parse_ts(b)).total_seconds()) <= 0.001
    return a == b


def test_log_asc_and_blf_copies_of_one_drive_give_the_same_report(drives: dict[str, Path]) -> None:
    candump = _report(drives[".log"])
    trips = candump["trips"]
    assert isinstance(trips, list) and trips and trips[0]["start"].startswith("2026-")
    assert _same_to_the_millisecond(_report(drives[".asc"]), candump)
    assert _same_to_the_millisecond(_report(drives[".blf"]), candump)
    assert not _same_to_the_millisecond({"t": "2026-11-26T01:00:30.698Z"},
                                        {"t": "2026-11-26T01:00:30.700Z"})  # fmt: skip


def test_asc_header_date_read_in_the_zone_given(drives: dict[str, Path], tmp_path: Path) -> None:
    """A log written in Tokyo (its header's date is Tokyo wall time) read on a host elsewhere."""
    tokyo = tmp_path / "tokyo.asc"
    script = ("from edge_agent.simulate import simulate; import sys; "
              "simulate(sys.argv[1], scenario='city', seed=4, duration=150, background=False)")
    env = {**os.environ, "TZ": "Asia/Tokyo"}
    subprocess.run([sys.executable, "-c", script, str(tokyo)], check=True, env=env)
    header = tokyo.read_text().splitlines()[0]
    assert header.startswith("date ")
    candump = _report(drives[".log"])
    assert _same_to_the_millisecond(_report(tokyo, tz=ZoneInfo("Asia/Tokyo")), candump)
    # read in another zone, the same file is off by that zone's difference
    assert not _same_to_the_millisecond(_report(tokyo, tz=ZoneInfo("Europe/Paris")), candump)


def test_cli_log_tz(drives: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    asc = str(drives[".asc"])
    assert main(["replay", asc, "--map", str(DEMO_MAP), "--log-tz", "Mars/Olympus"]) == 2
    assert "unknown time zone" in capsys.readouterr().err


def test_vector_channel_one_is_python_can_channel_zero(drives: dict[str, Path]) -> None:
    report = Replay(drives[".asc"], {"0": DEMO_MAP}).run().to_json()
    assert report["ignored"]["unmapped_bus"] == 0 and report["decoded_frames"] > 0
    with pytest.raises(ConfigError):
        Replay(drives[".asc"], {})
