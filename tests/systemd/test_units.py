"""The unit files under systemd/ as systemd itself reads them: ``systemd-analyze verify``
with no complaint (it exits 0 on unknown keys, so its output must be empty too)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).parent.parent.parent / "systemd"
UNITS = sorted(p.name for p in SYSTEMD.glob("*.service"))
VENV_BIN = Path(sys.executable).parent


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: run scripts/test (it installs systemd)")
    return subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True,
                          text=True, check=False, timeout=60)  # fmt: skip


def installed_copy(name: str, tmp_path: Path) -> Path:
    """The unit with its ExecStart pointing at this checkout's virtualenv (verify insists the
    command exists), otherwise unchanged."""
    text = (SYSTEMD / name).read_text()
    assert "/opt/msp/.venv/bin/" in text, f"{name}: ExecStart should use /opt/msp/.venv/bin"
    unit = tmp_path / name
    unit.write_text(text.replace("/opt/msp/.venv/bin/", f"{VENV_BIN}/"))
    return unit


def test_every_service_unit_is_tested() -> None:
    assert UNITS == ["msp-agent.service", "msp-registry.service", "msp-registry@.service"]


@pytest.mark.parametrize("name", UNITS)
def test_unit_verifies_cleanly(name: str, tmp_path: Path) -> None:
    done = verify(installed_copy(name, tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


def test_verify_catches_a_misspelt_key(tmp_path: Path) -> None:
    # The check above is only worth something if a broken unit shows up in the output.
    unit = installed_copy("msp-agent.service", tmp_path)
    unit.write_text(unit.read_text().replace("WatchdogSec=", "WatchdogSecs="))
    assert "Unknown key 'WatchdogSecs'" in verify(unit).stderr


def _service(name: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (SYSTEMD / name).read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_agent_unit_is_a_hardened_notify_service() -> None:
    unit = _service("msp-agent.service")
    assert unit["Type"] == ["notify"] and unit["Restart"] == ["always"]
    assert unit["WatchdogSec"] == ["30"]
    assert unit["User"] == ["msp-agent"] and unit["StateDirectory"] == ["msp-agent"]
    assert unit["LoadCredential"] == ["device.key:/etc/msp/device.key"]
    assert "MSP_KEY=%d/device.key" in unit["Environment"]
    assert unit["CapabilityBoundingSet"] == [""] and unit["NoNewPrivileges"] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"]
    assert "AF_CAN" in unit["RestrictAddressFamilies"][0].split()
    assert unit["SystemCallFilter"] == ["@system-service"]
    assert unit["DevicePolicy"] == ["closed"] and unit["DeviceAllow"] == ["/dev/ttyUSB0 rw"]
    assert "sys-subsystem-net-devices-can0.device" in unit["After"][0]
    assert "pcscd.socket" in unit["After"][0]
    # no clock on a Pi: after the clock is set, and synchronised where the NTP wait is enabled
    after = " ".join(unit["After"]).split()
    assert "time-set.target" in after and "time-sync.target" in after
    assert not any("time-" in w for w in " ".join(unit["Wants"]).split())  # ordering only
    assert unit["RuntimeDirectoryMode"] == ["0750"]  # the HMI's group reaches pin.sock (0660)


def test_registry_unit_is_hardened() -> None:
    unit = _service("msp-registry.service")
    assert unit["CapabilityBoundingSet"] == [""] and unit["ProtectSystem"] == ["strict"]
    assert unit["NoNewPrivileges"] == ["yes"] and unit["User"] == ["msp-registry"]
    for key in ("LockPersonality", "RestrictSUIDSGID", "RestrictRealtime", "RemoveIPC"):
        assert unit[key] == ["yes"], key
    assert unit["SystemCallArchitectures"] == ["native"]
    assert unit["ProtectProc"] == ["invisible"]
    # the broker password is root's (0600): it comes in as a credential, not by file access
    assert unit["LoadCredential"] == ["registry.secret:/etc/mosquitto/msp/registry.secret"]
    assert "MSP_REGISTRY_PASSWORD_FILE=%d/registry.secret" in unit["Environment"]


def test_can_network_brings_can0_up_at_500k_with_bus_off_restart() -> None:
    parser = configparser.ConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(SYSTEMD / "80-can.network")
    assert parser["Match"]["Name"] == "can0"
    assert parser["CAN"]["BitRate"] == "500K"
    assert parser["CAN"]["RestartSec"] == "100ms"


def test_registry_template_runs_one_shared_worker_per_instance() -> None:
    unit = _service("msp-registry@.service")
    assert unit["ExecStart"] == ["/opt/msp/.venv/bin/msp-registry -v serve"]
    assert "MSP_REGISTRY_SHARED=true" in unit["Environment"]
    assert "MSP_REGISTRY_CLIENT_ID=msp-registry-%i" in unit["Environment"]  # a session each
    assert unit["Restart"] == ["always"] and unit["User"] == ["msp-registry"]
    assert unit["CapabilityBoundingSet"] == [""] and unit["ProtectSystem"] == ["strict"]
    assert "postgresql.service" in unit["After"][0].split()


def test_verify_catches_a_misspelt_key_in_a_template(tmp_path: Path) -> None:
    unit = installed_copy("msp-registry@.service", tmp_path)
    unit.write_text(unit.read_text().replace("RestartSec=", "RestartSecs="))
    assert "Unknown key 'RestartSecs'" in verify(unit).stderr
