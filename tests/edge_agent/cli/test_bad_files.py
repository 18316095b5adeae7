"""``msp-agent run --config`` and ``msp-agent replay --map`` through the real command line:
a file no one could use is one line naming the file and the key, exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATA, DEMO_DBC, DEMO_MAP, REPO

CONFIG = (DATA / "service" / "minimal.toml").read_text().replace("../../../dbc/", f"{REPO}/dbc/")
MAP = DEMO_MAP.read_text()
LONG = "n" * 300  # longer than a file name may be (ENAMETOOLONG)


def agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_agent.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def refused(run: subprocess.CompletedProcess[str], *expected: str | tuple[str, ...]) -> None:
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("msp-agent: error: ")
    for text in expected:
        for part in (text,) if isinstance(text, str) else text:
            assert part in line


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (CONFIG.replace('"gw-0001"', '"gw-\xff"').encode("latin-1"),
         "agent.toml: line 1 (device): not UTF-8 text (byte 0xff)"),
        (CONFIG + "[agent]\nqueue_size = " + "7" * 5000 + "\n",
         "agent.toml: line 16 (agent.queue_size): an integer of 5000 digits"),
        ("a = " + "[" * 5000 + "]" * 5000 + "\n" + CONFIG,
         "agent.toml: line 1 (a): arrays or tables nested too deeply"),
        (CONFIG.replace("mqtt://127.0.0.1:1883", "mqtts://[::1"),
         "agent.toml: uplink.broker: expected mqtts://HOST:PORT, got 'mqtts://[::1' "
         "(Invalid IPv6 URL)"),
        (CONFIG + "[agent]\nhealth_interval_s = 1e400\n",
         "agent.toml: agent.health_interval_s: expected a finite number, got inf"),
        (CONFIG + "[agent]\nno_frames_s = inf\n",
         "agent.toml: agent.no_frames_s: expected a finite number, got inf"),
        (CONFIG.replace("msp_demo.toml", LONG + ".toml"),
         ("agent.toml: bus[0].signal_map: cannot open", "File name too long")),
    ],
)  # fmt: skip
def test_run_refuses_a_hostile_configuration(
    tmp_path: Path, content: str | bytes, expected: str | tuple[str, ...]
) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    refused(agent("run", "--config", str(path), "--check"), str(path), expected)


def test_run_refuses_a_configuration_name_too_long(tmp_path: Path) -> None:
    path = tmp_path / f"{LONG}.toml"
    refused(agent("run", "--config", str(path), "--check"),
            "cannot read configuration: File name too long")  # fmt: skip


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (MAP.replace("km/h", "km/\xe9h", 1).encode("latin-1"),
         'm.toml: line 8 (signals."Vehicle.Speed".unit): not UTF-8 text (byte 0xe9)'),
        ("x = " + "1" * 5000 + "\n" + MAP, "m.toml: line 1 (x): an integer of 5000 digits"),
        ("x = " + "{ y = " * 3000 + "1" + "}" * 3000 + "\n" + MAP,
         "m.toml: line 1 (x): arrays or tables nested too deeply"),
        (MAP.replace('vehicle_class = "car"', "vehicle_class = 1e400"),
         "m.toml: vehicle_class: expected one of car, light_truck, heavy_truck, got inf"),
        ('buss = "can0"\n' + MAP, "m.toml: buss: unknown key"),
        (MAP.replace("msp_demo.dbc", LONG + ".dbc"), ("m.toml: DBC file", "File name too long")),
    ],
)  # fmt: skip
def test_replay_refuses_a_hostile_signal_map(
    tmp_path: Path, content: str | bytes, expected: str | tuple[str, ...]
) -> None:
    (tmp_path / "msp_demo.dbc").write_bytes(DEMO_DBC.read_bytes())
    path = tmp_path / "m.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    refused(agent("replay", str(DATA / "drive_short.log"), "--map", str(path)), str(path),
            expected)  # fmt: skip


def test_replay_refuses_names_too_long(tmp_path: Path) -> None:
    refused(agent("replay", str(DATA / "drive_short.log"), "--map", str(tmp_path / LONG)),
            "cannot read signal map: File name too long")  # fmt: skip
    refused(agent("replay", str(tmp_path / f"{LONG}.log"), "--map", str(DEMO_MAP)),
            "cannot open log file: File name too long")  # fmt: skip


def test_replay_refuses_a_speed_that_is_no_number() -> None:
    for speed in ("nan", "inf", "0"):
        run = agent("replay", str(DATA / "drive_short.log"), "--map", str(DEMO_MAP),
                    "--speed", speed)  # fmt: skip
        assert run.returncode == 2 and "--speed must be a positive number" in run.stderr, speed


def test_an_unknown_key_with_control_characters_is_shown_escaped(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('"\\u001b[2Jx" = 1\n' + CONFIG)
    run = agent("run", "--config", str(path), "--check")
    refused(run, "agent.toml: '\\x1b[2Jx': unknown key")
    assert "\x1b" not in run.stderr
